"""`python3 manage.py up`: the whole app on the embedded default, as real processes."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until

BASE_DIR = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.temporal_server


class Browser:
    """Just enough of a browser for Django forms: cookies and the CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        cookies = urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        self.opener = urllib.request.build_opener(cookies)

    def get(self, path: str) -> tuple[int, str, str]:
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.status, response.geturl(), response.read().decode()

    def submit(self, path: str, fields: dict[str, str]) -> tuple[int, str, str]:
        _, _, page = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, f"no CSRF token on {path}"
        hidden = dict(re.findall(r'type="hidden" name="(submission_id)" value="([^"]+)"', page))
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), **hidden, **fields}).encode()
        request = urllib.request.Request(self.base + path, data=body, headers={"Referer": self.base + path})
        with self.opener.open(request, timeout=20) as response:
            return response.status, response.geturl(), response.read().decode()


def test_up_runs_web_worker_and_temporal_together_and_ctrl_c_stops_them(tmp_path: Path) -> None:
    port, temporal_port, ui_port = free_port(), free_port(), free_port()
    # The embedded default: none of the production settings CI may have in its environment.
    production = {"DATABASE_URL", "REDIS_URL", "DJANGO_DEBUG", "SECRET_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in production}
    env["DATA_DIR"] = str(tmp_path)
    env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable, "manage.py", "up", "--port", str(port)]
    command += ["--temporal-port", str(temporal_port), "--temporal-ui-port", str(ui_port)]
    up = subprocess.Popen(
        command,
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(up.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait_until(lambda: "Press Ctrl-C" in "".join(output) or up.poll() is not None, timeout=120, what="up")
        banner = "".join(output)
        assert up.poll() is None, banner
        assert f"http://127.0.0.1:{port}/" in banner
        assert f"http://127.0.0.1:{ui_port}/" in banner
        assert "requester" in banner and "manager" in banner and "demo-pass-123" in banner

        web = Browser(f"http://127.0.0.1:{port}")
        assert web.get("/static/vendor/htmx/htmx-2.0.11.min.js")[0] == 200
        assert urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/", timeout=10).status == 200
        _, url, _ = web.submit("/accounts/login/", {"username": "requester", "password": "demo-pass-123"})
        assert url.endswith("/"), "login failed"
        _, url, page = web.submit("/requests/new/", {"request_type": "1", "title": "Through every process"})
        assert "submitted and waiting for review" in page, page
        detail = urllib.parse.urlsplit(url).path
        # The worker (its own process) records the review in the database the web reads.
        wait_until(lambda: "Stage started" in web.get(detail)[2], timeout=30, what="the worker's projection")
        assert 'live-status">In review<' in web.get(detail)[2]
    finally:
        os.killpg(up.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        code = up.wait(timeout=60)
        reader.join(5)
    assert code == 0, "".join(output)
    assert "Stopped." in "".join(output)
    time.sleep(0.5)
    for p in (port, temporal_port, ui_port):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{p}/", timeout=2)
    assert (tmp_path / "temporal.sqlite").exists()
