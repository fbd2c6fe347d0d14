"""The local backend: each server config as a pinned process group on 127.0.0.1.

Servers run in the harness's empty children folder (``procs.child_dir``) with an
explicit empty config where the server would otherwise read one from there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from subprocess import Popen
from typing import Any

from harness.procs import (
    ProcessError,
    child_env,
    client_connections,
    empty_config,
    free_port,
    poll_until,
    spawn,
    stop_group,
    tail,
    wait_ready,
)
from harness.sampler import TreeSampler
from harness.servers import GUNICORN_CONFIG, ServerConfig

#: A port can be taken between choosing it and the server binding it: retry that
#: (and only that) on another port.
START_ATTEMPTS = 3


class LocalServer:
    """A server config running as a local process group; see :class:`Deployment`."""

    def __init__(self, config: ServerConfig, *, workers: int, cpus: list[int],
                 log_path: Path, clock: Callable[[], float], app: str | None = None,
                 env: dict[str, str] | None = None, ready_path: str = "/health",
                 ready_any: bool = False) -> None:
        self.config = config
        self.log_path = log_path
        self.proc: Popen[bytes] | None = None
        self.port = 0
        self.startup_s = float("nan")
        last_error: ProcessError | None = None
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            argv = config.argv(port=self.port, workers=workers, app=app,
                               config_file=str(empty_config(GUNICORN_CONFIG)))
            proc = spawn(argv, cpus=cpus, log_path=log_path,
                         env=child_env(env) if env else None)
            try:
                self.startup_s = wait_ready(proc, self.port, log_path, path=ready_path,
                                            any_status=ready_any)
                self.proc = proc
                break
            except BaseException as exc:
                stop_group(proc)
                if not isinstance(exc, ProcessError):
                    raise
                last_error = exc
                if "address already in use" not in exc.log_tail.lower():
                    break  # a real failure, not a port race: do not retry
        if self.proc is None:
            assert last_error is not None
            raise last_error
        try:
            self.sampler = TreeSampler(self.proc.pid, clock=clock, cpus=cpus).__enter__()
        except BaseException:
            stop_group(self.proc)
            raise

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else -1

    def is_idle(self) -> bool:
        """No established TCP connection to the server's port (from any client)."""
        return client_connections(self.port) == 0

    def wait_idle(self, deadline_s: float) -> bool:
        return poll_until(self.is_idle, deadline_s)

    def log_tail(self, lines: int = 8) -> str:
        return tail(self.log_path, lines)

    def extra_samples(self) -> list[dict[str, Any]]:
        return []

    def info(self) -> dict[str, Any]:
        return {"backend": "local", "port": self.port, "pid": self.proc.pid if self.proc else None,
                "startup_s": round(self.startup_s, 3)}

    def stop(self) -> int | None:
        self.sampler.stop()
        if self.proc is None:
            return None
        code = stop_group(self.proc)
        return code


class LocalBackend:
    name = "local"

    def check(self) -> None:
        """Local processes need nothing beyond the installed package."""

    def deploy(self, config: ServerConfig, *, workers: int, cpus: list[int], log_path: Path,
               clock: Callable[[], float], run_id: str, repeat: int,
               app: str | None = None, env: dict[str, str] | None = None,
               ready_path: str = "/health", ready_any: bool = False) -> LocalServer:
        """See :meth:`Backend.deploy`; ``app``, ``env``, ``ready_path`` and ``ready_any``
        serve another app than the config's raw one (harness.stacks.Stack.launch)."""
        # run_id and repeat: the processes carry BENCH_RUN_ID in their environment
        # already (procs.ENV_ALLOW); nothing else here needs them.
        return LocalServer(config, workers=workers, cpus=cpus, log_path=log_path, clock=clock,
                           app=app, env=env, ready_path=ready_path, ready_any=ready_any)
