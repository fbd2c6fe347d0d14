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
from harness.scenarios.own import Expect, OwnApp, own_app_tables

Protocol = Literal["http", "sse", "websocket"]

#: What one unit of a trial's ``throughput_rps`` counts, per scenario protocol: successful
#: responses (HTTP), streams whose first event arrived (SSE), echoes received (WebSocket).
RATE_UNITS = {"http": "req/s", "sse": "streams/s", "websocket": "msg/s"}


def rate_unit(protocol: str) -> str:
    """The unit of ``throughput_rps`` for ``protocol`` (``req/s`` when unknown)."""
    return RATE_UNITS.get(protocol, "req/s")


ParamType = Literal["int", "float", "choice"]
#: Where a parameter goes: ``request`` parameters ride on the query string; ``server``
#: parameters (a driver, a pool size) reach the server processes through their
#: environment (harness.realio), never through the request.
ParamScope = Literal["request", "server"]

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
    """A scenario parameter: a query parameter of the request (``scope`` ``request``),
    or a setting of the server processes (``scope`` ``server``). A ``choice``
    parameter's value is one of ``choices`` (text); ``min``/``max`` are then unused."""

    name: str
    type: ParamType
    default: float | str
    min: float
    max: float
    unit: str = ""
    description: str = ""
    choices: tuple[str, ...] = ()
    scope: ParamScope = "request"

    def summary(self) -> str:
        """``name=default [min..max]`` (``[a|b|c]`` for a choice), for listings."""
        if self.type == "choice":
            return f"{self.name}={self.default} [{'|'.join(self.choices)}]"
        return f"{self.name}={self.default} [{self.min}..{self.max}]"

    def parse(self, raw: str) -> int | float | str:
        """Parse and bound-check a ``--param`` value.

        Raises:
            UserError: not of this parameter's type, outside [min, max], or not one of
                the choices.
        """
        if self.type == "choice":
            if raw not in self.choices:
                raise UserError(f"--param {self.name}={raw}: expected one of "
                                f"{', '.join(self.choices)}" + _suggest(raw, list(self.choices)))
            return raw
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
class Scenario:
    """One workload. Durations in seconds, latencies in ms, error rates as fractions."""

    name: str
    description: str
    protocol: Protocol
    method: str
    path: str
    params: Mapping[str, Param]
    values: Mapping[str, int | float | str]
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
    #: The parameter counting how many such waits one request makes in sequence
    #: (the ceiling's wait is then wait_param x calls_param); "" for one.
    ceiling_calls_param: str = ""
    #: The real components the harness starts for this scenario (harness.realio):
    #: ``postgres``, ``upstream``.
    components: tuple[str, ...] = ()
    #: A user's app (``[app]``): the scenario then runs it instead of the shipped apps.
    app: OwnApp | None = None
    #: Request headers and body (``[request].headers``, ``body_file``): own apps only.
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    expect: Expect = field(default_factory=Expect)

    @property
    def request_path(self) -> str:
        """The path and query string every request of this scenario uses (request-scope
        parameters only)."""
        query = urlencode({k: _fmt(v) for k, v in self.values.items()  # type: ignore[arg-type]
                           if self.params[k].scope == "request"})
        return f"{self.path}?{query}" if query else self.path

    @property
    def ceiling_wait_ms(self) -> float | None:
        """The wait (ms) one request makes without using CPU, for the Little's-law
        ceiling: ``wait_param`` x ``calls_param`` (None without a wait_param)."""
        if not self.ceiling_wait_param:
            return None
        wait = float(self.values[self.ceiling_wait_param])
        return wait * float(self.values[self.ceiling_calls_param]) \
            if self.ceiling_calls_param else wait

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
        "ceiling", "components", "app", "expect"}
#: Components a scenario may ask for (harness.realio starts them).
COMPONENTS = ("postgres", "upstream")


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
    app, headers, body, expect = own_app_tables(data, request, path.parent)
    params: dict[str, Param] = {}
    raw_params = data.get("params", {})
    if not isinstance(raw_params, dict):
        raise TypeError("[params] must be a table of tables")
    for pname, spec in raw_params.items():
        where = f"params.{pname}"
        spec = _table(raw_params, pname, {"type", "default", "min", "max", "unit", "description",
                                          "choices", "scope"})
        ptype = spec.get("type")
        if ptype not in ("int", "float", "choice"):
            raise ValueError(f"[{where}].type must be 'int', 'float' or 'choice', got {ptype!r}")
        scope = spec.get("scope", "request")
        if scope not in ("request", "server"):
            raise ValueError(f"[{where}].scope must be 'request' or 'server', got {scope!r}")
        if ptype == "choice":
            params[pname] = _choice(pname, spec, where, scope)
            continue
        is_int = ptype == "int"
        lo = _number(spec, "min", where, positive=False, integer=is_int)
        hi = _number(spec, "max", where, positive=False, integer=is_int)
        default = _number(spec, "default", where, positive=False, integer=is_int)
        if not lo <= default <= hi:
            raise ValueError(f"[{where}].default {default} is outside [{lo}, {hi}]")
        params[pname] = Param(pname, ptype, default, lo, hi, str(spec.get("unit", "")),
                              str(spec.get("description", "")), scope=scope)
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
    ceiling = _table(data, "ceiling", {"wait_param", "calls_param"})
    wait_param = ceiling.get("wait_param", "")
    if wait_param and wait_param not in params:
        raise ValueError(f"[ceiling].wait_param {wait_param!r} is not one of [params]")
    calls_param = ceiling.get("calls_param", "")
    if calls_param and (calls_param not in params or not wait_param):
        raise ValueError(f"[ceiling].calls_param {calls_param!r} needs a wait_param and must "
                         "be one of [params]")
    components = data.get("components", [])
    if not isinstance(components, list) or not all(c in COMPONENTS for c in components):
        raise ValueError(f"components must be a list of {', '.join(COMPONENTS)}")
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
        ceiling_calls_param=str(calls_param),
        components=tuple(dict.fromkeys(components)),
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


def _choice(name: str, spec: Mapping[str, Any], where: str, scope: Any) -> Param:
    """A ``type = "choice"`` parameter: ``choices`` (non-empty list of text) and a
    ``default`` among them."""
    choices = spec.get("choices")
    if (not isinstance(choices, list) or not choices
            or not all(isinstance(c, str) and c for c in choices)):
        raise ValueError(f"[{where}].choices must be a non-empty list of strings")
    default = spec.get("default")
    if default not in choices:
        raise ValueError(f"[{where}].default {default!r} is not one of its choices")
    return Param(name, "choice", str(default), math.nan, math.nan, str(spec.get("unit", "")),
                 str(spec.get("description", "")), tuple(choices), scope)
