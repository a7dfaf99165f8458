"""The shape of the code: no import cycles, heavy libraries behind the model seam."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

PACKAGES = ("indexer", "api")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules ``path`` imports, at module level or inside functions alike (a lazy
    import is still a dependency), leaving out ``if TYPE_CHECKING:`` blocks (types only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a import b` depends on the module a.b if there is one, else on a
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [m for m in submodules if m in known] or [node.module]
        found |= {name for name in names if name in known}
    return found


def _graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    known = {_module_name(p) for p in files}
    graph = {_module_name(p): _imports(p, known) for p in files}
    # importing a.b runs a/__init__ first, but that is not a dependency of a.b on a's contents
    return {module: {d for d in deps if d != module} for module, deps in graph.items()}


def test_no_import_cycles() -> None:
    graph = _graph()
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        path.append(module)
        for dependency in sorted(graph.get(module, ())):
            visit(dependency)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_only_the_model_package_imports_torch() -> None:
    for path in [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]:
        if "model" in path.relative_to(ROOT).parts:
            continue
        source = path.read_text(encoding="utf-8")
        assert "import torch" not in source and "sentence_transformers" not in source, path
