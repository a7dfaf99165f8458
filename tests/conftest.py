"""Shared fixtures: a small German/English corpus and a service on the hashing embedder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from indexer.catalog import Catalog
from indexer.embedder import HashingEmbedder
from indexer.service import SearchService
from indexer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def modules_loaded_by_cli(runs: Sequence[list[str]], modules: Sequence[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after the CLI ``runs`` (each exits 0)."""
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from indexer.cli import app\n"
        f"for args in {list(runs)!r}:\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        f"print(','.join(m for m in {list(modules)!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in done.stdout.strip().split(",") if m]


GERMAN = """Der Rhein ist ein Fluss in Europa. Er fließt z. B. durch Köln und Düsseldorf.

Am 3. Oktober feiert Deutschland den Tag der Deutschen Einheit. Dr. Müller hielt eine Rede.
"""
ENGLISH = """# Cooking notes

Pasta should be cooked in salted water. Drain it while it is still firm.

The oven must be preheated to 200 degrees. Bake the bread for 40 minutes.
"""


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "rhein.txt").write_text(GERMAN, encoding="utf-8")
    (folder / "sub" / "cooking.md").write_text(ENGLISH, encoding="utf-8")
    (folder / "ignored.csv").write_text("a,b\n", encoding="utf-8")
    return folder


@pytest.fixture
def index_root(tmp_path: Path) -> Path:
    """The folder holding the collections (FINDLING_INDEX_DIR)."""
    return tmp_path / "index"


@pytest.fixture
def index_dir(index_root: Path) -> Path:
    """The default collection's folder."""
    return index_root / "default"


@pytest.fixture
def service(index_dir: Path) -> SearchService:
    return SearchService(index_dir, HashingEmbedder(256))


@pytest.fixture
def built(service: SearchService, corpus: Path) -> SearchService:
    service.build([corpus])
    return service


@pytest.fixture
def catalog(index_root: Path, service: SearchService) -> Catalog:
    """Collections under ``index_root`` on the hashing embedder; "default" is ``service``."""
    catalog = Catalog(index_root, lambda folder: SearchService(folder, service.embedder))
    catalog._services["default"] = service
    return catalog


@pytest.fixture
def hashing_env(monkeypatch: pytest.MonkeyPatch, index_root: Path) -> Settings:
    """Environment for adapters (CLI, app) that build their own settings at the edge."""
    monkeypatch.setenv("FINDLING_MODEL", "hashing")
    monkeypatch.setenv("FINDLING_INDEX_DIR", str(index_root))
    return Settings()
