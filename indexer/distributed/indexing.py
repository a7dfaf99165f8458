"""Distributed indexing on Ray: ``findling index PATH ... --ray ADDRESS|local --shards N``.

1. Hashing (Ray Data tasks): every file is read and each document's id and content hash come
   back; no text reaches the driver.
2. Planning (the driver, holding the collection's writer lock for the whole run): what to add,
   re-embed and remove, exactly as one machine plans it. A document that a previous run
   embedded and staged (below) is not embedded again.
3. Embedding (Ray Data: files read and split into sentences in tasks, embedded in a pool of
   actors that load the model once each): every unit of work becomes one staged segment per
   shard in that shard's folder (``stage-<run>-<unit>``), a complete segment that records the
   id and content hash of its documents.
4. Commit (the driver): each shard adopts the stages it needs (renamed into segments; documents
   not wanted, or staged twice, marked deleted), merges, and the top manifest becomes current
   with one swap of ``CURRENT``; stages no longer needed are deleted.

Faults: a failed task is retried, an actor that dies is restarted and its work retried, each a
bounded number of times. Work still failing is retried once document by document; a document
that still fails is skipped with a warning, as an unreadable file is, never dropped silently.
A driver killed at any point leaves the previous generation current and its stages on disk:
the next run embeds only what is not staged yet.
"""

from __future__ import annotations

import itertools
import json
import logging
import pickle
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.documents import Document, Skipped, read_file, readable_files
from indexer.errors import FindlingError, SourceNotFoundError
from indexer.formats import SUFFIXES
from indexer.generations import current_manifest, prune, writer_lock
from indexer.lexical import Postings
from indexer.manifest import Manifest
from indexer.model.embedder import Embedder
from indexer.model.factory import make_embedder
from indexer.pipeline import Prepared, prepare
from indexer.recipe import VectorRecipe
from indexer.results import BuildSummary
from indexer.segment import META, Segment, SegmentData, write_segment
from indexer.service import SearchService, summary_of
from indexer.settings import Settings
from indexer.shards import STAGE, shard_count, shard_name, shard_of
from indexer.updates import plan_update
from indexer.writer import Layout, ShardedWriter, write_and_commit

log = logging.getLogger(__name__)

STAGE_META = "stage.json"  # what a stage was embedded for: model, recipe, shard count
UNIT_BYTES = 256 * 1024  # file bytes per unit of work: some 2,000 sentences of text
UNITS_PER_ACTOR = 8  # a small run is still cut into this many units per actor
UNIT_IDS = 1 << 24  # sentence ids each unit may use (a unit holds far fewer sentences)
HASH_BATCH = 64  # files per hashing task
RETRIES = 3  # per task, and per actor: restarts and retried calls
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Unit:
    """A unit of embedding work: files, and the (id, content hash) of the documents wanted
    from them."""

    number: int
    files: list[tuple[str, str]]  # (path as given, resolved path)
    wanted: list[tuple[str, str]]


@dataclass(frozen=True, eq=False)
class Staged:
    """A complete stage in a shard folder and the documents it holds: (id, sha256) by row."""

    shard: int
    folder: Path
    documents: list[tuple[str, str]]


@dataclass(frozen=True)
class Workers:
    """How much of the cluster indexing uses: embedding actors, and the ONNX threads and CPUs
    of each."""

    actors: int
    threads: int = 1
    cpus: float = 1.0

    @classmethod
    def for_cluster(cls, cpus: float) -> Workers:
        """An actor per CPU, one thread each; on 4 CPUs and more one CPU is left to the tasks
        that read and split (about a quarter of the work), which on fewer share the CPUs."""
        return cls(actors=max(1, int(cpus) - 1 if cpus >= 4 else int(cpus)))


def build(
    service: SearchService,
    settings: Settings,
    paths: Sequence[Path],
    workers: Workers,
    *,
    shards: int | None,
    prune_gone: bool = True,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> BuildSummary:
    """Bring ``service``'s collection up to date with ``paths`` on the connected cluster, as
    :meth:`SearchService.build` does on one machine, into a sharded collection."""
    started = time.perf_counter()
    index_dir = service.index_dir
    files, skipped = _files(paths)
    with writer_lock(index_dir, service.options.write_wait):
        prune(index_dir)
        current = _current(index_dir)
        base = None if rebuild or current is None else service._base()
        count = shard_count(current if base else None, shards, rebuilding=base is None)
        count = count or (len(current.shards) if current else 0) or 1
        read = _hash(files, service.options.max_file_bytes)
        skipped += read.skipped
        if not read.documents and base is None:
            raise SourceNotFoundError(
                f"no readable documents in {', '.join(str(p) for p in paths)}",
                f"point `findling index` at files of these kinds: {', '.join(sorted(SUFFIXES))}",
            )
        old = {} if base is None else {d.key: d.sha256 for d in base.documents()}
        protected = {s.id for s in skipped if s.id}
        roots = [p.resolve().as_posix() for p in paths] if prune_gone else None
        plan = plan_update(old, read.documents, protected, roots)
        if base is not None and plan.empty:
            return summary_of(index_dir, base.manifest, plan, skipped, 0, started)
        recipe = base.recipe if base else service.options.recipe.for_model(service.embedder.name)
        stamp = _stamp(service.embedder.name, recipe, count)
        wanted = {(d.id, d.sha256) for d in plan.embed}
        missing = wanted - set(_covering(_stages(index_dir, count, stamp), wanted))
        embedded, failed = _embed(
            service, settings, recipe, stamp, count, workers, read, missing, progress
        )
        skipped += failed
        stages = _stages(index_dir, count, stamp)
        layout = Layout(service.options.ann_threshold, service.options.quantize)
        writer = ShardedWriter(
            index_dir,
            base,
            service.embedder.name,
            recipe,
            layout,
            count,
            numbering=current if base is None else None,
        )

        def work() -> None:
            # a changed document whose new version failed keeps its old one
            writer.delete(plan.remove - {s.id for s in failed})
            for stage, deleted in _adoptions(stages, wanted).items():
                writer.adopt(stage.shard, stage.folder, deleted)
            writer.merge(service.options.build_merges)

        _, manifest = write_and_commit(index_dir, writer, work)
        prune(index_dir, staged=True)
    return summary_of(index_dir, manifest, plan, skipped, embedded, started)


def _current(index_dir: Path) -> Manifest | None:
    try:
        return current_manifest(index_dir)
    except FindlingError:
        return None


def _files(paths: Sequence[Path]) -> tuple[list[tuple[str, str]], list[Skipped]]:
    files, skipped = [], []
    for item in readable_files(paths):
        if isinstance(item, Skipped):
            skipped.append(item)
        else:
            files.append((str(item[0]), item[1].as_posix()))
    return files, skipped


def quiet_data() -> None:
    """Ray Data reports every dataset's plan and progress; findling shows its own progress."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # advice about Ray's own option names and pool sizes, not about the index
    warnings.filterwarnings("ignore", module=r"ray\.data.*")
    warnings.filterwarnings("ignore", message=".*ray_remote_args.*")


# -- 1. hashing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hashed:
    """What hashing found: each document without its text (id, path, hash), the files they
    are in, and the files skipped."""

    documents: list[Document]
    files: dict[str, tuple[str, str]]  # document id -> its file (path as given, resolved)
    sizes: dict[str, int]  # document id -> characters
    skipped: list[Skipped]


def _hash(files: list[tuple[str, str]], max_bytes: int) -> Hashed:
    import ray

    rows = [{"file": f, "real": r, "max_bytes": max_bytes} for f, r in files]
    documents, where, sizes, skipped = [], {}, {}, []
    if not rows:
        return Hashed([], {}, {}, [])
    quiet_data()
    blocks = max(1, min(len(rows) // HASH_BATCH, 200))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        _hash_files, batch_size=HASH_BATCH, max_retries=RETRIES
    )
    for row in dataset.iter_rows():
        if row["reason"]:
            skipped.append(Skipped(row["path"], row["reason"], row["id"]))
            continue
        documents.append(Document(row["id"], row["path"], "", row["sha256"], ""))
        where[row["id"]] = (row["file"], row["real"])
        sizes[row["id"]] = int(row["size"])
    return Hashed(documents, where, sizes, skipped)


def _hash_files(batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
    """A Ray Data task: the documents of some files, without their text."""
    out: dict[str, list[Any]] = {k: [] for k in ("id", "path", "sha256", "size", "reason")}
    out.update(file=[], real=[])
    for file, real, max_bytes in zip(batch["file"], batch["real"], batch["max_bytes"], strict=True):
        for item in read_file(Path(file), Path(real), int(max_bytes)):
            if isinstance(item, Skipped):
                values = (item.id, item.path, "", 0, item.reason)
            else:
                values = (item.id, item.path, item.sha256, len(item.text), "")
            for key, value in zip(("id", "path", "sha256", "size", "reason"), values, strict=True):
                out[key].append(value)
            out["file"].append(str(file))
            out["real"].append(str(real))
    return out


# -- 2. stages ----------------------------------------------------------------------------------


def _stamp(model: str, recipe: VectorRecipe, shards: int) -> dict[str, Any]:
    """What a stage must have been embedded for to be used: a stage of another model, recipe
    or shard count is not."""
    return {"model": model, "recipe": recipe.to_json(), "shards": shards}


def _stages(index_dir: Path, shards: int, stamp: dict[str, Any]) -> list[Staged]:
    """Every complete stage of this kind in the shard folders, oldest run first."""
    found = []
    for number in range(shards):
        for folder in sorted((index_dir / shard_name(number)).glob(f"{STAGE}*")):
            try:
                if json.loads((folder / STAGE_META).read_text(encoding="utf-8")) != stamp:
                    continue
                if not (folder / META).is_file():
                    continue
                segment = Segment(folder)
                documents = [(doc_id, sha) for _, doc_id, _, sha, _, _ in segment.catalogue()]
                segment.close()
            except (OSError, ValueError, FileNotFoundError):
                continue  # not complete, or damaged: embedded again
            except Exception:  # an unreadable stage is only lost work
                log.warning("ignoring the unreadable stage %s", folder)
                continue
            found.append(Staged(number, folder, documents))
    return found


def _covering(stages: Iterable[Staged], wanted: set[tuple[str, str]]) -> dict[Any, Staged]:
    """For each wanted (id, sha256) that some stage holds, the first stage holding it."""
    covered: dict[Any, Staged] = {}
    for stage in stages:
        for document in stage.documents:
            if document in wanted and document not in covered:
                covered[document] = stage
    return covered


def _adoptions(stages: list[Staged], wanted: set[tuple[str, str]]) -> dict[Staged, np.ndarray]:
    """The stages to adopt, each with the mask of its documents to leave out."""
    covered = _covering(stages, wanted)
    adopted = {}
    for stage in stages:
        keep = np.array([covered.get(d) is stage for d in stage.documents], dtype=bool)
        if keep.any():
            adopted[stage] = ~keep
    return adopted


# -- 3. embedding -------------------------------------------------------------------------------


def _units(read: Hashed, missing: set[tuple[str, str]], actors: int, one_each: bool) -> list[Unit]:
    """The wanted documents' files in units of about UNIT_BYTES, at least UNITS_PER_ACTOR per
    actor so that a small run keeps every actor busy (or one document each)."""
    by_file: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for document in read.documents:
        if (document.id, document.sha256) in missing:
            by_file.setdefault(read.files[document.id], []).append((document.id, document.sha256))
    total = sum(read.sizes[doc_id] for doc_id, _ in missing)
    unit_bytes = max(1, min(UNIT_BYTES, total // (UNITS_PER_ACTOR * actors)))
    units: list[Unit] = []
    files: list[tuple[str, str]] = []
    wanted: list[tuple[str, str]] = []
    size = 0
    for file, keys in by_file.items():
        for key in keys:
            if file not in files:
                files.append(file)
            wanted.append(key)
            size += read.sizes[key[0]]
            if one_each or size >= unit_bytes:
                units.append(Unit(len(units), files, wanted))
                files, wanted, size = [], [], 0
    if wanted:
        units.append(Unit(len(units), files, wanted))
    return units


def _embed(
    service: SearchService,
    settings: Settings,
    recipe: VectorRecipe,
    stamp: dict[str, Any],
    shards: int,
    workers: Workers,
    read: Hashed,
    missing: set[tuple[str, str]],
    progress: Progress | None,
) -> tuple[int, list[Skipped]]:
    """Embed and stage the ``missing`` documents; the sentences embedded, and the documents
    that failed every try (skipped)."""
    index_dir = service.index_dir
    total = len(missing)
    embedded = 0
    failed: dict[tuple[str, str], str] = {}
    for attempt, one_each in enumerate((False, True)):
        todo = missing - set(_covering(_stages(index_dir, shards, stamp), missing))
        todo -= set(failed)
        if not todo:
            break
        units = _units(read, todo, workers.actors, one_each)
        id_base = _id_base(index_dir, shards)  # above the stages of the attempt before
        run = f"{id_base:x}"
        try:
            for row in _pipeline(
                service, settings, recipe, stamp, shards, workers, units, run, id_base
            ):
                embedded += int(row["sentences"])
                for doc_id, sha, reason in json.loads(row["failed"]):
                    failed[(doc_id, sha)] = reason
                if progress:
                    progress(min(total, total - len(todo) + int(row["done"])), total)
        except Exception as exc:  # a unit failed every retry: its documents go again alone
            log.warning(
                "embedding pass %d stopped (%s); retrying what is missing", attempt + 1, exc
            )
    still = missing - set(_covering(_stages(index_dir, shards, stamp), missing)) - set(failed)
    for key in still:
        failed[key] = f"embedding failed after {RETRIES} retries and a retry alone"
    paths = {d.id: d.path for d in read.documents}
    skipped = [Skipped(paths[i], f"not indexed: {reason}", i) for (i, _), reason in failed.items()]
    return embedded, skipped


def _id_base(index_dir: Path, shards: int) -> int:
    """The first sentence id this run's stages use: above every id the collection and any
    stage left by an earlier run holds, so that ids stay unique in every shard."""
    highest = -1
    for number in range(shards):
        folder = index_dir / shard_name(number)
        for path in folder.glob("gen-*.json"):
            try:
                highest = max(highest, json.loads(path.read_text(encoding="utf-8"))["next_id"])
            except (OSError, ValueError, KeyError):
                continue
        for meta in folder.glob(f"{STAGE}*/{META}"):
            try:
                highest = max(highest, json.loads(meta.read_text(encoding="utf-8"))["last_id"] + 1)
            except (OSError, ValueError, KeyError):
                continue
    return max(highest, 0)


def _pipeline(
    service: SearchService,
    settings: Settings,
    recipe: VectorRecipe,
    stamp: dict[str, Any],
    shards: int,
    workers: Workers,
    units: list[Unit],
    run: str,
    id_base: int,
) -> Iterable[dict[str, Any]]:
    """Ray Data: units read and split in tasks, embedded and staged by the actor pool."""
    import ray

    options = service.options
    rows = [
        {
            "unit": u.number,
            "files": json.dumps(u.files),
            "wanted": json.dumps(u.wanted),
            "max_bytes": options.max_file_bytes,
        }
        for u in units
    ]
    layout = Layout(options.ann_threshold, options.quantize)
    quiet_data()
    dataset = (
        ray.data.from_items(rows, override_num_blocks=len(rows))
        # reading and splitting reserve no CPU: when a node is lost, the actors restarting
        # elsewhere wait for CPUs, and tasks that waited too would starve the live actors
        .map(
            _prepare_unit,
            num_cpus=0,
            compute=ray.data.TaskPoolStrategy(size=max(2, workers.actors)),
            max_retries=RETRIES,
        )
        .map_batches(
            StageWriter,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers.actors),
            num_cpus=workers.cpus,
            fn_constructor_kwargs={
                "settings": settings.model_copy(update={"onnx_threads": workers.threads}),
                "index_dir": str(service.index_dir),
                "recipe": recipe,
                "layout": layout,
                "shards": shards,
                "stamp": stamp,
                "run": run,
                "id_base": id_base,
                "batch_size": options.batch_size,
            },
            max_restarts=RETRIES,
            max_task_retries=RETRIES,
        )
    )
    done = 0
    for row in dataset.iter_rows():
        done += int(row["documents"])
        yield {**row, "done": done}


def _prepare_unit(row: dict[str, Any]) -> dict[str, Any]:
    """A Ray Data task: a unit's wanted documents read and split into sentences."""
    wanted = {tuple(d) for d in json.loads(row["wanted"])}
    prepared, failed = [], []
    for file, real in json.loads(row["files"]):
        for item in read_file(Path(file), Path(real), int(row["max_bytes"])):
            if isinstance(item, Skipped) or (item.id, item.sha256) not in wanted:
                continue
            try:
                prepared.append(prepare(item))
            except Exception as exc:  # one bad document must not stop its unit
                failed.append((item.id, item.sha256, f"splitting failed ({exc})"))
    # the file changed since it was hashed: what was wanted is not there any more
    found = {(p.document.id, p.document.sha256) for p in prepared} | {f[:2] for f in failed}
    failed += [(i, s, "the file changed while it was indexed") for i, s in wanted - found]
    return {
        "unit": row["unit"],
        "prepared": pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL),
        "failed": json.dumps(failed),
    }


class StageWriter:
    """A Ray Data actor: loads the model once, then embeds units and writes each as one
    staged segment per shard."""

    def __init__(
        self,
        settings: Settings,
        index_dir: str,
        recipe: VectorRecipe,
        layout: Layout,
        shards: int,
        stamp: dict[str, Any],
        run: str,
        id_base: int,
        batch_size: int,
    ) -> None:
        self.embedder: Embedder = make_embedder(settings)
        self.embedder.load()
        self.index_dir = Path(index_dir)
        self.recipe = recipe
        self.layout = layout
        self.shards = shards
        self.stamp = stamp
        self.run = run
        self.id_base = id_base
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"unit": [], "documents": [], "sentences": [], "failed": []}
        for unit, data, failed in zip(
            batch["unit"], batch["prepared"], batch["failed"], strict=True
        ):
            prepared: list[Prepared] = pickle.loads(data)
            sentences, more_failed = self.stage(int(unit), prepared)
            out["unit"].append(int(unit))
            out["documents"].append(len(prepared))
            out["sentences"].append(sentences)
            out["failed"].append(json.dumps(json.loads(failed) + more_failed))
        return out

    def stage(self, unit: int, prepared: list[Prepared]) -> tuple[int, list[Any]]:
        """Embed a unit's documents and write their stages; returns the sentences embedded
        and the documents that failed (id, sha256, reason)."""
        vectors, failed = self._vectors(prepared)
        kept = [(p, v) for p, v in zip(prepared, vectors, strict=True) if v is not None]
        first_id = self.id_base + unit * UNIT_IDS
        for number in range(self.shards):
            mine = [(p, v) for p, v in kept if shard_of(p.document.id, self.shards) == number]
            if any(p.sentences for p, _ in mine):
                self._write(number, unit, mine, first_id)
                first_id += sum(len(p.sentences) for p, _ in mine)
        return sum(len(p.sentences) for p, _ in kept), failed

    def _vectors(self, prepared: list[Prepared]) -> tuple[list[np.ndarray | None], list[Any]]:
        """Each document's sentence vectors: all at once, or one document at a time if that
        fails, so that only a document that fails alone is left out."""
        try:
            return self._embed(prepared), []
        except Exception:
            pass
        vectors: list[np.ndarray | None] = []
        failed = []
        for item in prepared:
            try:
                vectors += self._embed([item])
            except Exception as exc:
                vectors.append(None)
                reason = f"embedding failed ({type(exc).__name__}: {exc})"
                failed.append((item.document.id, item.document.sha256, reason[:300]))
        return vectors, failed

    def _embed(self, prepared: list[Prepared]) -> list[np.ndarray | None]:
        sentences = [s for p in prepared for s in p.sentences]
        texts = {p.document.id: p.document.text for p in prepared}
        vectors = self.recipe.vectors(self.embedder, sentences, texts, self.batch_size)
        bounds = np.cumsum([0] + [len(p.sentences) for p in prepared])
        return [vectors[a:b] for a, b in itertools.pairwise(bounds)]

    def _write(
        self, shard: int, unit: int, items: list[tuple[Prepared, np.ndarray]], first_id: int
    ) -> None:
        folder = self.index_dir / shard_name(shard)
        name = f"{STAGE}{self.run}-{unit:06d}"
        if (folder / name / META).is_file():
            return  # a retried call: the unit was staged before the actor died
        items = [(p, v) for p, v in items if p.sentences]
        sentences = [s for p, _ in items for s in p.sentences]
        data = SegmentData(
            documents=[p.document for p, _ in items],
            sentences=sentences,
            ids=np.arange(first_id, first_id + len(sentences), dtype=np.int64),
            vectors=np.concatenate([v for _, v in items]),
            postings=Postings.build([t for p, _ in items for t in p.terms]),
        )
        tmp = folder / f".tmp-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / STAGE_META).write_text(json.dumps(self.stamp), encoding="utf-8")
        write_segment(tmp, name, data, self.layout.ann_threshold, self.layout.quantize)
        try:
            tmp.rename(folder / name)
        except OSError:  # another try of this unit got there first
            shutil.rmtree(tmp, ignore_errors=True)


def index_on_ray(
    settings: Settings,
    paths: Sequence[Path],
    address: str,
    *,
    shards: int | None,
    prune_gone: bool = True,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> BuildSummary:
    """`findling index --ray`: join (or start) the cluster, index, leave."""
    from indexer.catalog import create_service
    from indexer.distributed.cluster import connect, disconnect

    service = create_service(settings)
    ray = connect(address)
    try:
        workers = Workers.for_cluster(float(ray.cluster_resources().get("CPU", 1)))
        return build(
            service,
            settings,
            paths,
            workers,
            shards=shards,
            prune_gone=prune_gone,
            rebuild=rebuild,
            progress=progress,
        )
    finally:
        disconnect()
