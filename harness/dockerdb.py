"""The database as a compose service, for ``bench run --backend docker`` with the ``db-*``
scenarios.

**Image.** ``bench-db:<hash>``: a Debian bookworm minbase with Debian's
``postgresql-15``, made by ``debootstrap`` from the mirror apt uses here and loaded with
``docker import`` (no registry, no build-time network: the same path as the app image's
base, :mod:`harness.dockerimage`); ``bench docker build`` makes it (:func:`build_image`).

**Service.** ``harness/backends/compose.db.yaml``'s ``db``: one container per run, in a
compose project of its own (``bench-<run suffix>-db-<hex>``, so the run's watchdog and
``bench clean`` find it by label like the servers'), with its own cpuset and memory
limit, hardened like the servers (no capabilities, read-only root with the data on
tmpfs, user ``postgres``), ``initdb`` then ``postgres`` with the same settings as the
local backend's cluster (:data:`harness.postgres.SETTINGS`). Its port is published on
127.0.0.1 for the harness (readiness, seeding, ``pg_stat_activity``). The servers reach
it as ``db:5432`` over a network of the run's own (``internal``: no route out), which
the docker backend adds to each server's service together with the drivers'
environment when ``BENCH_DATA_NETWORK`` is set (``DockerServer._data_override`` in
:mod:`harness.backends.docker`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

from harness import PACKAGE_DIR, PROJECT_ROOT, dockerimage, postgres, procs
from harness.errors import UserError

DB_REPO = "bench-db"
#: Debian's server package of bookworm (PostgreSQL 15), and where it puts the binaries.
PACKAGE = "postgresql-15"
BINDIR = "/usr/lib/postgresql/15/bin"
RECIPE_VERSION = 1
COMPOSE_DB = PACKAGE_DIR / "backends" / "compose.db.yaml"
SERVICE = "db"
CONTAINER_PORT = 5432
DEFAULT_MEM_LIMIT = "1g"
UP_TIMEOUT_S = 180.0
DOWN_TIMEOUT_S = 120.0


def image_key(mirror: str) -> str:
    return dockerimage._digest([("recipe", str(RECIPE_VERSION).encode()),
                                ("suite", dockerimage.SUITE.encode()),
                                ("include", PACKAGE.encode()), ("mirror", mirror.encode()),
                                ("prune", ",".join(dockerimage.ROOTFS_PRUNE).encode())])[:16]


def image_tag(mirror: str | None = None) -> str | None:
    """``bench-db:<suite>-<hash>`` for this host's mirror (None: no mirror known)."""
    mirror = mirror or dockerimage.apt_mirror()
    return f"{DB_REPO}:{dockerimage.SUITE}-{image_key(mirror)}" if mirror else None


def find_image(client: Any, mirror: str | None = None) -> str | None:
    """The database image's tag if the engine has it."""
    tag = image_tag(mirror)
    return tag if tag and dockerimage._image_id(client, tag) else None


def require_image(client: Any | None = None) -> str:
    """The database image's tag on ``client``'s engine (default: the environment's).

    Raises:
        UserError: no engine answers, or the image is not built yet.
    """
    client = client or dockerimage.engine()
    tag = find_image(client)
    if tag is None:
        raise UserError("no database image for --backend docker: run `bench docker build` "
                        "first (it makes bench-db with Debian's postgresql-15)")
    return tag


def build_image(client: Any, *, mirror: str | None = None, cache: Path | None = None,
                log: dockerimage.Log = dockerimage._quiet, refresh: bool = False) -> str:
    """Make ``bench-db:<hash>`` if the engine lacks it: debootstrap minbase with
    :data:`PACKAGE`, pruned like the app base, ``docker import``. Returns its tag.

    Raises:
        UserError: no mirror known, not root, no debootstrap, or a step failed.
    """
    mirror = mirror or dockerimage.apt_mirror()
    if not mirror:
        raise UserError(f"no Debian {dockerimage.SUITE} mirror in /etc/apt/sources.list*; "
                        "pass --mirror URL")
    tag = f"{DB_REPO}:{dockerimage.SUITE}-{image_key(mirror)}"
    if not refresh and dockerimage._image_id(client, tag):
        log(f"database image: cached {tag}")
        return tag
    if os.geteuid() != 0:
        raise UserError("making the database image needs root (debootstrap)")
    return dockerimage.import_rootfs(
        client, cache or dockerimage.cache_root(), tag=tag, mirror=mirror, include=[PACKAGE],
        changes=["ENV LANG=C.UTF-8", f"ENV PATH={BINDIR}:/usr/sbin:/usr/bin:/sbin:/bin",
                 "USER postgres", f'CMD ["{BINDIR}/postgres", "--version"]'],
        what="debootstrap (database)", log=log)


class DockerPostgres:
    """The run's database as the compose service ``db``; the interface of
    :class:`harness.postgres.Postgres` (``start``, ``stop``, ``url``, ``pid``, ``info``,
    ``settings``) plus :attr:`container_url` and :attr:`network` for the servers."""

    def __init__(self, *, cpus: list[int], log_path: Path, max_connections: int,
                 run_id: str, environ: dict[str, str] | None = None) -> None:
        from harness.backends.docker import find_compose
        from harness.watchdog import run_suffix

        self.environ = dict(os.environ if environ is None else environ)
        self.client = dockerimage.engine(self.environ)
        self.image = require_image(self.client)
        self.compose, self.compose_version = find_compose(self.environ)
        self.cpus = cpus
        self.log_path = log_path
        self.max_connections = max_connections
        self.mem_limit = self.environ.get("BENCH_DB_MEM_LIMIT") or DEFAULT_MEM_LIMIT
        suffix = run_suffix(run_id) or "x"
        self.project = f"bench-{suffix}-db-{uuid.uuid4().hex[:6]}"
        self.network = f"{self.project}-data"
        self.password = secrets.token_hex(16)
        self.port = 0
        self.pid: int | None = None
        self.container: Any = None
        self.startup_s = float("nan")
        self.seeded: dict[str, Any] = {}
        self.run_id = run_id
        self._down = False

    @property
    def url(self) -> str:
        """The seeded database through the port published on 127.0.0.1 (the harness's)."""
        return postgres.url_of(self.password, self.port)

    @property
    def container_url(self) -> str:
        """The same database as the server containers reach it: ``db:5432``."""
        return postgres.url_of(self.password, CONTAINER_PORT, host=SERVICE)

    def _env(self) -> dict[str, str]:
        from harness.backends.docker import DOCKER_ENV

        env = procs.allowed_env(DOCKER_ENV, self.environ)
        env.update({"BENCH_DB_IMAGE": self.image, "BENCH_DB_CPUSET": ",".join(map(str, self.cpus)),
                    "BENCH_DB_MEM_LIMIT": self.mem_limit, "BENCH_DB_PASSWORD": self.password,
                    "BENCH_DB_MAX_CONNECTIONS": str(self.max_connections),
                    "BENCH_DATA_NETWORK": self.network, "BENCH_RUN_ID": self.run_id})
        return env

    def _compose(self, *args: str, timeout_s: float) -> procs.Completed:
        return procs.run([*self.compose, "-p", self.project, "-f", str(COMPOSE_DB), *args],
                         timeout_s=timeout_s, env=self._env(), cwd=PROJECT_ROOT,
                         log_path=self.log_path)

    def start(self) -> DockerPostgres:
        """Bring the service up, wait until a connection works, seed it; on any failure
        tear it down.

        Raises:
            harness.procs.ProcessError: compose failed, or the database was not ready.
        """
        try:
            r = self._compose("up", "-d", "--no-build", "--no-color", SERVICE,
                              timeout_s=UP_TIMEOUT_S)
            found = self._containers()
            if r.returncode != 0 or not found:
                raise procs.ProcessError(f"compose up exited with code {r.returncode}",
                                         procs.tail(self.log_path, 5))
            self.container = found[0]
            self.container.reload()
            self.pid = int(self.container.attrs["State"].get("Pid") or 0) or None
            self.port = self._published_port()
            self.startup_s = postgres.wait_ready(
                postgres.url_of(self.password, self.port, "postgres"), self._exit_code,
                self._log_tail)
            self.seeded = postgres.seed(postgres.url_of(self.password, self.port, "postgres"),
                                        self.url)
        except BaseException:
            self.stop()
            raise
        return self

    def _containers(self) -> list[Any]:
        return list(self.client.containers.list(all=True, ignore_removed=True, filters={
            "label": [f"com.docker.compose.project={self.project}",
                      f"com.docker.compose.service={SERVICE}"]}))

    def _published_port(self) -> int:
        ports = (self.container.attrs["NetworkSettings"].get("Ports") or {}).get(
            f"{CONTAINER_PORT}/tcp") or []
        for binding in ports:
            if binding.get("HostIp") != "127.0.0.1":
                raise procs.ProcessError(f"database published beyond loopback: {binding}")
            return int(binding["HostPort"])
        raise procs.ProcessError("database port not published")

    def _exit_code(self) -> int | None:
        try:
            self.container.reload()
        except Exception:  # noqa: BLE001 - gone: report it as exited
            return -1
        state = self.container.attrs["State"]
        return None if state.get("Running") else int(state.get("ExitCode") or -1)

    def _log_tail(self) -> str:
        with contextlib.suppress(Exception):
            return procs.tail_text(self.container.logs(tail=20).decode("utf-8", "replace"), 5)
        return ""

    def settings(self) -> dict[str, str]:
        return postgres.read_settings(self.url)

    def info(self) -> dict[str, Any]:
        return {"backend": "docker", "image": self.image, "project": self.project,
                "network": self.network, "container": getattr(self.container, "name", None),
                "host": "127.0.0.1", "port": self.port, "container_address":
                f"{SERVICE}:{CONTAINER_PORT}", "database": postgres.DB_NAME,
                "db_user": postgres.DB_USER, "os_user": "postgres", "pid": self.pid,
                "cpus": self.cpus, "mem_limit": self.mem_limit,
                "compose": self.compose_version,
                "command_settings": {"max_connections": self.max_connections,
                                     **postgres.SETTINGS},
                "settings_note": postgres.SETTINGS_NOTE,
                "startup_s": round(self.startup_s, 3), **self.seeded}

    def stop(self) -> None:
        """Save the container's output, ``down -v --remove-orphans``, then remove by label
        whatever of the project is left; idempotent."""
        if self._down:
            return
        self._down = True
        if self.container is not None:
            with contextlib.suppress(Exception), open(self.log_path, "ab") as log:
                log.write(self.container.logs())
        with contextlib.suppress(procs.CommandError):
            self._compose("down", "-v", "--remove-orphans", "--timeout", "10",
                          timeout_s=DOWN_TIMEOUT_S)
        label = {"label": f"com.docker.compose.project={self.project}"}
        with contextlib.suppress(Exception):
            for c in self.client.containers.list(all=True, ignore_removed=True, filters=label):
                c.remove(force=True, v=True)
            for n in self.client.networks.list(filters=label):
                n.remove()
        self.container = None
