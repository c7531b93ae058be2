"""Hardening: failed logins are counted, logged and slowed down; production settings pass
Django's deployment check and send the security headers (HSTS, CSP without inline script)."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from approvals.models import RequestType
from tests.conftest import PASSWORD, make_request

ROOT = Path(__file__).resolve().parents[2]


def log_in(client: Client, username: str, password: str, url: str = "/accounts/login/") -> Any:
    return client.post(url, {"username": username, "password": password})


def test_repeated_failed_logins_lock_that_username_out_for_a_while_and_are_logged(
    settings: Any, people: dict[str, User], caplog: pytest.LogCaptureFixture
) -> None:
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_LOCKOUT_SECONDS = 2
    client = Client()
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        wrong = log_in(client, "requester", "guess")
        assert wrong.status_code == 200 and "didn't match" in wrong.content.decode()

    # Now even the right password is refused for a while, without saying whether it was right.
    locked = log_in(client, "requester", PASSWORD)
    assert locked.status_code == 429 and locked["Retry-After"] == "2"
    assert "Too many failed attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    assert log_in(Client(), "requester", PASSWORD, url="/admin/login/").status_code == 429  # no way round
    assert log_in(Client(), "Requester ", PASSWORD).status_code == 429  # nor by spelling it differently
    # nor in full-width letters, which Django reads as the same name before it checks the password
    assert log_in(Client(), "ｒｅｑｕｅｓｔｅｒ", PASSWORD).status_code == 429
    # Someone else from the same address is not locked out.
    assert log_in(Client(), "reviewer1", PASSWORD).status_code == 302

    failures = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Failed login")]
    assert failures == ["Failed login for 'requester' from 127.0.0.1"] * 3
    assert any(
        r.getMessage().startswith("Refused a login to 'requester' from")
        and "too many failed logins" in r.getMessage()
        for r in caplog.records
    )

    time.sleep(2.2)
    assert log_in(client, "requester", PASSWORD).status_code == 302
    # A success starts the count again.
    for _ in range(2):
        log_in(Client(), "requester", "guess")
    assert log_in(Client(), "requester", PASSWORD).status_code == 302


def test_many_usernames_from_one_address_are_slowed_down_too(settings: Any, people: dict[str, User]) -> None:
    settings.LOGIN_FAILURE_LIMIT = 2  # and an address gets four times as many, across usernames
    for n in range(8):
        assert log_in(Client(), f"nobody{n}", "guess").status_code == 200
    assert log_in(Client(), "reviewer2", PASSWORD).status_code == 429
    # From another address, the same person logs in.
    elsewhere = Client(REMOTE_ADDR="10.0.0.7")
    assert log_in(elsewhere, "reviewer2", PASSWORD).status_code == 302


PRODUCTION_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
client = Client(SERVER_NAME="approvals.example.com")
plain = client.get("/accounts/login/")
page = client.get("/accounts/login/", secure=True)
print(json.dumps({
    "redirect": [plain.status_code, plain.get("Location", "")],
    "headers": {k: page.get(k, "") for k in (
        "Strict-Transport-Security", "Content-Security-Policy", "X-Frame-Options",
        "X-Content-Type-Options", "Referrer-Policy")},
    "csrf_cookie": {k: bool(page.cookies["csrftoken"][k]) for k in ("secure", "samesite")},
    "session": [settings.SESSION_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY],
    "debug": settings.DEBUG,
}))
"""


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "HTTPS", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="approvals.example.com",
        DATA_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="approvals.settings",
    )
    env.update(extra)
    return env


def test_production_settings_pass_the_deploy_check_and_send_the_security_headers(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    check = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    probe = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert seen["debug"] is False
    assert seen["redirect"] == [301, "https://approvals.example.com/accounts/login/"]
    headers = seen["headers"]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    csp = dict(
        (part.split()[0], part.split()[1:])
        for part in headers["Content-Security-Policy"].split(";")
        if part.strip()
    )
    assert csp["script-src"] == ["'self'"] and csp["default-src"] == ["'self'"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "unsafe-eval" not in headers["Content-Security-Policy"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
    assert (headers["X-Frame-Options"], headers["X-Content-Type-Options"]) == ("DENY", "nosniff")
    assert headers["Referrer-Policy"] == "same-origin"
    assert seen["csrf_cookie"]["secure"] and seen["session"] == [True, True]


def test_without_a_secret_key_production_settings_are_refused_by_the_deploy_check(tmp_path: Path) -> None:
    env = production_env(tmp_path, SECRET_KEY="short")
    check = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode != 0 and "security.W009" in check.stdout + check.stderr


def test_every_page_sends_the_content_security_policy(client: Client, people: dict[str, User]) -> None:
    assert client.login(username="admin", password=PASSWORD)
    for url in (reverse("home"), reverse("inbox"), reverse("dashboard"), "/admin/"):
        policy = client.get(url)["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, url


INLINE = {
    "inline script": re.compile(r"<script(?![^>]*\b(?:src=|type=\"application/json\"))[^>]*>"),
    "inline style": re.compile(r"<style\b|\sstyle="),
    "event handler attribute": re.compile(r"\son[a-z]+="),
}


def test_pages_and_the_admin_need_nothing_the_policy_refuses(
    client: Client, people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    """No inline script or style, no onclick: what the policy would block is simply not there."""
    admin = people["admin"]
    admin.is_superuser = True
    admin.save()
    request = make_request(people, purchase, started=True)
    assert client.login(username="admin", password=PASSWORD)
    urls = [
        reverse("home"),
        reverse("inbox"),
        reverse("dashboard"),
        reverse("request_create"),
        request.get_absolute_url(),
        "/admin/",
        f"/admin/approvals/requesttype/{purchase.pk}/change/",
        f"/admin/approvals/stage/{purchase.stages.get().pk}/change/",
        "/admin/approvals/approvalrequest/",
        f"/admin/approvals/approvalrequest/{request.pk}/change/",
        "/admin/auth/user/add/",
    ]
    for url in urls:
        response = client.get(url)
        html = response.content.decode()
        assert response.status_code == 200, url
        found = [what for what, pattern in INLINE.items() if pattern.search(html)]
        assert found == [], (url, found)
