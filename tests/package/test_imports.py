"""The harness package's imports: every module imports, no two modules import each other
(directly or round a longer loop), and the CLI starts without the heavy libraries.

The import graph is read with ``ast`` from each module's top-level import statements
(those that run when the module is imported: module level, or in a top-level ``if`` /
``try``, not under ``if TYPE_CHECKING:`` and not inside functions, where imports are
deferred on purpose). Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``,
so those are edges too, except packages the importer itself lives in.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import harness

#: What `bench --help` must not pull in (issue #16: start in under 0.4 s).
HEAVY = ("pandas", "scipy", "numpy", "plotly", "jinja2", "docker", "kaleido")


def harness_modules() -> dict[str, Path]:
    """Every module of the harness package: dotted name -> source file."""
    found = {"harness": Path(harness.__file__)}
    for info in pkgutil.walk_packages(harness.__path__, "harness."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None and spec.origin is not None, info.name
        found[info.name] = Path(spec.origin)
    return found


def _all_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, deferred ones in functions included, type-only ones not."""
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test)
            for part in node.body for n in ast.walk(part)}
    return [n for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom) and id(n) not in skip]


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                out.append(node)
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" in ast.unparse(node.test):
                    visit(node.orelse)
                    continue
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for part in (node.body, node.orelse, node.finalbody,
                             *(h.body for h in node.handlers)):
                    visit(part)

    visit(tree.body)
    return out


def import_graph(modules: dict[str, Path], *,
                 deferred: bool = False) -> dict[str, set[str]]:
    """Module -> the harness modules its top-level imports run (with ``deferred``, also
    those its functions import when called)."""
    statements = _all_imports if deferred else _top_level_imports
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in statements(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                base = ".".join(parent[:len(parent) - node.level + 1] + ([base] if base else []))
            targets.add(base)
            # `from pkg import sub` imports the submodule pkg.sub
            targets.update(f"{base}.{alias.name}" for alias in node.names
                           if f"{base}.{alias.name}" in modules)
        edges: set[str] = set()
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                enclosing = name == prefix or name.startswith(prefix + ".")
                if prefix in modules and prefix != name and not enclosing:
                    edges.add(prefix)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan 1972)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_every_harness_module_imports() -> None:
    modules = harness_modules()
    assert {"harness.cli", "harness.report", "harness.report.page", "harness.results",
            "harness.analysis"} <= set(modules)
    for name in modules:
        importlib.import_module(name)


def test_no_import_cycle_among_harness_modules() -> None:
    graph = import_graph(harness_modules())
    assert "harness.results" in graph["harness.analysis"]  # the graph sees real edges
    assert "harness.analysis" not in graph["harness.results"]
    assert cycles(graph) == []


def test_no_cycle_even_through_deferred_imports() -> None:
    """A cycle broken by importing inside a function (results.RunData.requests used to
    import analysis.read_records while analysis imported results) is still a cycle of
    responsibilities."""
    graph = import_graph(harness_modules(), deferred=True)
    assert "harness.runner" in graph["harness.cli"]  # deferred edges are seen
    assert cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def _imported(*args: str) -> set[str]:
    """Top-level package names a Python process imported (``-X importtime``)."""
    done = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                          text=True, timeout=60, check=False)
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "harness" in names, done.stderr[-500:]
    return names


@pytest.mark.parametrize("args", [
    ("-c", "import harness.cli"),
    ("-m", "harness.cli", "--help"),
    ("-m", "harness.cli", "list", "servers"),
    ("-m", "harness.cli", "run", "--scenario", "nope"),
], ids=["import", "help", "list-servers", "bad-input"])
def test_cli_starts_without_heavy_imports(args: tuple[str, ...]) -> None:
    names = _imported(*args)
    assert "typer" in names  # the check reads the import log it should
    assert sorted(names & set(HEAVY)) == []
