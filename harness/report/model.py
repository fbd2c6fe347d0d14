"""The analysis model of one run: everything its section, verdict and charts are drawn
from, computed once per run per report (:func:`analyse`).

An :class:`Analysis` holds the run's trials and samples normalised to their documented
columns (:data:`harness.results.TRIAL_COLUMNS`, :data:`~harness.results.SAMPLE_COLUMNS`),
the configs in report order with their chart styles, the SLO judged against, the
per-level summary (:func:`harness.stats.summarize_repeats`), the capacity table
(:func:`harness.stats.capacity_table`, planned with :func:`harness.stats.plan_instances`
for a ``target_rps``) and the USL fits. Figures derived from it that several parts of
the report need (representative trials, unsupported configs, PSS per connection, the
stream matrix, the engine's memory) are cached on it, so none is computed twice.

The public functions of this package take a :class:`~harness.results.RunData` or an
:class:`Analysis`; given a run they build the model (:func:`as_analysis`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from harness import scenarios, stats
from harness.report.fmt import _float, _int, _num
from harness.results import SAMPLE_COLUMNS, TRIAL_COLUMNS, RunData
from harness.runmeta import RunMeta
from harness.stacks import stack_name

#: Record kinds the CDF shows, by preference: request/response latency, else the stream
#: scenarios' WebSocket round trip or SSE event lag (see harness.streams).
CDF_RECORD_NAMES = ("request", "rtt", "event")
#: Scenario protocols whose runs hold connections (harness.streams).
STREAM_PROTOCOLS = ("sse", "websocket")
#: Trial columns of stream runs summarised per level (harness.streams.STREAM_COLUMNS).
STREAM_LEVEL_METRICS = ("ttfe_ms_p50", "ttfe_ms_p99", "event_lag_ms_p50", "event_lag_ms_p99",
                        "events_per_s", "messages_per_s", "rtt_ms_p50", "rtt_ms_p99",
                        "concurrent_connections_peak", "concurrent_served_mean",
                        "pss_kib_per_connection", "connects_waiting_at_end")
#: Error-rate bound used when run.json records none (fraction).
DEFAULT_MAX_ERROR_RATE = 0.01
#: Metrics the per-level table and charts summarise over repeats.
LEVEL_METRICS = (*stats.SUMMARY_METRICS, "latency_p999_ms", "generator_cpu_percent",
                 "littles_law_ratio", "ceiling_rps")


#: WSGI configs: blues and greens, solid lines, circles. ASGI: oranges, reds, purples,
#: dashed lines, diamonds. Anything else: greys, dotted, squares.
_FAMILIES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "wsgi": (("#1f77b4", "#2ca02c", "#17becf", "#08519c", "#31a354", "#6baed6", "#006d2c"),
             "solid", "circle"),
    "asgi": (("#ff7f0e", "#d62728", "#9467bd", "#e6550d", "#a50f15", "#6a51a3", "#c51b8a"),
             "dash", "diamond"),
}
_OTHER_FAMILY: tuple[tuple[str, ...], str, str] = (("#7f7f7f", "#525252", "#bdbdbd"), "dot",
                                                   "square")
_INTERFACE_ORDER = {"wsgi": 0, "asgi": 1}
_TEXT_TRIAL_COLUMNS = frozenset({"trial_id", "scenario", "server", "interface", "backend",
                                 "status", "reason", "flags", "load_mode",
                                 "driver", "bound_by", "app", "framework_version"})
_TEXT_SAMPLE_COLUMNS = frozenset({"source", "server", "app"})
_PROTOCOL_NAMES = {"sse": "SSE", "websocket": "WebSocket", "http": "HTTP"}
#: Severity order of non-ok statuses: the one a cell or row without any ok trial shows.
_STATUS_ORDER = {"unsupported": 0, "failed": 1, "invalid": 2}


@dataclass(frozen=True, slots=True)
class _Style:
    """How one server config is drawn in every chart of a run."""

    colour: str
    dash: str
    symbol: str


@dataclass(frozen=True, slots=True)
class Slo:
    """The SLO a report judges against: p99 latency (ms), error-rate bound (fraction),
    and where the p99 came from (``"scenario"``, ``"--slo-p99-ms"`` or ``"none"``)."""

    p99_ms: float
    max_error_rate: float
    source: str


@dataclass(frozen=True)
class Analysis:
    """Everything one run's section and charts are drawn from, computed once
    (:func:`analyse`); figures derived from it are kept in ``memo`` (:func:`once`)."""

    run: RunData
    trials: pd.DataFrame
    samples: pd.DataFrame
    configs: dict[str, str]
    styles: dict[str, _Style]
    slo: Slo
    levels: pd.DataFrame
    capacity: pd.DataFrame
    fits: dict[str, stats.UslFit]
    target_rps: float | None
    headroom: float
    #: The level axis: ``users`` (closed loop) or ``offered_rps`` (open loop).
    level: str
    #: The scenario's protocol: ``http``, ``sse`` or ``websocket``.
    protocol: str = "http"
    #: Derived figures computed once for this model, by function (see :func:`once`).
    memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def stream(self) -> bool:
        """Whether this run held connections (SSE or WebSocket)."""
        return self.protocol in STREAM_PROTOCOLS

    @property
    def protocol_name(self) -> str:
        """``"SSE"``, ``"WebSocket"`` or ``"HTTP"``."""
        return _PROTOCOL_NAMES.get(self.protocol, self.protocol.upper() or "HTTP")

    @property
    def rate_unit(self) -> str:
        """The unit of ``throughput_rps`` in this run: ``req/s``, ``streams/s`` or ``msg/s``."""
        return scenarios.rate_unit(self.protocol)

    @property
    def level_title(self) -> str:
        return ("offered load (req/s, open loop)" if self.level == "offered_rps"
                else "users (concurrent, closed loop)")

    def level_text(self, value: Any) -> str:
        """``"40 users"`` or ``"500 req/s offered"``."""
        if self.level == "offered_rps":
            return f"{_num(value, 0)} req/s offered"
        return f"{_int(value)} users"

    def level_label(self, value: Any) -> str:
        """Short window label: ``"40u"`` or ``"500/s"``."""
        return f"{_num(value, 0)}/s" if self.level == "offered_rps" else f"{_int(value)}u"


def as_analysis(run: RunData | Analysis, *, slo_p99_ms: float | None = None) -> Analysis:
    """``run``'s model: ``run`` itself when it is one (built with its own options, so
    ``slo_p99_ms`` must then be None), else :func:`analyse` of it.

    Raises:
        ValueError: an :class:`Analysis` and ``slo_p99_ms`` both given; a bad ``slo_p99_ms``.
    """
    if isinstance(run, Analysis):
        if slo_p99_ms is not None:
            raise ValueError("slo_p99_ms: pass it to analyse(), not with an Analysis")
        return run
    return analyse(run, slo_p99_ms=slo_p99_ms)


def representative_trials(run: RunData | Analysis, *,
                          slo_p99_ms: float | None = None) -> dict[str, pd.Series]:
    """Per config, the ok trial whose latency distribution the CDF chart shows.

    The level is the config's max sustainable level, or its highest ok level when none
    met the SLO; among that level's ok repeats, the one whose throughput is closest to
    their median (lowest repeat on ties). Configs without an ok trial are left out.
    """
    return dict(_representatives(as_analysis(run, slo_p99_ms=slo_p99_ms)))


def measured_latencies(run: RunData, trial: Mapping[str, Any]) -> tuple[np.ndarray, str]:
    """Latencies (ms) of the records of ``trial`` that completed inside its measurement
    window, failed ones included, like the trial's percentiles; and what they time.

    Window in unix seconds: [clock_origin_unix_s + t_start_s, clock_origin_unix_s +
    t_end_s) from run.json and the trial; completion = start_unix_s + latency_ms / 1000.
    Records with a ``name`` column keep one kind, the first present of
    :data:`CDF_RECORD_NAMES` (``request``; streams: ``rtt``, ``event`` lag). Empty
    when the run has no clock origin, the trial no window, or no records.
    """
    origin = _float(run.meta.clock_origin_unix_s)
    t0, t1 = _float(trial.get("t_start_s")), _float(trial.get("t_end_s"))
    if math.isnan(origin) or math.isnan(t0) or math.isnan(t1):
        return np.empty(0), ""
    records = run.requests(str(trial.get("trial_id")))
    kind = "request"
    if "name" in records.columns and len(records):
        names = set(records["name"].astype(str))
        kind = next((n for n in CDF_RECORD_NAMES if n in names), "")
        records = records[records["name"].astype(str) == kind]
    if records.empty:
        return np.empty(0), ""
    latency = pd.to_numeric(records["latency_ms"], errors="coerce").to_numpy(dtype=float)
    end = pd.to_numeric(records["start_unix_s"], errors="coerce").to_numpy(dtype=float) \
        + latency / 1000.0
    inside = (end >= origin + t0) & (end < origin + t1) & ~np.isnan(latency)
    return latency[inside], kind


def latency_cdf(run: RunData, trial: Mapping[str, Any]
                ) -> tuple[np.ndarray, np.ndarray, int, str]:
    """The latency CDF of ``trial``'s window: (x ms ascending, y fraction <= x, records,
    what they time). From the raw records when the run kept them
    (:func:`measured_latencies`), else from the trial's latency histogram
    (``latency/<trial_id>.json``, harness.latency: one point per histogram bucket,
    x at the top of each bucket: at most one bucket width, 1/1024 or about 0.1 %, above
    the recorded values in it). Empty arrays when neither exists."""
    latencies, kind = measured_latencies(run, trial)
    if len(latencies):
        x = np.sort(latencies)
        return x, np.arange(1, len(x) + 1) / len(x), len(x), kind
    path = run.path / "latency" / f"{trial.get('trial_id')}.json"
    if not path.is_file():
        return np.empty(0), np.empty(0), 0, ""
    import json

    from harness import latency

    try:
        stats = latency.WindowStats.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return np.empty(0), np.empty(0), 0, ""
    x, y = latency.cdf_points(stats.histogram)
    return x, y, int(stats.requests), stats.name


def _check_options(target_rps: float | None, slo_p99_ms: float | None,
                   headroom: float) -> None:
    if target_rps is not None and not (math.isfinite(target_rps) and target_rps > 0):
        raise ValueError(f"target_rps {target_rps}: must be a number > 0")
    if slo_p99_ms is not None and not (math.isfinite(slo_p99_ms) and slo_p99_ms > 0):
        raise ValueError(f"slo_p99_ms {slo_p99_ms}: must be a number > 0")
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom {headroom}: must be in (0, 1]")


def _slo(meta: RunMeta, override: float | None) -> Slo:
    """The SLO to judge ``meta``'s run by: ``override`` (ms) or the scenario's p99, and
    the scenario's error bound (else its validity bound, else DEFAULT_MAX_ERROR_RATE)."""
    slo, validity = meta.scenario.slo, meta.scenario.validity
    max_error = _float(slo.max_error_rate)
    if math.isnan(max_error):
        max_error = _float(validity.max_error_rate)
    if math.isnan(max_error):
        max_error = DEFAULT_MAX_ERROR_RATE
    if override is not None:
        return Slo(float(override), max_error, "--slo-p99-ms")
    p99 = _float(slo.p99_ms)
    return Slo(p99, max_error, "scenario" if p99 > 0 else "none")


_T = TypeVar("_T")


def once(compute: Callable[[Analysis], _T]) -> Callable[[Analysis], _T]:
    """``compute(a)`` evaluated once per :class:`Analysis`, its result kept in ``a.memo``
    (callers must not modify it)."""
    key = f"{compute.__module__}.{compute.__qualname__}"

    @functools.wraps(compute)
    def cached(a: Analysis) -> _T:
        if key not in a.memo:
            a.memo[key] = compute(a)
        return a.memo[key]  # type: ignore[no-any-return]

    return cached


def analyse(run: RunData, *, slo_p99_ms: float | None = None,
            target_rps: float | None = None,
            headroom: float = stats.DEFAULT_HEADROOM) -> Analysis:
    """The analysis model of ``run``: computed here, once; pass it to :func:`render`,
    :func:`figures`, :func:`verdict`, ... instead of the run to reuse it.

    ``slo_p99_ms`` (ms) overrides the scenario's SLO p99; ``target_rps`` plans instances
    (:func:`harness.stats.plan_instances`) at ``headroom``.

    Raises:
        ValueError: ``target_rps`` or ``slo_p99_ms`` not > 0, ``headroom`` not in (0, 1].
    """
    _check_options(target_rps, slo_p99_ms, headroom)
    trials, samples = _by_stack(_trials(run)), _by_stack(_samples(run))
    configs = _configs(run.meta, trials, samples)
    slo = _slo(run.meta, slo_p99_ms)
    protocol = _protocol(run.meta, trials)
    metrics = LEVEL_METRICS + (STREAM_LEVEL_METRICS if protocol in STREAM_PROTOCOLS else ())
    levels = stats.summarize_repeats(trials, metrics)
    if slo.p99_ms > 0 and not trials.empty:
        capacity = stats.capacity_table(trials, slo.p99_ms, slo.max_error_rate)
    else:
        capacity = pd.DataFrame(columns=list(stats.CAPACITY_COLUMNS))
    if target_rps is not None:
        capacity = stats.plan_instances(capacity, target_rps, headroom)
    fits: dict[str, stats.UslFit] = {}
    for row in capacity.itertuples(index=False):
        if not math.isnan(_float(row.usl_lambda)):
            fits[str(row.server)] = stats.UslFit(
                row.usl_lambda, row.usl_sigma, row.usl_kappa, row.usl_r2,
                row.usl_peak_users, int(row.levels))
    level = "offered_rps" if trials["offered_rps"].notna().any() else "users"
    return Analysis(run, trials, samples, configs, _styles(configs), slo, levels, capacity,
                     fits, target_rps, headroom, level, protocol)


def _protocol(meta: RunMeta, trials: pd.DataFrame) -> str:
    """The run's protocol: run.json's ``scenario.protocol``, else ``sse`` / ``websocket``
    when the trials have time-to-first-event / round-trip figures, else ``http``."""
    recorded = (meta.scenario.protocol or "").lower()
    if recorded:
        return recorded
    for protocol, column in (("sse", "ttfe_ms_p50"), ("websocket", "rtt_ms_p50")):
        if column in trials and trials[column].notna().any():
            return protocol
    return "http"


def _sustainable_level(a: Analysis, server: str) -> float:
    """The config's max-sustainable level on the run's level axis; NaN when none."""
    rows = a.capacity[a.capacity["server"] == server]
    return _cap_level(a, rows.iloc[0]) if len(rows) else math.nan


def _cap_level(a: Analysis, row: Any, prefix: str = "sustainable") -> float:
    """A capacity row's sustainable (or ``prefix="peak"``) level on the level axis."""
    return _float(row[f"{prefix}_offered_rps" if a.level == "offered_rps" else f"{prefix}_users"])


@once
def _representatives(a: Analysis) -> dict[str, pd.Series]:
    chosen: dict[str, pd.Series] = {}
    for server in a.configs:
        ok = a.trials[(a.trials["server"] == server) & (a.trials["status"] == "ok")]
        ok = ok.dropna(subset=[a.level])
        if ok.empty:
            continue
        level = _sustainable_level(a, server)
        if math.isnan(level):
            level = float(ok[a.level].max())
        at = ok[ok[a.level] == level]
        median = at["throughput_rps"].median()
        distance = (at["throughput_rps"] - median).abs().fillna(math.inf)
        order = pd.DataFrame({"d": distance, "r": at["repeat"]}).sort_values(["d", "r"])
        chosen[server] = at.loc[order.index[0]]
    return chosen


def _normalise(frame: pd.DataFrame, columns: Sequence[str], text: frozenset[str]) -> pd.DataFrame:
    """``frame`` with exactly ``columns``: text columns as str ('' for missing), the rest numeric."""
    out = frame.reindex(columns=list(columns))
    for column in columns:
        if column in text:
            # map, not fillna(""): an all-empty column is read as float64
            out[column] = out[column].map(lambda v: "" if pd.isna(v) else str(v))
        else:
            out[column] = pd.to_numeric(out[column], errors="coerce")
    return out


def _by_stack(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (trials or samples) with ``server`` naming the stack (the server config
    for the raw app, ``{server}+{app}`` otherwise: harness.stacks.stack_name), so that
    every table and chart of the report is per stack; the config itself in
    ``server_config``. A run of the raw apps only is unchanged but for that column."""
    out = frame.assign(server_config=frame["server"])
    out["server"] = [stack_name(s, a) for s, a in zip(frame["server"], frame["app"],
                                                      strict=True)]
    return out


def _trials(run: RunData) -> pd.DataFrame:
    """The run's trials with every TRIAL_COLUMNS column, plus any extra numeric column
    (e.g. ``pss_kib_per_connection`` of stream scenarios)."""
    extra = tuple(c for c in run.trials.columns if c not in TRIAL_COLUMNS)
    return _normalise(run.trials, (*TRIAL_COLUMNS, *extra), _TEXT_TRIAL_COLUMNS)


def _samples(run: RunData) -> pd.DataFrame:
    return _normalise(run.samples, SAMPLE_COLUMNS, _TEXT_SAMPLE_COLUMNS)


def _configs(meta: RunMeta, trials: pd.DataFrame,
             samples: pd.DataFrame) -> dict[str, str]:
    """Stack name -> interface, WSGI first, then ASGI, then others; by name within.

    A run of the raw apps only has a stack per server config, named as the config, as
    run.json's ``servers`` list them; a run with other apps lists its stacks."""
    found: dict[str, str] = {}
    listed = meta.stacks if set(trials["app"]) - {"raw", ""} else meta.servers
    for server in listed:
        if server.name:
            found[server.name] = server.interface or ""
    for name, interface in zip(trials["server"], trials["interface"], strict=True):
        if name and not found.get(name):
            found[name] = interface
    for name in samples.loc[samples["source"] == "server", "server"]:
        if name:
            found.setdefault(name, "")
    return dict(sorted(found.items(), key=lambda kv: (_INTERFACE_ORDER.get(kv[1], 2), kv[0])))


def _styles(configs: Mapping[str, str]) -> dict[str, _Style]:
    """A style per config: colour from its interface's family, in order, cycling if needed
    (every interface other than wsgi and asgi shares the grey family and its count)."""
    used: dict[str, int] = {}
    styles: dict[str, _Style] = {}
    for name, interface in configs.items():
        family = interface if interface in _FAMILIES else ""
        colours, dash, symbol = _FAMILIES.get(family, _OTHER_FAMILY)
        n = used.get(family, 0)
        used[family] = n + 1
        styles[name] = _Style(colours[n % len(colours)], dash, symbol)
    return styles


@once
def _unsupported_configs(a: Analysis) -> dict[str, str]:
    """Configs whose every trial is ``unsupported``: name -> reason(s), "; "-joined."""
    out: dict[str, str] = {}
    for server in a.configs:
        rows = a.trials[a.trials["server"] == server]
        if len(rows) and (rows["status"] == "unsupported").all():
            out[server] = "; ".join(sorted({r for r in rows["reason"] if r})) or "no reason"
    return out

