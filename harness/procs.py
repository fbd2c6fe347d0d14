"""The one place that spawns and stops subprocesses.

Every child is started from an argv list (never a shell), with an allow-listed
environment, in a new session (so it leads its own process group), pinned to a
CPU set, with stdout and stderr to a log file. :func:`stop_group` ends the whole
group: SIGTERM, a grace period, then SIGKILL, and waits until no member is left.

Every group :func:`spawn` starts is registered until :func:`stop_group` ends it;
:func:`stop_started` ends whatever is still registered. The CLI calls it when it
exits, as a safety net for the instant between a spawn returning and its caller's
``try`` (a Ctrl-C landing there would otherwise leave the group running).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from harness import PROJECT_ROOT

#: Passed to children; BENCH_RUN_ID / BENCH_TEST_SESSION tag every process a run (or a
#: test session) starts, so a leftover can be traced to whoever started it.
ENV_ALLOW = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "VIRTUAL_ENV",
             "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "BENCH_RUN_ID", "BENCH_TEST_SESSION")


class ProcessError(RuntimeError):
    """A child failed to start or to become ready; ``log_tail`` keeps its last output."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


def child_env(extra: dict[str, str] | None = None,
              environ: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed environment for children, with ``apps`` importable."""
    source = os.environ if environ is None else environ
    env = {k: source[k] for k in ENV_ALLOW if k in source}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral TCP port on ``host`` that was free a moment ago (may be taken later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def spawn(argv: Sequence[str], *, cpus: Sequence[int], log_path: Path,
          env: dict[str, str] | None = None, cwd: Path = PROJECT_ROOT) -> subprocess.Popen[bytes]:
    """Start ``argv`` pinned to ``cpus`` as the leader of a new process group.

    Output goes to ``log_path`` (appended). The caller owns the child and must
    call :func:`stop_group` in a ``finally``.
    """
    pinned = [sys.executable, "-m", "harness.pin", ",".join(map(str, cpus)), "--", *argv]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(pinned, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=cwd,
                                env=env if env is not None else child_env(),
                                start_new_session=True, close_fds=True)
    _started[proc.pid] = proc
    return proc


#: Groups started by :func:`spawn` and not yet ended by :func:`stop_group`, by pgid.
_started: dict[int, subprocess.Popen[bytes]] = {}


def stop_started(grace_s: float = 5.0) -> list[int]:
    """Stop every group :func:`spawn` started that no :func:`stop_group` ended yet.

    Returns the process-group ids it had to stop (empty when every caller cleaned up).
    Only groups this process started are touched.
    """
    left = list(_started.values())
    for proc in left:
        stop_group(proc, grace_s)
    return [p.pid for p in left]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> int | None:
    """Stop ``proc`` and every process in its group; return the leader's exit code.

    SIGTERM to the group, up to ``grace_s`` for it to exit, then SIGKILL. Only the
    group this module created is signalled (its id is the leader's pid).
    """
    try:
        return _stop_group(proc, grace_s)
    finally:
        _started.pop(proc.pid, None)


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float) -> int | None:
    pgid = proc.pid
    deadline = time.monotonic() + grace_s
    if proc.poll() is None or _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    while time.monotonic() < deadline:
        proc.poll()
        if proc.returncode is not None and not _group_alive(pgid):
            return proc.returncode
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a D-state process
        pass
    end = time.monotonic() + 5
    while _group_alive(pgid) and time.monotonic() < end:
        time.sleep(0.02)
    return proc.returncode


@contextlib.contextmanager
def running(argv: Sequence[str], *, cpus: Sequence[int], log_path: Path,
            env: dict[str, str] | None = None,
            grace_s: float = 10.0) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`spawn` as a context manager whose exit always calls :func:`stop_group`."""
    proc = spawn(argv, cpus=cpus, log_path=log_path, env=env)
    try:
        yield proc
    finally:
        stop_group(proc, grace_s)


def client_connections(port: int) -> int:
    """Established TCP connections on this host whose local port is ``port``."""
    return sum(1 for c in psutil.net_connections(kind="tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)


def poll_until(predicate: Callable[[], bool], deadline_s: float, every_s: float = 0.05) -> bool:
    """Call ``predicate`` every ``every_s`` until it is true (return True) or
    ``deadline_s`` seconds passed (return False)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every_s)
    return False


def tail(path: Path, lines: int = 8) -> str:
    """The last ``lines`` non-empty lines of a text file, joined by `` | `` (for reasons)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return tail_text(text, lines)


def http_get(port: int, path: str, timeout_s: float = 5.0) -> tuple[int, str, bytes]:
    """One GET to ``127.0.0.1:port``; returns (status, content type, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type", ""), resp.read()
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes] | Callable[[], int | None], port: int,
               log_path: Path | Callable[[], str], *, deadline_s: float = 30.0,
               path: str = "/health") -> float:
    """Poll ``GET path`` on ``127.0.0.1:port`` until it answers 200; return seconds it took.

    ``proc`` is the child (a Popen) or a callable giving its exit code (None while it
    runs), e.g. a container's; ``log_path`` its log file, or a callable giving the tail
    of its output. A refused or dropped connection counts as not ready yet.

    Raises:
        ProcessError: the process exited, or the deadline passed; with the log tail.
    """
    exit_code = proc.poll if isinstance(proc, subprocess.Popen) else proc
    log_tail: Callable[[], str] = (log_path if callable(log_path)
                                   else functools.partial(tail, log_path))
    start = time.monotonic()
    while True:
        code = exit_code()
        if code is not None:
            raise ProcessError(f"exited with code {code} before it was ready", log_tail())
        try:
            status, _, _ = http_get(port, path, timeout_s=1.0)
            if status == 200:
                return time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > deadline_s:
            raise ProcessError(f"not ready after {deadline_s:.0f} s", log_tail())
        time.sleep(0.05)


# ---------------------------------------------------------------------------- run to completion

def tail_text(text: str, lines: int = 8) -> str:
    """The last ``lines`` non-empty lines of ``text``, stripped, joined by `` | ``."""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)


@dataclasses.dataclass(frozen=True)
class Completed:
    """A command that ran to completion: its exit code, its output and how long it took.

    ``stdout``/``stderr`` are empty when the output went to a log file.
    """

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float


class CommandError(ProcessError):
    """A command of :func:`run` did not complete: not found, timed out, or (``check``)
    exited non-zero. ``stderr`` keeps its error output (or the log's tail), ``returncode``
    is None when it never finished, ``timed_out`` says whether the deadline ended it."""

    def __init__(self, message: str, *, argv: Sequence[str], returncode: int | None = None,
                 stderr: str = "", timed_out: bool = False) -> None:
        super().__init__(message, tail_text(stderr, 3))
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.timed_out = timed_out


def allowed_env(names: Sequence[str] = (), environ: Mapping[str, str] | None = None
                ) -> dict[str, str]:
    """The allow-listed part of ``environ`` (default ``os.environ``): :data:`ENV_ALLOW`
    plus ``names``, with a ``PATH`` even where the caller has none."""
    source = os.environ if environ is None else environ
    env = {k: source[k] for k in (*ENV_ALLOW, *names) if k in source}
    env.setdefault("PATH", os.defpath)
    return env


def run(argv: Sequence[str], *, timeout_s: float, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, log_path: Path | None = None, check: bool = False) -> Completed:
    """Run ``argv`` (never a shell) to completion and return its exit code and output.

    The command gets no stdin, the environment ``env`` (default :func:`allowed_env`:
    nothing outside the allow-list leaks to it) and a session of its own, so a Ctrl-C
    at the terminal reaches bench, which ends the command, not the command halfway.
    Output is captured as text, or appended to ``log_path`` (after a ``$ argv`` line)
    when given. On a timeout or any exception while waiting (Ctrl-C included) its
    whole process group is killed and reaped before the error propagates.

    Raises:
        CommandError: ``argv[0]`` could not be started, ``timeout_s`` passed, or, with
            ``check``, it exited non-zero; with its stderr (or the log's tail).
    """
    argv = [str(a) for a in argv]
    child_env_ = dict(env) if env is not None else allowed_env()
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(open(log_path, "a", encoding="utf-8"))
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            out: Any = log
            err: Any = subprocess.STDOUT
        else:
            out = err = subprocess.PIPE
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    env=child_env_, cwd=cwd, text=True, close_fds=True,
                                    start_new_session=True)
        except OSError as exc:
            raise CommandError(f"{argv[0]} could not start: {exc.strerror or exc}",
                               argv=argv) from None
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_and_reap(proc)
            tail_of = tail(log_path, 3) if log_path is not None else ""
            raise CommandError(f"{argv[0]}: no result after {timeout_s:.0f} s", argv=argv,
                               stderr=tail_of, timed_out=True) from None
        except BaseException:
            _kill_and_reap(proc)
            raise
    done = Completed(tuple(argv), proc.returncode, stdout or "", stderr or "",
                     time.monotonic() - start)
    if check and done.returncode != 0:
        said = done.stderr or done.stdout or (tail(log_path, 3) if log_path is not None else "")
        raise CommandError(f"{argv[0]} exited with code {done.returncode}", argv=argv,
                           returncode=done.returncode, stderr=said)
    return done


def _kill_and_reap(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the group :func:`run` started (its id is the leader's pid) and reap the leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=5)
