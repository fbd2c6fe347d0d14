"""The server-config registry: a plain dict from a name to how to serve an app.

Each :class:`ServerConfig` is a description (cheap, no side effects); :meth:`argv`
renders the command line for a worker count and a port. Fairness settings that
differ between servers' defaults are pinned here, identically for all:

* listen backlog 2048 (hypercorn defaults to 100, granian to 1024, waitress to 1024,
  uWSGI to 100, daphne's Twisted endpoint to 50, mod_wsgi-express's Apache to 500 and
  its daemons' sockets to 100, the rest 2048): every config has a knob for it;
* access logs off (each server's default, stated explicitly where it has a flag:
  uWSGI logs every request unless ``--disable-logging``, daphne unless ``-v 0``);
* gunicorn's control socket off (gunicorn >= 24 opens one per master by default);
* granian's ``--interface`` always explicit;
* thread pools sized explicitly and recorded (``threads``), as is gevent's
  ``worker_connections``;
* no config file read from the working directory: gunicorn reads ``./gunicorn.conf.py``
  unless given ``--config``, so :meth:`ServerConfig.argv` names an (empty) file of the
  harness's when given one (the local backend does; a container's working directory
  holds only ``harness/``). uvicorn, hypercorn, granian, waitress, daphne and uWSGI read no
  config file unasked; mod_wsgi-express writes its own Apache config into a server root
  the deployment owns (``{state_dir}``);
* connection limits that would bind at our levels raised to :data:`CONNECTION_LIMIT`
  (waitress stops accepting at 100 connections by default).

:data:`DEFAULT_SERVERS` is what ``bench run`` runs when ``--servers`` is not given; the
other configs (waitress, uwsgi, daphne, mod-wsgi) are run when named. A config that
cannot run here (its package or program missing, a worker count it cannot serve, a
backend it cannot run under) says why through :meth:`ServerConfig.unsupported`: its
trials are recorded ``unsupported`` with that reason, and ``bench list servers`` shows it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Mapping
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
#: Thread pools of the other threaded WSGI servers: the same 32 as gthread and granian.
WAITRESS_THREADS = 32
UWSGI_THREADS = 32
MOD_WSGI_THREADS = 32
#: A connection bound no level of ours reaches (waitress's default, 100, would: users
#: past it wait for a keep-alive connection to close), the same as gevent's.
CONNECTION_LIMIT = 1000

#: The name of the empty gunicorn config the local backend passes with ``--config``
#: (harness.procs.empty_config); a ``.py`` name, or gunicorn warns about it.
GUNICORN_CONFIG = "gunicorn.conf.py"

WSGI_APP = "harness.apps.wsgi:app"
ASGI_APP = "harness.apps.asgi:app"
#: How ``bench list servers`` and recorded argvs show the server root of a config
#: that needs one (``{state_dir}``), before a deployment made it.
STATE_DIR_PLACEHOLDER = "<server-root>"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """A named way to serve an app.

    ``template`` is an argv list with ``{app}`` (``{app_module}``, ``{app_object}``:
    its two halves), ``{host}``, ``{port}``, ``{workers}``, ``{backlog}``,
    ``{threads}``, ``{worker_connections}``, ``{connection_limit}``, ``{max_clients}``
    and ``{state_dir}`` placeholders, rendered by :meth:`argv`; ``{python}`` is the
    interpreter.

    What it needs to run, checked by :meth:`unsupported`: the modules in ``requires``
    (``importlib.util.find_spec``, nothing imported; ``install`` says how to get them),
    ``probe`` (a further check giving a reason or ``""``), at most ``max_workers``
    processes, and a backend other than docker when ``docker_unsupported`` gives why.
    ``refuses_root``: the server will not serve as root (Apache); the local backend
    then runs it in a user namespace of its own (:mod:`harness.backends.local`).
    """

    name: str
    interface: Interface
    protocols: frozenset[Protocol]
    template: tuple[str, ...]
    threads: int | None = None
    worker_connections: int | None = None
    connection_limit: int | None = None
    notes: str = ""
    requires: tuple[str, ...] = ()
    install: str = "pip install -e ."
    probe: Callable[[], str] | None = None
    max_workers: int | None = None
    docker_unsupported: str = ""
    refuses_root: bool = False

    @property
    def app(self) -> str:
        return WSGI_APP if self.interface == "wsgi" else ASGI_APP

    @property
    def reads_config_file(self) -> bool:
        """Does this server read a config file from its working directory unless told
        which one (gunicorn: ``./gunicorn.conf.py``)?"""
        return "gunicorn" in self.template

    @property
    def needs_state_dir(self) -> bool:
        """Does the command line name a folder of the deployment's (``{state_dir}``)?"""
        return any("{state_dir}" in part for part in self.template)

    def unsupported(self, *, backend: str = "local", workers: int = 1) -> str:
        """Why this config cannot run with ``workers`` processes under ``backend``, or ``""``.

        Cheap (no import, no process), except a config's ``probe``, which caches what
        it found. Under docker only the image matters (harness.dockerimage installs the
        server packages into it); locally the modules in ``requires`` must be found.
        """
        if self.max_workers is not None and workers > self.max_workers:
            return (f"{self.name} serves from one process (no worker processes): "
                    f"{workers} workers asked; run it with --workers 1")
        if backend == "docker":
            return self.docker_unsupported
        for module in self.requires:
            if not _importable(module):
                return f"{module} not installed: {self.install}"
        return self.probe() if self.probe is not None else ""

    def argv(self, *, port: int, workers: int, host: str = "127.0.0.1",
             python: str = sys.executable, config_file: str | None = None,
             state_dir: str = STATE_DIR_PLACEHOLDER, app: str | None = None) -> list[str]:
        """The command line serving ``app`` (an import string ``module:attr`` of this
        config's interface; default :attr:`app`, the raw callable) on ``host:port`` with
        ``workers`` processes.

        ``config_file``: for a server that :attr:`reads_config_file`, ``--config`` with
        this file is appended, so no other config is read. ``state_dir``: the folder a
        config that :attr:`needs_state_dir` keeps its files in (the local backend makes
        one per deployment and removes it on stop).
        """
        if host != "127.0.0.1":
            raise ValueError("servers bind 127.0.0.1 only")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        threads = self.threads or 1
        target = app or self.app
        module, _, obj = target.partition(":")
        fields = {
            "python": python, "app": target, "app_module": module, "app_object": obj,
            "host": host, "port": str(port),
            "workers": str(workers), "backlog": str(BACKLOG),
            "threads": str(threads),
            "worker_connections": str(self.worker_connections or 0),
            "connection_limit": str(self.connection_limit or 0),
            "max_clients": str(mod_wsgi_max_clients(workers, threads)),
            "state_dir": state_dir,
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


def _importable(module: str) -> bool:
    """Can ``module`` (a top-level name) be imported here? Found, not imported."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def mod_wsgi_max_clients(processes: int, threads: int) -> int:
    """Apache's client connections for mod_wsgi-express: ``10 + max(10, 1.5 x processes x
    threads)``, the figure mod_wsgi-express itself derives when ``--max-clients`` is not
    given (mod_wsgi/express/server.py), passed explicitly so it is on record."""
    return 10 + max(10, int(1.5 * processes * threads))


#: What a user namespace maps this (root) user to, for a server that refuses root.
NAMESPACE_UID = 65534


def apache_binary() -> str | None:
    """The Apache httpd that mod_wsgi-express would run (Debian: /usr/sbin/apache2)."""
    path = os.pathsep.join(["/usr/sbin", "/usr/bin", os.environ.get("PATH", "")])
    return shutil.which("apache2", path=path) or shutil.which("httpd", path=path)


def root_namespace_argv() -> list[str]:
    """The prefix running a command in a user namespace of its own where this (root)
    user is uid :data:`NAMESPACE_UID`: ``unshare(1)`` execs the command, same pid. File
    access stays root's (the kernel checks the mapped uid, root outside), but the command
    sees a user that is not root: Apache then serves without switching to another
    user, which could not read a Python installed under root's 0700 home."""
    return ["unshare", "--user", f"--map-user={NAMESPACE_UID}",
            f"--map-group={NAMESPACE_UID}"]


@functools.cache
def _user_namespace_problem() -> str:
    if shutil.which("unshare") is None:
        return "unshare not found (util-linux)"
    from harness import procs

    try:
        done = procs.run([*root_namespace_argv(), "true"], timeout_s=10)
    except procs.CommandError as exc:
        return str(exc)
    if done.returncode != 0:
        return f"unshare --user failed: {procs.tail_text(done.stderr, 1) or done.returncode}"
    return ""


MOD_WSGI_INSTALL = "apt-get install apache2-dev apache2-bin, then pip install mod_wsgi"


def _mod_wsgi_probe() -> str:
    """mod_wsgi-express needs Apache httpd; as root, also a user namespace (Apache will
    not serve as root, see :func:`root_namespace_argv`)."""
    if apache_binary() is None:
        return f"Apache httpd not found (mod_wsgi-express runs it): {MOD_WSGI_INSTALL}"
    if os.geteuid() == 0:
        problem = _user_namespace_problem()
        if problem:
            return ("mod_wsgi as root needs a user namespace (Apache will not serve as "
                    f"root): {problem}")
    return ""


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
        ServerConfig("waitress", "wsgi", _HTTP_SSE,
                     ("{python}", "-m", "waitress", "--host", "{host}", "--port", "{port}",
                      "--threads", "{threads}", "--backlog", "{backlog}",
                      "--connection-limit", "{connection_limit}", "{app}"),
                     threads=WAITRESS_THREADS, connection_limit=CONNECTION_LIMIT,
                     requires=("waitress",), install="pip install waitress", max_workers=1,
                     notes="one process: asyncore I/O loop, thread pool for the app; no "
                           "access log (waitress has none)"),
        ServerConfig("uwsgi", "wsgi", _HTTP_SSE,
                     ("{python}", "-c", "import sys, pyuwsgi; sys.exit(pyuwsgi.run())",
                      "--http-socket", "{host}:{port}", "--master", "--workers", "{workers}",
                      "--threads", "{threads}", "--listen", "{backlog}", "--module", "{app}",
                      "--need-app", "--die-on-term", "--disable-logging", "--strict"),
                     threads=UWSGI_THREADS, requires=("pyuwsgi",),
                     install="pip install pyuwsgi",
                     notes="uWSGI (pyuwsgi: its binary wheel) with a master, preforking + "
                           "threads; --http-socket closes each connection after its "
                           "response (no keep-alive); the app is loaded before the fork"),
        ServerConfig("daphne", "asgi", _ALL,
                     ("{python}", "-m", "daphne",
                      "-e", "tcp:port={port}:interface={host}:backlog={backlog}",
                      "-v", "0", "{app}"),
                     requires=("daphne",), install="pip install daphne", max_workers=1,
                     notes="Twisted on the asyncio reactor, one process; backlog through "
                           "the Twisted endpoint string; -v 0: no access log"),
        ServerConfig("mod-wsgi", "wsgi", _HTTP_SSE,
                     ("{python}", "-m", "mod_wsgi.express.cli", "start-server",
                      "--application-type", "module", "--entry-point", "{app_module}",
                      "--callable-object", "{app_object}", "--host", "{host}",
                      "--port", "{port}", "--processes", "{workers}", "--threads", "{threads}",
                      "--server-backlog", "{backlog}", "--daemon-backlog", "{backlog}",
                      "--max-clients", "{max_clients}", "--server-mpm", "event",
                      "--server-root", "{state_dir}", "--log-to-terminal",
                      "--log-level", "warn", "--locale", "C.UTF-8"),
                     threads=MOD_WSGI_THREADS, requires=("mod_wsgi",), install=MOD_WSGI_INSTALL,
                     probe=_mod_wsgi_probe, refuses_root=True,
                     docker_unsupported="the docker image has no Apache httpd, which "
                                        "mod_wsgi-express runs; use --backend local",
                     notes="Apache httpd (event MPM) in front of mod_wsgi daemon processes; "
                           "access log off (mod_wsgi-express's default)"),
    )
})

#: What ``bench run`` runs when ``--servers`` is not given (the others when named).
DEFAULT_SERVERS: tuple[str, ...] = (
    "gunicorn-sync", "gunicorn-gthread", "gunicorn-gevent", "granian-wsgi", "gunicorn-asgi",
    "gunicorn-uvicorn", "uvicorn", "hypercorn", "granian-asgi")


def select(names: list[str] | None, protocol: Protocol) -> list[ServerConfig]:
    """The configs to run: ``names`` in the given order, or every config of
    :data:`DEFAULT_SERVERS` serving ``protocol``.

    WebSocket is the exception: every default config is selected for it, so WSGI
    servers are probed and recorded as ``unsupported`` rather than silently skipped.

    Raises:
        UserError: an unknown name (with the closest names), a repeated name, or a
            named config that cannot serve ``protocol``.
    """
    if not names:
        defaults = [SERVERS[name] for name in DEFAULT_SERVERS]
        if protocol == "websocket":
            return defaults
        return [c for c in defaults if protocol in c.protocols]
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
