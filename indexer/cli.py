"""The command line: parse, call the service, render. Heavy modules are imported per command."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from indexer.errors import FindlingError
from indexer.settings import Settings

if TYPE_CHECKING:
    from indexer.service import Answer, BuildSummary, SearchService

app = typer.Typer(
    name="findling",
    help="Multilingual semantic search: index German and English documents, ask in either.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

IndexDir = Annotated[
    Path | None,
    typer.Option("--index-dir", help="Index folder [default: FINDLING_INDEX_DIR or index/]."),
]
Collection = Annotated[
    str | None,
    typer.Option(
        "--collection", "-c", help="Collection name [default: FINDLING_COLLECTION or default]."
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RayOption = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS|local",
        help="Run on the Ray cluster at ADDRESS (or start one here: local); needs "
        "findling[ray] and a sharded collection.",
    ),
]
ModeOption = Annotated[
    str | None,
    typer.Option("--mode", help="dense, bm25 or hybrid [default: FINDLING_SEARCH_MODE or hybrid]."),
]


FilterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--filter",
        help="key=value, key!=value, key>=value (also >, <, <=), e.g. lang=de, "
        "source='*.md' or modified>=2024-01-01; repeatable, all must hold.",
    ),
]
OffsetOption = Annotated[
    int, typer.Option("--offset", help="Skip this many results (the next page).", min=0)
]
MinScoreOption = Annotated[
    float | None, typer.Option("--min-score", help="Leave out results scoring below this.")
]
GroupOption = Annotated[
    str,
    typer.Option(
        "--group",
        help="paragraph (one result per paragraph) or document (k documents, each with its "
        "best passages, at most 3).",
    ),
]


def handle_errors(command: F) -> F:
    """Map domain errors to a message on stderr and exit code 1 (usage errors exit 2)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FindlingError as exc:
            _print_error(exc)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _telling_what_ctrl_c_left(settings: Settings) -> Iterator[None]:
    """On Ctrl-C during a write, say which generation is live, read from disk: the one before
    this run, or the one this run had just committed when the signal came."""
    from indexer.catalog import create_service
    from indexer.generations import current_name

    folder = create_service(settings).index_dir

    def live() -> str | None:
        with contextlib.suppress(FindlingError):
            return current_name(folder)
        return None

    before = live()
    try:
        yield
    except KeyboardInterrupt:
        after = live()
        if after == before:
            err.print("interrupted: the index was left as it was before this run")
        else:
            err.print(f"interrupted after this run was committed: {after} is live")
        raise typer.Exit(130) from None


def _print_error(exc: FindlingError) -> None:
    err.print(f"[bold red]error:[/] {escape(exc.message)}")
    if exc.hint:
        err.print(f"[yellow]hint:[/] {escape(exc.hint)}")


def _settings(index_dir: Path | None = None, collection: str | None = None) -> Settings:
    overrides: dict[str, Any] = {}
    if index_dir:
        overrides["index_dir"] = index_dir
    if collection:
        overrides["collection"] = collection
    return Settings(**overrides)


@app.command("index")
@handle_errors
def index_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to index [default: seeds/].")
    ] = None,
    prune: Annotated[
        bool, typer.Option(help="Remove documents of files below PATHS that are gone.")
    ] = True,
    rebuild: Annotated[
        bool,
        typer.Option("--rebuild", help="Start from an empty index (e.g. after a model change)."),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Keep running and update the collection whenever files below PATHS appear, "
            "change or disappear (Ctrl-C stops).",
        ),
    ] = False,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            help="Split a new (or --rebuild) collection into N shards by document id; an "
            "existing one keeps its own.",
        ),
    ] = None,
    ray: RayOption = None,
    collection: Collection = None,
    index_dir: IndexDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Index .txt, .md, .html, .pdf, .docx, .odt, .epub and .jsonl files: adds new, re-embeds
    changed, drops gone."""
    paths = paths or [Path("seeds")]
    if ray is not None:
        if watch:
            raise typer.BadParameter("--watch runs on one machine", param_hint="--ray")
        _index_on_ray(paths, prune, rebuild, shards, ray, collection, index_dir, as_json)
    elif watch:
        _watch(paths, prune, rebuild, collection, index_dir, as_json)
    else:
        _update(paths, prune, rebuild, collection, index_dir, as_json, shards)


@app.command("add")
@handle_errors
def add_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to add or update.")],
    collection: Collection = None,
    index_dir: IndexDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Add or update documents without removing anything else."""
    _update(paths, False, False, collection, index_dir, as_json)


def _index_on_ray(
    paths: list[Path],
    prune: bool,
    rebuild: bool,
    shards: int | None,
    address: str,
    collection: str | None,
    index_dir: Path | None,
    as_json: bool,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from indexer.distributed.indexing import index_on_ray
    from indexer.documents import check_paths

    check_paths(paths)
    settings = _settings(index_dir, collection)
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    progress = Progress(*columns, console=err, disable=as_json, transient=True)
    with _telling_what_ctrl_c_left(settings), progress as bar:
        task = bar.add_task("indexing documents on Ray", total=None)
        summary = index_on_ray(
            settings,
            paths,
            address,
            shards=shards,
            prune_gone=prune,
            rebuild=rebuild,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    _report(summary, as_json)


def _update(
    paths: list[Path],
    prune: bool,
    rebuild: bool,
    collection: str | None,
    index_dir: Path | None,
    as_json: bool,
    shards: int | None = None,
) -> None:
    from indexer.catalog import create_service
    from indexer.documents import check_paths

    check_paths(paths)
    settings = _settings(index_dir, collection)
    with _telling_what_ctrl_c_left(settings):
        summary = _build(create_service(settings), paths, prune, rebuild, as_json, shards)
    _report(summary, as_json)


def _build(
    service: SearchService,
    paths: list[Path],
    prune: bool,
    rebuild: bool,
    as_json: bool,
    shards: int | None = None,
) -> BuildSummary:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=as_json, transient=True) as bar:
        task = bar.add_task("indexing documents", total=None)
        return service.build(
            paths,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            prune=prune,
            rebuild=rebuild,
            shards=shards,
        )


def _watch(
    paths: list[Path],
    prune: bool,
    rebuild: bool,
    collection: str | None,
    index_dir: Path | None,
    as_json: bool,
) -> None:
    from indexer.catalog import create_service
    from indexer.documents import check_paths
    from indexer.errors import SourceNotFoundError
    from indexer.watching import watch

    check_paths(paths)
    settings = _settings(index_dir, collection)
    service = create_service(settings)

    def catch_up() -> None:
        try:
            _report(_build(service, paths, prune, rebuild, as_json), as_json, one_line=as_json)
        except SourceNotFoundError as exc:
            err.print(f"[yellow]note:[/] {escape(exc.message)} yet", soft_wrap=True)
        names = ", ".join(str(p) for p in paths)
        err.print(f"watching {escape(names)} for changes (Ctrl-C stops)", soft_wrap=True)

    try:
        watch(
            service,
            paths,
            prune=prune,
            on_update=lambda summary: _report(summary, as_json, one_line=True),
            on_error=_print_error,
            catch_up=catch_up,
            ignore=[settings.index_dir],
        )
    except KeyboardInterrupt:
        err.print("stopped watching; every update before this was committed")


@app.command("remove")
@handle_errors
def remove_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders whose documents to remove.")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Remove documents whose path matches this glob.")
    ] = None,
    collection: Collection = None,
    index_dir: IndexDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Remove documents from the index (no embedding work)."""
    from indexer.catalog import create_service

    if not paths and source is None:
        raise typer.BadParameter("give files or folders, or --source PATTERN")
    settings = _settings(index_dir, collection)
    with _telling_what_ctrl_c_left(settings):
        summary = create_service(settings).remove(paths or [], source)
    _report(summary, as_json)


def _report(summary: BuildSummary, as_json: bool, one_line: bool = False) -> None:
    """The summary of an update; ``one_line`` for each update of a watch (JSON Lines)."""
    for skipped in summary.skipped:
        # one line per file, however long, so that scripts can count and grep them
        message = f"[yellow]warning:[/] skipped {escape(skipped.path)}: {escape(skipped.reason)}"
        err.print(message, soft_wrap=True)
    if as_json:
        indent = None if one_line else 2
        print(json.dumps(summary.to_json(), ensure_ascii=False, indent=indent), flush=True)
        return
    if one_line:
        out.print(
            f"{time.strftime('%H:%M:%S')} added {summary.added}, updated {summary.updated}, "
            f"removed {summary.removed}; index holds {summary.documents} document(s), "
            f"{summary.passages} sentences",
            soft_wrap=True,
        )
        return
    out.print(
        f"index holds [bold]{summary.documents}[/] document(s), [bold]{summary.passages}[/] "
        f"sentences ({escape(summary.model)}); {summary.seconds:.1f} s"
    )
    out.print(
        f"added {summary.added}, updated {summary.updated}, removed {summary.removed}, "
        f"unchanged {summary.unchanged}; embedded {summary.embedded} sentences"
        + (f"; skipped {len(summary.skipped)} file(s)" if summary.skipped else "")
    )
    out.print(f"index: {escape(summary.index_dir)}/ ({summary.generation})")


@app.command("search")
@handle_errors
def search_command(
    question: Annotated[str, typer.Argument(help="A question in German or English.")],
    k: Annotated[int | None, typer.Option("-k", "--k", help="Number of results.")] = None,
    mode: ModeOption = None,
    filters: FilterOption = None,
    offset: OffsetOption = 0,
    min_score: MinScoreOption = None,
    group: GroupOption = "paragraph",
    collection: Collection = None,
    index_dir: IndexDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Ask a question; print the best-matching passages with context and source."""
    import threading

    from indexer.documents import load_language_identifier

    settings = _settings(index_dir, collection)
    # the language identifier loads while the rest is imported and the index and model are
    # opened (a first run also unpacks its model into the cache: about a second)
    threading.Thread(
        target=load_language_identifier, args=(settings.model_cache_dir,), daemon=True
    ).start()
    from indexer.catalog import create_service
    from indexer.filters import parse_filters

    service = create_service(settings)
    where = parse_filters(filters or [])
    response = service.search(
        question, k, mode, where, offset=offset, min_score=min_score, group=group
    )
    if as_json:
        print(json.dumps(response.to_json(), ensure_ascii=False, indent=2))
    else:
        _print_results(response, grouped=group == "document")


@app.command("similar")
@handle_errors
def similar_command(
    document: Annotated[
        str | None, typer.Option("--document", help="Like this document (its id).")
    ] = None,
    text: Annotated[str | None, typer.Option("--text", help="Like this text.")] = None,
    sentence: Annotated[
        int | None, typer.Option("--sentence", help="Like this sentence (its sentence_id).")
    ] = None,
    k: Annotated[int | None, typer.Option("-k", "--k", help="Number of results.")] = None,
    filters: FilterOption = None,
    offset: OffsetOption = 0,
    min_score: MinScoreOption = None,
    group: GroupOption = "paragraph",
    collection: Collection = None,
    index_dir: IndexDir = None,
    as_json: JsonFlag = False,
) -> None:
    """More like this: passages like a document, a text or a sentence (give one), leaving out
    the document itself."""
    from indexer.catalog import create_service
    from indexer.filters import parse_filters

    service = create_service(_settings(index_dir, collection))
    response = service.similar(
        document_id=document,
        text=text,
        sentence_id=sentence,
        k=k,
        filters=parse_filters(filters or []),
        offset=offset,
        min_score=min_score,
        group=group,
    )
    if as_json:
        print(json.dumps(response.to_json(), ensure_ascii=False, indent=2))
    else:
        _print_results(response, grouped=group == "document")


def _print_results(response: Answer, grouped: bool = False) -> None:
    """Each passage with its place and context; grouped by document: the document, then its
    passages."""
    if not response.results:
        out.print("no results")
    shown = None
    for r in response.results:
        where = f"¶{r.paragraph + 1} sentence {r.sentence + 1}, chars {r.start}-{r.end}"
        if r.page is not None:
            where += f", page {r.page}"
        if not grouped:
            head = f"[bold cyan]{r.rank}.[/] [green]{r.score:.3f}[/]"
            out.print(f"{head}  [dim]{escape(r.source)}  {escape(where)}[/]")
        else:
            if shown != r.rank:
                title = f"  [dim]{escape(r.title)}[/]" if r.title else ""
                out.print(f"[bold cyan]{r.rank}.[/] {escape(r.source)}{title}")
                shown = r.rank
            out.print(f"   [green]{r.score:.3f}[/]  [dim]{escape(where)}[/]")
        before = r.context[: r.context_start]
        after = r.context[r.context_end :]
        out.print(f"   [dim]{escape(before)}[/][bold]{escape(r.text)}[/][dim]{escape(after)}[/]\n")
    out.print(f"[dim]{response.mode} search, {response.took_ms:.0f} ms[/]")


@app.command("info")
@handle_errors
def info_command(
    collection: Collection = None, index_dir: IndexDir = None, as_json: JsonFlag = False
) -> None:
    """Show what a collection holds: model, dimension, counts, sources."""
    from indexer.catalog import create_service

    settings = _settings(index_dir, collection)
    service = create_service(settings)
    manifest = service.info()
    if as_json:
        data = {**manifest.to_json(), "sources": [s.to_json() for s in service.sources()]}
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    out.print(
        f"collection: {escape(settings.collection)} in {escape(str(settings.index_dir))}/ "
        f"({manifest.generation})"
    )
    out.print(f"model:      {escape(manifest.model)} ({manifest.dimension} dimensions)")
    out.print(f"documents:  {manifest.documents}")
    out.print(f"sentences:  {manifest.passages}")
    out.print(f"created:    {manifest.created_at}")
    out.print(f"vectors:    {escape(manifest.vectors)}; search: {manifest.vector_index}")
    out.print(f"segments:   {len(manifest.segments)}")
    for source in service.sources():
        out.print(
            f"  {escape(source.path)}  [dim]{source.language}, {source.sentences} sentences[/]"
        )


@app.command("optimize")
@handle_errors
def optimize_command(
    collection: Collection = None, index_dir: IndexDir = None, as_json: JsonFlag = False
) -> None:
    """Merge a collection's segments into one, dropping deleted sentences for good."""
    from indexer.catalog import create_service

    settings = _settings(index_dir, collection)
    with _telling_what_ctrl_c_left(settings):
        summary = create_service(settings).optimize()
    _report(summary, as_json)


@app.command("verify")
@handle_errors
def verify_command(
    collection: Collection = None, index_dir: IndexDir = None, as_json: JsonFlag = False
) -> None:
    """Check every file of a collection against the checksum recorded when it was written."""
    from indexer.catalog import create_service

    settings = _settings(index_dir, collection)
    problems = create_service(settings).verify()
    if as_json:
        print(json.dumps({"collection": settings.collection, "problems": problems}, indent=2))
    elif problems:
        for problem in problems:
            err.print(f"[bold red]damaged:[/] {escape(problem)}")
    else:
        out.print(f"collection {escape(settings.collection)}: every file is intact")
    if problems:
        raise typer.Exit(1)


@app.command("collections")
@handle_errors
def collections_command(index_dir: IndexDir = None, as_json: JsonFlag = False) -> None:
    """List the collections with their sizes."""
    from indexer.catalog import create_catalog

    catalog = create_catalog(_settings(index_dir))
    manifests = {name: catalog.service(name).info() for name in catalog.names()}
    if as_json:
        rows = [
            {"name": name, "documents": m.documents, "passages": m.passages, "model": m.model}
            for name, m in manifests.items()
        ]
        print(json.dumps(rows, indent=2))
        return
    if not manifests:
        out.print(f"no collections in {escape(str(catalog.root))}/: run `findling index`")
    for name, m in manifests.items():
        out.print(
            f"{escape(name)}  [dim]{m.documents} documents, {m.passages} sentences, "
            f"{escape(m.model)}[/]"
        )


@app.command("drop")
@handle_errors
def drop_command(
    name: Annotated[str, typer.Argument(help="The collection to delete.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    index_dir: IndexDir = None,
) -> None:
    """Delete a collection and its files."""
    from indexer.catalog import create_catalog

    catalog = create_catalog(_settings(index_dir))
    if not yes and not typer.confirm(f"delete collection {name!r} in {catalog.root}/?"):
        raise typer.Exit(1)
    catalog.drop(name)
    out.print(f"dropped collection {escape(name)}")


@app.command("serve")
@handle_errors
def serve_command(
    host: Annotated[str | None, typer.Option(help="Bind address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000].")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes [default: FINDLING_WORKERS or 1].")
    ] = None,
    ray: RayOption = None,
    replicas: Annotated[
        int, typer.Option("--replicas", min=1, help="With --ray: replicas of each shard.")
    ] = 1,
    collection: Collection = None,
    index_dir: IndexDir = None,
) -> None:
    """Serve the HTTP API and the search page (OpenAPI docs at /docs)."""
    import os

    import uvicorn

    from indexer.serving import uvicorn_options

    settings = _settings(index_dir, collection)
    host, port = host or settings.host, settings.port if port is None else port
    _check_exposure(host, settings)
    workers = workers or settings.workers
    shown = f"[{host}]" if ":" in host else host
    err.print(f"findling: search page http://{shown}:{port}/  API docs http://{shown}:{port}/docs")
    options: dict[str, Any] = {"host": host, "port": port, **uvicorn_options()}
    if ray is not None:
        _serve_on_ray(settings, ray, replicas, workers, options)
        return
    if workers > 1:
        # worker processes build their own app from the environment: hand the options down
        os.environ["FINDLING_INDEX_DIR"] = str(settings.index_dir)
        os.environ["FINDLING_COLLECTION"] = settings.collection
        uvicorn.run("api.app:create_app", factory=True, workers=workers, **options)
        return
    from api.app import create_app

    uvicorn.run(create_app(settings), **options)


def _serve_on_ray(
    settings: Settings, address: str, replicas: int, workers: int, options: dict[str, Any]
) -> None:
    """The same app, its sharded collections searched by shard replicas on Ray."""
    import uvicorn

    from api.app import create_app
    from indexer.distributed.cluster import disconnect
    from indexer.distributed.serving import ray_catalog

    if workers > 1:
        raise typer.BadParameter("one process drives the cluster", param_hint="--workers")
    catalog = ray_catalog(settings, address, replicas)
    try:
        uvicorn.run(create_app(settings, catalog), **options)
    finally:
        disconnect()


def _check_exposure(host: str, settings: Settings) -> None:
    """Serve other machines only once the user has said by which names they call."""
    from indexer.access import is_loopback

    if not is_loopback(host) and "allowed_hosts" not in settings.model_fields_set:
        raise typer.BadParameter(
            f"{host} can be reached from other machines: list the host names they call it by "
            'in FINDLING_ALLOWED_HOSTS (a JSON list, e.g. \'["search.example", '
            '"192.168.1.20"]\', or \'["*"]\' for any name)',
            param_hint="--host",
        )


@app.command("mcp")
@handle_errors
def mcp_command(
    transport: Annotated[
        str, typer.Option(help="stdio (a chat app starts findling) or streamable-http.")
    ] = "stdio",
    host: Annotated[
        str | None, typer.Option(help="streamable-http: bind address [default: 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="streamable-http: port [default: 8000].")] = None,
    collection: Collection = None,
    index_dir: IndexDir = None,
) -> None:
    """Serve the index to chatbots over MCP: tools `search`, `fetch` and `info` (stdio by
    default)."""
    if transport not in ("stdio", "streamable-http"):
        raise typer.BadParameter("use stdio or streamable-http", param_hint="--transport")
    from indexer.mcp_server import run_mcp_server

    settings = _settings(index_dir, collection)
    host, port = host or settings.host, settings.port if port is None else port
    if transport == "streamable-http":
        _check_exposure(host, settings)
        shown = f"[{host}]" if ":" in host else host
        err.print(f"findling: MCP endpoint http://{shown}:{port}/mcp")
    run_mcp_server(settings, transport, host, port)


@app.command("eval")
@handle_errors
def eval_command(
    corpus: Annotated[
        list[Path],
        typer.Option(
            "--corpus",
            help="SQuAD-format file whose paragraphs are indexed; repeatable (parallel files: "
            "a paragraph's translation counts as relevant too).",
        ),
    ],
    queries: Annotated[
        list[Path], typer.Option("--queries", help="SQuAD-format file(s) of questions; repeatable.")
    ],
    method: Annotated[str, typer.Option("--method", help="dense, bm25, hybrid or all.")] = "all",
    articles: Annotated[
        str | None,
        typer.Option(
            "--articles", help="Ask only the questions of these articles, e.g. 12-23 (from 0)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Measure retrieval quality on SQuAD-format files (R@1, R@5, MRR@10, nDCG@10)."""
    from rich.progress import Progress

    from indexer.evaluation import parse_articles, run_evaluation
    from indexer.model.factory import make_embedder
    from indexer.options import SearchOptions
    from indexer.ranking import MODES

    methods = list(MODES) if method == "all" else [m for m in MODES if m == method]
    if not methods:
        raise typer.BadParameter(f"use one of {', '.join(MODES)} or all", param_hint="--method")
    settings = _settings(None)
    with Progress(console=err, disable=as_json, transient=True) as bar:
        task = bar.add_task("indexing the corpus", total=None)
        seconds, reports = run_evaluation(
            make_embedder(settings),
            SearchOptions.from_settings(settings),
            corpus,
            queries,
            methods,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            articles=parse_articles(articles) if articles else None,
        )
    if as_json:
        payload = {
            "corpus": [str(c) for c in corpus],
            "articles": articles,
            "index_seconds": seconds,
            "model": settings.model,
        }
        print(json.dumps({**payload, "reports": [r.to_json() for r in reports]}, indent=2))
    else:
        _print_reports(reports, seconds)


def _print_reports(reports: list[Any], index_seconds: float) -> None:
    from rich.table import Table

    table = Table(title=f"retrieval quality (corpus indexed in {index_seconds:.1f} s)")
    for column in ("queries", "method", "n", "level", "R@1", "R@5", "MRR@10", "nDCG@10", "s"):
        left = column in ("queries", "method", "level")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for r in reports:
        for level, m in (("paragraph", r.paragraph), ("sentence", r.sentence), ("shown", r.shown)):
            table.add_row(
                r.queries,
                r.method,
                str(m.count),
                level,
                *(f"{v:.3f}" for v in (m.r1, m.r5, m.mrr10, m.ndcg10)),
                f"{r.seconds:.1f}",
            )
    # piped output has no width; rich would assume 80 columns and cut the numbers
    (out if out.is_terminal else Console(width=200)).print(table)


@app.command("model")
@handle_errors
def model_command(as_json: JsonFlag = False) -> None:
    """Prepare the embedding model now (converts the default model on first use) and show it."""
    from indexer.model.factory import make_embedder

    settings = _settings(None)
    embedder = make_embedder(settings)
    with err.status(f"preparing {settings.model} ...", spinner="dots"):
        embedder.load()
    info = {"model": embedder.name, "dimension": embedder.dimension}
    if settings.model == "multilingual-e5-small":
        from indexer.model.convert import default_model_folder

        info["folder"] = str(default_model_folder(settings.model_cache_dir))
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            out.print(f"{key}: {escape(str(value))}")


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr
    )
    app()
