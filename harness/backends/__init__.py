"""Deploy backends: where server configs run. A plain registry from name to backend.

A backend's :meth:`Backend.deploy` starts one server config and returns a
:class:`Deployment` that is ready (``/health`` answered) on ``127.0.0.1:port``, with a
psutil :class:`~harness.sampler.TreeSampler` already sampling its processes, or, when
those processes are not on this host (a remote docker engine: ``psutil_view`` False),
a :class:`~harness.sampler.NoSampler`. The runner owns the deployment and calls
:meth:`Deployment.stop` in a ``finally``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from harness.errors import UserError
from harness.sampler import NoSampler, TreeSampler
from harness.servers import ServerConfig


class Deployment(Protocol):
    """A running, ready server config."""

    config: ServerConfig
    port: int
    sampler: TreeSampler | NoSampler
    #: psutil sees the server's processes (PSS, USS, RSS, fds...); False: only the
    #: engine's figures exist (:meth:`engine_samples`).
    psutil_view: bool

    def exit_code(self) -> int | None:
        """None while the server runs; its exit code (or -1 if unknown) once it stopped."""

    def wait_idle(self, deadline_s: float) -> bool:
        """True once no client connection to the server is established (within the deadline)."""

    def log_tail(self, lines: int = 8) -> str:
        """The last lines of the server's output, joined by `` | ``."""

    def extra_samples(self) -> list[dict[str, Any]]:
        """Backend-specific resource rows in ``samples.csv`` form (e.g. the engine's stats)."""

    def engine_samples(self) -> list[dict[str, Any]]:
        """The container engine's rows read so far (``samples.csv`` form, not consumed:
        :meth:`extra_samples` still returns them); empty without an engine."""

    def info(self) -> dict[str, Any]:
        """What to record about this deployment in run.json (port, pids, limits, image...)."""

    def stop(self) -> int | None:
        """Stop sampling and tear everything down; idempotent."""


class Backend(Protocol):
    name: str

    def check(self) -> None:
        """Raise UserError (one line) if this backend cannot run here (e.g. no engine)."""

    def run_meta(self) -> dict[str, Any]:
        """What run.json records about where the servers run (``resource_view``: whether
        psutil sees their processes, and which figures are missing when it does not)."""

    def deploy(self, config: ServerConfig, *, workers: int, cpus: list[int], log_path: Path,
               clock: Callable[[], float], run_id: str, repeat: int) -> Deployment:
        """Start ``config`` and wait until ready.

        A backend that can serve other apps than the raw ones (the local backend) also
        takes the keywords of :meth:`harness.stacks.Stack.launch` (``app``: the import
        string, ``env``, ``ready_path``, ``ready_any``); the runner passes them only for
        those.

        ``run_id`` and ``repeat`` say which run and repeat the deployment belongs to
        (e.g. the docker backend labels its containers with the run id and tags its
        engine samples with the repeat).

        Raises:
            harness.procs.ProcessError: it did not become ready; carries the log tail.
        """


def get_backend(name: str, *, docker_host: str | None = None,
                target_host: str | None = None) -> Backend:
    """The backend called ``name``. Docker only: ``docker_host`` names the engine
    (``--docker-host``: a URL or a docker context; harness.dockerhost), ``target_host`` the
    address the load reaches the servers' published ports at (``--target-host``).

    Raises:
        UserError: an unknown backend, ``docker_host`` or ``target_host`` with the local
            backend (the harness samples only what it started on this host), or a target
            that is not 127.0.0.1.
    """
    placement(name, docker_host=docker_host, target_host=target_host)
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend()
    if name == "docker":
        from harness.backends.docker import DockerBackend

        docker_backend = DockerBackend(docker_host=docker_host, target_host=target_host)
        docker_backend.check()  # no engine, no compose or no image: one line, before any run
        return docker_backend
    raise UserError(f"unknown backend {name!r} (known: local, docker)")


def placement(name: str, *, docker_host: str | None = None,
              target_host: str | None = None) -> bool:
    """Check ``--docker-host`` and ``--target-host`` for backend ``name`` without starting
    or asking anything; whether psutil will see the servers' processes (False: a docker
    engine elsewhere, or a target given: harness.dockerhost.sees_processes).

    Raises:
        UserError: as :func:`get_backend` for these options, or a context that does not exist.
    """
    if target_host is not None:
        check_target_host(target_host, name)
    if docker_host is not None and name != "docker":
        raise UserError(f"--docker-host names a Docker engine: it needs --backend docker, "
                        f"not {name}")
    if name != "docker":
        return True
    from harness import dockerhost

    return dockerhost.sees_processes(dockerhost.resolve(docker_host), target_host)


#: Where a port published by a container is reached: compose.yaml publishes on the
#: engine host's 127.0.0.1, and bench targets loopback only (DESIGN.md, principle 6).
TARGET_HOST = "127.0.0.1"


def check_target_host(address: str, backend: str) -> None:
    """Refuse a ``--target-host`` the run cannot honour, in one line.

    The local backend starts and samples its servers on this host, so its target is
    always 127.0.0.1; the docker backend's containers publish on 127.0.0.1 of the engine
    host, and bench sends load to loopback only, so the one target is :data:`TARGET_HOST`
    (the engine host's loopback as this host sees it: this host, or a port forward).

    Raises:
        UserError: local backend, a non-loopback address, or another loopback address.
    """
    import ipaddress

    if backend == "local":
        raise UserError(f"--target-host {address}: the local backend starts its servers on "
                        "this host and samples them with psutil, so it can only target what it "
                        "started (127.0.0.1); use --backend docker for a server elsewhere")
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        ip = None
    if ip is None or not ip.is_loopback:
        raise UserError(f"--target-host {address!r}: bench sends load to loopback addresses "
                        "only (127.0.0.1); a load across a network is a deliberate change of "
                        "that rule, not an option (docs/remote-engine.md)")
    if str(ip) != TARGET_HOST:
        raise UserError(f"--target-host {address}: containers publish on {TARGET_HOST} of the "
                        f"engine host, so nothing listens on {ip}; use {TARGET_HOST}")


class BackgroundStops:
    """Deployments stopping in threads, so a teardown overlaps the next server's start
    (harness.runner holds the next measurement window until :meth:`idle`)."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def stop(self, deployment: Deployment) -> None:
        """Start ``deployment.stop()`` in a thread; returns at once."""
        def run() -> None:
            try:
                deployment.stop()
            except BaseException as exc:  # noqa: BLE001 - raised again by join()
                self._errors.append(exc)
        thread = threading.Thread(target=run, name="bench-stop-server")
        thread.start()
        self._threads.append(thread)

    def idle(self) -> bool:
        """True when no stop is still running."""
        return not any(t.is_alive() for t in self._threads)

    def join(self, *, raise_errors: bool = True) -> None:
        """Wait for every stop; raise the first that failed (``raise_errors``)."""
        while self._threads:
            self._threads.pop().join()
        if self._errors and raise_errors:
            raise self._errors.pop(0)
