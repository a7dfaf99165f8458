"""The CLI through typer's runner, on the hashing embedder (settings from the environment)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.cli import app
from indexer.settings import Settings
from tests.helpers import modules_loaded_by_cli

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_index_search_info_json(hashing_env: Settings, corpus: Path) -> None:
    code, out, _ = _run("index", str(corpus), "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["documents"], summary["passages"], summary["model"]) == (2, 9, "hashing-256")

    code, out, _ = _run("search", "Rhein Fluss Europa", "-k", "2", "--json")
    assert code == 0
    response = json.loads(out)
    assert response["query"] == "Rhein Fluss Europa"
    assert response["results"][0]["text"] == "Der Rhein ist ein Fluss in Europa."
    assert set(response["results"][0]) >= {"text", "score", "context", "source", "start", "end"}
    assert len(response["results"]) == 2

    code, out, _ = _run("info", "--json")
    assert code == 0 and json.loads(out)["passages"] == 9


def test_human_output(hashing_env: Settings, corpus: Path) -> None:
    code, out, _ = _run("index", str(corpus))
    assert code == 0 and "index holds 2 document(s), 9 sentences" in out
    assert "added 2, updated 0, removed 0, unchanged 0; embedded 9 sentences" in out
    code, out, _ = _run("search", "Pasta salted water")
    assert code == 0 and "Pasta should be cooked in salted water." in out
    code, out, _ = _run("info")
    assert code == 0 and "hashing-256" in out


def test_index_defaults_to_seeds(hashing_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    code, out, _ = _run("index", "--json")
    assert code == 0 and json.loads(out)["passages"] == 19


def test_non_utf8_file_is_skipped_with_a_warning(hashing_env: Settings, corpus: Path) -> None:
    (corpus / "latin1.txt").write_bytes("Größe und Maß".encode("latin-1"))
    code, out, err = _run("index", str(corpus), "--json")
    assert code == 0
    assert "skipped" in err and "latin1.txt" in err and "UTF-8" in err
    assert json.loads(out)["documents"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("search", "Rhein"), "no index at"),
        (("info",), "no index at"),
        (("index", "does/not/exist"), "no such file or folder"),
    ],
)
def test_errors_go_to_stderr_with_exit_1(
    hashing_env: Settings, args: tuple[str, ...], message: str
) -> None:
    code, out, err = _run(*args)
    assert code == 1
    assert message in err and "hint:" in err
    assert "Traceback" not in err + out


@pytest.mark.parametrize(
    ("args", "message"),
    [(("", "-k", "3"), "the query is empty"), (("Rhein", "-k", "0"), "k must be between")],
)
def test_bad_search_arguments(
    hashing_env: Settings, corpus: Path, args: tuple[str, ...], message: str
) -> None:
    assert _run("index", str(corpus))[0] == 0
    code, _, err = _run("search", *args)
    assert code == 1 and message in err


def test_usage_error_exits_2(hashing_env: Settings) -> None:
    assert _run("search", "Rhein", "-k", "many")[0] == 2


def test_help_does_not_import_torch() -> None:
    heavy = ("torch", "sentence_transformers", "transformers", "faiss", "fastapi")
    assert modules_loaded_by_cli([["--help"]], heavy) == []


def test_incremental_runs_add_remove_collections(hashing_env: Settings, corpus: Path) -> None:
    def summary(*args: str) -> dict[str, object]:
        code, out, err = _run(*args, "--json")
        assert code == 0, err
        return json.loads(out)

    assert summary("index", str(corpus))["added"] == 2
    again = summary("index", str(corpus))
    assert (again["unchanged"], again["embedded"]) == (2, 0)
    extra = corpus / "extra.txt"
    extra.write_text("Ein ganz neuer Satz.", encoding="utf-8")
    assert summary("add", str(extra))["added"] == 1
    removed = summary("remove", "--source", "*extra*")
    assert (removed["removed"], removed["documents"]) == (1, 2)
    assert summary("index", str(corpus), "--collection", "second")["documents"] == 3
    code, out, _ = _run("collections", "--json")
    assert {c["name"] for c in json.loads(out)} == {"default", "second"}
    code, out, _ = _run("search", "neuer Satz", "-c", "second", "--filter", "lang=de", "--json")
    assert json.loads(out)["results"][0]["text"] == "Ein ganz neuer Satz."
    assert _run("drop", "second", "--yes")[0] == 0
    code, out, _ = _run("collections", "--json")
    assert [c["name"] for c in json.loads(out)] == ["default"]
    code, _, err = _run("drop", "second", "--yes")
    assert code == 1 and "no collection" in err


def test_remove_needs_a_target(hashing_env: Settings) -> None:
    assert _run("remove")[0] == 2


@pytest.mark.parametrize("when", ["before the switch", "after the switch"])
def test_ctrl_c_during_a_write_says_which_generation_is_live(
    hashing_env: Settings, corpus: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    from indexer import generations, service

    assert _run("index", str(corpus))[0] == 0
    (corpus / "more.txt").write_text("Die Elbe fließt durch Hamburg.", encoding="utf-8")

    def ctrl_c(*args: object) -> None:
        raise KeyboardInterrupt

    # the manifest is written just before CURRENT; the summary is made just after it
    module = generations if when == "before the switch" else service
    with monkeypatch.context() as patch:
        patch.setattr(module, "write_manifest" if module is generations else "summary_of", ctrl_c)
        code, _, err = _run("index", str(corpus))
    code_info, out, _ = _run("info", "--json")
    documents = json.loads(out)["documents"]
    assert code == 130 and code_info == 0
    if when == "before the switch":
        assert "interrupted: the index was left as it was before this run" in err
        assert documents == 2
    else:
        assert "interrupted after this run was committed: gen-000000000002 is live" in err
        assert documents == 3
