"""The README documents every command and every setting (docs are checked like code)."""

from __future__ import annotations

import pytest
import typer

from indexer.cli import app
from indexer.settings import Settings
from tests.conftest import ROOT

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
