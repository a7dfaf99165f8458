"""A bounded loopback load test: 16 clients for 30 s against a real `findling serve`.

It runs the load benchmark's command (`python -m bench.load`) and checks what it measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, SEEDS

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_sixteen_clients_for_thirty_seconds_without_an_error(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    command = [sys.executable, "-m", "bench.load", "--corpus", str(SEEDS), "--out", str(out)]
    command += ["--clients", "16", "--seconds", "30", "--backend", "onnx-int8"]
    subprocess.run(command, cwd=ROOT, check=False, capture_output=True, timeout=600)
    result = json.loads(out.read_text(encoding="utf-8"))
    print(
        f"\n{result['n']} searches, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"{result['requests_per_s']} req/s, {result['errors']} errors"
    )
    assert result["errors"] == 0
    assert result["n"] > 16  # every client got answers, not just a first one
    # the server's Prometheus counter saw exactly the searches the clients made
    assert result["server_counted"] == result["n"]
