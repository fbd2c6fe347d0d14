"""Scenario files: parse, validate, and apply ``--param`` overrides.

The scenarios that ship with bench are ``harness/scenarios/*.toml``, beside this module;
a project adds its own (files or folders named in its configuration, :mod:`harness.config`)
and ``--scenario PATH.toml`` takes any file.

A scenario is data: the request, its parameters with types and bounds, the load
levels, durations, the SLO and the validity thresholds. Loading is strict: unknown
keys, wrong types and out-of-range values raise :class:`~harness.errors.UserError`
with the file and what is wrong, and nothing is ever evaluated as code.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlencode

from harness.errors import UserError

Protocol = Literal["http", "sse", "websocket"]

#: What one unit of a trial's ``throughput_rps`` counts, per scenario protocol: successful
#: responses (HTTP), streams whose first event arrived (SSE), echoes received (WebSocket).
RATE_UNITS = {"http": "req/s", "sse": "streams/s", "websocket": "msg/s"}


def rate_unit(protocol: str) -> str:
    """The unit of ``throughput_rps`` for ``protocol`` (``req/s`` when unknown)."""
    return RATE_UNITS.get(protocol, "req/s")


ParamType = Literal["int", "float"]

#: The scenarios that ship with bench: the TOML files beside this module.
SCENARIOS_DIR = Path(__file__).resolve().parent

#: Most load levels one run may sweep (a scenario's ``[load].users``, ``--users``,
#: ``--arrival-rate``). A hard bound: each level is one trial per config and repeat,
#: with its own records folder; nobody reads a sweep of more.
MAX_LEVELS = 1000


def check_levels(values: tuple[float, ...], where: str) -> None:
    """Refuse a level sweep with repeated values or more than :data:`MAX_LEVELS` levels.

    Two equal levels would be two trials of the same configuration, users and repeat:
    refused rather than measured twice (see docs/errors.md).

    Raises:
        UserError: a value given twice, or too many levels.
    """
    if len(values) > MAX_LEVELS:
        raise UserError(f"{where}: {len(values)} levels; at most {MAX_LEVELS} per run")
    seen: set[float] = set()
    for v in values:
        if v in seen:
            raise UserError(f"{where}: level {_fmt(v)} is given twice; every level must differ")
        seen.add(v)


@dataclass(frozen=True, slots=True)
class Param:
    """A scenario parameter that reaches the app as a query parameter."""

    name: str
    type: ParamType
    default: float
    min: float
    max: float
    unit: str = ""
    description: str = ""

    def parse(self, raw: str) -> int | float:
        """Parse and bound-check a ``--param`` value.

        Raises:
            UserError: not of this parameter's type, or outside [min, max].
        """
        try:
            value: int | float = int(raw) if self.type == "int" else float(raw)
        except ValueError:
            raise UserError(
                f"--param {self.name}={raw}: expected {'an integer' if self.type == 'int' else 'a number'}"
            ) from None
        if not math.isfinite(value):
            raise UserError(f"--param {self.name}={raw}: expected a finite number")
        if not self.min <= value <= self.max:
            raise UserError(
                f"--param {self.name}={raw}: out of range [{_fmt(self.min)}, {_fmt(self.max)}]"
            )
        return value


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


@dataclass(frozen=True, slots=True)
class Scenario:
    """One workload. Durations in seconds, latencies in ms, error rates as fractions."""

    name: str
    description: str
    protocol: Protocol
    method: str
    path: str
    params: Mapping[str, Param]
    values: Mapping[str, int | float]
    users: tuple[int, ...]
    warmup_s: float
    duration_s: float
    repeats: int
    slo_p99_ms: float
    slo_max_error_rate: float
    max_error_rate: float
    max_generator_cpu_percent: float
    source: Path = field(default=Path())
    #: Open each level's window when the stack is steady (harness.steady), between
    #: ``warmup_s`` and ``max_warmup_s`` after spawning; False: after ``warmup_s`` exactly.
    steady: bool = False
    max_warmup_s: float = 0.0
    #: The parameter (ms) each request waits without using CPU, when the scenario is a
    #: pure wait: the closed-loop ceiling is then min(users, concurrency) / wait
    #: (Little's law), recorded per trial as ``ceiling_rps`` and ``efficiency``.
    ceiling_wait_param: str = ""
    #: A user's app (``[app]``): the scenario then runs it instead of the shipped apps.
    app: OwnApp | None = None
    #: Request headers and body (``[request].headers``, ``body_file``): own apps only.
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    expect: Expect = field(default_factory=Expect)

    @property
    def request_path(self) -> str:
        """The path and query string every request of this scenario uses."""
        query = urlencode({k: _fmt(v) for k, v in self.values.items()})
        return f"{self.path}?{query}" if query else self.path

    def with_params(self, overrides: Mapping[str, str]) -> Scenario:
        """A copy with parameter values overridden from ``--param key=value`` strings.

        Raises:
            UserError: unknown parameter (with the closest names), bad type or range.
        """
        values = dict(self.values)
        for key, raw in overrides.items():
            if key not in self.params:
                raise UserError(
                    f"--param {key}: scenario {self.name} has no such parameter"
                    + _suggest(key, self.params) + f" (known: {', '.join(self.params) or 'none'})"
                )
            values[key] = self.params[key].parse(raw)
        return replace(self, values=MappingProxyType(values))


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _suggest(name: str, known: Mapping[str, object] | list[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


#: TOML files a scenario folder may hold that are not scenarios.
NOT_SCENARIOS = frozenset({"bench.toml", "pyproject.toml"})


def catalogue(paths: Sequence[Path] = (), directory: Path = SCENARIOS_DIR) -> dict[str, Path]:
    """Scenario name -> file: those shipped in ``directory``, then those of ``paths`` (a
    project's scenario files and folders of them, :mod:`harness.config`), in that order.

    Raises:
        UserError: a path that is missing or not a ``.toml`` file or folder, or a name
            given by two files (a project scenario may not shadow a shipped one: runs of
            ``io-heavy`` must mean one workload).
    """
    found = {p.stem: p for p in sorted(directory.glob("*.toml"))}
    for path in paths:
        if path.is_dir():  # a project folder may hold its configuration too
            files = sorted(p for p in path.glob("*.toml") if p.name not in NOT_SCENARIOS)
        elif path.name in NOT_SCENARIOS:
            raise UserError(f"scenario path {path}: a configuration file, not a scenario")
        elif path.is_file() and path.suffix == ".toml":
            files = [path]
        else:
            raise UserError(f"scenario path {path}: not a .toml file or a folder of them")
        for file in files:
            other = found.get(file.stem)
            if other is not None and other.resolve() != file.resolve():
                raise UserError(f"scenario {file.stem!r} is defined twice: {other} and {file}; "
                                "rename one (the file name is the scenario name)")
            found[file.stem] = file
    return found


def available(directory: Path = SCENARIOS_DIR, paths: Sequence[Path] = ()) -> list[str]:
    """Names of the scenarios in ``directory`` and ``paths`` (file stems), sorted."""
    return sorted(catalogue(paths, directory))


def is_path(text: str) -> bool:
    """Whether ``--scenario text`` names a file rather than a scenario: it ends in
    ``.toml`` or contains a path separator (``./x``, ``perf/x.toml``). Names never do."""
    return text.endswith(".toml") or "/" in text or (os.sep != "/" and os.sep in text)


def load(name: str, directory: Path = SCENARIOS_DIR, paths: Sequence[Path] = ()) -> Scenario:
    """Load and validate the scenario ``name`` (shipped in ``directory`` or one of the
    project's ``paths``), or the file ``name`` when it is a path (:func:`is_path`; a
    scenario of the user's own, relative to the current directory).

    Raises:
        UserError: unknown name (with the closest names), no such file, a folder or a
            file that is not ``.toml``, or an invalid file.
    """
    if is_path(name):
        path = Path(name)
        if path.is_dir():
            raise UserError(f"scenario file {name}: a folder; give one .toml file (a project "
                            "names scenario folders in bench.toml's scenarios)")
        if path.suffix != ".toml":
            raise UserError(f"scenario file {name}: not a .toml file")
        if not path.is_file():
            hint = ""
            if path.stem in catalogue(paths, directory) and path.name == name:
                hint = f"; the scenario named {path.stem!r} is --scenario {path.stem}"
            raise UserError(f"scenario file {name}: no such file{hint}")
        return parse(path)
    known = catalogue(paths, directory)
    if name not in known:
        names = sorted(known)
        raise UserError(
            f"unknown scenario {name!r}" + _suggest(name, names)
            + f" (known: {', '.join(names) or 'none'})"
        )
    return parse(known[name])


def parse(path: Path) -> Scenario:
    """Parse one scenario file. Raises :class:`UserError` naming the file and the problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    except RecursionError:
        raise UserError(f"{path}: invalid TOML: nested too deeply") from None
    try:
        return _build(data, path)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: {exc.args[0] if exc.args else exc}") from None


_TOP = {"name", "description", "protocol", "request", "params", "load", "slo", "validity",
        "app", "expect",
        "ceiling"}


def _table(data: Mapping[str, Any], key: str, allowed: set[str]) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise TypeError(f"[{key}] must be a table")
    unknown = set(value) - allowed
    if unknown:
        raise ValueError(f"[{key}] has unknown key(s): {', '.join(sorted(unknown))}")
    return value


def _number(table: Mapping[str, Any], key: str, where: str, *, positive: bool = True,
            integer: bool = False) -> Any:
    if key not in table:
        raise KeyError(f"[{where}] is missing {key!r}")
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise TypeError(f"[{where}].{key} must be {'an integer' if integer else 'a number'}")
    if not math.isfinite(value):
        raise ValueError(f"[{where}].{key} must be a finite number, got {value}")
    if positive and value <= 0:
        raise ValueError(f"[{where}].{key} must be > 0, got {value}")
    return value


def _build(data: Mapping[str, Any], path: Path) -> Scenario:
    unknown = set(data) - _TOP
    if unknown:
        raise ValueError(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    name = data.get("name", path.stem)
    if name != path.stem:
        raise ValueError(f"name {name!r} does not match the file name {path.stem!r}")
    protocol = data.get("protocol", "http")
    if protocol not in ("http", "sse", "websocket"):
        raise ValueError(f"protocol must be http, sse or websocket, got {protocol!r}")
    request = _table(data, "request", {"method", "path", "headers", "body_file"})
    req_path = request.get("path")
    if not isinstance(req_path, str) or not req_path.startswith("/"):
        raise ValueError("[request].path must be a string starting with '/'")
    app, headers, body, expect = _own_app(data, request, path.parent)
    params: dict[str, Param] = {}
    raw_params = data.get("params", {})
    if not isinstance(raw_params, dict):
        raise TypeError("[params] must be a table of tables")
    for pname, spec in raw_params.items():
        where = f"params.{pname}"
        spec = _table(raw_params, pname, {"type", "default", "min", "max", "unit", "description"})
        ptype = spec.get("type")
        if ptype not in ("int", "float"):
            raise ValueError(f"[{where}].type must be 'int' or 'float', got {ptype!r}")
        is_int = ptype == "int"
        lo = _number(spec, "min", where, positive=False, integer=is_int)
        hi = _number(spec, "max", where, positive=False, integer=is_int)
        default = _number(spec, "default", where, positive=False, integer=is_int)
        if not lo <= default <= hi:
            raise ValueError(f"[{where}].default {default} is outside [{lo}, {hi}]")
        params[pname] = Param(pname, ptype, default, lo, hi, str(spec.get("unit", "")),
                              str(spec.get("description", "")))
    load_t = _table(data, "load", {"users", "warmup_s", "max_warmup_s", "duration_s",
                                   "repeats"})
    # warmup_s alone: a fixed warm-up; max_warmup_s: steady-state detection up to it
    # (with warmup_s, if given, as the shortest warm-up).
    steady = "max_warmup_s" in load_t
    if not steady and "warmup_s" not in load_t:
        raise KeyError("[load] is missing 'warmup_s' (fixed) or 'max_warmup_s' (steady state)")
    if steady and protocol != "http":
        raise ValueError("[load].max_warmup_s: steady-state detection applies to http "
                         "scenarios; give stream scenarios a fixed warmup_s")
    warmup_s = float(_number(load_t, "warmup_s", "load", positive=False)) \
        if "warmup_s" in load_t else 0.0
    max_warmup_s = float(_number(load_t, "max_warmup_s", "load")) if steady else 0.0
    if steady and max_warmup_s < warmup_s:
        raise ValueError(f"[load].max_warmup_s {max_warmup_s:g} is below warmup_s {warmup_s:g}")
    users = load_t.get("users")
    if (not isinstance(users, list) or not users
            or not all(isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in users)):
        raise ValueError("[load].users must be a non-empty list of positive integers")
    check_levels(tuple(users), "[load].users")
    ceiling = _table(data, "ceiling", {"wait_param"})
    wait_param = ceiling.get("wait_param", "")
    if wait_param and wait_param not in params:
        raise ValueError(f"[ceiling].wait_param {wait_param!r} is not one of [params]")
    slo = _table(data, "slo", {"p99_ms", "max_error_rate"})
    validity = _table(data, "validity", {"max_error_rate", "max_generator_cpu_percent"})
    return Scenario(
        name=name,
        description=str(data.get("description", "")),
        protocol=protocol,
        method=str(request.get("method", "GET")),
        path=req_path,
        params=MappingProxyType(params),
        values=MappingProxyType({p.name: p.default for p in params.values()}),
        users=tuple(users),
        warmup_s=warmup_s,
        steady=steady,
        max_warmup_s=max_warmup_s,
        ceiling_wait_param=str(wait_param),
        duration_s=float(_number(load_t, "duration_s", "load")),
        repeats=int(_number(load_t, "repeats", "load", integer=True)),
        slo_p99_ms=float(_number(slo, "p99_ms", "slo")),
        slo_max_error_rate=float(_number(slo, "max_error_rate", "slo", positive=False)),
        max_error_rate=float(_number(validity, "max_error_rate", "validity", positive=False)),
        max_generator_cpu_percent=float(
            _number(validity, "max_generator_cpu_percent", "validity")),
        source=path,
        app=app, headers=MappingProxyType(headers), body=body, expect=expect,
    )


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


def _own_app(data: Mapping[str, Any], request: Mapping[str, Any],
             base: Path) -> tuple[OwnApp | None, dict[str, str], bytes, Expect]:
    """The ``[app]`` and ``[expect]`` tables and the request's headers and body; file
    names (``app_dir``, ``body_file``, ``expect.body_file``) are relative to ``base``,
    the scenario file's folder."""
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
