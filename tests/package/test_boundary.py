"""One subprocess boundary: only ``harness/procs.py`` starts programs (issue #16).

Reads the code of every module under ``harness/`` as Python tokens, so a docstring or
a comment that says "subprocess." does not count and a call split over lines does.
"""

from __future__ import annotations

import io
import tokenize

from harness import PROJECT_ROOT

HARNESS = PROJECT_ROOT / "harness"
BOUNDARY = HARNESS / "procs.py"
#: ``os`` functions that start a program (``os.exec*`` in ``harness/pin.py`` replaces
#: the pinned child's own image after procs.spawn started it: that starts nothing new).
OS_SPAWNERS = ("system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "spawnl",
               "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe")


def spawn_sites(source: str) -> list[str]:
    """``line: code`` of each place in ``source`` that uses ``subprocess.``, calls
    ``Popen(``, imports ``subprocess`` under another name or a spawning function from
    it, or calls an ``os`` spawner or ``asyncio.create_subprocess_*``."""
    code = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type in (tokenize.NAME, tokenize.OP, tokenize.NEWLINE)]
    found = []
    for i, tok in enumerate(code[:-1]):
        nxt = code[i + 1]
        after = code[i + 2] if i + 2 < len(code) else None
        hit = ((tok.string == "subprocess" and nxt.string == ".")
               or (tok.string == "Popen" and nxt.string == "(")
               or (tok.string == "os" and nxt.string == "." and after is not None
                   and after.string in OS_SPAWNERS)
               or tok.string.startswith("create_subprocess_")
               or (tok.string == "import" and nxt.string == "subprocess" and after is not None
                   and after.string == "as")
               or (tok.string == "from" and nxt.string == "subprocess" and not _types_only(
                   code[i + 2:])))
        if hit:
            found.append(f"{tok.start[0]}: {source.splitlines()[tok.start[0] - 1].strip()}")
    return found


def _types_only(rest: list[tokenize.TokenInfo]) -> bool:
    """``from subprocess import Popen`` (for annotations) is fine; ``import run`` is not."""
    names = []
    for tok in rest[1:]:  # after "import", up to the end of the statement
        if tok.type == tokenize.NEWLINE:
            break
        if tok.type == tokenize.NAME:
            names.append(tok.string)
    return bool(names) and set(names) <= {"Popen", "CompletedProcess", "TimeoutExpired"}


def test_only_procs_starts_programs() -> None:
    offenders = {}
    modules = sorted(HARNESS.rglob("*.py"))
    assert BOUNDARY in modules and len(modules) > 10
    for path in modules:
        if path == BOUNDARY:
            continue
        sites = spawn_sites(path.read_text(encoding="utf-8"))
        if sites:
            offenders[str(path.relative_to(PROJECT_ROOT))] = sites
    assert not offenders, ("start programs through harness.procs (run, spawn) only; found: "
                           f"{offenders}")


def test_the_scan_sees_every_form_and_ignores_prose() -> None:
    bad = {
        "import subprocess\nsubprocess.run(['x'])\n": 1,
        "from subprocess import run\nrun(['x'])\n": 1,
        "import subprocess as sp\np = sp.Popen(\n  ['x'])\n": 2,
        "import subprocess as sp\nsp.run(['x'])\n": 1,
        "import os\nos.system('x')\n": 1,
        "import asyncio\nasyncio.create_subprocess_exec('x')\n": 1,
    }
    for source, count in bad.items():
        assert len(spawn_sites(source)) == count, source
    fine = ('"""Runs one locust subprocess. See subprocess.run and Popen(..)."""\n'
            "# subprocess.run is not called here\n"
            "from subprocess import Popen\n"
            "def f(p: Popen[bytes]) -> None:\n    os.execvp('x', ['x'])\n")
    assert spawn_sites(fine) == []
    # And the boundary itself does use subprocess (the scan is not blind).
    assert spawn_sites(BOUNDARY.read_text(encoding="utf-8"))
