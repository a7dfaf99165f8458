"""Incremental updates: unchanged files cost nothing, ids stay stable, deletes are real."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from indexer.errors import IndexBusyError, ModelMismatchError
from indexer.model.embedder import HashingEmbedder
from indexer.service import SearchService
from tests.helpers import stored


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting the texts it embeds."""

    def __init__(self) -> None:
        super().__init__(256)
        self.embedded = 0

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        self.embedded += len(texts)
        return super().embed_documents(texts)


@pytest.fixture
def counting(index_dir: Path) -> tuple[SearchService, CountingEmbedder]:
    embedder = CountingEmbedder()
    return SearchService(index_dir, embedder), embedder


def _ids_by_text(service: SearchService) -> dict[str, int]:
    return {s.sentence.text: s.id for s in stored(service.index_dir)}


def test_unchanged_corpus_does_no_embedding_and_no_new_generation(counting, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    service, embedder = counting
    first = service.build([corpus])
    embedder.embedded = 0
    second = service.build([corpus])
    assert embedder.embedded == 0
    assert (second.unchanged, second.added, second.updated, second.removed) == (2, 0, 0, 0)
    assert second.generation == first.generation


def test_changed_file_is_re_embedded_alone_and_ids_stay_stable(counting, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    service, embedder = counting
    service.build([corpus])
    before = _ids_by_text(service)
    (corpus / "rhein.txt").write_text("Der Main fließt durch Frankfurt.", encoding="utf-8")
    embedder.embedded = 0
    summary = service.build([corpus])
    assert (summary.updated, summary.unchanged, summary.embedded) == (1, 1, 1)
    assert embedder.embedded == 1  # one sentence, its window is itself
    after = _ids_by_text(service)
    cooking = [t for t in before if "Pasta" in t or "oven" in t or "Bake" in t]
    assert all(after[t] == before[t] for t in cooking)
    assert after["Der Main fließt durch Frankfurt."] > max(before.values())  # ids never reused
    assert not any("Rhein" in t for t in after)
    results = service.search("Rhein Köln Düsseldorf", k=10).results
    assert not any("Rhein" in r.text for r in results)  # no ghosts of the replaced text


def test_deleted_file_is_pruned_unless_told_not_to(counting, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    service, _ = counting
    service.build([corpus])
    (corpus / "rhein.txt").unlink()
    kept = service.build([corpus], prune=False)
    assert (kept.removed, kept.documents) == (0, 2)
    pruned = service.build([corpus])
    assert (pruned.removed, pruned.documents) == (1, 1)
    assert all("Rhein" not in r.text for r in service.search("Rhein", k=10, mode="dense").results)


def test_indexing_another_folder_keeps_the_first(counting, corpus: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    service, _ = counting
    service.build([corpus])
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.md").write_text("Ein anderer Ordner.", encoding="utf-8")
    summary = service.build([other])
    assert (summary.added, summary.removed, summary.documents) == (1, 0, 3)


def test_a_file_that_turned_unreadable_keeps_its_old_version(counting, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    service, _ = counting
    service.build([corpus])
    (corpus / "rhein.txt").write_bytes(b"\xff\xfe broken")
    summary = service.build([corpus])
    assert summary.removed == 0 and summary.documents == 2
    assert [Path(s.path).name for s in summary.skipped] == ["rhein.txt"]
    assert service.search("Rhein Europa", k=1).results[0].text.startswith("Der Rhein")


def test_remove_by_path_and_pattern(counting, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    service, embedder = counting
    service.build([corpus])
    embedder.embedded = 0
    by_path = service.remove([corpus / "sub"])
    assert (by_path.removed, by_path.documents, embedder.embedded) == (1, 1, 0)
    by_pattern = service.remove([], "*rhein*")
    assert (by_pattern.removed, by_pattern.documents, by_pattern.passages) == (1, 0, 0)
    assert service.search("Rhein", k=5).results == []


def test_rebuild_is_needed_after_a_model_change(index_dir: Path, corpus: Path) -> None:
    SearchService(index_dir, HashingEmbedder(256)).build([corpus])
    other = SearchService(index_dir, HashingEmbedder(64))
    with pytest.raises(ModelMismatchError) as caught:
        other.build([corpus])
    assert "--rebuild" in caught.value.hint
    summary = other.build([corpus], rebuild=True)
    assert (summary.added, summary.model) == (2, "hashing-64")


def test_a_second_writer_is_refused_while_the_first_works(counting, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    service, _ = counting
    service.build([corpus])
    (corpus / "new.txt").write_text("Neu.", encoding="utf-8")
    with (service.index_dir / ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(IndexBusyError, match="another findling process"):
            service.build([corpus])
    assert service.info().documents == 2
