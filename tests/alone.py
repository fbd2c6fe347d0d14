"""Tests that load the machine run alone; the others run side by side.

The suite runs on pytest-xdist workers (``-n`` in pyproject's ``addopts``; ``-n 0`` runs
it in one process). A test marked ``alone`` puts load on the machine or times something:
a real ``bench run``, wrk, locust, a stream client timing events, the docker engine at
work. On 2 cores a second test beside it would take the load generator's CPU, and the
harness would rightly mark its trials invalid (``generator-saturated``, ``not-steady``).
So before each test every worker takes one lock file, an ``alone`` test exclusively
(``flock`` ``LOCK_EX``), any other test shared (``LOCK_SH``), and lets it go after the
test. The ``alone`` tests are collected first and go to one worker as one unit of work
(:class:`AloneFirst`, xdist's scope scheduling with their node ids as one scope, in
collection order), which keeps the lock from the first of them to the last: the other
workers wait at their first test, then every worker runs the rest side by side.

A test that starts a load generator (locust or wrk, through :func:`harness.procs.spawn`)
or a ``bench run`` subprocess while it does not hold the machine alone fails at once,
saying so (:func:`check`), in one process as on several: a missing ``alone`` mark is
an error, not a flaky number. :func:`machine_alone` holds the machine alone for a block
inside any test (the session's shared runs are made in one).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

MARK = "alone"

_file: int | None = None  # the lock file's descriptor, opened on first use
_held: int | None = None  # fcntl.LOCK_SH, LOCK_EX or None
_alone_test = False  # the running test is marked alone
_alone_block = 0  # depth of machine_alone() blocks


def workers() -> bool:
    """This process is one of several xdist workers (only then is anything locked)."""
    return "PYTEST_XDIST_WORKER" in os.environ


def _session_file(uid: str, suffix: str) -> Path:
    return Path(tempfile.gettempdir()) / f"bench-tests-{uid}.{suffix}"


def lock_path() -> Path:
    """The lock file the workers of this test session share (xdist gives every worker of
    one session the same ``PYTEST_XDIST_TESTRUNUID``)."""
    return _session_file(os.environ.get("PYTEST_XDIST_TESTRUNUID", "single"), "lock")


def record_alone(items: list[pytest.Item]) -> None:
    """On a worker, after collection: the node ids of the ``alone`` tests, for the
    controller's :class:`AloneFirst` (every worker collects the same and writes the same)."""
    if not workers():
        return
    from harness.atomic import atomic_write_bytes

    atomic_write_bytes(_session_file(os.environ["PYTEST_XDIST_TESTRUNUID"], "alone"),
                       "\n".join(item.nodeid for item in items if is_alone(item)).encode())


def forget(config: pytest.Config) -> None:
    """On the controller, at the session's end: remove the session's files."""
    uid = getattr(config.option, "testrunuid", None)
    if uid and not hasattr(config, "workerinput"):
        for suffix in ("lock", "alone"):
            _session_file(uid, suffix).unlink(missing_ok=True)


def make_scheduler(config: pytest.Config, log: object) -> object:
    """xdist's scope scheduling, the ``alone`` tests one unit of work, every other test
    one of its own, in collection order (``--no-loadscope-reorder``)."""
    from xdist.scheduler import LoadScopeScheduling

    uid = config.getoption("testrunuid")

    class AloneFirst(LoadScopeScheduling):
        def schedule(self) -> None:
            path = _session_file(uid, "alone")
            self.alone = set(path.read_text().splitlines()) if path.exists() else set()
            super().schedule()

        def _split_scope(self, nodeid: str) -> str:
            return MARK if nodeid in self.alone else nodeid

    return AloneFirst(config, log)  # type: ignore[arg-type]


def _hold(mode: int | None) -> None:
    """Hold the session's lock in ``mode`` (LOCK_SH, LOCK_EX; None: let it go). Blocks
    until granted. flock converts a held lock by letting it go first, so two shared
    holders that both ask for it exclusively get it one after the other, not a deadlock."""
    global _file, _held
    if not workers() or mode == _held:
        return
    if _file is None:
        _file = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(_file, fcntl.LOCK_UN if mode is None else mode)
    _held = mode


def is_alone(item: pytest.Item) -> bool:
    return item.get_closest_marker(MARK) is not None


def before(item: pytest.Item) -> None:
    """Before ``item`` runs: the lock exclusively for an ``alone`` test, shared otherwise."""
    global _alone_test
    _alone_test = is_alone(item)
    _hold(fcntl.LOCK_EX if _alone_test else fcntl.LOCK_SH)


def after(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After ``item``: an ``alone`` test followed by another keeps the machine (no other
    worker's test slips in between); otherwise the lock goes."""
    global _alone_test
    _alone_test = False
    if not (is_alone(item) and nextitem is not None and is_alone(nextitem)):
        _hold(None)


@contextlib.contextmanager
def machine_alone() -> Iterator[None]:
    """Hold the machine alone for the block (waiting for the other workers' running
    tests to end), then go back to what the test held."""
    global _alone_block
    before_mode = _held
    _hold(fcntl.LOCK_EX)
    _alone_block += 1
    try:
        yield
    finally:
        _alone_block -= 1
        _hold(before_mode)


def holds_machine() -> bool:
    """The running code may load the machine: an ``alone`` test or a
    :func:`machine_alone` block."""
    return _alone_test or _alone_block > 0


def check(what: str) -> None:
    """Fail the running test if it starts ``what`` (a load generator, a run) without the
    machine to itself."""
    if not holds_machine():
        pytest.fail(f"this test starts {what} but is not marked @pytest.mark.{MARK} "
                    "(tests/alone.py): beside another test its numbers would not be true",
                    pytrace=False)


#: ``bench`` commands that put load on the machine (unless asked for help or a dry run).
LOADS = frozenset({"run", "cross-check", "agent"})


def loads(args: list[str] | tuple[str, ...]) -> bool:
    """``bench ARGS`` puts load on the machine."""
    return bool(args) and args[0] in LOADS and not {"--dry-run", "--help"} & set(args)


def load_generator(argv: list[str] | tuple[str, ...]) -> str | None:
    """What in ``argv`` loads the machine (locust, wrk, a ``bench run``), or None."""
    argv = [str(a) for a in argv]
    for i, arg in enumerate(argv):
        if Path(arg).name in ("locust", "wrk"):
            return Path(arg).name
        if arg == "harness.cli" and loads(argv[i + 1:]):
            return f"bench {argv[i + 1]}"
    return None


def guard_spawn() -> None:
    """Make :func:`harness.procs.spawn` (every harness module's one way to start a
    program, and the modules that imported it by name) :func:`check` load generators."""
    import sys

    from harness import procs

    original = procs.spawn
    if getattr(original, "_checks_alone", False):
        return

    def spawn(argv, *args, **kwargs):  # type: ignore[no-untyped-def]
        generator = load_generator(argv)
        if generator is not None:
            check(generator)
        return original(argv, *args, **kwargs)

    spawn._checks_alone = True  # type: ignore[attr-defined]
    spawn.__doc__ = original.__doc__
    procs.spawn = spawn
    for name, module in list(sys.modules.items()):
        if name.startswith("harness") and getattr(module, "spawn", None) is original:
            module.spawn = spawn  # type: ignore[attr-defined]
