"""The production topology as written: docker-compose.yml as Debian's docker-compose reads it
(no Docker engine runs here), and the Dockerfile."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = shutil.which("docker-compose")
SECRETS = {"POSTGRES_PASSWORD": "pw-from-the-environment", "SECRET_KEY": "key-from-the-environment"}
ONE_SHOT = {"temporal-schema", "temporal-namespace", "migrate"}

if COMPOSE is None and os.environ.get("REQUIRE_COMPOSE") == "1":  # CI installs it
    raise RuntimeError("docker-compose is missing: install Debian's docker-compose")
needs_compose = pytest.mark.skipif(COMPOSE is None, reason="Debian's docker-compose is not installed")


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    return subprocess.run(
        [COMPOSE, "config"], cwd=ROOT, env={**keep, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    done = compose_config(SECRETS)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@needs_compose
def test_the_stack_will_not_start_without_its_secrets() -> None:
    for missing in SECRETS:
        done = compose_config({k: v for k, v in SECRETS.items() if k != missing})
        assert done.returncode != 0 and f"set {missing}" in done.stderr


@needs_compose
def test_the_stack_has_every_part_each_with_a_health_check_and_no_secret_written_in(
    stack: dict[str, Any],
) -> None:
    services = stack["services"]
    assert set(services) == {
        "postgres",
        "temporal-schema",
        "temporal",
        "temporal-namespace",
        "temporal-ui",
        "redis",
        "migrate",
        "web-a",
        "web-b",
        "proxy",
        "worker",
        "bulk-worker",
    }
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
        else:
            assert service["healthcheck"]["test"], name
    raw = (ROOT / "docker-compose.yml").read_text()
    for secret in SECRETS.values():
        assert secret not in raw
    assert re.search(r"PASSWORD:\s*\w", raw) is None  # every password is the environment's

    # Temporal on PostgreSQL, its schema made by the admin tools first; auto-setup nowhere.
    assert "auto-setup" not in services["temporal"]["image"]
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert (
        services["temporal"]["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"
    )
    assert "temporal-sql-tool" in " ".join(services["temporal-schema"]["command"])

    # Two web replicas behind the proxy, the app's processes after migrate, two worker pools.
    nginx = (ROOT / "docs/deploy/nginx.conf").read_text()
    assert "server web-a:8000" in nginx and "server web-b:8000" in nginx
    assert set(services["proxy"]["depends_on"]) == {"web-a", "web-b"}
    for name in ("web-a", "web-b", "worker", "bulk-worker"):
        app = services[name]
        assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert app["environment"]["SECRET_KEY"] == SECRETS["SECRET_KEY"]
        assert SECRETS["POSTGRES_PASSWORD"] in app["environment"]["DATABASE_URL"]
        assert app["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert services["worker"]["command"][-2:] == ["--queue", "interactive"]
    assert services["bulk-worker"]["command"][-2:] == ["--queue", "bulk"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]


def test_the_image_is_slim_non_root_pinned_and_has_its_static_files() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert all(
        line.split()[1].endswith("-slim") for line in dockerfile.splitlines() if line.startswith("FROM")
    )
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "pip install -r /tmp/requirements.lock" in dockerfile and "collectstatic" in dockerfile
    assert "SECRET_KEY=" not in dockerfile.replace("SECRET_KEY=build-only-not-a-secret", "")

    lock = {
        line.split("==")[0].lower().replace("_", "-"): line
        for line in (ROOT / "docs/deploy/requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert all("==" in line for line in lock.values())  # every one pinned
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in wanted:
        name = re.split(r"[\[<>=~!; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in lock, f"{name} is in pyproject.toml but not pinned in docs/deploy/requirements.lock"
