"""A user's app in a scenario (``[app]``, ``[expect]``, ``[request].headers`` and
``body_file``) or on the command line (``bench run --app``): parsed and checked here, for
:func:`harness.scenarios.parse` and :func:`own_app`. Nothing of the app is imported."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import UserError

if TYPE_CHECKING:
    from harness.scenarios import Scenario


@dataclass(frozen=True, slots=True)
class OwnApp:
    """A user's app to benchmark unmodified (``[app]``, or ``bench run --app``): the
    import string its servers load, its interface, the folder put first on the server
    processes' ``PYTHONPATH`` and extra environment for them. The harness never imports
    it; only the server processes do."""

    target: str
    interface: Literal["wsgi", "asgi"]
    app_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    name: str = ""


@dataclass(frozen=True, slots=True)
class Expect:
    """What an own app must answer (``[expect]``, ``--expect-*``); None: not checked.
    With no expectation at all, every stack must answer as the first one did."""

    status: int | None = None
    body: bytes | None = None
    contains: bytes | None = None

    @property
    def given(self) -> bool:
        return (self.status, self.body, self.contains) != (None, None, None)


_INTERFACES = ("wsgi", "asgi")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _strings(table: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = table.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise TypeError(f"[{where}].{key} must be a table of strings")
    return dict(value)


def _read(base: Path, name: Any, where: str) -> bytes:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{where} must be a file name")
    file = base / name
    try:
        return file.read_bytes()
    except OSError as exc:
        raise ValueError(f"{where} {file}: cannot read ({exc.strerror})") from None


def own_app_tables(data: Mapping[str, Any], request: Mapping[str, Any],
             base: Path) -> tuple[OwnApp | None, dict[str, str], bytes, Expect]:
    """The ``[app]`` and ``[expect]`` tables and the request's headers and body; file
    names (``app_dir``, ``body_file``, ``expect.body_file``) are relative to ``base``,
    the scenario file's folder."""
    from harness.scenarios import _table

    raw_app = _table(data, "app", {"target", "interface", "app_dir", "env", "name"})
    raw_expect = _table(data, "expect", {"status", "body_file", "contains"})
    headers = _strings(request, "headers", "request")
    if not raw_app:
        if raw_expect or headers or "body_file" in request:
            raise ValueError("[expect], [request].headers and body_file are for a scenario "
                             "with an [app] table (an app of your own)")
        return None, {}, b"", Expect()
    target = raw_app.get("target")
    if (not isinstance(target, str) or target.count(":") != 1
            or not all(target.partition(":")[::2])):
        raise ValueError(f"[app].target must be 'package.module:attribute', got {target!r}")
    interface = raw_app.get("interface")
    if interface not in _INTERFACES:
        raise ValueError(f"[app].interface must be wsgi or asgi, got {interface!r}")
    if data.get("protocol", "http") != "http":
        raise ValueError("an [app] scenario is request/response HTTP (protocol = \"http\")")
    if str(request.get("method", "GET")) not in _METHODS:
        raise ValueError(f"[request].method must be one of {', '.join(_METHODS)}")
    app_dir = raw_app.get("app_dir", ".")
    if not isinstance(app_dir, str):
        raise TypeError("[app].app_dir must be a folder name")
    folder = (base / app_dir).resolve()
    if not folder.is_dir():
        raise ValueError(f"[app].app_dir {folder}: no such folder")
    name = raw_app.get("name", "")
    if not isinstance(name, str):
        raise TypeError("[app].name must be a string")
    app = OwnApp(target, interface, folder, MappingProxyType(_strings(raw_app, "env", "app")),
                 name)
    body = _read(base, request["body_file"], "[request].body_file") \
        if "body_file" in request else b""
    status = raw_expect.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)
                               or not 100 <= status <= 599):
        raise ValueError(f"[expect].status must be an HTTP status (100-599), got {status!r}")
    if "body_file" in raw_expect and "contains" in raw_expect:
        raise ValueError("[expect]: body_file and contains exclude each other")
    contains = raw_expect.get("contains")
    if contains is not None and (not isinstance(contains, str) or not contains):
        raise TypeError("[expect].contains must be a non-empty string")
    expect = Expect(status=status,
                    body=_read(base, raw_expect["body_file"], "[expect].body_file")
                    if "body_file" in raw_expect else None,
                    contains=contains.encode() if contains is not None else None)
    return app, headers, body, expect


#: The name of the scenario ``bench run --app`` makes (its run ids say it).
OWN_APP_SCENARIO = "own-app"
#: Load, SLO and validity of ``bench run --app`` (a scenario file with ``[app]`` states its
#: own): three closed-loop levels, steady-state warm-up, p99 <= 250 ms.
OWN_APP_DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "load": {"users": [10, 50, 100], "max_warmup_s": 12, "duration_s": 5, "repeats": 1},
    "slo": {"p99_ms": 250, "max_error_rate": 0.01},
    "validity": {"max_error_rate": 0.01, "max_generator_cpu_percent": 90},
})


def own_app(*, target: str, interface: str | None, path: str | None, method: str = "GET",
            headers: Mapping[str, str] | None = None, body_file: str | None = None,
            app_dir: str | None = None, env: Mapping[str, str] | None = None,
            expect_status: int | None = None, expect_body_file: str | None = None,
            expect_contains: str | None = None, base: Path | None = None) -> Scenario:
    """The scenario ``bench run --app TARGET ...`` describes: the same tables a scenario
    file with ``[app]`` holds, built from the options (file names relative to ``base``,
    default the current folder) with :data:`OWN_APP_DEFAULTS` for load and SLO, and
    validated by the same code.

    Raises:
        UserError: a missing ``--interface`` or ``--path``, or any value the ``[app]``,
            ``[request]`` or ``[expect]`` tables would refuse, named by its option.
    """
    if interface is None:
        raise UserError("--app needs --interface wsgi or asgi")
    if path is None:
        raise UserError("--app needs --path, the request to benchmark (e.g. '/items?id=1')")
    app: dict[str, Any] = {"target": target, "interface": interface, "env": dict(env or {})}
    if app_dir is not None:
        app["app_dir"] = app_dir
    request: dict[str, Any] = {"method": method.upper(), "path": path,
                               "headers": dict(headers or {})}
    if body_file is not None:
        request["body_file"] = body_file
    expect: dict[str, Any] = {}
    for key, value in (("status", expect_status), ("body_file", expect_body_file),
                       ("contains", expect_contains)):
        if value is not None:
            expect[key] = value
    data = {"name": OWN_APP_SCENARIO, "protocol": "http",
            "description": f"{method.upper()} {path} on the app {target} ({interface})",
            "app": app, "request": request, "expect": expect,
            **{k: dict(v) for k, v in OWN_APP_DEFAULTS.items()}}
    from harness.scenarios import _build

    folder = base or Path.cwd()
    try:
        return _build(data, folder / f"{OWN_APP_SCENARIO}.toml")
    except UserError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        text = str(exc.args[0] if exc.args else exc)
        for table, option in (("[app].target", "--app"), ("[app].interface", "--interface"),
                              ("[app].app_dir", "--app-dir"), ("[request].path", "--path"),
                              ("[request].method", "--method"),
                              ("[request].body_file", "--body-file"),
                              ("[expect].status", "--expect-status"),
                              ("[expect].body_file", "--expect-body-file"),
                              ("[expect]: body_file and contains",
                               "--expect-body-file and --expect-contains"),
                              ("[expect].contains", "--expect-contains")):
            text = text.replace(table, option)
        raise UserError(text) from None
