"""Writing the next generation of a collection: new segments, deletions and merges.

Cost follows the change: added documents become a new segment, changed and removed ones are
marked deleted in their segment (a small file of document rows), and the merge policy combines
small segments with bounded work. Nothing else is read or rewritten.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from indexer.defaults import GRAPH_SENTENCES, Quantize
from indexer.documents import Document, Sentence
from indexer.errors import FindlingError
from indexer.fsutil import atomic_write, write_durably
from indexer.generations import commit, is_current, new_folder, publish, write_manifest
from indexer.lexical import Postings
from indexer.manifest import Manifest, SegmentEntry, ShardEntry, generation_name
from indexer.merging import MergePolicy
from indexer.recipe import VectorRecipe
from indexer.segment import (
    META,
    Segment,
    SegmentData,
    SegmentInfo,
    extend_segment,
    merge_segments,
    write_segment,
)
from indexer.shards import (
    shard_manifest,
    shard_name,
    shard_of,
    shard_segments,
    top_name,
    unqualified,
)
from indexer.snapshot import Snapshot
from indexer.versions import findling_version, package_version


class Writer(Protocol):
    """What writes the next generation of a collection, unsharded or sharded."""

    @property
    def recipe(self) -> VectorRecipe: ...

    def delete(self, ids: set[str]) -> None: ...

    def add(
        self,
        documents: Sequence[Document],
        sentences: Sequence[Sentence],
        vectors: np.ndarray,
        postings: Postings,
    ) -> None: ...

    def merge(self, policy: MergePolicy, most: int | None = None) -> int: ...

    def finish(self) -> Manifest: ...

    def discard(self) -> None: ...


T = TypeVar("T")


def write_and_commit(index_dir: Path, writer: Writer, work: Callable[[], T]) -> tuple[T, Manifest]:
    """Run ``work`` (the writer's deletions, additions, merges), finish the generation and
    commit it; on any error or Ctrl-C before the commit took effect, remove what the writer
    wrote, so the previous generation stays current with nothing left behind. Returns what
    ``work`` returned and the committed manifest."""
    manifest = None
    try:
        result = work()
        manifest = writer.finish()
        commit(index_dir, manifest)
    except BaseException:
        # after the switch the writer's files are the collection: keep them
        if manifest is None or not is_current(index_dir, manifest.generation):
            writer.discard()
        raise
    return result, manifest


@dataclass(frozen=True)
class Layout:
    """How segments are built: when vectors get a graph, and whether it is quantised."""

    ann_threshold: int
    quantize: Quantize = "none"
    graph_sentences: int = GRAPH_SENTENCES  # see defaults.GRAPH_SENTENCES


class GenerationWriter:
    """Builds generation ``number`` on top of ``base`` (None: an empty collection)."""

    def __init__(
        self,
        index_dir: Path,
        base: Snapshot | None,
        model: str,
        recipe: VectorRecipe,
        layout: Layout,
        numbering: Manifest | None = None,
        number: int | None = None,
    ) -> None:
        """``numbering``: the live manifest when ``base`` is None because the collection is
        rebuilt; numbers (generations, segments, sentence ids) go on from it, never reused.
        ``number``: the generation's number if not the next (a shard takes its collection's)."""
        self.index_dir = index_dir
        self.base = base
        self.model = model
        self.layout = layout
        previous = base.manifest if base else None
        numbers = previous or numbering
        self.recipe = previous.recipe if previous else recipe
        self.number = number or (numbers.number + 1 if numbers else 1)
        self.next_id = numbers.next_id if numbers else 0
        self.next_segment = numbers.next_segment if numbers else 1
        self.dimension = previous.dimension if previous else 0
        self.entries: list[SegmentEntry] = list(previous.segments) if previous else []
        self._segments = {p.segment.name: p.segment for p in base.parts} if base else {}
        self._deleted = {p.segment.name: p.deleted for p in base.parts} if base else {}
        self._changed: set[str] = set()  # segments whose deletions this generation changes
        # sentences of the documents delete() marked, per segment (not counted again at finish)
        self._deleted_sentences: dict[str, int] = {}
        self._counted = {e.name: e.deleted_sentences for e in self.entries}
        self._written: list[Path] = []  # folders and files this writer made, until committed
        self._adopted: list[tuple[Path, Path]] = []  # (segment, the stage it was) until then
        self._growing: str | None = None  # the segment add() wrote last (see _growing_for)

    def delete(self, ids: set[str]) -> None:
        """Mark the live documents with these ids deleted (ids not in the base are ignored)."""
        if self.base is None or not ids:
            return
        for located in self.base.locate(sorted(ids)).values():
            segment = self.base.parts[located.part].segment
            name = segment.name
            if name not in self._changed:
                self._deleted[name] = self._deleted[name].copy()
                self._changed.add(name)
                self._deleted_sentences.setdefault(name, 0)
            if not self._deleted[name][located.row]:
                self._deleted[name][located.row] = True
                if name in self._deleted_sentences:
                    self._deleted_sentences[name] += segment.sentence_range(located.row)[1]

    def add(
        self,
        documents: Sequence[Document],
        sentences: Sequence[Sentence],
        vectors: np.ndarray,
        postings: Postings,
    ) -> None:
        """Write one new segment of ``documents`` (their ``sentences`` in order, one vector and
        one postings row each); its sentences get the next ids."""
        if not sentences:
            return
        ids = np.arange(self.next_id, self.next_id + len(sentences), dtype=np.int64)
        data = SegmentData(documents, sentences, ids, vectors, postings)
        name = self._segment_name()
        tmp = self._new_folder(name)
        growing = self._growing_for(len(sentences))
        if growing is None:
            info = write_segment(tmp, name, data, self.layout.ann_threshold, self.layout.quantize)
        else:
            info = extend_segment(tmp, name, growing, data)
        publish(self.index_dir, tmp, name)
        if growing is not None:
            self._drop_written(growing.name)  # its rows are the new segment's first ones
        self.next_id += len(sentences)
        self.dimension = info.dimension
        self._add_entry(info)
        self._growing = name

    def _growing_for(self, sentences: int) -> Segment | None:
        """The segment this run wrote last, if the next ``sentences`` are to be added to its
        graph (see defaults.GRAPH_SENTENCES): an fp32 graph segment of this writer's with
        nothing deleted, still under the limit with them."""
        entry = next((e for e in self.entries if e.name == self._growing), None)
        if entry is None or self.layout.quantize != "none" or entry.vector_index == "flat":
            return None
        if (
            self._deleted[entry.name].any()
            or entry.sentences + sentences > self.layout.graph_sentences
        ):
            return None
        return self._segments[entry.name]

    def _drop_written(self, name: str) -> None:
        """Forget and remove a segment this writer wrote (no generation names it yet)."""
        self.entries = [e for e in self.entries if e.name != name]
        self._segments.pop(name).close()
        del self._deleted[name]
        shutil.rmtree(self.index_dir / name)

    def adopt(self, staged: Path, deleted: np.ndarray) -> None:
        """Make a complete segment written outside this writer (a distributed run's stage, see
        indexer.distributed) one of this generation's, renamed to the next segment name; its
        documents marked in ``deleted`` are left out (not wanted, or in another stage too)."""
        info = SegmentInfo.read(staged)
        name = self._segment_name()
        renamed = replace(info, name=name)
        text = json.dumps(renamed.to_json(), indent=1)
        atomic_write(staged / META, lambda tmp: write_durably(tmp, text))
        publish(self.index_dir, staged, name)
        self._adopted.append((self.index_dir / name, staged))
        self.next_id = max(self.next_id, info.last_id + 1)
        self.dimension = info.dimension
        self._add_entry(renamed)
        if deleted.any():
            self._deleted[name] = np.asarray(deleted, dtype=bool).copy()
            self._changed.add(name)
            self._deleted_sentences.pop(name, None)  # counted from the mask at finish

    def merge(self, policy: MergePolicy, most: int | None = None) -> int:
        """Run the merges ``policy`` asks for (at most ``most``); returns how many ran."""
        done = 0
        while most is None or done < most:
            chosen = policy.choose(self._current_entries())
            if not chosen:
                break
            parts = [(self._segments[n], self._deleted[n]) for n in chosen]
            name = self._segment_name()
            tmp = self._new_folder(name)
            layout = self.layout
            info = merge_segments(tmp, name, parts, layout.ann_threshold, layout.quantize)
            publish(self.index_dir, tmp, name)
            self.entries = [e for e in self.entries if e.name not in chosen]
            self._add_entry(info)
            done += 1
        return done

    def finish(self) -> Manifest:
        """Write the changed deletion files; the manifest of the new generation."""
        self.entries = self._current_entries()
        for i, entry in enumerate(self.entries):
            if entry.name not in self._changed:
                continue
            deleted = self._deleted[entry.name]
            file = f"del-{entry.name}-{self.number:012d}.npy"
            self._written.append(self.index_dir / file)
            atomic_write(self.index_dir / file, functools.partial(_save, rows=deleted))
            self.entries[i] = replace(entry, deleted=file)
        return Manifest(
            model=self.model,
            dimension=self.dimension,
            generation=generation_name(self.number),
            number=self.number,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            splitter=f"sentencex=={package_version('sentencex')}",
            findling_version=findling_version(),
            next_id=self.next_id,
            next_segment=self.next_segment,
            recipe=self.recipe,
            vectors=self.recipe.describe(),
            segments=self.entries,
        )

    def live_terms(self) -> int:
        """The BM25 length of every live sentence of the generation being written."""
        total = 0
        for entry in self._current_entries():
            segment, deleted = self._segments[entry.name], self._deleted[entry.name]
            live = ~deleted[segment.sentences["doc"]]
            total += int(segment.postings.lengths[live].sum(dtype=np.int64))
        return total

    def discard(self) -> None:
        """Remove what this writer wrote (its generation was not committed): after Ctrl-C or
        an error nothing is left behind. A killed writer's files go at the next commit.
        Adopted stages go back to being stages, for the next run."""
        for segment, staged in self._adopted:
            if segment.is_dir():
                segment.rename(staged)
        for path in self._written:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _new_folder(self, name: str) -> Path:
        tmp = new_folder(self.index_dir, name)
        self._written += [tmp, self.index_dir / name]
        return tmp

    def _current_entries(self) -> list[SegmentEntry]:
        """The segments with live documents, with this generation's deletion counts (their
        files are written at finish); a segment whose documents are all deleted is dropped."""
        entries = []
        for entry in self.entries:
            if entry.name in self._changed:
                deleted = self._deleted[entry.name]
                if entry.name in self._deleted_sentences:  # a few documents: counted as marked
                    sentences = self._counted[entry.name] + self._deleted_sentences[entry.name]
                else:
                    sentences = int(deleted[self._segments[entry.name].sentences["doc"]].sum())
                entry = replace(
                    entry,
                    deleted_documents=int(deleted.sum()),
                    deleted_sentences=sentences,
                )
            if entry.live_documents > 0:
                entries.append(entry)
        return entries

    def _add_entry(self, info: SegmentInfo) -> None:
        segment = Segment(self.index_dir / info.name)
        self._segments[info.name] = segment
        self._deleted[info.name] = np.zeros(info.documents, dtype=bool)
        self.entries.append(
            SegmentEntry(info.name, info.sentences, info.documents, info.vector_index)
        )

    def _segment_name(self) -> str:
        name = f"seg-{self.next_segment:08d}"
        self.next_segment += 1
        return name


def _save(path: Path, rows: np.ndarray) -> None:
    """The rows a boolean mask marks, as a plain .npy file of int32."""
    with path.open("wb") as handle:
        np.save(handle, np.flatnonzero(rows).astype(np.int32), allow_pickle=False)


class ShardedWriter:
    """Builds the next generation of a sharded collection (see shards.py): one
    :class:`GenerationWriter` per shard, in the shard's folder, each shard taking the documents
    whose id hashes to it; :meth:`finish` writes the shards' manifests and returns the top one."""

    def __init__(
        self,
        index_dir: Path,
        base: Snapshot | None,
        model: str,
        recipe: VectorRecipe,
        layout: Layout,
        shards: int,
        numbering: Manifest | None = None,
    ) -> None:
        """``base``: the live collection read as one (see shards.sharded_view), or None;
        ``numbering`` as for :class:`GenerationWriter`."""
        numbers = base.manifest if base else numbering
        self.index_dir = index_dir
        self.number = numbers.number + 1 if numbers else 1
        self.writers: list[GenerationWriter] = []
        self._written: list[Path] = []
        for i in range(shards):
            name = shard_name(i)
            (index_dir / name).mkdir(parents=True, exist_ok=True)
            shard_base = _shard_base(index_dir, base, name) if base else None
            old = None if base else _old_shard(index_dir, numbering, name)
            self.writers.append(
                GenerationWriter(
                    index_dir / name, shard_base, model, recipe, layout, old, self.number
                )
            )

    @property
    def recipe(self) -> VectorRecipe:
        return self.writers[0].recipe

    def shard(self, doc_id: str) -> int:
        return shard_of(doc_id, len(self.writers))

    def delete(self, ids: set[str]) -> None:
        for i, writer in enumerate(self.writers):
            writer.delete({doc_id for doc_id in ids if self.shard(doc_id) == i})

    def add(
        self,
        documents: Sequence[Document],
        sentences: Sequence[Sentence],
        vectors: np.ndarray,
        postings: Postings,
    ) -> None:
        """Each shard writes a segment of its documents (rows keep their order)."""
        shard_of_document = {d.id: self.shard(d.id) for d in documents}
        row_shards = np.array([shard_of_document[s.doc_id] for s in sentences], dtype=np.int64)
        for i, writer in enumerate(self.writers):
            keep = row_shards == i
            if not keep.any():
                continue
            writer.add(
                [d for d in documents if shard_of_document[d.id] == i],
                [s for s, kept in zip(sentences, keep, strict=True) if kept],
                vectors[keep],
                Postings.merge([(postings, keep)]),
            )

    def adopt(self, shard: int, staged: Path, deleted: np.ndarray) -> None:
        """A staged segment of ``shard`` becomes one of its segments (GenerationWriter.adopt)."""
        self.writers[shard].adopt(staged, deleted)

    def merge(self, policy: MergePolicy, most: int | None = None) -> int:
        return sum(writer.merge(policy, most) for writer in self.writers)

    def finish(self) -> Manifest:
        """Write each shard's generation manifest (not current by itself); the top manifest
        naming them, to be committed."""
        manifests, shards = [], []
        for writer in self.writers:
            manifest = writer.finish()
            self._written.append(writer.index_dir / f"{manifest.generation}.json")
            write_manifest(writer.index_dir, manifest)
            manifests.append(manifest)
            shards.append(
                ShardEntry(
                    writer.index_dir.name,
                    manifest.generation,
                    manifest.documents,
                    manifest.passages,
                    writer.live_terms(),
                )
            )
        return replace(
            manifests[0],
            generation=top_name(self.number),
            number=self.number,
            dimension=max(m.dimension for m in manifests),
            next_id=0,  # numbers of sentences and segments are each shard's own
            next_segment=0,
            segments=[],
            shards=shards,
        )

    def discard(self) -> None:
        for writer in self.writers:
            writer.discard()
        for path in self._written:
            path.unlink(missing_ok=True)


def _shard_base(index_dir: Path, base: Snapshot, shard: str) -> Snapshot:
    """One shard of a sharded collection's snapshot, as the shard names its segments."""
    positions = shard_segments(base.manifest, shard)
    parts = [replace(base.parts[i], entry=unqualified(base.parts[i].entry)) for i in positions]
    return Snapshot(shard_manifest(index_dir, base.manifest, shard), parts)


def _old_shard(index_dir: Path, numbering: Manifest | None, shard: str) -> Manifest | None:
    """The shard's manifest in the collection being rebuilt, for its numbers, if any."""
    if numbering is None or not any(s.name == shard for s in numbering.shards):
        return None
    try:
        return shard_manifest(index_dir, numbering, shard)
    except (FindlingError, FileNotFoundError):
        return None
