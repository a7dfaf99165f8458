"""The README documents every command and every setting (docs are checked like code)."""

from __future__ import annotations

import pytest
import typer

from indexer.cli import app
from indexer.settings import Settings
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", [c.name for c in app.registered_commands])
def test_every_command_is_documented(command: str) -> None:
    assert f"`findling {command}" in README


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    assert f"`FINDLING_{field.upper()}`" in README


def test_commands_have_help() -> None:
    command = typer.main.get_command(app)
    assert all(sub.help for sub in command.commands.values())  # type: ignore[attr-defined]


def test_one_score_description_everywhere() -> None:
    """What a score means is written once; the API schema, the MCP tool, the search page and
    the README all show that text."""
    from api.schemas import SearchResponse
    from indexer.mcp_server import SEARCH_DESCRIPTION, SearchToolAnswer
    from indexer.ranking import SCORE_DESCRIPTION
    from indexer.schemas import SearchHit

    assert SearchHit.model_fields["score"].description == SCORE_DESCRIPTION
    # the HTTP API and the MCP tool return that one hit schema
    assert SearchResponse.model_fields["results"].annotation == list[SearchHit]
    assert SearchToolAnswer.model_fields["results"].annotation == list[SearchHit]
    assert SCORE_DESCRIPTION in SEARCH_DESCRIPTION
    assert SCORE_DESCRIPTION in README
    page = (ROOT / "api" / "static" / "app.js").read_text(encoding="utf-8")
    # the page reads the description from /openapi.json instead of keeping its own
    assert "SearchHit" in page and "scoreMeaning" in page
    assert "cosine similarity of" not in page
