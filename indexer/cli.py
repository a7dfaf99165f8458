"""The command line: parse, call the service, render. Heavy modules are imported per command."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from indexer.errors import FindlingError
from indexer.settings import Settings

if TYPE_CHECKING:
    from indexer.service import BuildSummary, SearchResponse

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
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ModeOption = Annotated[
    str | None,
    typer.Option("--mode", help="dense, bm25 or hybrid [default: FINDLING_SEARCH_MODE or hybrid]."),
]


def handle_errors(command: F) -> F:
    """Map domain errors to a message on stderr and exit code 1 (usage errors exit 2)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FindlingError as exc:
            err.print(f"[bold red]error:[/] {escape(exc.message)}")
            if exc.hint:
                err.print(f"[yellow]hint:[/] {escape(exc.hint)}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted: the index was left as it was before this run")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _settings(index_dir: Path | None) -> Settings:
    return Settings(index_dir=index_dir) if index_dir else Settings()


@app.command("index")
@handle_errors
def index_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to index [default: seeds/].")
    ] = None,
    index_dir: IndexDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Index .txt and .md files (UTF-8) into a new index generation, replacing the old one."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from indexer.documents import check_paths
    from indexer.service import create_service

    paths = paths or [Path("seeds")]
    check_paths(paths)
    settings = _settings(index_dir)
    service = create_service(settings)
    with err.status(f"loading model {settings.model} ...", spinner="dots"):
        service.embedder.load()
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=as_json, transient=True) as bar:
        task = bar.add_task("embedding sentences", total=None)
        summary = service.build(
            paths,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            batch_size=settings.batch_size,
        )
    for skipped in summary.skipped:
        err.print(f"[yellow]warning:[/] skipped {escape(skipped.path)}: {skipped.reason}")
    if as_json:
        print(json.dumps(summary.to_json(), ensure_ascii=False, indent=2))
    else:
        _print_summary(summary)


def _print_summary(summary: BuildSummary) -> None:
    out.print(
        f"indexed [bold]{summary.documents}[/] document(s), [bold]{summary.passages}[/] sentences "
        f"in {summary.seconds:.1f} s with {escape(summary.model)}"
        + (f", skipped {len(summary.skipped)} file(s)" if summary.skipped else "")
    )
    out.print(f"index: {escape(summary.index_dir)}/ ({summary.generation})")


@app.command("search")
@handle_errors
def search_command(
    question: Annotated[str, typer.Argument(help="A question in German or English.")],
    k: Annotated[int | None, typer.Option("-k", "--k", help="Number of results.")] = None,
    mode: ModeOption = None,
    index_dir: IndexDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Ask a question; print the best-matching sentences with context and source."""
    from indexer.service import create_service

    response = create_service(_settings(index_dir)).search(question, k, mode)
    if as_json:
        print(json.dumps(response.to_json(), ensure_ascii=False, indent=2))
    else:
        _print_results(response)


def _print_results(response: SearchResponse) -> None:
    if not response.results:
        out.print("no results")
    for r in response.results:
        where = f"{r.source}  ¶{r.paragraph + 1} sentence {r.sentence + 1}, chars {r.start}-{r.end}"
        out.print(f"[bold cyan]{r.rank}.[/] [green]{r.score:.3f}[/]  [dim]{escape(where)}[/]")
        before = r.context[: r.context_start]
        after = r.context[r.context_end :]
        out.print(f"   [dim]{escape(before)}[/][bold]{escape(r.text)}[/][dim]{escape(after)}[/]\n")
    out.print(f"[dim]{response.mode} search, {response.took_ms:.0f} ms[/]")


@app.command("info")
@handle_errors
def info_command(index_dir: IndexDir = None, as_json: JsonFlag = False) -> None:
    """Show what the index holds: model, dimension, counts, sources."""
    from indexer.service import create_service

    settings = _settings(index_dir)
    manifest = create_service(settings).info()
    if as_json:
        print(json.dumps(manifest.to_json(), ensure_ascii=False, indent=2))
        return
    out.print(f"index:      {escape(str(settings.index_dir))}/ ({manifest.generation})")
    out.print(f"model:      {escape(manifest.model)} ({manifest.dimension} dimensions)")
    out.print(f"documents:  {manifest.documents}")
    out.print(f"sentences:  {manifest.passages}")
    out.print(f"created:    {manifest.created_at}")
    for source in manifest.sources:
        out.print(
            f"  {escape(source.path)}  [dim]{source.language}, {source.passages} sentences[/]"
        )


@app.command("serve")
@handle_errors
def serve_command(
    host: Annotated[str | None, typer.Option(help="Bind address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000].")] = None,
    index_dir: IndexDir = None,
) -> None:
    """Serve the HTTP API (search, info, health, OpenAPI docs at /docs)."""
    import uvicorn

    from api.app import create_app

    settings = _settings(index_dir)
    host = host or settings.host
    port = settings.port if port is None else port
    err.print(f"findling: API docs at http://{host}:{port}/docs (loading model ...)")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command("eval")
@handle_errors
def eval_command(
    corpus: Annotated[
        Path, typer.Option("--corpus", help="SQuAD-format file whose paragraphs are indexed.")
    ],
    queries: Annotated[
        list[Path], typer.Option("--queries", help="SQuAD-format file(s) of questions; repeatable.")
    ],
    method: Annotated[str, typer.Option("--method", help="dense, bm25, hybrid or all.")] = "all",
    as_json: JsonFlag = False,
) -> None:
    """Measure retrieval quality on SQuAD-format files (R@1, R@5, MRR@10, nDCG@10)."""
    from rich.progress import Progress

    from indexer.embedder import make_embedder
    from indexer.evaluation import run_evaluation
    from indexer.ranking import MODES, Fusion

    methods = list(MODES) if method == "all" else [m for m in MODES if m == method]
    if not methods:
        raise typer.BadParameter(f"use one of {', '.join(MODES)} or all", param_hint="--method")
    settings = _settings(None)
    fusion = Fusion(settings.hybrid_lexical_weight, settings.hybrid_cross_language_weight)
    with Progress(console=err, disable=as_json, transient=True) as bar:
        task = bar.add_task("embedding the corpus", total=None)
        seconds, reports = run_evaluation(
            make_embedder(settings),
            corpus,
            queries,
            methods,
            fusion,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            batch_size=settings.batch_size,
        )
    if as_json:
        payload = {"corpus": str(corpus), "index_seconds": seconds, "model": settings.model}
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
        for level, m in (("paragraph", r.paragraph), ("sentence", r.sentence)):
            table.add_row(
                r.queries,
                r.method,
                str(m.count),
                level,
                *(f"{v:.3f}" for v in (m.r1, m.r5, m.mrr10, m.ndcg10)),
                f"{r.seconds:.1f}",
            )
    out.print(table)


@app.command("model")
@handle_errors
def model_command(as_json: JsonFlag = False) -> None:
    """Prepare the embedding model now (converts the default model on first use) and show it."""
    from indexer.embedder import make_embedder

    settings = _settings(None)
    embedder = make_embedder(settings)
    with err.status(f"preparing {settings.model} ...", spinner="dots"):
        embedder.load()
    info = {"model": embedder.name, "dimension": embedder.dimension}
    if settings.model == "multilingual-e5-small":
        from indexer.embedder import default_model_folder

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
