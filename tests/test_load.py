"""A bounded loopback load test: 16 clients for 30 s against a real `findling serve`."""

from __future__ import annotations

import pytest

from bench.load import run
from tests.conftest import SEEDS

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_sixteen_clients_for_thirty_seconds_without_an_error() -> None:
    result = run(SEEDS, clients=16, seconds=30.0, backend="onnx-int8")
    print(
        f"\n{result['n']} searches, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"{result['requests_per_s']} req/s, {result['errors']} errors"
    )
    assert result["errors"] == 0
    assert result["n"] > 16  # every client got answers, not just a first one
    # the server's Prometheus counter saw exactly the searches the clients made
    assert result["server_counted"] == result["n"]
