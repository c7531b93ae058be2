"""`manage.py mcp`: the MCP server on stdin and stdout, for an agent that starts it as a local
process; it acts as the owner of the API token in APPROVALS_API_TOKEN (see approvals.mcp_server)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from approvals import mcp_server
from approvals.services import tokens

TOKEN_VARIABLE = "APPROVALS_API_TOKEN"


class Command(BaseCommand):
    help = (
        f"Serve the MCP tools (request_approval, approval_status, verify_approval) over stdio, as "
        f"the owner of the API token in {TOKEN_VARIABLE}. Over HTTP the web app serves them at "
        f"{mcp_server.PATH}."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        plain = os.environ.get(TOKEN_VARIABLE, "").strip()
        if not plain:
            raise CommandError(
                f"Set {TOKEN_VARIABLE} to an API token of the agent's account (made at "
                f"{reverse('tokens')}, with the scopes read and create); it is read from the "
                "environment, not the command line, so that other users of the machine cannot see it."
            )
        if tokens.token_authenticate(plain=plain) is None:
            raise CommandError(
                f"The token in {TOKEN_VARIABLE} is not usable: it is unknown, revoked or expired, "
                "or its owner can no longer log in."
            )
        asyncio.run(mcp_server.serve_stdio(plain))
