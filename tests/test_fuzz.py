"""Property-based fuzzing of the live OpenAPI schema (schemathesis): no 5xx, every response as
documented. Runs in-process against the real app on the hashing embedder (slow tier)."""

from __future__ import annotations

import atexit
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from api.app import create_app
from indexer.catalog import Catalog
from indexer.model.embedder import HashingEmbedder
from indexer.settings import Settings
from tests.helpers import ENGLISH, GERMAN

KEY = "fuzz-key"
CASES: dict[str, int] = {}


def _app() -> object:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="findling-fuzz-"))
    (root / "docs").mkdir()
    (root / "docs" / "rhein.txt").write_text(GERMAN, encoding="utf-8")
    (root / "docs" / "cooking.md").write_text(ENGLISH, encoding="utf-8")
    embedder = HashingEmbedder(256)
    catalog = Catalog(root / "index", embedder)
    catalog.service("default").build([root / "docs"])
    # schemathesis calls the app by the name testserver
    settings = Settings(model="hashing", api_key=KEY, max_batch=8, allowed_hosts=["testserver"])  # type: ignore[arg-type]
    app = create_app(settings, catalog=catalog)
    return app


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def _report() -> None:
    if CASES:
        print(f"\nschemathesis: {sum(CASES.values())} cases over {len(CASES)} operations")


atexit.register(_report)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    CASES[case.operation.label] = CASES.get(case.operation.label, 0) + 1
    # with the key, writes get past auth and are fuzzed for real. Requests the schema allows
    # may still be refused with a 4xx: limits are runtime settings (FINDLING_MAX_K, ...) and
    # some rules (a query of only spaces, key=value filters) are not schema constraints
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {KEY}"},
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
    assert response.status_code < 500
