"""The one place that spawns and stops subprocesses.

Every child is started from an argv list (never a shell), with an allow-listed
environment, in a new session (so it leads its own process group), pinned to a
CPU set, with stdout and stderr to a log file. :func:`stop_group` ends the whole
group: SIGTERM, a grace period, then SIGKILL, and waits until no member is left.

Every group :func:`spawn` starts is registered until :func:`stop_group` ends it;
:func:`stop_started` ends whatever is still registered. The CLI calls it when it
exits, as a safety net for the instant between a spawn returning and its caller's
``try`` (a Ctrl-C landing there would otherwise leave the group running).

When the harness itself dies without running any ``finally`` (``kill -9``, the OOM
killer), two things still end its children:

* each group leader is started with ``PR_SET_PDEATHSIG`` = SIGTERM (``harness.pin``),
  so the kernel signals it when the harness dies. The signal follows the *thread*
  that forked: only the main thread, which lives as long as the harness, asks for it
  (every spawn in the harness runs there: deploy and ``run_level`` are called from
  the runner's main loop, sampler threads never spawn). The leader then stops its own
  workers (gunicorn's arbiter, locust's master, uvicorn's supervisor);
* :func:`record_groups` keeps a JSON file of the live groups (pgid, leader start
  time), which the run's watchdog (``harness.watchdog``) and ``bench clean`` read to
  stop what is left, e.g. workers of a leader killed before it could stop them.

Children run in an empty private folder that is also their ``HOME``, so no
``gunicorn.conf.py``, ``locust.conf``, ``pyproject.toml`` or ``~/.locust.conf`` of the
caller's can change their configuration (:func:`child_dir`, :func:`child_env`).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import http.client
import json
import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from harness import PROJECT_ROOT

#: Passed to children; BENCH_RUN_ID / BENCH_TEST_SESSION tag every process a run (or a
#: test session) starts, so a leftover can be traced to whoever started it.
ENV_ALLOW = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "VIRTUAL_ENV",
             "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "BENCH_RUN_ID", "BENCH_TEST_SESSION",
             # real components' addresses and the driver settings (harness.apps.drivers)
             "BENCH_PG_URL", "BENCH_UPSTREAM_URL", "BENCH_DRIVER_WSGI", "BENCH_DRIVER_ASGI",
             "BENCH_POOL_SIZE", "BENCH_PG_URL_CONTAINER", "BENCH_DATA_NETWORK")


class ProcessError(RuntimeError):
    """A child failed to start or to become ready; ``log_tail`` keeps its last output."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


#: Signals that interrupt the harness (interrupts._signals_as_interrupt); held back while
#: a group is being stopped so the stop always finishes.
INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_child_dir: Path | None = None


def child_dir() -> Path:
    """This process's private folder for children: ``cwd/`` (their working directory
    and ``HOME``, kept empty) and ``config/`` (empty config files named explicitly on
    their command lines, see :func:`empty_config`). Made once (``mkdtemp``, mode 0700,
    so nobody else can put a file in it), removed when the harness exits."""
    global _child_dir
    if _child_dir is None or not _child_dir.is_dir():
        base = Path(tempfile.mkdtemp(prefix="bench-children-"))
        (base / "cwd").mkdir()
        (base / "config").mkdir()
        atexit.register(shutil.rmtree, base, True)
        _child_dir = base
    return _child_dir


def empty_config(name: str) -> Path:
    """An empty file ``name`` in :func:`child_dir`'s ``config/`` (created if missing),
    to pass as a child's explicit config so it reads no default one."""
    path = child_dir() / "config" / name
    if not path.exists():
        path.write_text("")
    return path


def child_env(extra: dict[str, str] | None = None,
              environ: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed environment for children, with ``apps`` importable.

    ``HOME`` is the empty :func:`child_dir` ``cwd/`` (so ``~/.locust.conf`` and the like
    are not read); ``PYTHONUSERBASE`` keeps a user-site install importable all the same.
    """
    source = os.environ if environ is None else environ
    env = {k: source[k] for k in ENV_ALLOW if k in source}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["HOME"] = str(child_dir() / "cwd")
    env["PYTHONUSERBASE"] = site.getuserbase()
    env.update(extra or {})
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral TCP port on ``host`` that was free a moment ago (may be taken later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def spawn(argv: Sequence[str], *, cpus: Sequence[int], log_path: Path,
          env: dict[str, str] | None = None, cwd: Path | None = None,
          die_with_parent: bool = True) -> subprocess.Popen[bytes]:
    """Start ``argv`` pinned to ``cpus`` as the leader of a new process group.

    Output goes to ``log_path`` (appended); the working directory is ``cwd`` or the
    empty :func:`child_dir` ``cwd/``. With ``die_with_parent`` (and when called from
    the main thread, see the module docstring) the leader gets SIGTERM if the harness
    dies. The caller owns the child and must call :func:`stop_group` in a ``finally``.
    """
    pin = [sys.executable, "-m", "harness.pin"]
    if die_with_parent and threading.current_thread() is threading.main_thread():
        pin += ["--die-with", str(os.getpid())]
    pinned = [*pin, ",".join(map(str, cpus)), "--", *argv]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(pinned, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=cwd or child_dir() / "cwd",
                                env=env if env is not None else child_env(),
                                start_new_session=True, close_fds=True)
    _started[proc.pid] = proc
    _created[proc.pid] = identity(proc.pid)
    _write_groups()
    return proc


#: Groups started by :func:`spawn` and not yet ended by :func:`stop_group`, by pgid.
_started: dict[int, subprocess.Popen[bytes]] = {}
#: The leader's :func:`identity` per pgid: with the pid it names one process for ever,
#: so a recycled pid is never taken for ours.
_created: dict[int, dict[str, Any] | None] = {}
_groups_file: Path | None = None
_groups_lock = threading.Lock()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def identity(pid: int) -> dict[str, Any] | None:
    """What names process ``pid`` for ever: ``{"pid", "boot_id", "start_ticks",
    "create_time"}``, or None if it is gone.

    ``start_ticks`` is the start time in clock ticks since boot (proc(5), /proc/PID/stat
    field 22): exact, and unlike an epoch create time not moved by a clock step, so
    (boot_id, pid, start_ticks) can be compared for equality. ``create_time`` (epoch s,
    psutil) is for people reading run.json.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])
        created = psutil.Process(pid).create_time()
    except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
        return None
    return {"pid": pid, "boot_id": _boot_id(), "start_ticks": ticks, "create_time": created}


def same_process(recorded: dict[str, Any] | None) -> bool | None:
    """Is the process :func:`identity` recorded still running? None when this machine
    cannot tell (recorded on another boot id is a no: that boot is over; missing
    fields: None)."""
    if not isinstance(recorded, dict):
        return None
    try:
        pid, ticks, boot = int(recorded["pid"]), int(recorded["start_ticks"]), recorded["boot_id"]
    except (KeyError, TypeError, ValueError):
        return None
    if boot != _boot_id():
        return False
    now = identity(pid)
    if now is None:
        return False
    with contextlib.suppress(psutil.NoSuchProcess):
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return False
    return now["start_ticks"] == ticks


def record_groups(path: Path | None) -> None:
    """Keep ``path`` (JSON, written atomically) listing the live groups :func:`spawn`
    started, updated at every spawn and stop; ``None`` stops recording.

    Shape: ``{"harness": identity, "groups": [{"pgid": int, "leader": identity,
    "argv": [str, ...]}]}`` (:func:`identity`); read by ``harness.watchdog`` and
    ``bench clean`` (:func:`read_groups`).
    """
    global _groups_file
    _groups_file = path
    _write_groups()


def _write_groups() -> None:
    if _groups_file is None:
        return
    from harness.atomic import atomic_write_json

    with _groups_lock:
        if _groups_file is None:
            return
        groups = []
        for pgid, proc in list(_started.items()):
            args = [str(a) for a in proc.args]  # type: ignore[union-attr]
            groups.append({"pgid": pgid, "leader": _created.get(pgid),
                           "argv": args[args.index("--") + 1:] if "--" in args else args})
        atomic_write_json(_groups_file, {"harness": identity(os.getpid()), "groups": groups})


def read_groups(path: Path) -> list[dict[str, Any]]:
    """The groups a :func:`record_groups` file lists (``[]`` if absent or damaged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [g for g in data["groups"] if isinstance(g, dict) and isinstance(g.get("pgid"), int)]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def ours(group: dict[str, Any]) -> bool:
    """Is the recorded process group (``{"pgid", "leader": identity}``) still alive and
    the one recorded?

    Its leader alive with the recorded identity: yes. Its leader gone but members left:
    yes, since Linux does not hand out a pid that is still some group's id, so the
    members are the leader's. The pid now some other process (recycled), a group
    recorded on an earlier boot, or no member left: no.
    """
    pgid = int(group["pgid"])
    leader = group.get("leader")
    if not isinstance(leader, dict) or leader.get("boot_id") != _boot_id():
        return False
    if not _group_alive(pgid):
        return False
    now = identity(pgid)  # a zombie leader still counts: same start ticks
    return now is None or now["start_ticks"] == leader.get("start_ticks")


def kill_recorded(groups: Sequence[dict[str, Any]], grace_s: float = 2.0,
                  skip: Sequence[int] = ()) -> list[int]:
    """SIGTERM every recorded group that is still :func:`ours`, SIGKILL what is left
    after ``grace_s``; return the pgids it signalled. For groups this process did not
    start (it cannot reap them): a dead run's, by its :func:`record_groups` file."""
    targets = [int(g["pgid"]) for g in groups if int(g["pgid"]) not in skip and ours(g)]
    for pgid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    # Not _group_alive: these are not our children, so their zombies wait for whoever
    # adopted them, and a group of zombies is done.
    poll_until(lambda: not live_members(targets), grace_s)
    for pgid in targets:
        if live_members([pgid]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
    poll_until(lambda: not live_members(targets), 5.0)
    return targets


def live_members(pgids: Sequence[int]) -> list[int]:
    """Pids of the processes in any of the groups ``pgids`` that are not zombies."""
    wanted = {p for p in pgids if _group_alive(p)}
    found = []
    if not wanted:
        return found
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) in wanted and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (OSError, psutil.NoSuchProcess):
            continue
    return found


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

    An interrupt cannot cut this short: in the main thread SIGINT, SIGTERM and SIGHUP
    are blocked (``pthread_sigmask``) until the group is gone, so their handlers run
    just after; an exception that still arrives (a signal another thread took, whose
    Python handler runs here) ends the grace period at once, the group is SIGKILLed
    and reaped, and then the exception is raised again. The group stays registered
    (for :func:`stop_started`) unless it is gone.
    """
    with _interrupts_blocked():
        code, pending = _stop_group(proc, grace_s)
        if not _group_alive(proc.pid):
            _started.pop(proc.pid, None)
            _created.pop(proc.pid, None)
            _write_groups()
    if pending is not None:
        raise pending
    return code


@contextlib.contextmanager
def _interrupts_blocked() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _stop_group(proc: subprocess.Popen[bytes],
                grace_s: float) -> tuple[int | None, BaseException | None]:
    """(leader's exit code, the first exception that arrived meanwhile, if any)."""
    pgid = proc.pid
    deadline = time.monotonic() + grace_s
    pending: BaseException | None = None
    phase = "term"
    while True:
        try:
            if phase == "term":
                if proc.poll() is None or _group_alive(pgid):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pgid, signal.SIGTERM)
                phase = "grace"
            if phase == "grace":
                while time.monotonic() < deadline:
                    proc.poll()
                    if proc.returncode is not None and not _group_alive(pgid):
                        return proc.returncode, pending
                    time.sleep(0.02)
                phase = "kill"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - a D-state process
                pass
            end = time.monotonic() + 5
            while _group_alive(pgid) and time.monotonic() < end:
                time.sleep(0.02)
            return proc.returncode, pending
        except BaseException as exc:  # noqa: BLE001 - finish the teardown, then re-raise it
            pending = pending or exc
            phase = "kill"  # interrupted: no more waiting politely


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
               path: str = "/health", any_status: bool = False) -> float:
    """Poll ``GET path`` on ``127.0.0.1:port`` until it answers 200 (with ``any_status``:
    anything HTTP, e.g. an app of the user's whose path may want another method); return
    seconds it took.

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
            if status == 200 or any_status:
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


def wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """Wait up to ``timeout_s`` for ``proc`` to exit; its exit code, or None if it still
    runs (the caller stops its group)."""
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None
