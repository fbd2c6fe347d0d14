"""The local backend: each server config as a pinned process group on 127.0.0.1.

Servers run in the harness's empty children folder (``procs.child_dir``) with an
explicit empty config where the server would otherwise read one from there.

A config that keeps files of its own (mod_wsgi-express's server root: the Apache
config it writes, its daemons' sockets) gets a fresh folder per deployment under
``procs.child_dir``, removed when the deployment stops (after its process group is
gone). A config that refuses root (Apache), started by root, runs in a user namespace
(``servers.root_namespace_argv``): ``unshare`` execs it, so the group and its leader
are the same as for any other server and stop the same way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen
from typing import Any

from harness.procs import (
    ProcessError,
    child_dir,
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
from harness.servers import GUNICORN_CONFIG, ServerConfig, root_namespace_argv

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
        self.state_dir: Path | None = None
        self.user_namespace = config.refuses_root and os.geteuid() == 0
        last_error: ProcessError | None = None
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            proc = spawn(self._argv(workers, app), cpus=cpus, log_path=log_path,
                         env=child_env(env) if env else None)
            try:
                self.startup_s = wait_ready(proc, self.port, log_path, path=ready_path,
                                            any_status=ready_any)
                self.proc = proc
                break
            except BaseException as exc:
                stop_group(proc)
                self._remove_state_dir()
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
            self._remove_state_dir()
            raise

    def _argv(self, workers: int, app: str | None) -> list[str]:
        """This attempt's command line (a new server root for a config that needs one)."""
        state_dir = ""
        if self.config.needs_state_dir:
            self.state_dir = Path(tempfile.mkdtemp(prefix=f"{self.config.name}-",
                                                   dir=child_dir()))
            state_dir = str(self.state_dir)
        argv = self.config.argv(port=self.port, workers=workers, app=app,
                                config_file=str(empty_config(GUNICORN_CONFIG)),
                                **({"state_dir": state_dir} if state_dir else {}))
        return [*root_namespace_argv(), *argv] if self.user_namespace else argv

    def _remove_state_dir(self) -> None:
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else -1

    def is_idle(self) -> bool:
        """No established TCP connection to the server's port (from any client)."""
        return client_connections(self.port) == 0

    def wait_idle(self, deadline_s: float) -> bool:
        return poll_until(self.is_idle, deadline_s)

    def log_tail(self, lines: int = 8) -> str:
        return tail(self.log_path, lines)

    #: The servers are this host's processes: psutil sees them.
    psutil_view = True

    def extra_samples(self) -> list[dict[str, Any]]:
        return []

    def engine_samples(self) -> list[dict[str, Any]]:
        return []

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "backend": "local", "port": self.port, "pid": self.proc.pid if self.proc else None,
            "startup_s": round(self.startup_s, 3)}
        if self.state_dir is not None:
            info["state_dir"] = str(self.state_dir)
        if self.user_namespace:
            info["user_namespace"] = " ".join(root_namespace_argv())
        return info

    def stop(self) -> int | None:
        self.sampler.stop()
        if self.proc is None:
            return None
        try:
            return stop_group(self.proc)
        finally:
            if self.proc.returncode is not None:  # the group is gone: nothing writes there
                self._remove_state_dir()


class LocalBackend:
    name = "local"

    def check(self) -> None:
        """Local processes need nothing beyond the installed package."""

    def run_meta(self) -> dict[str, Any]:
        return {"resource_view": {"psutil": True, "source": "psutil on this host",
                                  "missing": []}}

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
