"""One lock per CPU, machine-wide, so two ``bench run``s never measure on the same cores.

A run takes ``fcntl.flock`` (exclusive) on ``<lock dir>/cpu-<n>.lock`` for every CPU of
its server and load sets, and holds it until the process exits: the kernel releases a
flock when its holder dies, ``kill -9`` included, so a crashed run never leaves a CPU
locked. The holder writes its pid, run id and command into the file so a refused run
can say who has the CPU. Children do not inherit the lock (``procs.spawn`` closes
every other file descriptor).

The lock folder is ``$BENCH_LOCK_DIR`` or ``/tmp/bench-locks`` (made world-writable and
sticky, like ``/tmp``, so every user's runs see each other's locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from harness.errors import UserError

DEFAULT_DIR = Path("/tmp/bench-locks")
POLL_S = 0.2


def lock_dir(environ: dict[str, str] | None = None) -> Path:
    """``$BENCH_LOCK_DIR`` or :data:`DEFAULT_DIR`."""
    env = os.environ if environ is None else environ
    return Path(env.get("BENCH_LOCK_DIR") or DEFAULT_DIR)


class CpuBusy(UserError):
    """A CPU is locked by another run; the message names the holder."""


@dataclass
class CpuLocks:
    """Held CPU locks (open files with an flock on each); :meth:`release` or process
    exit lets them go."""

    cpus: list[int]
    folder: Path
    _files: list[int] = field(default_factory=list, repr=False)
    waited_s: float = 0.0

    def note(self, **info: Any) -> None:
        """Write who holds the locks (pid, and e.g. the run id) into every lock file."""
        text = json.dumps({"pid": os.getpid(), **info}).encode()
        for fd in self._files:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, text, 0)

    def release(self) -> None:
        for fd in self._files:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the last descriptor drops the flock
        self._files = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _open(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except PermissionError:  # another user's file, not writable: a read fd can flock too
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)  # the umask made it narrower; other users must open it too
    return fd


def holder(path: Path) -> str:
    """Who the lock file says holds it: ``run <id> (pid <n>)``, ``<task> (pid <n>)`` for
    a command that is not a run (``bench cross-check``), or what is known."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    run, task = info.get("run_id"), info.get("task")
    if run:
        return f"run {run} (pid {info['pid']})"
    return f"{task} (pid {info['pid']})" if task else f"pid {info['pid']} (starting a run)"


def wait_option(seconds: float) -> float:
    """The ``--wait-cpus`` value of ``bench run`` and ``bench cross-check``, checked.

    Raises:
        UserError: not a finite number of seconds >= 0.
    """
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UserError(f"--wait-cpus {seconds}: must be a number of seconds >= 0")
    return seconds


def acquire(cpus: Sequence[int], *, wait_s: float = 0.0, folder: Path | None = None,
            **info: Any) -> CpuLocks:
    """Lock every CPU in ``cpus`` (in ascending order, so two waiting runs cannot
    deadlock), waiting up to ``wait_s`` seconds for a busy one; ``info`` is written into
    the lock files with this pid.

    Raises:
        CpuBusy: a CPU is still locked after ``wait_s``; the message names the holder.
        UserError: the lock folder cannot be created or opened.
    """
    folder = folder or lock_dir()
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(folder, 0o1777)  # shared by every user, like /tmp
    except OSError as exc:
        raise UserError(f"CPU lock folder {folder}: {exc.strerror}") from None
    locks = CpuLocks(sorted(set(cpus)), folder)
    start = time.monotonic()
    try:
        for cpu in locks.cpus:
            path = folder / f"cpu-{cpu}.lock"
            try:
                fd = _open(path)
            except OSError as exc:
                raise UserError(f"CPU lock {path}: {exc.strerror}") from None
            locks._files.append(fd)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() - start >= wait_s:
                        hint = (f"waited {wait_s:g} s; " if wait_s > 0 else "")
                        raise CpuBusy(
                            f"CPU {cpu} is in use by {holder(path)}: two runs on the same CPUs "
                            f"measure each other; {hint}wait with --wait-cpus SECONDS "
                            f"(BENCH_WAIT_CPUS) or choose other --server-cpus/--load-cpus"
                        ) from None
                    time.sleep(POLL_S)
    except BaseException:
        locks.release()
        raise
    locks.waited_s = time.monotonic() - start
    locks.note(**info)
    return locks
