"""The docker backend: each server config as a compose service, one container, loopback-published.

For one deployment the backend runs ``<compose> -p bench-<run>-<config>-<id> -f
compose.yaml up -d <config>`` with the server CPUs (``cpuset``), the memory limit
and the worker count in the environment, finds the container by its compose labels
(project and service, never by name), reads the host port the engine published on
127.0.0.1, polls ``/health`` there until it answers, and starts two samplers:

* psutil on the container's processes seen from the host (the init process from
  ``State.Pid`` and its descendants) with :class:`~harness.sampler.TreeSampler`, as for
  local servers: PSS/USS/RSS/CPU; ``connections`` read from the container's own
  network namespace (see :func:`netns_connections`);
* the engine's stats stream (docker SDK): cgroup memory without page cache
  (``usage - inactive_file``, what ``docker stats`` shows) and CPU, returned by
  :meth:`DockerServer.extra_samples` as ``samples.csv`` rows with ``source="engine"``.

:meth:`DockerServer.stop` (the runner calls it in a ``finally``, also on Ctrl-C and
SIGTERM) saves the container's output to the server log and runs ``down -v
--remove-orphans``, then checks by label that no container or network of the project
is left (and removes any that is: they carry this deployment's unique project name).
Every container and network also carries the run id (label ``io.bench.run``), so
:func:`remove_run_containers` can remove what a run that died without its teardown left.
The services are hardened in compose.yaml (no capabilities, no privilege gain, read-only
root, a task limit, a fixed non-root user, no NAT); :meth:`DockerServer.info` records
what the engine applied.

**A remote engine** (``--docker-host``, ``DOCKER_HOST`` or a docker context naming anything
but a unix socket: :mod:`harness.dockerhost`), or any engine with ``--target-host``: the
container's processes are not this host's, so there is no psutil view (a
:class:`~harness.sampler.NoSampler`, no namespace reads, no pid checks); CPU and memory
come from the engine's stats alone, and :meth:`DockerBackend.run_meta` records which
figures are therefore missing. The published port must still be on 127.0.0.1 of the
engine host, reached here at ``--target-host`` (127.0.0.1: this host, or a forward).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tarfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import psutil

from harness import PACKAGE_DIR, PROJECT_ROOT, dockerhost, dockerimage, procs
from harness.backends import TARGET_HOST
from harness.backends.docker_stats import (
    ENGINE_ERRORS,
    ContainerTreeSampler,
    EngineStats,
    netns_connections,
)
from harness.errors import UserError
from harness.procs import ProcessError, client_connections, poll_until
from harness.sampler import NoSampler, TreeSampler
from harness.servers import ServerConfig

if TYPE_CHECKING:
    from docker.models.containers import Container


COMPOSE_FILE = PACKAGE_DIR / "backends" / "compose.yaml"
#: A run with a database (harness.dockerdb) sets these; the server then joins the run's
#: data network and gets the drivers' settings (:meth:`DockerServer._data_override`).
REALIO_ENV = ("BENCH_DATA_NETWORK", "BENCH_PG_URL_CONTAINER", "BENCH_DRIVER_WSGI",
              "BENCH_DRIVER_ASGI", "BENCH_POOL_SIZE")
#: The port the server listens on inside the container (compose.yaml publishes it).
CONTAINER_PORT = 8000
#: Inside the image, ``python`` is the venv's interpreter (PATH in harness/apps/Dockerfile).
CONTAINER_PYTHON = "python"
DEFAULT_MEM_LIMIT = "1g"
READY_DEADLINE_S = 60.0
COMPOSE_UP_TIMEOUT_S = 180.0
COMPOSE_DOWN_TIMEOUT_S = 120.0
STOP_GRACE_S = 10
#: Environment the compose CLI gets besides the allow-list of harness.procs.
DOCKER_ENV = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
              "DOCKER_TLS_VERIFY", "XDG_RUNTIME_DIR")
PROJECT_LABEL = "com.docker.compose.project"
#: compose.yaml's ``pids_limit`` (a literal there: docker-compose 1.29 does not convert
#: an interpolated one to a number): the task limit of every server container.
PIDS_LIMIT = 4096
#: Every container and network a run starts carries its run id under this label
#: (compose.yaml, from BENCH_RUN_ID); :func:`remove_run_containers` selects by it.
RUN_LABEL = "io.bench.run"
SERVICE_LABEL = "com.docker.compose.service"


def container_argv(config: ServerConfig, *, workers: int) -> list[str]:
    """The server's argv inside its container: host ``0.0.0.0``, port :data:`CONTAINER_PORT`.

    :meth:`ServerConfig.argv` refuses any host but 127.0.0.1, by design: on the host a
    server must never listen beyond loopback. A container is its own network
    namespace; there 127.0.0.1 is the container's loopback, which the published port
    cannot reach, so the server must listen on the container's interface. That
    interface is only reachable from this machine, and the host side is published on
    127.0.0.1 only (compose.yaml). So the registry's argv is rendered with 127.0.0.1
    and only the parts of the template holding ``{host}`` are switched; this argv is
    for a container's namespace and nothing else.
    """
    rendered = config.argv(port=CONTAINER_PORT, workers=workers, python=CONTAINER_PYTHON)
    return [part.replace("127.0.0.1", "0.0.0.0") if "{host}" in template else part
            for template, part in zip(config.template, rendered, strict=True)]


# ---------------------------------------------------------------------------- compose CLI

def find_compose(environ: Mapping[str, str] | None = None) -> tuple[list[str], str]:
    """(argv prefix, version) of the compose CLI: ``docker compose`` (v2) if the docker CLI
    has the plugin, else a ``docker-compose`` on PATH (v2 standalone or Debian's v1.29).

    Raises:
        UserError: neither answers ``version``.
    """
    env = _compose_env({}, environ)
    for prefix in (["docker", "compose"], ["docker-compose"]):
        try:
            r = procs.run([*prefix, "version", "--short"], timeout_s=30, env=env)
        except procs.CommandError:
            continue
        version = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        if r.returncode == 0 and re.match(r"v?\d+\.\d+", version):
            return prefix, version.lstrip("v")
    raise UserError("--backend docker needs Docker Compose: neither `docker compose` (v2) nor "
                    "`docker-compose` works here (apt-get install docker-compose)")


def _compose_env(extra: Mapping[str, str], environ: Mapping[str, str] | None) -> dict[str, str]:
    env = procs.allowed_env(DOCKER_ENV, environ)
    env.update(extra)
    return env


def project_name(run_id: str, config: ServerConfig) -> str:
    """``bench-<run suffix>-<config>-<random>``: unique per deployment, valid for compose.

    The run suffix is the random tail of the run id (``...-<6 hex>``, as
    :func:`harness.plan.new_run_id` makes it; ``x`` for any other id), so a person can
    tell which run a container belongs to; the random part keeps a redeployment (the
    next repeat, or after a crash) and parallel runs apart. The whole run id is on the
    container as the label :data:`RUN_LABEL`.
    """
    match = re.search(r"-([0-9a-f]{6})$", run_id)
    run = match.group(1) if match else "x"
    return f"bench-{run}-{config.name}-{uuid.uuid4().hex[:6]}"


def tasks_needed(workers: int) -> int:
    """Tasks (processes and threads) a config with ``workers`` workers may hold at most.

    The busiest configs hold about 35 a worker (gunicorn-gthread's 32 threads,
    granian's 32 blocking threads, plus the worker's own); 40 a worker and 64 for
    init, the master and the healthcheck. Compared with :data:`PIDS_LIMIT`.
    """
    return 64 + 40 * max(1, workers)


def remove_run_containers(run_id: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Remove every container and network labelled ``io.bench.run=<run_id>``; their names.

    By the label only (whatever its compose project, state or name), containers first
    (forced: a leftover of a dead run is killed, its anonymous volumes removed), then
    networks. For a watchdog or ``bench clean`` after a run died without its teardown.
    Returns the names removed (containers, then networks); one the engine refused to
    remove is left out; an empty list where no engine answers.

    Raises:
        ValueError: ``run_id`` is empty (an empty label value would select containers
            started by hand, outside any run).
    """
    if not run_id.strip():
        raise ValueError("remove_run_containers needs a run id")
    try:
        client = dockerimage.engine(environ)
    except UserError:
        return []
    from concurrent.futures import ThreadPoolExecutor

    def remove(container: Container) -> str | None:
        try:
            container.remove(force=True, v=True)
        except ENGINE_ERRORS:
            return None  # gone meanwhile (its own teardown, another sweep), or refused
        return str(container.name)

    label = {"label": f"{RUN_LABEL}={run_id}"}
    removed: list[str] = []
    try:
        found = client.containers.list(all=True, ignore_removed=True, filters=label)
        # The engine kills and removes one container per request: in parallel, so a
        # sweep of many containers takes about as long as one.
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(found)))) as pool:
            removed += [name for name in pool.map(remove, found) if name]
        for network in client.networks.list(filters=label):
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
                removed.append(network.name)
    except ENGINE_ERRORS:
        pass  # the engine went away: what was removed so far is the answer
    return removed


# ---------------------------------------------------------------------------- deployment

class DockerServer:
    """A server config running as one compose service container; see :class:`Deployment`."""

    sampler: TreeSampler | NoSampler

    def __init__(self, backend: DockerBackend, config: ServerConfig, *, workers: int,
                 cpus: list[int], log_path: Path, clock: Callable[[], float], run_id: str,
                 repeat: int) -> None:
        self.backend = backend
        self.client = backend.client
        self.config = config
        self.workers = workers
        self.cpus = cpus
        self.log_path = log_path
        self.compose_log = log_path.with_name(log_path.stem + ".compose.log")
        self.run_id = run_id
        self.repeat = repeat
        self.project = project_name(run_id, config)
        self.psutil_view = backend.psutil_view
        self.container: Container | None = None
        self.pid = 0
        self.port = 0
        self.startup_s = math.nan
        self.packages: dict[str, str] = {}
        self.stats: EngineStats | None = None
        self._stopped = False
        self._final_code: int | None = None
        self._proc: psutil.Process | None = None
        self.argv = container_argv(config, workers=workers)
        self.env = _compose_env({
            "BENCH_IMAGE": backend.image.tag,
            "BENCH_CPUSET": ",".join(map(str, cpus)),
            "BENCH_MEM_LIMIT": backend.mem_limit,
            "BENCH_WORKERS": str(workers),
            "BENCH_HOST_PORT": "",
            "BENCH_RUN_ID": run_id,
            # the run's database and drivers (harness.realio sets them after the backend
            # read its environment): _data_override passes them to the server
            **{k: os.environ[k] for k in REALIO_ENV if os.environ.get(k)},
        }, backend.environ)
        dockerhost.export(backend.endpoint, self.env)  # compose reaches the SDK's engine
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            try:
                self._start(clock)
            except procs.CommandError as exc:
                what = (f"did not finish within {COMPOSE_UP_TIMEOUT_S:.0f} s" if exc.timed_out
                        else f"could not run: {exc}")
                raise ProcessError(f"compose {what}", self._compose_tail()) from None
            except ENGINE_ERRORS as exc:  # the engine refused or went away while starting
                raise ProcessError(f"docker: {dockerimage._first_line(exc)}",
                                   self._compose_tail()) from None
        except BaseException:
            self._teardown()
            raise

    # -- start

    def _compose(self, *args: str, timeout_s: float) -> procs.Completed:
        """One compose command on this project, its output appended to the compose log.

        Raises:
            harness.procs.CommandError: compose could not start or ran out of time.
        """
        # procs.run gives it its own session: a Ctrl-C at the terminal reaches bench,
        # which tears down in order, not compose halfway through a command.
        files = ["-f", str(COMPOSE_FILE)]
        if self.env.get("BENCH_DATA_NETWORK"):  # a run with a database (harness.dockerdb)
            files += ["-f", str(self._data_override())]
        argv = [*self.backend.compose, "-p", self.project, *files, *args]
        return procs.run(argv, timeout_s=timeout_s, env=self.env, cwd=PROJECT_ROOT,
                         log_path=self.compose_log)

    def _data_override(self) -> Path:
        """A compose file (JSON is YAML) beside the compose log that puts this service on
        the run's data network, where the database answers as ``db:5432``, with the
        drivers' settings in its environment (harness.apps.drivers)."""
        import json

        # ${...}: compose fills them in from its environment, so the file holds no password
        env = {"BENCH_PG_URL": "${BENCH_PG_URL_CONTAINER:-}",
               **{k: f"${{{k}:-}}" for k in REALIO_ENV[2:]}}
        path = self.compose_log.with_name(f"{self.project}.data.json")
        path.write_text(json.dumps({
            "services": {self.config.name: {"networks": ["default", "data"],
                                            "environment": env}},
            "networks": {"data": {"external": True, "name": self.env["BENCH_DATA_NETWORK"]}}}))
        return path

    def _start(self, clock: Callable[[], float]) -> None:
        if tasks_needed(self.workers) > PIDS_LIMIT:
            raise ProcessError(f"{self.workers} workers may need {tasks_needed(self.workers)} "
                               f"tasks, over the containers' pids_limit {PIDS_LIMIT} "
                               "(compose.yaml)")
        r = self._compose("up", "-d", "--no-build", "--no-color", self.config.name,
                          timeout_s=COMPOSE_UP_TIMEOUT_S)
        found = self._containers()
        if r.returncode != 0 or not found:
            raise ProcessError(f"compose up exited with code {r.returncode}",
                               self._compose_tail())
        self.container = found[0]
        attrs = self.container.attrs
        cmd = [*(attrs["Config"].get("Entrypoint") or []), *(attrs["Config"].get("Cmd") or [])]
        if cmd != self.argv:
            raise ProcessError(f"compose.yaml's command for {self.config.name} differs from the "
                               f"server registry's: {cmd} != {self.argv}")
        self.port = self._published_port()
        # The engine host's pid: a process of this host only when psutil sees the engine's.
        self.pid = int(attrs["State"].get("Pid") or 0)
        if self.pid and self.psutil_view:
            with contextlib.suppress(psutil.Error):
                self._proc = psutil.Process(self.pid)
        # An exit before ready is a start failure, with the container's last output.
        try:
            self.startup_s = procs.wait_ready(self.exit_code, self.port, self.log_tail,
                                              deadline_s=READY_DEADLINE_S)
        except ProcessError as exc:
            if self.psutil_view or self.exit_code() is not None:
                raise
            raise ProcessError(f"{exc} (the engine at {self.backend.endpoint.url} published it "
                               f"on its own {TARGET_HOST}:{self.port}; this host must reach it "
                               "there: docs/remote-engine.md)", exc.log_tail) from None
        try:
            self.packages = dockerimage.parse_freeze(
                dockerimage.read_file_from(self.container, dockerimage.FREEZE_PATH))
        except (*ENGINE_ERRORS, tarfile.TarError) as exc:
            self.packages = {"error": f"{dockerimage.FREEZE_PATH} unreadable: {exc}"}
        self.sampler = (ContainerTreeSampler(self.pid, port=CONTAINER_PORT, clock=clock,
                                             cpus=self.cpus).__enter__()
                        if self.psutil_view else NoSampler())
        self.stats = EngineStats(self.client, str(self.container.id), server=self.config.name,
                                 repeat=float(self.repeat), clock=clock).start()

    def _compose_tail(self, lines: int = 5) -> str:
        return procs.tail(self.compose_log, lines)

    def _containers(self) -> list[Container]:
        return list(self.client.containers.list(all=True, ignore_removed=True, filters={"label": [
            f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={self.config.name}"]}))

    def _published_port(self) -> int:
        """The host port bound to the container's 8000; refuses a binding beyond 127.0.0.1."""
        assert self.container is not None
        bindings = (self.container.attrs["NetworkSettings"].get("Ports") or {}).get(
            f"{CONTAINER_PORT}/tcp") or []
        if not bindings:
            raise ProcessError(f"port {CONTAINER_PORT} of the container is not published")
        exposed = [b for b in bindings if b.get("HostIp") != "127.0.0.1"]
        if exposed:
            raise ProcessError(f"port {CONTAINER_PORT} is published beyond 127.0.0.1: {exposed}; "
                               "compose.yaml must publish on 127.0.0.1 only")
        return int(bindings[0]["HostPort"])

    # -- Deployment protocol

    def exit_code(self) -> int | None:
        if self._stopped:
            return self._final_code if self._final_code is not None else -1
        if self.container is None:
            return -1
        if self._proc is not None:
            with contextlib.suppress(psutil.Error):
                if self._proc.is_running() and self._proc.status() != psutil.STATUS_ZOMBIE:
                    return None
        try:
            self.container.reload()
        except ENGINE_ERRORS:
            return -1
        state = self.container.attrs["State"]
        if state.get("Running"):
            # Cheap check failed but the engine says it runs: trust the engine.
            self.pid = int(state.get("Pid") or self.pid)
            if self.psutil_view:
                with contextlib.suppress(psutil.Error):
                    self._proc = psutil.Process(self.pid)
            return None
        return int(state.get("ExitCode", -1))

    def is_idle(self) -> bool:
        """No established connection to the server: neither in the container's network
        namespace (port 8000, accepted or queued) nor on the host's published port (the
        engine's proxy holds the client side there)."""
        if (self.psutil_view and self.pid
                and netns_connections(self.pid, CONTAINER_PORT, accepted_only=False)):
            return False
        return client_connections(self.port) == 0

    def wait_idle(self, deadline_s: float) -> bool:
        return poll_until(self.is_idle, deadline_s)

    def log_tail(self, lines: int = 8) -> str:
        """The container's last output lines (stdout and stderr), from the engine."""
        if self.container is not None:
            with contextlib.suppress(*ENGINE_ERRORS):
                raw = self.container.logs(tail=max(lines * 4, 20))
                return procs.tail_text(raw.decode("utf-8", errors="replace"), lines)
        return procs.tail(self.log_path, lines)

    def extra_samples(self) -> list[dict[str, Any]]:
        return self.stats.drain() if self.stats else []

    def engine_samples(self) -> list[dict[str, Any]]:
        return self.stats.peek() if self.stats else []

    def info(self) -> dict[str, Any]:
        host = (self.container.attrs.get("HostConfig") or {}) if self.container else {}
        config = (self.container.attrs.get("Config") or {}) if self.container else {}
        image = self.backend.image
        return {
            "backend": "docker", "port": self.port, "publish_ip": "127.0.0.1",
            "target_host": self.backend.target_host or TARGET_HOST,
            "psutil_view": self.psutil_view, "engine": self.backend.endpoint.url,
            "compose_project": self.project, "service": self.config.name,
            "container_id": self.container.id if self.container else None,
            "container_pid": self.pid, "startup_s": round(self.startup_s, 3),
            "argv": self.argv, "image": image.tag, "image_id": image.image_id,
            "image_key": image.key, "base_image": image.base_image,
            "base_image_id": image.base_image_id,
            "limits": {"cpuset": host.get("CpusetCpus"), "mem_limit": self.backend.mem_limit,
                       "memory_bytes": host.get("Memory"),
                       "memory_swap_bytes": host.get("MemorySwap"), "init": host.get("Init"),
                       "pids_limit": host.get("PidsLimit"),
                       "read_only": host.get("ReadonlyRootfs"),
                       "cap_drop": host.get("CapDrop"), "security_opt": host.get("SecurityOpt"),
                       "user": config.get("User")},
            "compose": {"cli": " ".join(self.backend.compose),
                        "version": self.backend.compose_version},
            "engine_version": self.backend.engine_version,
            "packages": self.packages,
        }

    def stop(self) -> int | None:
        """Stop sampling, keep the container's output, bring the project down; idempotent."""
        if self._stopped:
            return self._final_code
        try:
            if hasattr(self, "sampler"):
                self.sampler.stop()
            if self.stats is not None:
                self.stats.stop()
        finally:
            self._teardown()
        return self._final_code

    def _teardown(self) -> None:
        """Save the logs, ``down -v --remove-orphans``, then make sure by label nothing is left."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.container is not None:
                # Stop it first (SIGTERM through init, then SIGKILL after the grace) to
                # keep its exit code, which `down` would remove with the container.
                with contextlib.suppress(*ENGINE_ERRORS):
                    self.container.stop(timeout=STOP_GRACE_S)
                    self.container.reload()
                    self._final_code = int(self.container.attrs["State"]["ExitCode"])
                with contextlib.suppress(*ENGINE_ERRORS):
                    self.log_path.write_bytes(self.container.logs())
            try:
                r = self._compose("down", "-v", "--remove-orphans", "-t", str(STOP_GRACE_S),
                                  timeout_s=COMPOSE_DOWN_TIMEOUT_S)
                note = f"compose down exited with code {r.returncode}" if r.returncode else ""
            except procs.CommandError as exc:
                note = f"compose down failed: {exc}"
            if note:  # the sweep below removes what it left
                with open(self.compose_log, "a") as log:
                    log.write(note + "\n")
        finally:
            try:
                self._sweep()
            except ENGINE_ERRORS as exc:
                with open(self.compose_log, "a") as log:
                    log.write(f"could not check for leftovers of {self.project}: {exc}\n")
            if self.stats is not None:
                self.stats.stop(wait_s=3.0)

    def _sweep(self) -> None:
        """Remove what the project label still finds (only this deployment's project)."""
        label = {"label": f"{PROJECT_LABEL}={self.project}"}
        for _ in range(3):
            containers = list(self.client.containers.list(all=True, ignore_removed=True,
                                                          filters=label))
            if not containers and not self.client.networks.list(filters=label):
                return
            for container in containers:
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True, v=True)
            for network in self.client.networks.list(filters=label):
                with contextlib.suppress(docker.errors.NotFound):
                    network.remove()


class DockerBackend:
    """Runs server configs as compose services. ``environ`` is a parameter so tests pass their own.

    ``BENCH_MEM_LIMIT`` (default :data:`DEFAULT_MEM_LIMIT`) sets every container's memory
    limit; ``BENCH_IMAGE`` runs that image instead of the one built for the current inputs.
    The engine is ``docker_host`` (``--docker-host``: a URL or a context name), else the one
    ``environ`` names (:func:`harness.dockerhost.resolve`);
    ``target_host`` (``--target-host``, checked by :func:`harness.backends.check_target_host`)
    says the load reaches the published ports there, i.e. the engine's processes are not
    this host's even if its socket is (an engine in a VM).
    """

    name = "docker"

    def __init__(self, environ: Mapping[str, str] | None = None, *,
                 docker_host: str | None = None, target_host: str | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.target_host = target_host
        self.endpoint = dockerhost.resolve(docker_host, self.environ)
        self.mem_limit = self.environ.get("BENCH_MEM_LIMIT") or DEFAULT_MEM_LIMIT
        self._client: docker.DockerClient | None = None
        self._image: dockerimage.ImageInfo | None = None
        self.compose: list[str] = []
        self.compose_version = ""
        self.engine_version = ""

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self.check()
        assert self._client is not None
        return self._client

    @property
    def image(self) -> dockerimage.ImageInfo:
        if self._image is None:
            self.check()
        assert self._image is not None
        return self._image

    def check(self) -> None:
        """Raise UserError (one line) unless the engine answers, a compose CLI works and the
        image for the current inputs is built. Cheap after the first success."""
        if self._client is not None and self._image is not None:
            return
        if not re.fullmatch(r"\d+(\.\d+)?[bkmg]?", self.mem_limit.lower()):
            raise UserError(f"BENCH_MEM_LIMIT {self.mem_limit!r}: expected a size like 512m or 1g")
        client = dockerhost.client(self.endpoint)
        self.compose, self.compose_version = find_compose(self.environ)
        wanted = self.environ.get("BENCH_IMAGE")
        if wanted:
            image_id = dockerimage._image_id(client, wanted)
            if image_id is None:
                raise UserError(f"BENCH_IMAGE {wanted!r} is not in the engine")
            labels = client.images.get(wanted).labels or {}
            image = dockerimage.ImageInfo(wanted, image_id, labels.get("io.bench.key", ""),
                                          labels.get("io.bench.base-image", ""),
                                          labels.get("io.bench.base-image-id", ""), cached=True)
        else:
            found = dockerimage.find_image(client)
            if found is None:
                raise UserError("no server image for the current apps and server versions: "
                                "run `bench docker build` first")
            image = found
        self.engine_version = str(client.version().get("Version", ""))
        self._client, self._image = client, image

    @property
    def psutil_view(self) -> bool:
        """psutil can read the containers' processes: a local engine (unix socket) and no
        ``--target-host``."""
        return dockerhost.sees_processes(self.endpoint, self.target_host)

    def run_meta(self) -> dict[str, Any]:
        """The engine, the load's target and where the server figures come from."""
        if self.psutil_view:
            view = {"psutil": True, "source": "psutil on this host (the container's processes) "
                    "and the engine's stats", "missing": []}
        else:
            why = (f"the engine at {self.endpoint.url} is not on this host" if not
                   self.endpoint.local else f"--target-host {self.target_host}: the servers "
                   "are taken to run on another host")
            view = {"psutil": False, "source": "the engine's stats only (cgroup CPU and "
                    "memory)", "reason": f"psutil's view was not available: {why}",
                    "missing": list(dockerhost.PSUTIL_ONLY)}
        return {"engine": self.endpoint.as_dict(),
                "target_host": self.target_host or TARGET_HOST, "resource_view": view}

    def deploy(self, config: ServerConfig, *, workers: int, cpus: list[int], log_path: Path,
               clock: Callable[[], float], run_id: str, repeat: int) -> DockerServer:
        self.check()
        return DockerServer(self, config, workers=workers, cpus=cpus, log_path=log_path,
                            clock=clock, run_id=run_id, repeat=repeat)
