"""A private PostgreSQL cluster for one run, owned like a server (the ``db-*`` scenarios).

:class:`Postgres` makes a cluster in a fresh temporary folder (``initdb``), starts
``postgres`` on it through :mod:`harness.procs` (its own process group, pinned, with
the harness's parent-death signal), listening on ``127.0.0.1`` on a free port and on
a unix socket in that folder, waits until a connection succeeds (no fixed sleep),
seeds ``world(id, randomnumber)`` with :data:`~harness.apps.work.WORLD_ROWS` rows
(:func:`harness.apps.work.world_randomnumber`: the same table on every run), and
:meth:`Postgres.stop` shuts it down (fast shutdown: SIGINT) and deletes the folder.

Binaries come from the system (Debian's ``postgresql`` package): ``BENCH_PG_BINDIR`` if
set, else ``pg_config --bindir``, else the newest ``/usr/lib/postgresql/*/bin``, else
``initdb`` on ``PATH`` (:func:`find_binaries`).

Root. PostgreSQL refuses to run as root; when the harness is root the cluster runs as
the ``postgres`` system user (created by Debian's package), through util-linux's
``setpriv`` (``--reuid/--regid/--init-groups``; exec, no shell, no PAM), which also
sets the parent-death signal again after the credential change (the kernel clears it
then): SIGINT, PostgreSQL's fast shutdown (:func:`run_as`).

Settings (:data:`SETTINGS`, recorded in ``run.json`` with the server's version): the
table is a throwaway read by the benchmark only, so durability is off (``fsync``,
``synchronous_commit``, ``full_page_writes``); ``max_connections`` is sized from the
run's pools. Everything else is PostgreSQL's default.

Every exit path removes the cluster: :meth:`Postgres.stop` in the runner's ``finally``
(a normal end, a failing server, Ctrl-C, SIGTERM); if the harness is killed, the
postmaster gets SIGINT from the kernel and the run's watchdog stops what is left and
removes the folder (:func:`remove_cluster_dir`, named in ``run.json``). PostgreSQL's
backends each run in a session of their own (the postmaster's children call
``setsid``), so they are found by their working directory, the cluster's data folder
(:func:`cluster_processes`), not by process group.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any, Self

import psutil

from harness import procs
from harness.apps.work import WORLD_ROWS, world_randomnumber
from harness.errors import UserError

#: The Debian package that provides the server binaries.
PACKAGE = "postgresql"
#: The cluster's folder: ``<tmp>/bench-pg-XXXXXXXX`` (data in ``data/``, socket beside it).
DIR_PREFIX = "bench-pg-"
DB_NAME = "bench"
DB_USER = "bench"
#: Names the folder of the ``initdb`` and ``postgres`` to use (e.g. another version).
ENV_BINDIR = "BENCH_PG_BINDIR"
#: The OS user the cluster runs as when the harness is root.
OS_USER = "postgres"
#: Settings given on the command line (``-c``) besides the address, port and socket.
SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
SETTINGS_NOTE = ("durability off (fsync, synchronous_commit, full_page_writes): the seeded "
                 "table is a throwaway that the benchmark only reads")
#: Settings read back from ``pg_settings`` into run.json.
RECORDED = ("server_version", "port", "listen_addresses", "max_connections",
            "shared_buffers", "work_mem", "effective_cache_size", "fsync",
            "synchronous_commit", "full_page_writes", "jit", "max_worker_processes",
            "password_encryption")
READY_DEADLINE_S = 60.0
#: Fast shutdown (SIGINT) gets this long before the group is stopped the hard way.
STOP_GRACE_S = 15.0
START_ATTEMPTS = 3


@dataclass(frozen=True)
class Binaries:
    """Where ``initdb`` and ``postgres`` are."""

    bindir: Path

    @property
    def initdb(self) -> Path:
        return self.bindir / "initdb"

    @property
    def postgres(self) -> Path:
        return self.bindir / "postgres"


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)


def find_binaries() -> Binaries:
    """The system's PostgreSQL server binaries (``BENCH_PG_BINDIR``, when set, names the
    folder to use and no other).

    Raises:
        UserError: no ``initdb`` and ``postgres`` found; names the package to install.
    """
    chosen = os.environ.get(ENV_BINDIR)
    if chosen:
        found = Binaries(Path(chosen))
        if all(os.access(p, os.X_OK) for p in (found.initdb, found.postgres)):
            return found
        raise UserError(f"{ENV_BINDIR}={chosen}: no initdb and postgres there; install the "
                        f"Debian package {PACKAGE!r} (apt-get install {PACKAGE}) or point "
                        f"{ENV_BINDIR} at its bin folder")
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(procs.CommandError):
            done = procs.run([pg_config, "--bindir"], timeout_s=10)
            if done.returncode == 0 and done.stdout.strip():
                candidates.append(Path(done.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key,
                         reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        found = Binaries(bindir)
        if all(os.access(p, os.X_OK) for p in (found.initdb, found.postgres)):
            return found
    raise UserError(f"PostgreSQL server binaries (initdb, postgres) not found: install the "
                    f"Debian package {PACKAGE!r} (apt-get install {PACKAGE})")


def run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """(argv prefix that runs a cluster program, the user it runs as if not this one).

    Not root: ``setpriv --pdeathsig INT --`` (fast shutdown if the harness dies), or no
    prefix where util-linux's ``setpriv`` is missing. Root: ``setpriv`` as the
    ``postgres`` user.

    Raises:
        UserError: root, without a ``postgres`` user or without ``setpriv``.
    """
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0:
        return ([setpriv, "--pdeathsig", "INT", "--"] if setpriv else []), None
    try:
        user = pwd.getpwnam(OS_USER)
    except KeyError:
        raise UserError(f"running as root: PostgreSQL refuses to run as root and there is no "
                        f"{OS_USER!r} user to run the cluster as; install the Debian package "
                        f"{PACKAGE!r} (it creates that user) or run bench as another user"
                        ) from None
    if not setpriv:
        raise UserError("running as root: setpriv (Debian package util-linux) is needed to "
                        f"run PostgreSQL as the {OS_USER!r} user")
    return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
            "--pdeathsig", "INT", "--"], user


def cluster_processes(base: Path) -> list[psutil.Process]:
    """Live processes whose working directory is in the cluster folder ``base`` (the
    postmaster and every backend chdir to its data folder), zombies aside."""
    found = []
    prefix = str(base)
    for proc in psutil.process_iter():
        try:
            cwd = proc.cwd()
            if (cwd == prefix or cwd.startswith(prefix + "/")) \
                    and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def remove_cluster_dir(path: str | Path, grace_s: float = 5.0) -> bool:
    """Remove a cluster folder a run made (``<tmp>/bench-pg-*`` only), after its
    processes are gone: they exit by themselves once the postmaster is gone; those
    left after ``grace_s`` are SIGKILLed (a process working in our unique folder is
    ours). Returns whether there was a folder to remove."""
    base = Path(path)
    if not base.name.startswith(DIR_PREFIX) or base.parent != Path(tempfile.gettempdir()):
        return False
    if not base.exists():
        return False
    if not procs.poll_until(lambda: not cluster_processes(base), grace_s):
        for proc in cluster_processes(base):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.kill()
        procs.poll_until(lambda: not cluster_processes(base), 5.0)
    shutil.rmtree(base, ignore_errors=True)
    return True


def url_of(password: str, port: int, database: str = DB_NAME, host: str = "127.0.0.1") -> str:
    """``postgresql://`` URL of ``database`` as :data:`DB_USER`."""
    return f"postgresql://{DB_USER}:{password}@{host}:{port}/{database}"


def wait_ready(admin_url: str, exit_code: Callable[[], int | None],
               log_tail: Callable[[], str], deadline_s: float = READY_DEADLINE_S) -> float:
    """Poll a real connection (``SELECT 1`` at ``admin_url``: the ``postgres`` database,
    which initdb made) until it works; seconds it took. ``exit_code`` is None while the
    server runs.

    Raises:
        harness.procs.ProcessError: the server exited, or the deadline passed (log tail).
    """
    import psycopg

    start = time.monotonic()
    while True:
        code = exit_code()
        if code is not None:
            raise procs.ProcessError(f"postgres exited with code {code} before it was ready",
                                     log_tail())
        try:
            with psycopg.connect(admin_url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return time.monotonic() - start
        except psycopg.OperationalError:
            pass
        if time.monotonic() - start > deadline_s:
            raise procs.ProcessError(f"postgres not ready after {deadline_s:.0f} s", log_tail())
        time.sleep(0.05)


def seed(admin_url: str, url: str) -> dict[str, Any]:
    """Create :data:`DB_NAME` and ``world(id, randomnumber)`` in it: ids 1..WORLD_ROWS,
    randomnumber from :func:`~harness.apps.work.world_randomnumber`; checked by count and
    sum. Returns what run.json records of it.

    Raises:
        harness.procs.ProcessError: the table does not read back as seeded.
    """
    import psycopg

    start = time.monotonic()
    want = sum(world_randomnumber(i) for i in range(1, WORLD_ROWS + 1))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE world (id integer PRIMARY KEY, randomnumber integer NOT NULL)")
        with conn.cursor() as cur, cur.copy("COPY world (id, randomnumber) FROM STDIN") as copy:
            for i in range(1, WORLD_ROWS + 1):
                copy.write_row((i, world_randomnumber(i)))
        conn.execute("VACUUM ANALYZE world")
        row = conn.execute("SELECT count(*), sum(randomnumber) FROM world").fetchone()
    if row is None or (int(row[0]), int(row[1])) != (WORLD_ROWS, want):
        raise procs.ProcessError(f"seeding world: got {row}, expected ({WORLD_ROWS}, {want})")
    return {"table": "world(id, randomnumber)", "rows": WORLD_ROWS, "randomnumber_sum": want,
            "seed_s": round(time.monotonic() - start, 3)}


def read_settings(url: str) -> dict[str, str]:
    """:data:`RECORDED` settings as the server at ``url`` reports them (``pg_settings``)."""
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute("SELECT name, setting || coalesce(' ' || unit, '') "
                            "FROM pg_settings WHERE name = ANY(%s)",
                            (list(RECORDED),)).fetchall()
    return {name: value for name, value in rows}


class Postgres:
    """One private cluster: :meth:`start` (initdb, start, ready, seed), :meth:`stop`.

    ``cpus``: the CPU set the postmaster (and so every backend) is pinned to;
    ``log_path``: initdb's and the server's output; ``max_connections``: at least the
    run's pools plus the harness's own.
    """

    def __init__(self, binaries: Binaries, *, cpus: list[int], log_path: Path,
                 max_connections: int = 100) -> None:
        self.binaries = binaries
        self.cpus = cpus
        self.log_path = log_path
        self.max_connections = max_connections
        self.base: Path | None = None
        #: The cluster folder this object made (kept for run.json after it is removed).
        self.made: Path | None = None
        self.proc: Popen[bytes] | None = None
        self.pid: int | None = None
        self.port = 0
        self.password = secrets.token_hex(16)
        self.user: pwd.struct_passwd | None = None
        self.startup_s = self.seed_s = float("nan")
        self.seeded: dict[str, Any] = {}

    @property
    def url(self) -> str:
        """``postgresql://`` URL of the seeded database over TCP on 127.0.0.1."""
        return self._url(DB_NAME)

    def _url(self, database: str) -> str:
        return url_of(self.password, self.port, database)

    @property
    def data(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    def start(self) -> Self:
        """Make, start and seed the cluster; on any failure stop it and remove the folder.

        Raises:
            harness.procs.ProcessError: initdb failed, or the server did not become
                ready (with the log's tail).
        """
        prefix, self.user = run_as()
        self.base = self.made = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        try:
            self._initdb(prefix)
            self._serve(prefix)
            self._seed()
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self, prefix: list[str]) -> None:
        assert self.base is not None
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.user is not None:
            for path in (self.base, pwfile):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        procs.run([*prefix, str(self.binaries.initdb), "-D", str(self.data), "-U", DB_USER,
                   f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
                   "--auth-local=scram-sha-256", "--encoding=UTF8", "--locale=C",
                   "--no-sync", "--no-instructions"],
                  timeout_s=120, cwd=self.base, log_path=self.log_path, check=True)
        pwfile.unlink()

    def argv(self, prefix: list[str]) -> list[str]:
        """The server's command line (``-c`` settings recorded in run.json)."""
        settings = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                    "unix_socket_directories": str(self.base),
                    "max_connections": str(self.max_connections), **SETTINGS}
        return [*prefix, str(self.binaries.postgres), "-D", str(self.data),
                *(a for k, v in settings.items() for a in ("-c", f"{k}={v}"))]

    def _serve(self, prefix: list[str]) -> None:
        last: procs.ProcessError | None = None
        env = procs.child_env({"HOME": str(self.base)})
        for _ in range(START_ATTEMPTS):
            self.port = procs.free_port()
            proc = procs.spawn(self.argv(prefix), cpus=self.cpus, log_path=self.log_path,
                               env=env, cwd=self.base)
            self.proc, self.pid = proc, proc.pid
            try:
                self.startup_s = self._wait_ready(proc)
                return
            except procs.ProcessError as exc:
                self._stop_server()
                last = exc
                if "address already in use" not in exc.log_tail.lower():
                    break  # a real failure, not a port taken meanwhile
        assert last is not None
        raise last

    def _wait_ready(self, proc: Popen[bytes]) -> float:
        return wait_ready(self._url("postgres"), proc.poll,
                          lambda: procs.tail(self.log_path))

    def _seed(self) -> None:
        self.seeded = seed(self._url("postgres"), self.url)
        self.seed_s = self.seeded["seed_s"]

    def settings(self) -> dict[str, str]:
        """:data:`RECORDED` settings as the server reports them (``pg_settings``)."""
        return read_settings(self.url)

    def info(self) -> dict[str, Any]:
        """What run.json records of the cluster (no password)."""
        return {"bindir": str(self.binaries.bindir),
                "dir": str(self.made) if self.made else None,
                "host": "127.0.0.1", "port": self.port, "database": DB_NAME,
                "db_user": DB_USER, "os_user": self.user.pw_name if self.user else None,
                "pid": self.pid, "cpus": self.cpus,
                "command_settings": {"max_connections": self.max_connections, **SETTINGS},
                "settings_note": SETTINGS_NOTE, "startup_s": round(self.startup_s, 3),
                **self.seeded}

    def _stop_server(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)  # fast shutdown: ends sessions, exits
            procs.wait_exit(proc, STOP_GRACE_S)
        procs.stop_group(proc, grace_s=2.0)

    def stop(self) -> None:
        """Shut the server down and remove the cluster folder; idempotent."""
        try:
            self._stop_server()
        finally:
            base, self.base = self.base, None
            if base is not None:
                remove_cluster_dir(base)
