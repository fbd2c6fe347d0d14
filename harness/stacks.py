"""The app axis: which code a server config serves, and the stacks (server config, app)
a run measures.

An :class:`AppSpec` describes an app as data (cheap, nothing imported): its name, the
framework and the distribution whose version is recorded, the import string it is
served from per interface (``wsgi``/``asgi``), the request paths (workloads) it
serves, why it cannot serve the others, how many requests one worker process of it can
run at once when the framework bounds that, and whether its answers are checked against
the raw reference (:func:`harness.apps.work.expected`). The harness never imports an
app: only the server processes do.

:data:`APPS` holds the raw callables (the reference and the floor) and one flavour per
framework (:mod:`harness.apps.frameworks`). A :class:`Stack` is one (server config, app)
pair of matching interface: WSGI apps under WSGI servers, ASGI apps under ASGI servers,
Django (which has both) under both. :func:`pairs` builds a run's matrix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import MappingProxyType

from harness import PROJECT_ROOT
from harness.errors import UserError
from harness.scenarios import OwnApp, _suggest
from harness.servers import ASGI_APP, WSGI_APP, Interface, ServerConfig

#: The raw app's name: its stacks keep the server's own name (and trial ids).
RAW = "raw"
#: The request paths the framework flavours serve (one per shipped scenario).
FLAVOUR_PATHS = frozenset({"/io", "/cpu", "/sse", "/ws"})
_NO_WS_WSGI = ("{framework} is a WSGI framework: WSGI cannot hand a connection over to "
               "a WebSocket")
_FRAMEWORKS = "harness.apps.frameworks."


@dataclass(frozen=True, slots=True, eq=False)  # compared and hashed by identity
class AppSpec:
    """An app under test, as data.

    ``targets``: interface -> import string (``module:attr``) the server loads.
    ``paths``: the request paths it serves; None for any path (the raw reference, whose
    own routing answers; WebSocket under a WSGI server is then probed and found
    unsupported from the handshake's answer). ``lacks``: path -> why it is not served
    (the reason of its ``unsupported`` trials). ``reference``: answers are verified against
    :func:`harness.apps.work.expected` (an own app's: against its expectation, else the
    first stack's answer). ``env``: extra environment of its server processes (an own
    app's ``PYTHONPATH`` with its folder first, and its ``env``). ``ready_path``: the
    request that tells a server is up: ``/health`` answering 200 for the shipped apps;
    an own app's own request, any HTTP answer counting (``ready_any``).
    """

    name: str
    framework: str
    distribution: str
    targets: Mapping[str, str]
    paths: frozenset[str] | None = None
    lacks: Mapping[str, str] = field(default_factory=dict)
    reference: bool = True
    notes: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    ready_path: str = "/health"
    ready_any: bool = False

    @property
    def interfaces(self) -> tuple[Interface, ...]:
        """The interfaces it can be served through, WSGI first."""
        return tuple(i for i in ("wsgi", "asgi") if i in self.targets)  # type: ignore[misc]

    @property
    def is_raw(self) -> bool:
        return self.name == RAW

    def version(self) -> str:
        """The installed version of :attr:`distribution` ("" for none, or not installed)."""
        if not self.distribution:
            return ""
        try:
            return metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            return ""

    def unsupported(self, path: str) -> str:
        """Why this app cannot serve requests to ``path`` ("" when it can)."""
        if path in self.lacks:
            return self.lacks[path]
        if self.paths is not None and path not in self.paths:
            return (f"{self.name} has no {path} endpoint (it serves "
                    f"{', '.join(sorted(self.paths))})")
        return ""


def _flavour(name: str, framework: str, distribution: str, targets: Mapping[str, str], *,
             lacks: Mapping[str, str] | None = None, notes: str = "") -> AppSpec:
    targets = {i: _FRAMEWORKS + t for i, t in targets.items()}
    lacks = dict(lacks or {})
    if "asgi" not in targets and "/ws" not in lacks:
        lacks["/ws"] = _NO_WS_WSGI.format(framework=framework)
    return AppSpec(name, framework, distribution, MappingProxyType(targets), FLAVOUR_PATHS,
                   MappingProxyType(lacks), notes=notes)


_DJANGO_NO_WS = ("Django has no WebSocket without Channels: get_asgi_application() serves "
                 "HTTP only")

APPS: Mapping[str, AppSpec] = MappingProxyType({a.name: a for a in (
    AppSpec(RAW, "raw", "", MappingProxyType({"wsgi": WSGI_APP, "asgi": ASGI_APP}),
            notes="plain WSGI and ASGI callables: the reference bytes and the floor"),
    _flavour("flask", "Flask", "flask", {"wsgi": "flask_app:app"},
             notes="router, request, Response; SSE: a streamed generator"),
    _flavour("django", "Django", "django",
             {"wsgi": "django_app.wsgi:application", "asgi": "django_app.asgi:application"},
             lacks={"/ws": _DJANGO_NO_WS},
             notes="WSGI: sync views (get_wsgi_application); ASGI: async views "
                   "(get_asgi_application); no middleware. Under ASGI each request also "
                   "hands Django's request_started/request_finished receivers "
                   "(close_old_connections) and response.close to a thread of its own "
                   "(asgiref ThreadSensitiveContext): a few ms per request off the CPU, so "
                   "an I/O-bound level sits below the wait's ceiling"),
    _flavour("django-sync-asgi", "Django", "django",
             {"asgi": "django_app.asgi_sync:application"},
             lacks={"/ws": _DJANGO_NO_WS},
             notes="sync views under get_asgi_application: each request's view runs in a "
                   "thread (asgiref); sync SSE iterators are buffered whole"),
    _flavour("fastapi", "FastAPI", "fastapi", {"asgi": "fastapi_app:app"},
             notes="path operations returning Response/StreamingResponse; WebSocket"),
    _flavour("starlette", "Starlette", "starlette", {"asgi": "starlette_app:app"},
             notes="Route, Response, StreamingResponse, WebSocketRoute"),
    _flavour("litestar", "Litestar", "litestar", {"asgi": "litestar_app:app"},
             notes="route handlers returning Response/Stream; WebSocket"),
    _flavour("quart", "Quart", "quart", {"asgi": "quart_app:app"},
             notes="Flask's API on asyncio; async generator SSE; websocket"),
)})


@dataclass(frozen=True, slots=True)
class Stack:
    """One (server config, app) pair of matching interface: the unit a user deploys."""

    server: ServerConfig
    app: AppSpec

    @property
    def name(self) -> str:
        """The server's name for the raw app (ids of raw runs unchanged), else
        ``{server}+{app}``: the key of its trials, logs and report rows."""
        return stack_name(self.server.name, self.app.name)

    @property
    def target(self) -> str:
        """The import string the server loads."""
        return self.app.targets[self.server.interface]

    def launch(self) -> dict[str, object]:
        """What a backend needs besides the server config to serve this stack's app: the
        import string, extra environment, the readiness request (harness.backends)."""
        return {"app": self.target, "env": dict(self.app.env),
                "ready_path": self.app.ready_path, "ready_any": self.app.ready_any}



def stack_name(server: str, app: str) -> str:
    """A stack's name: ``server`` for the raw app (or none recorded), else ``{server}+{app}``."""
    return server if app in (RAW, "") else f"{server}+{app}"


def select_apps(text: str | None) -> list[AppSpec]:
    """The apps ``--apps`` names, in the given order: ``None`` -> raw, ``all`` -> every app.

    Raises:
        UserError: an unknown name (with the closest names), a name given twice, nothing named.
    """
    if text is None:
        return [APPS[RAW]]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(APPS.values())
    if not names:
        raise UserError(f"--apps {text!r}: name at least one app (see `bench list apps`)")
    chosen: list[AppSpec] = []
    for name in names:
        if name not in APPS:
            raise UserError(f"unknown app {name!r}" + _suggest(name, APPS)
                            + f" (known: {', '.join(APPS)}, or all)")
        if APPS[name] in chosen:
            raise UserError(f"app {name!r} is named twice in --apps")
        chosen.append(APPS[name])
    return chosen


def pairs(servers: Sequence[ServerConfig], apps: Sequence[AppSpec], *,
          servers_named: bool = False, apps_named: bool = False) -> list[Stack]:
    """The run's stacks: every (server, app) of matching interface, server by server
    (in ``servers`` order), apps in ``apps`` order within a server. With only the raw app
    this is one stack per server, in order, named as the server.

    Raises:
        UserError: a named app that no server here can serve (``apps_named``), a named
            server that serves none of the apps (``servers_named``), or no stack at all.
    """
    stacks = [Stack(s, a) for s in servers for a in apps if s.interface in a.targets]
    if apps_named:
        for a in apps:
            if not any(st.app == a for st in stacks):
                raise UserError(f"app {a.name} ({'/'.join(a.interfaces)}) has no server to run "
                                f"under: the servers here are "
                                f"{', '.join(f'{s.name} ({s.interface})' for s in servers)}")
    if servers_named:
        for s in servers:
            if not any(st.server == s for st in stacks):
                raise UserError(f"server {s.name} ({s.interface}) serves none of the apps: "
                                + ", ".join(f"{a.name} ({'/'.join(a.interfaces)})" for a in apps))
    if not stacks:
        raise UserError("no (server, app) pair of matching interface to run")
    return stacks


def workload_paths(app: AppSpec, scenario_paths: Mapping[str, str]) -> list[str]:
    """The scenarios (of ``scenario_paths``: name -> request path) ``app`` can serve."""
    return [name for name, path in scenario_paths.items() if not app.unsupported(path)]


def own_app_spec(app: OwnApp, ready_path: str) -> AppSpec:
    """The :class:`AppSpec` of a user's app (``bench run --app``, ``[app]``): named by
    ``app.name`` or its top-level module (``-own`` added if that is a shipped app's name),
    its version that of the installed distribution providing that module ("" for an app
    that is only a folder), served from ``app.app_dir`` (first on ``PYTHONPATH``) with
    ``app.env``, ready once ``ready_path`` answers anything, verified without the raw
    reference. Nothing of it is imported here."""
    top = app.target.partition(":")[0].split(".")[0]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", app.name or top).strip("-.") or "app"
    if name in APPS:
        name += "-own"
    distribution = next(iter(metadata.packages_distributions().get(top, [])), "")
    env = {**app.env,
           "PYTHONPATH": os.pathsep.join([str(app.app_dir), str(PROJECT_ROOT),
                                         *([app.env["PYTHONPATH"]] if app.env.get("PYTHONPATH")
                                           else [])])}
    return AppSpec(name, f"own ({app.target})", distribution,
                   MappingProxyType({app.interface: app.target}), reference=False,
                   notes=f"your app, from {app.app_dir}", env=MappingProxyType(env),
                   ready_path=ready_path, ready_any=True)
