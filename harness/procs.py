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
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

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
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)


def http_get(port: int, path: str, timeout_s: float = 5.0) -> tuple[int, str, bytes]:
    """One GET to ``127.0.0.1:port``; returns (status, content type, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type", ""), resp.read()
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes], port: int, log_path: Path, *,
               deadline_s: float = 30.0, path: str = "/health") -> float:
    """Poll ``GET path`` until it answers 200; return seconds it took.

    Raises:
        ProcessError: the process exited, or the deadline passed; with the log tail.
    """
    start = time.monotonic()
    while True:
        code = proc.poll()
        if code is not None:
            raise ProcessError(f"exited with code {code} before it was ready", tail(log_path))
        try:
            status, _, _ = http_get(port, path, timeout_s=1.0)
            if status == 200:
                return time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > deadline_s:
            raise ProcessError(f"not ready after {deadline_s:.0f} s", tail(log_path))
        time.sleep(0.05)
