"""The server-config registry: a plain dict from a name to how to serve an app.

Each :class:`ServerConfig` is a description (cheap, no side effects); :meth:`argv`
renders the command line for a worker count and a port. Fairness settings that
differ between servers' defaults are pinned here, identically for all:

* listen backlog 2048 (hypercorn defaults to 100, granian to 1024, the rest 2048);
* access logs off (each server's default, stated explicitly where it has a flag);
* gunicorn's control socket off (gunicorn >= 24 opens one per master by default);
* granian's ``--interface`` always explicit;
* thread pools sized explicitly and recorded (``threads``), as is gevent's
  ``worker_connections``;
* no config file read from the working directory: gunicorn reads ``./gunicorn.conf.py``
  unless given ``--config``, so :meth:`ServerConfig.argv` names an (empty) file of the
  harness's when given one (the local backend does; a container's working directory
  holds only ``harness/apps/``). uvicorn, hypercorn and granian read no config file unasked.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from harness.errors import UserError
from harness.scenarios import Protocol, _suggest

Interface = Literal["wsgi", "asgi"]

BACKLOG = 2048
#: gunicorn's worker timeout (s). Long enough for any bounded request of our
#: scenarios; a worker killed by it shows up as a failed request, never hidden.
GUNICORN_TIMEOUT_S = 120
GTHREAD_THREADS = 32
GRANIAN_WSGI_THREADS = 32
GEVENT_WORKER_CONNECTIONS = 1000

#: The name of the empty gunicorn config the local backend passes with ``--config``
#: (harness.procs.empty_config); a ``.py`` name, or gunicorn warns about it.
GUNICORN_CONFIG = "gunicorn.conf.py"

WSGI_APP = "harness.apps.wsgi:app"
ASGI_APP = "harness.apps.asgi:app"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """A named way to serve an app.

    ``template`` is an argv list with ``{app}``, ``{host}``, ``{port}``,
    ``{workers}``, ``{backlog}``, ``{threads}`` and ``{worker_connections}``
    placeholders, rendered by :meth:`argv`; ``{python}`` is the interpreter.
    """

    name: str
    interface: Interface
    protocols: frozenset[Protocol]
    template: tuple[str, ...]
    threads: int | None = None
    worker_connections: int | None = None
    notes: str = ""

    @property
    def app(self) -> str:
        return WSGI_APP if self.interface == "wsgi" else ASGI_APP

    @property
    def reads_config_file(self) -> bool:
        """Does this server read a config file from its working directory unless told
        which one (gunicorn: ``./gunicorn.conf.py``)?"""
        return "gunicorn" in self.template

    def argv(self, *, port: int, workers: int, host: str = "127.0.0.1",
             python: str = sys.executable, config_file: str | None = None,
             app: str | None = None) -> list[str]:
        """The command line serving ``app`` (an import string ``module:attr`` of this
        config's interface; default :attr:`app`, the raw callable) on ``host:port`` with
        ``workers`` processes.

        ``config_file``: for a server that :attr:`reads_config_file`, ``--config`` with
        this file is appended, so no other config is read.
        """
        if host != "127.0.0.1":
            raise ValueError("servers bind 127.0.0.1 only")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        fields = {
            "python": python, "app": app or self.app, "host": host, "port": str(port),
            "workers": str(workers), "backlog": str(BACKLOG),
            "threads": str(self.threads or 1),
            "worker_connections": str(self.worker_connections or 0),
            "timeout": str(GUNICORN_TIMEOUT_S),
        }
        argv = [part.format(**fields) for part in self.template]
        if config_file is not None and self.reads_config_file:
            argv += ["--config", config_file]
        return argv

    def concurrency_capacity(self, workers: int) -> float:
        """Requests this config can have in progress at once: workers x threads.

        ``inf`` for event-loop servers and gevent, whose concurrency is bounded by
        connections, not by a pool (gevent: ``workers * worker_connections``).
        """
        if self.interface == "asgi":
            return float("inf")
        if self.worker_connections:
            return float(workers * self.worker_connections)
        return float(workers * (self.threads or 1))


_GUNICORN = ("{python}", "-m", "gunicorn", "{app}", "--bind", "{host}:{port}",
             "--workers", "{workers}", "--backlog", "{backlog}", "--timeout", "{timeout}",
             "--graceful-timeout", "5", "--no-control-socket", "--log-level", "warning")
_HTTP: frozenset[Protocol] = frozenset({"http"})
_HTTP_SSE: frozenset[Protocol] = frozenset({"http", "sse"})
_ALL: frozenset[Protocol] = frozenset({"http", "sse", "websocket"})

SERVERS: Mapping[str, ServerConfig] = MappingProxyType({
    c.name: c for c in (
        ServerConfig("gunicorn-sync", "wsgi", _HTTP_SSE, (*_GUNICORN, "--worker-class", "sync"),
                     notes="one request per worker process"),
        ServerConfig("gunicorn-gthread", "wsgi", _HTTP_SSE,
                     (*_GUNICORN, "--worker-class", "gthread", "--threads", "{threads}"),
                     threads=GTHREAD_THREADS, notes="thread pool per worker"),
        ServerConfig("gunicorn-gevent", "wsgi", _HTTP_SSE,
                     (*_GUNICORN, "--worker-class", "gevent",
                      "--worker-connections", "{worker_connections}"),
                     worker_connections=GEVENT_WORKER_CONNECTIONS,
                     notes="greenlets; time.sleep is monkey-patched to yield"),
        ServerConfig("granian-wsgi", "wsgi", _HTTP_SSE,
                     ("{python}", "-m", "granian", "--interface", "wsgi", "--host", "{host}",
                      "--port", "{port}", "--workers", "{workers}", "--backlog", "{backlog}",
                      "--blocking-threads", "{threads}", "--no-access-log",
                      "--log-level", "warning", "{app}"),
                     threads=GRANIAN_WSGI_THREADS, notes="Rust HTTP, blocking thread pool"),
        ServerConfig("gunicorn-asgi", "asgi", _ALL,
                     (*_GUNICORN, "--worker-class", "asgi"),
                     notes="gunicorn's native ASGI worker (gunicorn >= 24)"),
        ServerConfig("gunicorn-uvicorn", "asgi", _ALL,
                     (*_GUNICORN, "--worker-class", "uvicorn_worker.UvicornWorker"),
                     notes="uvicorn-worker under the gunicorn arbiter"),
        ServerConfig("uvicorn", "asgi", _ALL,
                     ("{python}", "-m", "uvicorn", "{app}", "--host", "{host}", "--port", "{port}",
                      "--workers", "{workers}", "--backlog", "{backlog}", "--no-access-log",
                      "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"),
                     notes="uvloop + httptools"),
        ServerConfig("hypercorn", "asgi", _ALL,
                     ("{python}", "-m", "hypercorn", "{app}", "--bind", "{host}:{port}",
                      "--workers", "{workers}", "--backlog", "{backlog}",
                      "--worker-class", "uvloop", "--log-level", "warning"),
                     notes="uvloop worker class"),
        ServerConfig("granian-asgi", "asgi", _ALL,
                     ("{python}", "-m", "granian", "--interface", "asgi", "--host", "{host}",
                      "--port", "{port}", "--workers", "{workers}", "--backlog", "{backlog}",
                      "--no-access-log", "--loop", "uvloop", "--log-level", "warning", "{app}"),
                     notes="Rust HTTP, uvloop"),
    )
})


def select(names: list[str] | None, protocol: Protocol) -> list[ServerConfig]:
    """The configs to run: ``names`` in the given order, or every config serving ``protocol``.

    WebSocket is the exception: every config is selected for it, so WSGI servers
    are probed and recorded as ``unsupported`` rather than silently skipped.

    Raises:
        UserError: an unknown name (with the closest names), a repeated name, or a
            named config that cannot serve ``protocol``.
    """
    if not names:
        if protocol == "websocket":
            return list(SERVERS.values())
        return [c for c in SERVERS.values() if protocol in c.protocols]
    chosen: list[ServerConfig] = []
    for name in names:
        if name not in SERVERS:
            raise UserError(f"unknown server {name!r}" + _suggest(name, SERVERS)
                            + f" (known: {', '.join(SERVERS)})")
        config = SERVERS[name]
        if config in chosen:
            raise UserError(f"server {name!r} is named twice in --servers")
        if protocol not in config.protocols and protocol != "websocket":
            raise UserError(f"server {name!r} ({config.interface}) cannot serve {protocol}: "
                            f"it serves {', '.join(sorted(config.protocols))}")
        chosen.append(config)
    return chosen
