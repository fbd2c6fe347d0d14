"""Deploy backends: where server configs run. A plain registry from name to backend.

A backend's :meth:`Backend.deploy` starts one server config and returns a
:class:`Deployment` that is ready (``/health`` answered) on ``127.0.0.1:port``, with a
psutil :class:`~harness.sampler.TreeSampler` already sampling its processes. The
runner owns the deployment and calls :meth:`Deployment.stop` in a ``finally``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from harness.errors import UserError
from harness.sampler import TreeSampler
from harness.servers import ServerConfig


class Deployment(Protocol):
    """A running, ready server config."""

    config: ServerConfig
    port: int
    sampler: TreeSampler

    def exit_code(self) -> int | None:
        """None while the server runs; its exit code (or -1 if unknown) once it stopped."""

    def wait_idle(self, deadline_s: float) -> bool:
        """True once no client connection to the server is established (within the deadline)."""

    def log_tail(self, lines: int = 8) -> str:
        """The last lines of the server's output, joined by `` | ``."""

    def extra_samples(self) -> list[dict[str, Any]]:
        """Backend-specific resource rows in ``samples.csv`` form (e.g. the engine's stats)."""

    def info(self) -> dict[str, Any]:
        """What to record about this deployment in run.json (port, pids, limits, image...)."""

    def stop(self) -> int | None:
        """Stop sampling and tear everything down; idempotent."""


class Backend(Protocol):
    name: str

    def check(self) -> None:
        """Raise UserError (one line) if this backend cannot run here (e.g. no engine)."""

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


def get_backend(name: str) -> Backend:
    """The backend called ``name``. Raises UserError for an unknown one."""
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend()
    if name == "docker":
        from harness.backends.docker import DockerBackend

        docker_backend = DockerBackend()
        docker_backend.check()  # no engine, no compose or no image: one line, before any run
        return docker_backend
    raise UserError(f"unknown backend {name!r} (known: local, docker)")
