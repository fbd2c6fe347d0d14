"""The upstream HTTP service of the ``upstream-http`` scenario, owned like a server.

:class:`Upstream` serves :mod:`harness.apps.upstream` with uvicorn (uvloop, httptools,
one process, access log off, keep-alive 75 s so the apps' pooled connections survive
the pause between levels) on ``127.0.0.1`` on a free port, as a process group of its
own pinned to its CPU set (:mod:`harness.procs`), ready when ``GET /health`` answers
(polled, no fixed sleep); :meth:`Upstream.stop` stops the group. Its ``GET /wait``
waits ``latency_ms`` and answers fixed bytes (:data:`harness.apps.work.UPSTREAM_BODY`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from subprocess import Popen
from typing import Any, Self

from harness import procs
from harness.servers import BACKLOG

APP = "harness.apps.upstream:app"
KEEP_ALIVE_S = 75
START_ATTEMPTS = 3


class Upstream:
    """The running upstream service: :meth:`start`, :attr:`url`, :meth:`stop`."""

    def __init__(self, *, cpus: list[int], log_path: Path) -> None:
        self.cpus = cpus
        self.log_path = log_path
        self.proc: Popen[bytes] | None = None
        self.port = 0
        self.startup_s = float("nan")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1",
                "--port", str(self.port), "--backlog", str(BACKLOG), "--no-access-log",
                "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
                "--timeout-keep-alive", str(KEEP_ALIVE_S)]

    def start(self) -> Self:
        """Start and wait until ready.

        Raises:
            harness.procs.ProcessError: it exited or was not ready in time (log tail).
        """
        last: procs.ProcessError | None = None
        for _ in range(START_ATTEMPTS):
            self.port = procs.free_port()
            proc = procs.spawn(self.argv(), cpus=self.cpus, log_path=self.log_path)
            try:
                self.startup_s = procs.wait_ready(proc, self.port, self.log_path)
                self.proc = proc
                return self
            except BaseException as exc:
                procs.stop_group(proc)
                if not isinstance(exc, procs.ProcessError):
                    raise
                last = exc
                if "address already in use" not in exc.log_tail.lower():
                    break
        assert last is not None
        raise last

    def info(self) -> dict[str, Any]:
        return {"url": self.url, "pid": self.proc.pid if self.proc else None,
                "cpus": self.cpus, "argv": self.argv(), "startup_s": round(self.startup_s, 3)}

    def stop(self) -> None:
        """Stop the service's group; idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            procs.stop_group(proc, grace_s=5.0)
