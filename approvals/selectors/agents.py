"""An agent action as reviewers and its agent read it: the exact arguments of each version, with
their hashes, and whether its approval token was used."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User

from approvals.models import ApprovalRequest, ApprovalTokenUse


@dataclass(frozen=True)
class ActionVersion:
    revision: int
    sha256: str
    arguments: dict[str, Any]
    proposed_by: User | None  # None: the agent, on submission

    @property
    def pretty(self) -> str:
        """The arguments as reviewers read them: indented, keys in canonical order."""
        return json.dumps(self.arguments, indent=2, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class AgentAction:
    agent: str
    tool: str
    risk: str
    sha256: str  # of the version under review (or approved)
    versions: list[ActionVersion]  # oldest first
    token_used_at: datetime | None

    @property
    def current(self) -> ActionVersion | None:
        return next((v for v in reversed(self.versions) if v.sha256 == self.sha256), None)


def agent_action(*, request: ApprovalRequest) -> AgentAction | None:
    """None for a request that is not an agent action."""
    if not request.is_agent_action:
        return None
    kept = {a.sha256: a for a in request.action_versions.select_related("proposed_by")}
    versions = []
    for revision in request.revisions.order_by("number"):
        if (version := kept.get(revision.action_sha256)) is not None:
            arguments = json.loads(version.canonical)["arguments"]
            versions.append(ActionVersion(revision.number, version.sha256, arguments, version.proposed_by))
    use = ApprovalTokenUse.objects.filter(request=request).first()
    return AgentAction(
        agent=request.agent_name,
        tool=request.tool,
        risk=request.risk,
        sha256=request.action_sha256,
        versions=versions,
        token_used_at=use.used_at if use else None,
    )
