"""The benchmark runs, so that it cannot rot: bench/run.py --quick (tiny sizes, one repetition)
brings up the whole stack and writes every figure. Its figures are not asserted: speed is the
benchmark's to measure, side by side with bare Temporal, never a timed test's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import KEYS

pytestmark = [pytest.mark.temporal_server, pytest.mark.slow]  # minutes: CI runs it after the suite
ROOT = Path(__file__).resolve().parents[2]


def reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_the_benchmark_runs_end_to_end_and_writes_every_figure(tmp_path: Path) -> None:
    if not (reachable(5432) and reachable(6379)):
        if os.environ.get("REQUIRE_BENCH") == "1":
            pytest.fail("the benchmark needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379")
        pytest.skip("the benchmark needs PostgreSQL and Redis on this machine")
    results, table = tmp_path / "results.json", tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--out", str(results), "--markdown", str(table)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(results.read_text())
    assert tuple(result["figures"]) == KEYS
    assert {"date", "revision", "machine", "sizes", "bare"} <= set(result)
    unmeasured = {key: result["reasons"][key] for key, value in result["figures"].items() if value is None}
    # Each scenario ran and measured what it is for.
    assert unmeasured == {}, unmeasured
    assert "| `decision_p50_ms_1` |" in table.read_text()
