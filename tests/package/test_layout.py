"""The tests mirror the package: ``tests/unit/<path>/test_<module>.py`` for every module
``harness/<path>/<module>.py`` (a package's ``__init__.py`` is ``tests/unit/<path>/
test_<package>.py``), end-to-end tests (``bench`` run as a user runs it) in ``tests/e2e/``,
checks of the package as a whole (imports, lint, the subprocess boundary, the wheel) in
``tests/package/``. A change to ``harness/x.py`` has one obvious test module to extend.
"""

from __future__ import annotations

import ast
from pathlib import Path

from harness import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "harness"
UNIT = Path(__file__).resolve().parents[1] / "unit"

#: The apps under test are not tested module by module: each framework flavour is served
#: by a real server and verified byte for byte against the raw reference
#: (tests/unit/test_stacks.py), and the e2e runs load them.
APPS_UNDER_TEST = PACKAGE / "apps" / "frameworks"


def mirror(module: Path) -> Path:
    """The unit test module of ``harness/<path>/<name>.py``."""
    rel = module.relative_to(PACKAGE)
    if rel.name == "__init__.py":
        return UNIT / rel.parent.parent / f"test_{rel.parent.name}.py"
    return UNIT / rel.parent / f"test_{rel.stem}.py"


def has_code(module: Path) -> bool:
    """A module that defines a function or a class (not only constants or re-exports)."""
    tree = ast.parse(module.read_text())
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
               for node in ast.walk(tree))


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if APPS_UNDER_TEST not in p.parents and p != PACKAGE / "__init__.py"
                  and has_code(p))


def test_every_module_has_its_unit_test_module() -> None:
    missing = [str(m.relative_to(PROJECT_ROOT)) for m in modules() if not mirror(m).exists()]
    assert not missing, f"no tests/unit mirror for: {missing}"


def test_every_unit_test_module_names_a_module() -> None:
    expected = {mirror(m) for m in PACKAGE.rglob("*.py")}
    strays = [str(t.relative_to(UNIT)) for t in UNIT.rglob("test_*.py") if t not in expected]
    assert not strays, f"unit test modules that mirror no harness module: {strays}"


def test_the_test_folders_are_packages() -> None:
    """Same-named test modules in two folders (unit/backends/test_docker.py and
    e2e/test_docker.py) import apart only as packages."""
    tests = UNIT.parent
    folders = [p for p in tests.rglob("*") if p.is_dir() and any(p.glob("test_*.py"))]
    assert folders and all((f / "__init__.py").exists() for f in folders)
