#!/usr/bin/env python3
"""Django's command-line utility, plus the two set-up commands of the README.

`python3 manage.py up` and `python3 manage.py runtests` work on a fresh machine: when they are
not already running inside a virtualenv, they create `.venv/` beside this file, install the
project into it (again only when pyproject.toml changed) and re-run themselves with its Python.
Everything here before `main()` uses the standard library alone, since Django may not be
installed yet.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
VENV_DIR = BASE_DIR / ".venv"
BOOTSTRAP_COMMANDS = {"up", "runtests"}


def _in_virtualenv() -> bool:
    return sys.prefix != sys.base_prefix


def _venv_python() -> Path:
    return VENV_DIR / "bin" / "python"


def _ensure_installed(python: Path) -> None:
    """Install the project with its test extras, skipping the work when nothing changed."""
    stamp = Path(sys.prefix if python == Path(sys.executable) else VENV_DIR) / ".approvals-installed"
    wanted = hashlib.sha256((BASE_DIR / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return
    print("Installing the project and its dependencies (first run only)...", flush=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{BASE_DIR}[test]"], check=True)
    stamp.write_text(wanted)


def bootstrap(argv: list[str]) -> None:
    command = argv[1] if len(argv) > 1 else ""
    if command not in BOOTSTRAP_COMMANDS:
        return
    if _in_virtualenv():
        _ensure_installed(Path(sys.executable))
        return
    if not _venv_python().exists():
        print(f"Creating a virtualenv in {VENV_DIR} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV_DIR)
    _ensure_installed(_venv_python())
    os.execv(_venv_python(), [str(_venv_python()), *argv])


def main() -> None:
    bootstrap(sys.argv)
    if sys.argv[1:2] == ["runtests"]:
        # The test command: pytest (with pytest-django) over tests/, any further arguments passed on.
        os.chdir(BASE_DIR)
        os.execv(sys.executable, [sys.executable, "-m", "pytest", *sys.argv[2:]])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "approvals.settings")
    if sys.argv[1:2] == ["up"]:
        # The run command is the development default: DEBUG on for it and every process it starts.
        os.environ.setdefault("DJANGO_DEBUG", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
