"""The capacity-planning report: one self-contained HTML file rendered from stored runs.

A pure function of run folders read with :func:`harness.results.load_run` and a few
options (``--slo-p99-ms``, ``--target-rps``). For each run, one section:

1. setup (scenario, commit, machine, CPU sets, versions, load mode, durations, repeats,
   SLO) and a validity summary (trials per status, and why);
2. a verdict: sentences generated from the capacity figures, each with its number;
3. capacity per server config (:func:`harness.stats.capacity_table`), with instances
   needed for ``target_rps`` (:func:`harness.stats.plan_instances`);
4. the figures per level (:func:`harness.stats.summarize_repeats`: medians, CIs, CV);
5. charts (:func:`figures`): throughput vs users with the Little's-law ceiling and the
   USL fit; latency percentiles vs achieved throughput with the SLO; the latency CDF
   of one representative trial per config; error rate vs users; PSS and CPU over time;
6. every trial, sortable by any column; 7. method and caveats.

Stream runs (scenario protocol ``sse`` or ``websocket``, see :mod:`harness.streams`) also
get charts vs users (:data:`STREAM_CHART_KEYS`: time to first event and event lag p50/p99,
events/s (SSE); echo round trip p50/p99, messages/s (WebSocket); connections held and
served vs offered with y = x; PSS peak vs connections held with the fitted KiB per
connection) and a matrix of every config at every level (:func:`stream_matrix`) whose
cells hold the key figure or ``unsupported (reason)`` / ``invalid (reason)`` /
``failed (reason)``. A config whose every trial is ``unsupported`` is one capacity row
saying so, a verdict sentence ("WebSocket: 4 WSGI configs unsupported (handshake
answered 404 Not Found): ..."), no line in any chart and a note under each chart title.
A docker run's section compares the engine's memory figure with PSS
(:func:`engine_memory`); runs of one scenario under several backends get a closing
section with a table per backend pair (:func:`backend_comparison`).

plotly.js is embedded once, inline, so the file opens offline. Only ``ok`` trials feed
lines, the verdict and the capacity table. A non-ok trial that has numbers is drawn
with an ``x`` marker in a separate trace named ``"<config> (not valid)"`` whose hover
says ``"<status>: <reason>"``, and its table rows are tinted (DESIGN.md, "Numbers must
be true"). WSGI configs are drawn solid in blues/greens with circles, ASGI dashed in
oranges/reds/purples with diamonds, in every chart.

:func:`write_pngs` exports the same charts as PNG with kaleido (>= 1.0) driving a
system Chromium (``BROWSER_PATH`` or ``/usr/bin/chromium``).
"""

from __future__ import annotations

import html
import math
import os
import re
import shlex
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from harness import scenarios, stats
from harness.errors import UserError
from harness.results import SAMPLE_COLUMNS, TRIAL_COLUMNS, RunData, atomic_write_bytes

#: Samples drawn per time-series trace at most; longer traces keep every k-th sample.
MAX_POINTS_PER_TRACE = 5000
#: Samples drawn per time-series chart at most (all traces together, so that a long
#: run of many configs stays a few hundred kB); each trace keeps at least 200.
MAX_POINTS_PER_CHART = 12000
#: Points per latency-CDF curve at most: evenly spaced ranks, plus the slowest
#: :data:`CDF_TAIL_POINTS` requests, every one of them (the tail is what matters).
CDF_MAX_POINTS = 2000
CDF_TAIL_POINTS = 500
#: Record kinds the CDF shows, by preference: request/response latency, else the stream
#: scenarios' WebSocket round trip or SSE event lag (see harness.streams).
CDF_RECORD_NAMES = ("request", "rtt", "event")
#: Chart keys of :func:`figures`, in report order (also the PNG file suffixes).
CHART_KEYS = ("throughput", "latency", "latency_cdf", "error_rate", "pss", "cpu")
#: Chart keys of stream runs (protocol ``sse`` or ``websocket``), drawn after ``latency``:
#: SSE has ttfe, event_lag, events_rate; WebSocket rtt, messages_rate; both connections
#: and pss_per_connection.
STREAM_CHART_KEYS = ("ttfe", "event_lag", "events_rate", "rtt", "messages_rate",
                     "connections", "pss_per_connection")
#: Scenario protocols whose runs hold connections (harness.streams).
STREAM_PROTOCOLS = ("sse", "websocket")
#: Trial columns of stream runs summarised per level (harness.streams.STREAM_COLUMNS).
STREAM_LEVEL_METRICS = ("ttfe_ms_p50", "ttfe_ms_p99", "event_lag_ms_p50", "event_lag_ms_p99",
                        "events_per_s", "messages_per_s", "rtt_ms_p50", "rtt_ms_p99",
                        "concurrent_connections_peak", "concurrent_served_mean",
                        "pss_kib_per_connection", "connects_waiting_at_end")
#: Metrics of the backend comparison (:func:`backend_comparison`): (trial column, label).
BACKEND_METRICS = (("throughput_rps", "req/s"), ("latency_p99_ms", "p99 ms"),
                   ("pss_mib_peak", "PSS peak MiB"))
#: Error-rate bound used when run.json records none (fraction).
DEFAULT_MAX_ERROR_RATE = 0.01
#: Browsers looked for by :func:`find_browser` when ``BROWSER_PATH`` is not set.
BROWSER_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome",
                      "google-chrome-stable", "chrome")
#: Metrics the per-level table and charts summarise over repeats.
LEVEL_METRICS = (*stats.SUMMARY_METRICS, "latency_p999_ms", "generator_cpu_percent",
                 "littles_law_ratio", "ceiling_rps")
#: Server CPU below this (% of one core) makes req/s per core an extrapolation worth a caveat.
LOW_CPU_PERCENT = 10.0

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
                                 "status", "reason", "flags", "load_mode"})
_TEXT_SAMPLE_COLUMNS = frozenset({"source", "server"})
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_DASH = "–"
#: Table columns of free text that get room to breathe (CSS class ``long``).
_LONG_TEXT = frozenset({"note", "reason", "command line"})
_SLO_COLOUR = "#c00"
_PROTOCOL_NAMES = {"sse": "SSE", "websocket": "WebSocket", "http": "HTTP"}
#: Severity order of non-ok statuses: the one a cell or row without any ok trial shows.
_STATUS_ORDER = {"unsupported": 0, "failed": 1, "invalid": 2}

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #444;padding-bottom:.2em;margin-top:2.5em}
table{border-collapse:collapse;margin:.6em 0 1.2em}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top}
th{background:#f0f0f0;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{white-space:nowrap}td.long{min-width:22em}div.wide{overflow-x:auto;max-width:100%}
table.kv th{width:14em}code{font-size:12px}
table.sortable th{cursor:pointer}table.sortable th[data-dir=asc]::after{content:" ▲"}
table.sortable th[data-dir=desc]::after{content:" ▼"}
tr.wsgi td:first-child{border-left:5px solid #1f77b4}
tr.asgi td:first-child{border-left:5px solid #ff7f0e}
tr.level-start td{border-top:2px solid #555}
tr.mixed{background:#fffbe6}tr.invalid,tr.unsupported{background:#fff1cc}
tr.failed{background:#fde0e0}tr.not-valid td.num{color:#888;font-style:italic}
tr.no-capacity td.num{color:#888}
.status-invalid,.status-unsupported,.status-failed{font-weight:bold}
.status-failed{color:#a00}.status-invalid{color:#8a5a00}.status-unsupported{color:#245}
tr.not-valid td.status-unsupported{color:#245;font-style:normal}
.note{color:#555}.warning{background:#fff1cc;border-left:5px solid #e6a700;padding:.5em 1em}
ul.verdict li{margin:.3em 0}.chart{margin:1em 0}
table.matrix td.cell{min-width:11em}td.cell-ok{background:#f3faf3}
td.cell-mixed{background:#fffbe6}td.cell-invalid{background:#fff1cc;color:#8a5a00}
td.cell-unsupported{background:#e3ebf5;color:#245;font-weight:bold;
border:2px dashed #245}td.cell-failed{background:#fde0e0;color:#a00;font-weight:bold}
td.cell-none{color:#888}
"""

#: Click a header of a ``table.sortable`` to sort by it; numeric cells sort by data-v,
#: empty values last; a second click reverses.
_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function(table){
  var heads=table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads,function(th,col){
    th.addEventListener("click",function(){
      var asc=th.getAttribute("data-dir")!=="asc", num=th.classList.contains("num");
      Array.prototype.forEach.call(heads,function(h){h.removeAttribute("data-dir");});
      th.setAttribute("data-dir",asc?"asc":"desc");
      var body=table.tBodies[0], rows=Array.prototype.slice.call(body.rows);
      function key(row){var c=row.cells[col];var v=c.hasAttribute("data-v")?c.getAttribute("data-v"):c.textContent;
        return num?parseFloat(v):v;}
      rows.sort(function(a,b){var x=key(a),y=key(b);
        if(num){if(isNaN(x))return isNaN(y)?0:1;if(isNaN(y))return -1;return asc?x-y:y-x;}
        return asc?x.localeCompare(y):y.localeCompare(x);});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
"""


class BrowserNotFound(UserError):
    """No Chromium/Chrome to export PNGs with; the HTML report is unaffected."""


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
class _Analysis:
    """Everything one run's section and charts are drawn from, computed once."""

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


# --- public API -------------------------------------------------------------------------


def render(runs: list[RunData], out: Path, *, target_rps: float | None = None,
           slo_p99_ms: float | None = None,
           headroom: float = stats.DEFAULT_HEADROOM) -> Path:
    """Write the HTML report for ``runs`` to ``out`` (atomically); return ``out``.

    ``target_rps`` (req/s) adds instances needed and their memory to each capacity
    table; ``slo_p99_ms`` (ms) overrides every run's SLO p99; ``headroom`` is the
    fraction of max sustainable throughput each instance may run at. One section per
    run; then, when ``runs`` hold one scenario under several backends, a section setting
    them side by side (:func:`backend_comparison`). plotly.js is embedded inline with the
    first chart of the file only (none when there is nothing to plot). The output depends on the arguments alone: no clock, no
    random ids (bootstrap intervals use a fixed seed).

    Raises:
        ValueError: ``target_rps`` or ``slo_p99_ms`` not > 0, ``headroom`` not in (0, 1].
        OSError: ``out`` cannot be written.
    """
    _check_options(target_rps, slo_p99_ms, headroom)
    sections: list[str] = []
    include_js = True
    for index, run in enumerate(runs):
        analysis = _analyse(run, slo_p99_ms=slo_p99_ms, target_rps=target_rps,
                            headroom=headroom)
        charts: list[str] = []
        for key, fig in _figures(analysis).items():
            charts.append(pio.to_html(
                fig, include_plotlyjs=include_js, full_html=False, config=_PLOT_CONFIG,
                div_id=f"run{index}-{key}", default_height="520px",
            ))
            include_js = False
        sections.append(_section(analysis, index, charts))
    backends = _backends_html(runs)
    atomic_write_bytes(out, _page(runs, [*sections, backends], target_rps, slo_p99_ms,
                                  backends=bool(backends)).encode("utf-8"))
    return out


def figures(run: RunData, *, slo_p99_ms: float | None = None) -> dict[str, go.Figure]:
    """The charts of one run, keyed by :data:`CHART_KEYS`, in report order, leaving out
    those with nothing to draw.

    ``throughput``: median throughput (req/s) of ok repeats vs users, 95 % CI bars,
    Little's-law ceiling (``ceiling_rps``) and USL fit per config; ``latency``: p50, p95,
    p99 (ms, log axis) vs achieved throughput, SLO p99 line; ``latency_cdf``: fraction of
    requests at or below a latency (ms, log axis), one representative trial per config
    (see :func:`representative_trials`); ``error_rate``: errors (%) vs users with the SLO
    bound; ``pss`` and ``cpu``: server PSS (MiB) and CPU (% of one core) over run time,
    measurement windows shaded and labelled with their users.

    Stream runs add, after ``latency`` (:data:`STREAM_CHART_KEYS`), each vs users with
    the median of ok repeats per config: ``ttfe`` and ``event_lag`` (SSE; p50 and p99
    panels, ms, log axis, SLO p99 on the ttfe p99 panel), ``events_rate`` (SSE,
    events/s), ``rtt`` (WebSocket; p50 and p99 panels, ms, log axis, SLO p99) and
    ``messages_rate`` (WebSocket, messages/s); ``connections``: TCP connections held
    (``concurrent_connections_peak``) and streams served (``concurrent_served_mean``)
    vs users, with y = x; ``pss_per_connection``: PSS peak (MiB) of each ok trial vs its
    connections held, with the line of :func:`per_connection_fits` named with its slope
    (KiB per connection). Invalid and failed trials are ``x`` markers; unsupported
    configs get no marker and are named under the titles.
    """
    return _figures(_analyse(run, slo_p99_ms=slo_p99_ms))


def verdict(run: RunData, *, slo_p99_ms: float | None = None) -> list[str]:
    """The verdict sentences of one run (plain text), as shown in its section."""
    return _verdict(_analyse(run, slo_p99_ms=slo_p99_ms))


def find_browser(environ: Mapping[str, str] | None = None) -> str | None:
    """A Chromium/Chrome executable for kaleido: ``BROWSER_PATH`` when set (None if it
    is not an executable file), else the first of :data:`BROWSER_CANDIDATES` found."""
    env = os.environ if environ is None else environ
    configured = env.get("BROWSER_PATH")
    if configured:
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) \
            else None
    for candidate in BROWSER_CANDIDATES:
        found = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if found and os.path.isfile(found) and os.access(found, os.X_OK):
            return found
    return None


def write_pngs(runs: list[RunData], directory: Path, *, slo_p99_ms: float | None = None,
               browser_path: str | None = None, width: int = 1200,
               height: int = 600) -> list[Path]:
    """Write every chart of ``runs`` as ``<run-id>-<chart>.png`` in ``directory``.

    Uses kaleido >= 1.0, which drives a Chromium/Chrome through the DevTools protocol:
    ``browser_path``, else :func:`find_browser`. Sizes in CSS pixels. Returns the files
    written, in report order.

    Raises:
        BrowserNotFound: no browser (the caller should say so and carry on).
    """
    browser = browser_path or find_browser()
    if browser is None:
        raise BrowserNotFound("no Chromium or Chrome found (set BROWSER_PATH); "
                              "PNG charts not written")
    import kaleido
    from choreographer.browsers.chromium import ChromeNotFoundError

    directory.mkdir(parents=True, exist_ok=True)
    specs: list[dict[str, Any]] = []
    paths: list[Path] = []
    seen: set[str] = set()
    for index, run in enumerate(runs):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", _run_id(run))
        if stem in seen:
            stem = f"{stem}-{index}"
        seen.add(stem)
        for key, fig in figures(run, slo_p99_ms=slo_p99_ms).items():
            path = directory / f"{stem}-{key}.png"
            specs.append({"fig": fig.to_dict(), "path": path,
                          "opts": {"format": "png", "width": width, "height": height}})
            paths.append(path)
    if not specs:
        return []
    try:
        kaleido.write_fig_from_object_sync(specs, kopts={"path": browser, "mathjax": False},
                                           cancel_on_error=True)
    except ChromeNotFoundError as exc:
        raise BrowserNotFound(f"browser {browser!r} could not be started ({exc}); "
                              "PNG charts not written") from None
    return paths


def representative_trials(run: RunData, *,
                          slo_p99_ms: float | None = None) -> dict[str, pd.Series]:
    """Per config, the ok trial whose latency distribution the CDF chart shows.

    The level is the config's max sustainable level, or its highest ok level when none
    met the SLO; among that level's ok repeats, the one whose throughput is closest to
    their median (lowest repeat on ties). Configs without an ok trial are left out.
    """
    return _representatives(_analyse(run, slo_p99_ms=slo_p99_ms))


def measured_latencies(run: RunData, trial: Mapping[str, Any]) -> tuple[np.ndarray, str]:
    """Latencies (ms) of the records of ``trial`` that completed inside its measurement
    window, failed ones included, like the trial's percentiles; and what they time.

    Window in unix seconds: [clock_origin_unix_s + t_start_s, clock_origin_unix_s +
    t_end_s) from run.json and the trial; completion = start_unix_s + latency_ms / 1000.
    Records with a ``name`` column keep one kind, the first present of
    :data:`CDF_RECORD_NAMES` (``request``; streams: ``rtt``, ``event`` lag). Empty
    when the run has no clock origin, the trial no window, or no records.
    """
    origin = _float(run.meta.get("clock_origin_unix_s"))
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


# --- analysis -------------------------------------------------------------------------


def _check_options(target_rps: float | None, slo_p99_ms: float | None,
                   headroom: float) -> None:
    if target_rps is not None and not (math.isfinite(target_rps) and target_rps > 0):
        raise ValueError(f"target_rps {target_rps}: must be a number > 0")
    if slo_p99_ms is not None and not (math.isfinite(slo_p99_ms) and slo_p99_ms > 0):
        raise ValueError(f"slo_p99_ms {slo_p99_ms}: must be a number > 0")
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom {headroom}: must be in (0, 1]")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _slo(meta: Mapping[str, Any], override: float | None) -> Slo:
    """The SLO to judge ``meta``'s run by: ``override`` (ms) or the scenario's p99, and
    the scenario's error bound (else its validity bound, else DEFAULT_MAX_ERROR_RATE)."""
    scenario = _scenario(meta)
    slo, validity = _mapping(scenario.get("slo")), _mapping(scenario.get("validity"))
    max_error = _float(slo.get("max_error_rate"))
    if math.isnan(max_error):
        max_error = _float(validity.get("max_error_rate"))
    if math.isnan(max_error):
        max_error = DEFAULT_MAX_ERROR_RATE
    if override is not None:
        return Slo(float(override), max_error, "--slo-p99-ms")
    p99 = _float(slo.get("p99_ms"))
    return Slo(p99, max_error, "scenario" if p99 > 0 else "none")


def _analyse(run: RunData, *, slo_p99_ms: float | None = None,
             target_rps: float | None = None,
             headroom: float = stats.DEFAULT_HEADROOM) -> _Analysis:
    trials, samples = _trials(run), _samples(run)
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
    return _Analysis(run, trials, samples, configs, _styles(configs), slo, levels, capacity,
                     fits, target_rps, headroom, level, protocol)


def _protocol(meta: Mapping[str, Any], trials: pd.DataFrame) -> str:
    """The run's protocol: run.json's ``scenario.protocol``, else ``sse`` / ``websocket``
    when the trials have time-to-first-event / round-trip figures, else ``http``."""
    recorded = str(_scenario(meta).get("protocol") or "").lower()
    if recorded:
        return recorded
    for protocol, column in (("sse", "ttfe_ms_p50"), ("websocket", "rtt_ms_p50")):
        if column in trials and trials[column].notna().any():
            return protocol
    return "http"


def _sustainable_level(a: _Analysis, server: str) -> float:
    """The config's max-sustainable level on the run's level axis; NaN when none."""
    rows = a.capacity[a.capacity["server"] == server]
    return _cap_level(a, rows.iloc[0]) if len(rows) else math.nan


def _cap_level(a: _Analysis, row: Any, prefix: str = "sustainable") -> float:
    """A capacity row's sustainable (or ``prefix="peak"``) level on the level axis."""
    return _float(row[f"{prefix}_offered_rps" if a.level == "offered_rps" else f"{prefix}_users"])


def _representatives(a: _Analysis) -> dict[str, pd.Series]:
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


# --- data normalisation -------------------------------------------------------------


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


def _trials(run: RunData) -> pd.DataFrame:
    """The run's trials with every TRIAL_COLUMNS column, plus any extra numeric column
    (e.g. ``pss_kib_per_connection`` of stream scenarios)."""
    extra = tuple(c for c in run.trials.columns if c not in TRIAL_COLUMNS)
    return _normalise(run.trials, (*TRIAL_COLUMNS, *extra), _TEXT_TRIAL_COLUMNS)


def _samples(run: RunData) -> pd.DataFrame:
    return _normalise(run.samples, SAMPLE_COLUMNS, _TEXT_SAMPLE_COLUMNS)


def _scenario(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    scenario = meta.get("scenario")
    return scenario if isinstance(scenario, Mapping) else {}


def _float(value: Any) -> float:
    """``value`` as a float, NaN when it is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _configs(meta: Mapping[str, Any], trials: pd.DataFrame,
             samples: pd.DataFrame) -> dict[str, str]:
    """Server config name -> interface, WSGI first, then ASGI, then others; by name within."""
    found: dict[str, str] = {}
    for server in meta.get("servers") or []:
        if isinstance(server, Mapping) and server.get("name"):
            found[str(server["name"])] = str(server.get("interface") or "")
    for name, interface in zip(trials["server"], trials["interface"], strict=True):
        if name and not found.get(name):
            found[name] = interface
    for name in samples.loc[samples["source"] == "server", "server"]:
        if name:
            found.setdefault(name, "")
    return dict(sorted(found.items(), key=lambda kv: (_INTERFACE_ORDER.get(kv[1], 2), kv[0])))


def _styles(configs: Mapping[str, str]) -> dict[str, _Style]:
    """A style per config: colour from its interface's family, in order, cycling if needed."""
    used: dict[str, int] = {}
    styles: dict[str, _Style] = {}
    for name, interface in configs.items():
        colours, dash, symbol = _FAMILIES.get(interface, _OTHER_FAMILY)
        n = used.get(interface, 0)
        used[interface] = n + 1
        styles[name] = _Style(colours[n % len(colours)], dash, symbol)
    return styles


def _significant(values: Any, digits: int = 4) -> list[float | None]:
    """Plain floats to ``digits`` significant digits (NaN as None): a latency axis
    on a log scale needs relative, not absolute, precision."""
    return [None if v is None or math.isnan(float(v)) else float(f"{float(v):.{digits}g}")
            for v in values]


def _rounded(values: Any, digits: int) -> list[float | None]:
    """Plain floats rounded to ``digits`` decimals (NaN as None): smaller JSON in the page."""
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), digits)
            for v in values]


# --- charts ---------------------------------------------------------------------------


def _figures(a: _Analysis) -> dict[str, go.Figure]:
    candidates = {
        "throughput": _throughput_figure(a),
        "latency": _latency_figure(a),
        **(_stream_figures(a) if a.stream else {}),
        "latency_cdf": _cdf_figure(a),
        "error_rate": _error_figure(a),
        "pss": _timeline_figure(a, "pss_mib", "Server PSS over time", "PSS (MiB)"),
        "cpu": _timeline_figure(a, "cpu_percent", "Server CPU over time",
                                "CPU (% of one core)"),
    }
    for key, fig in candidates.items():
        if key not in ("pss", "cpu"):  # timelines do draw an unsupported server's samples
            _note_unsupported(a, fig)
    return {key: fig for key, fig in candidates.items() if _has_data(fig)}


def _has_data(fig: go.Figure) -> bool:
    """At least one trace that is not a reference line (SLO, ceiling, fit) has a point."""
    return any(len(t.x or ()) and not (t.meta or {}).get("reference") for t in fig.data)


def _ok_levels(a: _Analysis, server: str) -> pd.DataFrame:
    rows = a.levels[(a.levels["server"] == server) & (a.levels["n"] > 0)]
    return rows.dropna(subset=[a.level]).sort_values(a.level)


def _not_valid_trace(a: _Analysis, server: str, style: _Style, x_col: str, y_col: str,
                     label: str, unit: str, scale: float = 1.0,
                     x_title: str = "level") -> go.Scatter | None:
    """The invalid and failed trials of ``server`` that have both values, as ``x``
    markers. Unsupported trials measured nothing of the workload (a WebSocket probe
    answered 404): they get no marker; charts name them (:func:`_note_unsupported`)."""
    rows = a.trials[(a.trials["server"] == server)
                    & ~a.trials["status"].isin(("ok", "unsupported"))]
    rows = rows.dropna(subset=[x_col, y_col])
    if rows.empty:
        return None
    return go.Scatter(
        x=_rounded(rows[x_col], 3), y=_rounded(rows[y_col] * scale, 4),
        name=f"{server} (not valid)", legendgroup=server, mode="markers",
        marker={"symbol": "x", "size": 11, "color": style.colour},
        hovertext=[_status_text(s, r) for s, r in zip(rows["status"], rows["reason"],
                                                        strict=True)],
        hovertemplate=(f"{server}<br>{x_title} %{{x}}<br>{label} %{{y:.2f}} {unit}"
                       "<extra>%{hovertext}</extra>"),
    )


def _level_traces(a: _Analysis, metric: str, label: str, unit: str,
                  scale: float = 1.0) -> list[go.Scatter]:
    """Per config: the median over ok repeats of ``metric`` vs users (one line), then the
    non-ok trials that have a value as ``x`` markers in a "(not valid)" trace."""
    x_unit = "req/s offered" if a.level == "offered_rps" else "users"
    traces: list[go.Scatter] = []
    for server, style in a.styles.items():
        ok = _ok_levels(a, server).dropna(subset=[f"{metric}_median"])
        if not ok.empty:
            traces.append(go.Scatter(
                x=_rounded(ok[a.level], 3), y=_rounded(ok[f"{metric}_median"] * scale, 4),
                name=server, legendgroup=server, mode="lines+markers",
                line={"color": style.colour, "dash": style.dash},
                marker={"symbol": style.symbol, "size": 8, "color": style.colour},
                hovertemplate=f"{server}<br>%{{x}} {x_unit}<br>{label} %{{y:.2f}} {unit}"
                              "<extra>ok (median)</extra>",
            ))
        bad = _not_valid_trace(a, server, style, a.level, metric, label, unit, scale,
                               x_title=x_unit)
        if bad is not None:
            traces.append(bad)
    return traces


def _reference_line(x: Sequence[float | None], y: Sequence[float | None], name: str, colour: str,
                    dash: str, legendgroup: str | None = None,
                    width: float = 1.5) -> go.Scatter:
    """A line that is a bound or a model, not a measurement (marked in ``meta``)."""
    return go.Scatter(x=list(x), y=list(y), name=name, mode="lines", legendgroup=legendgroup,
                      line={"color": colour, "dash": dash, "width": width},
                      meta={"reference": True}, hoverinfo="name+y")


def _throughput_figure(a: _Analysis) -> go.Figure:
    traces = _level_traces(a, "throughput_rps", "throughput", a.rate_unit)
    for trace in traces:  # 95 % CI of the mean over repeats, as asymmetric bars
        if trace.name.endswith("(not valid)"):
            continue
        ok = _ok_levels(a, trace.name).dropna(subset=["throughput_rps_median"])
        high = (ok["throughput_rps_ci_high"] - ok["throughput_rps_median"]).clip(lower=0)
        low = (ok["throughput_rps_median"] - ok["throughput_rps_ci_low"]).clip(lower=0)
        if high.notna().any():
            trace.error_y = {"type": "data", "symmetric": False, "array": _rounded(high, 2),
                             "arrayminus": _rounded(low, 2), "thickness": 1, "width": 4}
    fig = go.Figure(traces)
    for server, style in a.styles.items():
        rows = a.trials[a.trials["server"] == server].dropna(subset=[a.level, "ceiling_rps"])
        if not rows.empty:
            ceiling = rows.groupby(a.level)["ceiling_rps"].median().sort_index()
            fig.add_trace(_reference_line(ceiling.index, _rounded(ceiling, 2),
                                          f"{server} ceiling (Little's law)", style.colour,
                                          "dot", server, 1))
        fit = a.fits.get(server)
        ok = _ok_levels(a, server)
        if fit is not None and len(ok) and a.level == "users":
            grid = np.linspace(float(ok["users"].min()), float(ok["users"].max()), 60)
            fig.add_trace(_reference_line(
                _rounded(grid, 2), _rounded(fit.throughput(grid), 2),
                f"{server} USL fit (σ={fit.sigma:.3f}, κ={fit.kappa:.2g}, R²={fit.r2:.3f})",
                style.colour, "dashdot", server, 1))
    fig.update_layout(title="Throughput vs load (successful responses; bars: 95 % CI of the "
                            "mean over repeats; dotted: Little's-law ceiling; dash-dot: USL fit)",
                      xaxis_title=a.level_title,
                      yaxis_title=f"throughput ({a.rate_unit})", template="plotly_white")
    return fig


def _latency_figure(a: _Analysis) -> go.Figure:
    """Three panels: p50, p95, p99 (ms, log) vs achieved throughput; SLO p99 on the last."""
    panels = (("p50", "latency_p50_ms"), ("p95", "latency_p95_ms"), ("p99", "latency_p99_ms"))
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True,
                        subplot_titles=[label for label, _ in panels])
    max_rps = 0.0
    for col, (label, metric) in enumerate(panels, start=1):
        for server, style in a.styles.items():
            ok = _ok_levels(a, server).dropna(subset=[f"{metric}_median",
                                                      "throughput_rps_median"])
            if not ok.empty:
                max_rps = max(max_rps, float(ok["throughput_rps_median"].max()))
                fig.add_trace(go.Scatter(
                    x=_rounded(ok["throughput_rps_median"], 2),
                    y=_rounded(ok[f"{metric}_median"], 3),
                    customdata=[a.level_text(v) for v in ok[a.level]],
                    name=server, legendgroup=server, mode="lines+markers",
                    line={"color": style.colour, "dash": style.dash},
                    marker={"symbol": style.symbol, "size": 8, "color": style.colour},
                    hovertemplate=(f"{server}<br>%{{customdata}}<br>%{{x:.1f}} {a.rate_unit}<br>"
                                   f"{label} %{{y:.2f}} ms<extra>ok (median)</extra>"),
                ), row=1, col=col)
            bad = _not_valid_trace(a, server, style, "throughput_rps", metric, label, "ms",
                                   x_title=a.rate_unit)
            if bad is not None:
                fig.add_trace(bad, row=1, col=col)
    if not fig.data:
        return fig
    max_rps = max(max_rps, _float(a.trials["throughput_rps"].max()) if len(a.trials) else 0.0)
    if a.slo.p99_ms > 0:
        fig.add_trace(_reference_line([0, max_rps * 1.05 or 1.0], [a.slo.p99_ms] * 2,
                                      f"SLO p99 {a.slo.p99_ms:g} ms", _SLO_COLOUR, "dash"),
                      row=1, col=len(panels))
    _dedupe_legend(fig)
    fig.update_layout(title="Latency percentiles vs achieved throughput (median of ok repeats)",
                      template="plotly_white")
    fig.update_yaxes(type="log", title_text="latency (ms, log scale)", row=1, col=1)
    fig.update_yaxes(type="log")
    fig.update_xaxes(title_text=f"throughput ({a.rate_unit})")
    return fig


def _cdf_points(latencies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF (x ms ascending, y = fraction <= x), at most CDF_MAX_POINTS points:
    evenly spaced ranks over the body plus every one of the slowest CDF_TAIL_POINTS."""
    x = np.sort(latencies)
    n = len(x)
    y = np.arange(1, n + 1) / n
    if n > CDF_MAX_POINTS:
        body = np.linspace(0, n - CDF_TAIL_POINTS - 1, CDF_MAX_POINTS - CDF_TAIL_POINTS)
        idx = np.unique(np.concatenate([body.round().astype(int),
                                        np.arange(n - CDF_TAIL_POINTS, n)]))
        x, y = x[idx], y[idx]
    return x, y


def _cdf_figure(a: _Analysis) -> go.Figure:
    fig = go.Figure()
    kinds: set[str] = set()
    for server, trial in _representatives(a).items():
        latencies, kind = measured_latencies(a.run, trial)
        if not len(latencies):
            continue
        kinds.add(kind)
        style = a.styles[server]
        x, y = _cdf_points(latencies)
        level = _float(trial[a.level])
        basis = ("max sustainable level" if _sustainable_level(a, server) == level
                 else "highest ok level")
        fig.add_trace(go.Scatter(
            x=_significant(x), y=_rounded(y, 5), name=f"{server} @ {a.level_text(level)}",
            legendgroup=server, mode="lines",
            line={"color": style.colour, "dash": style.dash, "width": 1.5},
            hovertemplate=(f"{server}, {a.level_text(level)} ({basis}), trial "
                           f"{trial['trial_id']}<br>%{{y:.2%}} of {len(latencies)} {kind} "
                           "records ≤ %{x:.2f} ms<extra></extra>"),
        ))
    if fig.data and a.slo.p99_ms > 0:
        fig.add_trace(_reference_line([a.slo.p99_ms] * 2, [0, 1],
                                      f"SLO p99 {a.slo.p99_ms:g} ms", _SLO_COLOUR, "dash"))
        fig.add_trace(_reference_line([0, 0], [0.99, 0.99], "99 %", "#999", "dot", width=1))
        xs = [v for t in fig.data for v in t.x if v]
        fig.data[-1].x = (min(xs), max(xs))
    what = "" if kinds <= {"request"} else f" ({', '.join(sorted(kinds))} records)"
    fig.update_layout(title=(f"Latency distribution (CDF){what} in the measurement window: each "
                             "config at its max sustainable level, else its highest ok level"),
                      xaxis={"type": "log", "title": "latency (ms, log scale)"},
                      yaxis={"title": "fraction of requests ≤ latency", "range": [0, 1.02]},
                      template="plotly_white")
    return fig


def _error_figure(a: _Analysis) -> go.Figure:
    fig = go.Figure(_level_traces(a, "error_rate", "errors", "%", scale=100.0))
    levels = a.trials[a.level].dropna()
    if fig.data and len(levels):
        fig.add_trace(_reference_line([levels.min(), levels.max()],
                                      [100 * a.slo.max_error_rate] * 2,
                                      f"SLO errors ≤ {100 * a.slo.max_error_rate:g} %",
                                      _SLO_COLOUR, "dash"))
    fig.update_layout(title="Error rate vs load (failed / completed requests in the window)",
                      xaxis_title=a.level_title, yaxis_title="errors (%)",
                      template="plotly_white")
    return fig


def _dedupe_legend(fig: go.Figure) -> None:
    """Show each trace name once in the legend (the panels repeat the same configs)."""
    seen: set[str] = set()
    for trace in fig.data:
        trace.showlegend = trace.name not in seen
        seen.add(trace.name)


def _timeline_figure(a: _Analysis, metric: str, title: str, y_title: str) -> go.Figure:
    """Server-side ``metric`` vs run time (s), one trace per config and repeat, with each
    trial's measurement window (t_start_s..t_end_s) shaded in its config's colour."""
    server_side = a.samples[a.samples["source"] == "server"].dropna(subset=["t_s", metric])
    parts = []
    for server in a.styles:
        repeats = server_side[server_side["server"] == server].groupby(
            "repeat", dropna=False, sort=True)
        parts += [(server, repeat, repeats.ngroups, part) for repeat, part in repeats]
    # a page-size budget: long runs with many configs keep fewer points per trace
    limit = min(MAX_POINTS_PER_TRACE, max(200, MAX_POINTS_PER_CHART // max(1, len(parts))))
    traces = []
    for server, repeat, n_repeats, part in parts:
        style = a.styles[server]
        name = server if n_repeats == 1 else f"{server} #{_int(repeat)}"
        part = _thin(part.sort_values("t_s"), limit)
        traces.append(go.Scatter(
            x=_rounded(part["t_s"], 1), y=_rounded(part[metric], 1), name=name,
            legendgroup=server, mode="lines",
            line={"color": style.colour, "dash": style.dash, "width": 1.5},
            hovertemplate=f"{name}<br>t %{{x:.1f}} s<br>%{{y:.1f}}<extra></extra>",
        ))
    fig = go.Figure(traces)
    shapes, notes = _windows(a) if traces else ([], [])
    fig.update_layout(title=f"{title} (shaded: measurement windows, labelled with their level)",
                      xaxis_title="time since run start (s)", yaxis_title=y_title,
                      template="plotly_white", shapes=shapes, annotations=notes)
    return fig


def _thin(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """Every k-th row so that at most ``limit`` rows remain (peaks may fall between)."""
    step = max(1, math.ceil(len(frame) / limit))
    return frame.iloc[::step]


def _windows(a: _Analysis) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A shaded rectangle and a label per trial window, built at once (one layout update
    instead of one ``add_vrect`` per trial keeps a 200-trial report fast)."""
    shapes, notes = [], []
    for row in a.trials.dropna(subset=["t_start_s", "t_end_s"]).itertuples(index=False):
        style = a.styles.get(row.server)
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": row.t_start_s,
                       "x1": row.t_end_s, "y0": 0, "y1": 1, "line": {"width": 0},
                       "opacity": 0.12, "layer": "below",
                       "fillcolor": style.colour if style else "#999"})
        notes.append({"x": row.t_start_s, "xref": "x", "y": 1, "yref": "paper",
                      "text": a.level_label(getattr(row, a.level)) + (
                          "" if row.status == "ok" else f" {row.status}"),
                      "showarrow": False, "xanchor": "left", "yanchor": "top",
                      "font": {"size": 10}})
    return shapes, notes


# --- stream charts (SSE, WebSocket) ---------------------------------------------------


def _stream_figures(a: _Analysis) -> dict[str, go.Figure]:
    """The charts of a stream run, keyed by the :data:`STREAM_CHART_KEYS` its protocol has."""
    figs: dict[str, go.Figure] = {}
    if a.protocol == "sse":
        figs["ttfe"] = _panels_figure(
            a, (("p50", "ttfe_ms_p50"), ("p99", "ttfe_ms_p99")), "ms",
            "Time to first event vs load (SSE; median of ok repeats; a client queued for a "
            "worker waits here)", "time to first event (ms, log scale)", slo_panel=True)
        figs["event_lag"] = _panels_figure(
            a, (("p50", "event_lag_ms_p50"), ("p99", "event_lag_ms_p99")), "ms",
            "Event lag vs load (SSE: server send to client receipt, per event)",
            "event lag (ms, log scale)")
        figs["events_rate"] = _rate_figure(a, "events_per_s", "events", "events/s",
                                           "Events delivered per second vs load (SSE)")
    elif a.protocol == "websocket":
        figs["rtt"] = _panels_figure(
            a, (("p50", "rtt_ms_p50"), ("p99", "rtt_ms_p99")), "ms",
            "Echo round-trip time vs load (WebSocket; median of ok repeats)",
            "round-trip time (ms, log scale)", slo_panel=True)
        figs["messages_rate"] = _rate_figure(a, "messages_per_s", "messages", "messages/s",
                                             "Echoes received per second vs load (WebSocket)")
    figs["connections"] = _connections_figure(a)
    figs["pss_per_connection"] = _pss_per_connection_figure(a)
    return figs


def _panels_figure(a: _Analysis, panels: Sequence[tuple[str, str]], unit: str, title: str,
                   y_title: str, *, slo_panel: bool = False, log: bool = True) -> go.Figure:
    """One panel per (label, metric): its median over ok repeats vs the level, per config,
    non-ok trials as ``x``; the SLO p99 (the headline latency's bound) on the last panel
    when ``slo_panel``."""
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True,
                        subplot_titles=[label for label, _ in panels])
    for col, (label, metric) in enumerate(panels, start=1):
        for trace in _level_traces(a, metric, label, unit):
            fig.add_trace(trace, row=1, col=col)
    levels = a.trials[a.level].dropna()
    if fig.data and slo_panel and a.slo.p99_ms > 0 and len(levels):
        fig.add_trace(_reference_line([levels.min(), levels.max()], [a.slo.p99_ms] * 2,
                                      f"SLO p99 {a.slo.p99_ms:g} ms", _SLO_COLOUR, "dash"),
                      row=1, col=len(panels))
    _dedupe_legend(fig)
    fig.update_layout(title=title, template="plotly_white")
    fig.update_xaxes(title_text=a.level_title)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    if log:
        fig.update_yaxes(type="log")
    return fig


def _rate_figure(a: _Analysis, metric: str, label: str, unit: str, title: str) -> go.Figure:
    fig = go.Figure(_level_traces(a, metric, label, unit))
    fig.update_layout(title=f"{title}: median of ok repeats", xaxis_title=a.level_title,
                      yaxis_title=f"{label} per second ({unit})", template="plotly_white")
    return fig


def _connections_figure(a: _Analysis) -> go.Figure:
    """Connections held vs offered: the peak of established TCP connections the server
    held (sampler, ~1 Hz) and the mean of streams in progress (answered, not ended:
    ``concurrent_served_mean``), per config, with y = x (every offered client held)."""
    panels = (("held: TCP connections, peak", "concurrent_connections_peak"),
              ("served: streams in progress, mean", "concurrent_served_mean"))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True,
                        subplot_titles=[label for label, _ in panels])
    for col, (label, metric) in enumerate(panels, start=1):
        for trace in _level_traces(a, metric, label.split(":")[0], "connections"):
            fig.add_trace(trace, row=1, col=col)
    levels = a.trials[a.level].dropna()
    if fig.data and a.level == "users" and len(levels):
        top = float(levels.max())
        for col in (1, 2):
            fig.add_trace(_reference_line([0, top], [0, top],
                                          "y = x: every offered client held", "#999", "dot"),
                          row=1, col=col)
    _dedupe_legend(fig)
    fig.update_layout(title=("Concurrent connections held vs offered (median of ok repeats; "
                             "dotted: y = x, every offered client held at once)"),
                      template="plotly_white")
    fig.update_xaxes(title_text=a.level_title)
    fig.update_yaxes(title_text="concurrent connections", row=1, col=1)
    return fig


def per_connection_fits(run: RunData) -> dict[str, tuple[float, float, int]]:
    """Per config with ok trials: (PSS per held connection in KiB, the line's intercept
    in MiB, repeats) as the PSS-per-connection chart draws it.

    The slope is the median over repeats of the trials' ``pss_kib_per_connection``
    (the runner's least-squares slope of PSS against ``concurrent_connections_peak``
    across one repeat's ok levels, :func:`harness.streams.pss_kib_per_connection`);
    the intercept puts the line through the mean of the ok points (where a
    least-squares line passes). NaN slope and intercept when no repeat has a slope
    (fewer than two distinct connection counts).
    """
    return _per_connection_fits(_analyse(run))


def _per_connection_fits(a: _Analysis) -> dict[str, tuple[float, float, int]]:
    fits: dict[str, tuple[float, float, int]] = {}
    if "pss_kib_per_connection" not in a.trials:
        return fits
    for server in a.configs:
        ok = a.trials[(a.trials["server"] == server) & (a.trials["status"] == "ok")]
        points = ok.dropna(subset=["concurrent_connections_peak", "pss_mib_peak"])
        if points.empty:
            continue
        slopes = ok.dropna(subset=["pss_kib_per_connection"]).groupby(
            "repeat", dropna=False)["pss_kib_per_connection"].median()
        if slopes.empty:
            fits[server] = (math.nan, math.nan, 0)
            continue
        slope = float(slopes.median())
        intercept = float(points["pss_mib_peak"].mean()
                          - slope / 1024.0 * points["concurrent_connections_peak"].mean())
        fits[server] = (slope, intercept, len(slopes))
    return fits


def _no_slope(ok: pd.DataFrame) -> str:
    """Why a config's ok trials give no PSS-per-connection slope."""
    held = sorted({_int(v) for v in ok["concurrent_connections_peak"].dropna()}, key=float)
    if ok.dropna(subset=["concurrent_connections_peak", "pss_mib_peak"])[
            ["users", "offered_rps"]].drop_duplicates().shape[0] < 2:
        return "fewer than two ok levels with PSS and connections"
    return f"held {', '.join(held) or 'no'} connection(s) at every ok level"


def _pss_per_connection_figure(a: _Analysis) -> go.Figure:
    """PSS peak (MiB) of each trial vs the connections it held at peak; per config the
    fitted line whose slope, in KiB per connection, its legend entry states."""
    fig = go.Figure()
    fits = _per_connection_fits(a)
    for server, style in a.styles.items():
        rows = a.trials[a.trials["server"] == server].dropna(
            subset=["concurrent_connections_peak", "pss_mib_peak"])
        ok = rows[rows["status"] == "ok"].sort_values("concurrent_connections_peak")
        slope, intercept, repeats = fits.get(server, (math.nan, math.nan, 0))
        if not ok.empty:
            why = "" if not math.isnan(slope) else f" (no slope: {_no_slope(ok)})"
            fig.add_trace(go.Scatter(
                x=_rounded(ok["concurrent_connections_peak"], 1),
                y=_rounded(ok["pss_mib_peak"], 3), name=f"{server}{why}", legendgroup=server,
                mode="markers", customdata=[a.level_text(v) for v in ok[a.level]],
                marker={"symbol": style.symbol, "size": 9, "color": style.colour},
                hovertemplate=(f"{server}<br>%{{customdata}}<br>%{{x:.0f}} connections held"
                               "<br>PSS %{y:.2f} MiB<extra>ok</extra>"),
            ))
        if not math.isnan(slope):
            xs = [float(ok["concurrent_connections_peak"].min()),
                  float(ok["concurrent_connections_peak"].max())]
            ys = [intercept + slope / 1024.0 * x for x in xs]
            over = "" if repeats == 1 else f", median of {repeats} repeats"
            fig.add_trace(_reference_line(
                xs, _rounded(ys, 6),  # KiB-exact: the slope must read back from the line
                f"{server} fit: {slope:.1f} KiB PSS per connection{over}", style.colour,
                style.dash, server, 1.5))
        bad = _not_valid_trace(a, server, style, "concurrent_connections_peak",
                               "pss_mib_peak", "PSS", "MiB", x_title="connections")
        if bad is not None:
            fig.add_trace(bad)
    fig.update_layout(title=("Memory per held connection: PSS peak vs connections held, a "
                             "point per trial (lines: least-squares fit, slope in KiB per "
                             "connection in the legend)"),
                      xaxis_title="concurrent connections held (peak, TCP)",
                      yaxis_title="PSS peak, whole server tree (MiB)",
                      template="plotly_white")
    return fig


def _unsupported_configs(a: _Analysis) -> dict[str, str]:
    """Configs whose every trial is ``unsupported``: name -> reason(s), "; "-joined."""
    out: dict[str, str] = {}
    for server in a.configs:
        rows = a.trials[a.trials["server"] == server]
        if len(rows) and (rows["status"] == "unsupported").all():
            out[server] = "; ".join(sorted({r for r in rows["reason"] if r})) or "no reason"
    return out


def _note_unsupported(a: _Analysis, fig: go.Figure) -> None:
    """Say under the chart's title which configs are unsupported, and why: they have no
    line (plotly's subtitle idiom, a ``<br><sup>`` second line)."""
    unsupported = _unsupported_configs(a)
    if not unsupported or not _has_data(fig):
        return
    text = "unsupported (no line): " + "; ".join(f"{s} ({r})" for s, r in unsupported.items())
    fig.update_layout(title_text=f"{fig.layout.title.text}<br><sup>{_e(text)}</sup>")


# --- backends side by side; the engine's view of memory --------------------------------

#: Columns of :func:`engine_memory`.
ENGINE_COLUMNS = ("server", "interface", "backend", "windows", "engine_mib_peak",
                  "engine_mib_mean", "pss_mib_peak", "rss_mib_peak", "engine_minus_pss_mib",
                  "engine_to_pss")


def engine_memory(run: RunData) -> pd.DataFrame:
    """The container engine's memory figure beside psutil's PSS, per server config.

    Over the measurement windows of the config's ok trials: ``engine_mib_peak`` /
    ``engine_mib_mean`` (MiB) from ``samples.csv`` rows with ``source == "engine"`` (the
    docker engine's stats: cgroup memory usage less inactive page cache, in
    ``rss_mib``); ``pss_mib_peak`` and ``rss_mib_peak`` (MiB) from psutil's samples of
    the same processes (``source == "server"``); ``engine_minus_pss_mib`` = engine peak
    - PSS peak (MiB) and ``engine_to_pss`` = engine peak / PSS peak. ``windows``: ok
    trials with at least one engine sample. Columns :data:`ENGINE_COLUMNS`, one row per
    config that has engine samples; empty when the run has none (local backend).
    """
    return _engine_memory(_analyse(run))


def _engine_memory(a: _Analysis) -> pd.DataFrame:
    engine = a.samples[a.samples["source"] == "engine"].dropna(subset=["t_s", "rss_mib"])
    if engine.empty:
        return pd.DataFrame(columns=list(ENGINE_COLUMNS))
    server_side = a.samples[a.samples["source"] == "server"].dropna(subset=["t_s"])
    ok = a.trials[a.trials["status"] == "ok"].dropna(subset=["t_start_s", "t_end_s"])
    rows = []
    for server in a.configs:
        windows = ok[ok["server"] == server]
        inside_e: list[pd.DataFrame] = []
        inside_s: list[pd.DataFrame] = []
        for t in windows.itertuples(index=False):
            e = engine[(engine["server"] == server) & (engine["t_s"] >= t.t_start_s)
                       & (engine["t_s"] < t.t_end_s)]
            if e.empty:
                continue
            inside_e.append(e)
            inside_s.append(server_side[(server_side["server"] == server)
                                        & (server_side["t_s"] >= t.t_start_s)
                                        & (server_side["t_s"] < t.t_end_s)])
        if not inside_e:
            continue
        e_all, s_all = pd.concat(inside_e), pd.concat(inside_s)
        peak, pss = float(e_all["rss_mib"].max()), _float(s_all["pss_mib"].max())
        backends = sorted({b for b in windows["backend"] if b})
        rows.append({"server": server, "interface": a.configs[server],
                     "backend": ", ".join(backends) or str(a.run.meta.get("backend") or ""),
                     "windows": len(inside_e), "engine_mib_peak": peak,
                     "engine_mib_mean": float(e_all["rss_mib"].mean()), "pss_mib_peak": pss,
                     "rss_mib_peak": _float(s_all["rss_mib"].max()),
                     "engine_minus_pss_mib": peak - pss,
                     "engine_to_pss": peak / pss if pss > 0 else math.nan})
    return pd.DataFrame(rows, columns=list(ENGINE_COLUMNS))


def _engine_html(a: _Analysis) -> str:
    table = _engine_memory(a)
    if table.empty:
        return ""
    rows: list[tuple[str, Sequence[Cell]]] = [(str(r.interface), [
        str(r.server), str(r.interface or _DASH), _n(r.windows, 0), _n(r.engine_mib_peak),
        _n(r.engine_mib_mean), _n(r.pss_mib_peak), _n(r.rss_mib_peak),
        _n(r.engine_minus_pss_mib), _n(r.engine_to_pss, 2)])
        for r in table.itertuples(index=False)]
    columns = [("server config", False), ("interface", False), ("windows", True),
               ("engine memory peak MiB", True), ("engine memory mean MiB", True),
               ("PSS peak MiB (psutil)", True), ("RSS peak MiB (psutil)", True),
               ("engine − PSS MiB", True), ("engine ÷ PSS", True)]
    diff = table["engine_minus_pss_mib"].dropna()
    ratio = table["engine_to_pss"].dropna()
    if len(diff):
        side = ("above" if (diff > 0).all() else "below" if (diff < 0).all()
                else "on either side of")
        measured = (f"Here the engine's peak was {_num(diff.abs().min())}–"
                    f"{_num(diff.abs().max())} MiB {side} the PSS peak "
                    f"({_num(ratio.min(), 2)}–{_num(ratio.max(), 2)}×) over "
                    f"{len(diff)} config(s). ")
    else:
        measured = "PSS was not sampled in these windows, so the two cannot be compared. "
    text = (f'<p class="note">{_e(measured)}The engine reports the container cgroup\'s '
            "memory charge less its inactive page cache (as <code>docker stats</code> does): "
            "each page is charged once, in full, to the cgroup that first used it, however "
            "many processes map it, and the charge includes kernel memory spent for the "
            "container (socket buffers, page tables, slab) and active page cache. PSS is "
            "psutil's sum over the server's processes of their own mappings, each shared page "
            "split among the processes that map it, kernel memory not included. The engine's "
            "figure is what a memory limit is enforced against; PSS is what this report "
            "compares configs by. Both over the measurement windows of ok trials.</p>")
    return text + _table(columns, rows)


#: Columns of :func:`backend_comparison`.
BACKEND_COLUMNS = (
    "scenario", "server", "interface", "workers", "users", "offered_rps", "baseline",
    "backend", *(f"{m}_{side}" for m, _ in BACKEND_METRICS for side in ("baseline", "other")),
    *(f"{m}_ratio" for m, _ in BACKEND_METRICS), "state_baseline", "state")


def _run_backend(run: RunData) -> str:
    return str(run.meta.get("backend") or "")


def backend_comparison(runs: Sequence[RunData]) -> pd.DataFrame:
    """The same scenario under different backends, level by level.

    Runs are grouped by scenario (name and request, so different parameters never meet);
    a trial's backend is its ``backend`` column, else run.json's ``backend``, else
    ``local``. Within a scenario measured under two or more backends, the baseline is
    ``local`` when present (else the first by name) and every other backend is set
    beside it per (server, workers, level): for each of :data:`BACKEND_METRICS`
    (throughput req/s, p99 ms, PSS peak MiB) the median over ok repeats on each side
    (``<metric>_baseline``, ``<metric>_other``) and ``<metric>_ratio`` = other /
    baseline. ``state_baseline`` / ``state``: ``ok``, or why there is no figure (``"not
    measured"``, ``"unsupported: <reason>"``, ...). Columns :data:`BACKEND_COLUMNS`;
    empty when no scenario has two backends.
    """
    frames = []
    for run in runs:
        trials = _trials(run)
        if trials.empty:
            continue
        scenario = _scenario(run.meta)
        name = str(scenario.get("name") or "")
        fallback = _run_backend(run) or "local"
        trials["backend"] = [b or fallback for b in trials["backend"]]
        trials["scenario"] = [(name or t or "?") + "\t" + str(scenario.get("request_path") or "")
                              for t in trials["scenario"]]
        frames.append(trials)
    trials = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if trials.empty or trials.groupby("scenario")["backend"].nunique().max() < 2:
        return pd.DataFrame(columns=list(BACKEND_COLUMNS))
    metrics = tuple(m for m, _ in BACKEND_METRICS)
    levels = stats.summarize_repeats(trials, metrics)
    keys = ["scenario", "server", "workers", "users", "offered_rps"]
    rows = []
    for workload, part in levels.groupby("scenario", sort=True):
        backends = sorted(set(part["backend"]), key=lambda b: (b != "local", b))
        if len(backends) < 2:
            continue
        baseline = backends[0]
        for key, group in part.groupby(keys[1:], dropna=False, sort=True):
            base = group[group["backend"] == baseline]
            for other in backends[1:]:
                mine = group[group["backend"] == other]
                row: dict[str, Any] = dict(zip(keys, (workload, *key), strict=True))
                row.update(scenario=str(workload).split("\t")[0], baseline=baseline,
                           backend=other,
                           interface=_first_text(group["interface"]),
                           state_baseline=_level_state(trials, base, workload, key, baseline),
                           state=_level_state(trials, mine, workload, key, other))
                for metric in metrics:
                    b = _float(base[f"{metric}_median"].iloc[0]) if len(base) else math.nan
                    o = _float(mine[f"{metric}_median"].iloc[0]) if len(mine) else math.nan
                    row[f"{metric}_baseline"], row[f"{metric}_other"] = b, o
                    row[f"{metric}_ratio"] = o / b if b > 0 and not math.isnan(o) else math.nan
                rows.append(row)
    return pd.DataFrame(rows, columns=list(BACKEND_COLUMNS))


def _first_text(values: Iterable[Any]) -> str:
    return next((str(v) for v in values if isinstance(v, str) and v), "")


def _level_state(trials: pd.DataFrame, summary: pd.DataFrame, workload: Any,
                 key: tuple[Any, ...], backend: str) -> str:
    """``ok`` when ``summary`` (one level of one backend) has ok repeats, else why not."""
    if summary.empty:
        return "not measured"
    if int(summary["n"].iloc[0]) > 0:
        return "ok"
    server, workers, users, offered = key
    rows = trials[(trials["scenario"] == workload) & (trials["server"] == server)
                  & (trials["backend"] == backend)
                  & _same(trials["workers"], workers) & _same(trials["users"], users)
                  & _same(trials["offered_rps"], offered)]
    if rows.empty:
        return "no ok trial"
    status = min(set(rows["status"]), key=lambda x: (_STATUS_ORDER.get(x, 9), x))
    reasons = sorted({r for r in rows.loc[rows["status"] == status, "reason"] if r})
    return f"{status}: {'; '.join(reasons)}" if reasons else status


def _same(column: pd.Series, value: Any) -> pd.Series:
    """Elementwise equality where NaN equals NaN (group keys may be NaN)."""
    return column.isna() if pd.isna(value) else column == value


def _backends_html(runs: Sequence[RunData]) -> str:
    table = backend_comparison(runs)
    if table.empty:
        return ""
    parts = ['<section class="backends" id="backends"><h2>Backends side by side</h2>']
    for (scenario, baseline, other), part in table.groupby(["scenario", "baseline", "backend"],
                                                           sort=True):
        parts.append(f"<h3>{_e(scenario)}: {_e(other)} vs {_e(baseline)}</h3>")
        parts.append(_backend_summary(part, str(baseline), str(other)))
        columns: list[tuple[str, bool]] = [("server config", False), ("interface", False),
                                           ("workers", True), ("users", True)]
        for _, label in BACKEND_METRICS:
            columns += [(f"{label} {baseline}", True), (f"{label} {other}", True),
                        (f"{label} {other} ÷ {baseline}", True)]
        columns.append(("note", False))
        rows: list[tuple[str, Sequence[Cell]]] = []
        for r in part.to_dict("records"):
            cells: list[Cell] = [str(r["server"]), str(r["interface"] or _DASH),
                                 _n(r["workers"], 0), _n(r["users"], 0)]
            for metric, _ in BACKEND_METRICS:
                digits = 2 if metric == "latency_p99_ms" else 1
                cells += [_n(r[f"{metric}_baseline"], digits), _n(r[f"{metric}_other"], digits),
                          _n(r[f"{metric}_ratio"], 2)]
            notes = [f"{side}: {state}" for side, state in
                     ((baseline, r["state_baseline"]), (other, r["state"])) if state != "ok"]
            cells.append("; ".join(notes))
            ok = r["state_baseline"] == "ok" and r["state"] == "ok"
            unsupported = any(str(x).startswith("unsupported")
                              for x in (r["state_baseline"], r["state"]))
            state = "ok" if ok else ("not-valid unsupported" if unsupported else "mixed")
            rows.append((f"{r['interface']} {state}", cells))
        slug = re.sub(r"[^A-Za-z0-9-]+", "-", f"{scenario}-{other}-{baseline}")
        parts.append(_table(columns, rows, table_id=f"backends-{slug}", sortable=True))
    parts.append('<p class="note">Medians over ok repeats of each backend\'s trials at the '
                 "same server config, workers and level; ratio = the other backend's figure ÷ "
                 "the baseline's (above 1: more throughput, a slower p99, more memory). "
                 "Levels without an ok trial on a side show why in the note and have no "
                 "ratio.</p></section>")
    return "".join(parts)


def _backend_summary(part: pd.DataFrame, baseline: str, other: str) -> str:
    """One sentence: the median ratio of each metric over the levels both sides measured."""
    said = []
    for metric, label in BACKEND_METRICS:
        ratios = part[f"{metric}_ratio"].dropna()
        if len(ratios):
            said.append(f"{label} {_num(ratios.median(), 2)}× (range "
                        f"{_num(ratios.min(), 2)}–{_num(ratios.max(), 2)})")
    if not said:
        return (f'<p class="note">No level has ok trials under both {_e(baseline)} and '
                f"{_e(other)}: nothing to compare.</p>")
    matched = int(part[[f"{m}_ratio" for m, _ in BACKEND_METRICS]].notna().any(axis=1).sum())
    return (f"<p>{_e(other)} ÷ {_e(baseline)}, median over {matched} level(s) measured ok "
            f"under both: {_e('; '.join(said))}.</p>")


# --- verdict --------------------------------------------------------------------------


def _ok_throughputs(a: _Analysis, server: str, level: float) -> np.ndarray:
    """Throughput (req/s) of each ok repeat of ``server`` at ``level``."""
    rows = a.trials[(a.trials["server"] == server) & (a.trials["status"] == "ok")
                    & (a.trials[a.level] == level)]
    return rows["throughput_rps"].dropna().to_numpy(dtype=float)


def _verdict(a: _Analysis) -> list[str]:
    """Sentences from the capacity table; each claim carries its number."""
    slo_text = (f"p99 ≤ {a.slo.p99_ms:g} ms and errors ≤ {100 * a.slo.max_error_rate:g} %")
    statuses = a.trials["status"].value_counts()
    out: list[str] = []
    not_ok = int(len(a.trials) - statuses.get("ok", 0))
    excluded = ""
    if not_ok:
        parts = ", ".join(f"{n} {s or '(no status)'}" for s, n in statuses.items() if s != "ok")
        excluded = (f"{not_ok} of {len(a.trials)} trials are not ok ({parts}) and are "
                    "excluded from every figure below (see Validity).")
    if a.trials.empty:
        return ["No trials: nothing to judge."]
    if not a.slo.p99_ms > 0:
        return [("This run records no SLO p99, so no level can be called sustainable: "
                 "re-render with --slo-p99-ms."), *([excluded] if excluded else [])]
    cap = a.capacity
    able = cap[cap["sustainable_rps"].notna()]
    unsupported = _unsupported_sentences(a)
    if able.empty:
        p99 = a.levels[a.levels["n"] > 0].dropna(subset=["latency_p99_ms_median"])
        if p99.empty:
            out.append(f"No server config has an ok trial to compare against the SLO "
                       f"({slo_text}).")
        else:
            low = p99.loc[p99["latency_p99_ms_median"].idxmin()]
            out.append(f"No server config met the SLO ({slo_text}) at any measured level: "
                       f"the lowest median p99 was {_num(low['latency_p99_ms_median'], 1)} ms "
                       f"({low['server']} at {a.level_text(low[a.level])}). There is no "
                       "sustainable throughput to plan capacity with.")
        return out + unsupported + ([excluded] if excluded else [])

    best = able.loc[able["sustainable_rps"].idxmax()]
    out.append(f"Most throughput within the SLO ({slo_text}): {best['server']} "
               f"({str(best['interface']).upper() or 'interface unknown'}), "
               f"{_num(best['sustainable_rps'], 1)} {a.rate_unit}{_ci_text(best)} at "
               f"{a.level_text(_cap_level(a, best))} (p99 "
               f"{_num(best['sustainable_p99_ms'], 1)} ms).")
    per_core = able.dropna(subset=["rps_per_core"])
    if len(per_core):
        top = per_core.loc[per_core["rps_per_core"].idxmax()]
        cpu = _float(top["sustainable_cpu_percent"])
        caveat = (f"; the server used only {cpu:.1f} % of a core there, so this "
                  "extrapolates far: waiting, not CPU, bounds this workload"
                  if cpu < LOW_CPU_PERCENT else "")
        out.append(f"Most throughput per core within the SLO: {top['server']}, "
                   f"{_num(top['rps_per_core'], 0)} {a.rate_unit} per fully used core "
                   f"({_num(top['sustainable_rps'], 1)} {a.rate_unit} at {_num(cpu, 1)} % of one "
                   f"core){caveat}.")
    per_conn = able.dropna(subset=["sustainable_pss_kib_per_connection"])
    memory = able.dropna(subset=["sustainable_pss_mib"])
    if len(per_conn):
        low = per_conn.loc[per_conn["sustainable_pss_kib_per_connection"].idxmin()]
        out.append(f"Least memory per connection at its sustainable level: {low['server']}, "
                   f"{_num(low['sustainable_pss_kib_per_connection'], 1)} KiB PSS per "
                   f"connection at {a.level_text(_cap_level(a, low))}.")
    elif len(memory):
        low = memory.loc[memory["sustainable_pss_mib"].idxmin()]
        out.append(f"Least memory at its sustainable level: {low['server']}, "
                   f"{_num(low['sustainable_pss_mib'], 1)} MiB PSS for the whole server "
                   f"({_num(low['pss_mib_per_worker'], 1)} MiB per worker, "
                   f"{_int(low['workers'])} worker(s)) at {a.level_text(_cap_level(a, low))}.")
    if a.stream:
        out.append(_per_connection_sentence(a))
    out.append(_interfaces_sentence(a, able))
    out += unsupported
    failing = cap[cap["sustainable_rps"].isna() & ~cap["server"].isin(_unsupported_configs(a))]
    if len(failing):
        out.append("Without a sustainable level: " + "; ".join(
            f"{r.server}: {r.note}" for r in failing.itertuples(index=False)) + ".")
    noisy = able[able["sustainable_noisy"]]
    if len(noisy):
        out.append("Repeats varied by more than 5 % (coefficient of variation) at the "
                   "sustainable level of " + ", ".join(noisy["server"]) + ": differences "
                   "smaller than that between these configs are not meaningful.")
    if a.stream:
        out.append(_headline_sentence(a))
    if excluded:
        out.append(excluded)
    return out


def _headline_sentence(a: _Analysis) -> str:
    """What throughput and "p99" mean in a stream run (harness.streams)."""
    if a.protocol == "sse":
        return ("In this SSE run, throughput (streams/s) counts streams whose first event "
                "arrived per second and latency (p99, the SLO) is the time to first event; "
                "events/s and event lag are in their own charts.")
    return ("In this WebSocket run, throughput (msg/s) counts echoes received per second "
            "and latency (p99, the SLO) is the echo round-trip time.")


def _unsupported_sentences(a: _Analysis) -> list[str]:
    """One sentence per (interface, reason) of the configs whose every trial is
    unsupported, e.g. "WebSocket: 4 WSGI configs unsupported (handshake answered 404 Not
    Found): ...; left out of the ranking." """
    groups: dict[tuple[str, str], list[str]] = {}
    for server, reason in _unsupported_configs(a).items():
        groups.setdefault((a.configs.get(server, ""), reason), []).append(server)
    out = []
    for (interface, reason), servers in sorted(
            groups.items(), key=lambda kv: (_INTERFACE_ORDER.get(kv[0][0], 2), kv[0][1])):
        prefix = f"{a.protocol_name} ".lower()
        short = reason[len(prefix):] if reason.lower().startswith(prefix) else reason
        kind = f"{interface.upper()} " if interface else ""
        plural = "s" if len(servers) != 1 else ""
        out.append(f"{a.protocol_name}: {len(servers)} {kind}config{plural} unsupported "
                   f"({short}): {', '.join(servers)}; shown as unsupported at every level "
                   "and left out of the ranking.")
    return out


def _per_connection_sentence(a: _Analysis) -> str:
    """Every config's PSS per held connection (KiB), ASGI first, smallest first."""
    fits = {s: f for s, f in _per_connection_fits(a).items()
            if s not in _unsupported_configs(a)}
    groups: list[str] = []
    for interface in sorted({a.configs.get(s, "") for s in fits},
                            key=lambda i: (-_INTERFACE_ORDER.get(i, -1), i)):
        have = sorted((f[0], s) for s, f in fits.items()
                      if a.configs.get(s, "") == interface and not math.isnan(f[0]))
        if have:
            groups.append(f"{interface.upper() or 'other'}: " + ", ".join(
                f"{s} {_num(k, 1)} KiB" for k, s in have))
    none = [s for s, f in fits.items() if math.isnan(f[0])]
    if not groups and not none:
        return ("Memory per held connection: no config had ok trials with PSS and "
                "connection counts.")
    text = ("Memory per held connection (least-squares slope of PSS peak against "
            "connections held, across levels): " + ("; ".join(groups) or "none measured"))
    for server in none:
        ok = a.trials[(a.trials["server"] == server) & (a.trials["status"] == "ok")]
        text += f"; no slope for {server}: {_no_slope(ok)}"
    return text + "."


def _ci_text(row: Any) -> str:
    low, high = _float(row["sustainable_rps_ci_low"]), _float(row["sustainable_rps_ci_high"])
    if math.isnan(low):
        return " (one repeat: no confidence interval)"
    return (f" (95 % CI of the mean {_num(low, 1)}–{_num(high, 1)}, "
            f"{_int(row['sustainable_n'])} repeats)")


def _interfaces_sentence(a: _Analysis, able: pd.DataFrame) -> str:
    """Best WSGI vs best ASGI max sustainable throughput, ratio and bootstrap CI."""
    measured = {str(i) for i in a.capacity["interface"]}
    best: dict[str, Any] = {}
    for interface in ("wsgi", "asgi"):
        mine = able[able["interface"] == interface]
        if len(mine):
            best[interface] = mine.loc[mine["sustainable_rps"].idxmax()]
    if len(best) < 2:
        present = sorted(i.upper() for i in measured if i in ("wsgi", "asgi"))
        if len(present) < 2:
            return (f"WSGI vs ASGI: only {' and '.join(present) or 'unlabelled'} configs were "
                    "measured in this run; no comparison.")
        (has,) = best
        missing = "asgi" if has == "wsgi" else "wsgi"
        row = best[has]
        theirs = [s for s, i in a.configs.items() if i == missing]
        if theirs and set(theirs) <= set(_unsupported_configs(a)):
            return (f"WSGI vs ASGI: no {missing.upper()} config can serve {a.protocol_name} "
                    f"({len(theirs)} measured, every one unsupported), so {has.upper()} is "
                    f"the only choice here; the best {has.upper()} config ({row['server']}) "
                    f"sustained {_num(row['sustainable_rps'], 1)} {a.rate_unit} at "
                    f"{a.level_text(_cap_level(a, row))}.")
        text = (f"WSGI vs ASGI: no {missing.upper()} config met the SLO, while the best "
                f"{has.upper()} config ({row['server']}) sustained "
                f"{_num(row['sustainable_rps'], 1)} {a.rate_unit}")
        peaks = a.capacity[(a.capacity["interface"] == missing)].dropna(subset=["peak_rps"])
        if len(peaks):
            peak = peaks.loc[peaks["peak_rps"].idxmax()]
            text += (f"; the best {missing.upper()} peak, outside the SLO, was {peak['server']} "
                     f"at {_num(peak['peak_rps'], 1)} {a.rate_unit} "
                     f"({a.level_text(_cap_level(a, peak, 'peak'))})")
        return text + "."
    wsgi, asgi = best["wsgi"], best["asgi"]
    ratio, low, high = stats.ratio_ci(
        _ok_throughputs(a, asgi["server"], _cap_level(a, asgi)),
        _ok_throughputs(a, wsgi["server"], _cap_level(a, wsgi)))
    if ratio >= 1:
        winner, loser, shown, lo, hi = asgi, wsgi, ratio, low, high
    else:
        winner, loser = wsgi, asgi
        shown, lo, hi = 1 / ratio, 1 / high if high else math.nan, 1 / low if low else math.nan
    text = (f"WSGI vs ASGI on this workload: the best {winner['interface'].upper()} config "
            f"({winner['server']}, {_num(winner['sustainable_rps'], 1)} {a.rate_unit} at "
            f"{a.level_text(_cap_level(a, winner))}) sustains {shown:.2f}× the throughput "
            f"of the best {loser['interface'].upper()} config ({loser['server']}, "
            f"{_num(loser['sustainable_rps'], 1)} {a.rate_unit} at "
            f"{a.level_text(_cap_level(a, loser))}) within the SLO")
    if math.isnan(lo):
        return text + (" (one repeat each: no confidence interval for the ratio; run with "
                       "--repeats 3 or more).")
    text += (f" (95 % bootstrap CI of the ratio of medians {lo:.2f}–{hi:.2f}, "
             f"{len(_ok_throughputs(a, winner['server'], _cap_level(a, winner)))} and "
             f"{len(_ok_throughputs(a, loser['server'], _cap_level(a, loser)))} repeats)")
    if lo <= 1.0:
        text += ": the interval includes 1, so this run shows no clear difference"
    return text + "."


# --- HTML -----------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 1) -> str:
    """``value`` with ``digits`` decimals, or a dash when missing."""
    number = _float(value)
    if math.isnan(number):
        return _DASH
    return "∞" if math.isinf(number) else f"{number:,.{digits}f}"


def _int(value: Any) -> str:
    number = _float(value)
    return _DASH if math.isnan(number) or math.isinf(number) else str(int(number))


def _percent(fraction: Any) -> str:
    number = _float(fraction)
    return _DASH if math.isnan(number) else f"{100 * number:.2f}"


def _status_text(status: str, reason: str) -> str:
    return f"{status}: {reason}" if reason else status


#: A table cell: text, or (text, raw number for sorting and tests), or (text, raw
#: number, CSS class of the cell).
Cell = str | tuple[str, float] | tuple[str, float, str]


def _table(columns: Sequence[tuple[str, bool]], rows: Iterable[tuple[str, Sequence[Cell]]],
           *, table_id: str = "", sortable: bool = False, css: str = "") -> str:
    """An HTML table; ``columns`` are (header, numeric?), ``rows`` are (row class, cells).

    A numeric cell given as (text, number) carries the number in ``data-v`` (``%.6g``;
    empty when NaN); (text, number, class) also gets that CSS class. Every header and
    cell is escaped here, once.
    """
    head = "".join(f'<th class="num">{_e(name)}</th>' if numeric else f"<th>{_e(name)}</th>"
                   for name, numeric in columns)
    table_class = " ".join(c for c in ("sortable" if sortable else "", css) if c)
    body = []
    for row_class, cells in rows:
        tds = []
        for cell, (name, numeric) in zip(cells, columns, strict=True):
            text, raw, extra = (cell, None, "") if isinstance(cell, str) else \
                (cell[0], cell[1], cell[2] if len(cell) == 3 else "")
            classes = " ".join(c for c in ("num" if numeric else "long" if name in _LONG_TEXT
                                           and text else "", extra) if c)
            attrs = f' class="{_e(classes)}"' if classes else ""
            if raw is not None:
                attrs += f' data-v="{"" if math.isnan(raw) else f"{raw:.6g}"}"'
            tds.append(f"<td{attrs}>{_e(text)}</td>")
        body.append(f'<tr class="{_e(row_class)}">{"".join(tds)}</tr>')
    attrs = (f' id="{_e(table_id)}"' if table_id else "") + \
        (f' class="{_e(table_class)}"' if table_class else "")
    return (f'<div class="wide"><table{attrs}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _n(value: Any, digits: int = 1) -> tuple[str, float]:
    """A numeric cell: formatted text and the raw value."""
    return _num(value, digits), _float(value)


def _kv(pairs: Iterable[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _pairs(mapping: Any) -> str:
    """``{"a": 1, "b": 2}`` as ``"a=1, b=2"``; a dash when empty or not a mapping."""
    if not isinstance(mapping, Mapping) or not mapping:
        return _DASH
    return ", ".join(f"{k}={v}" for k, v in mapping.items())


def _cpus(cpus: Any) -> str:
    return ",".join(str(c) for c in cpus) if isinstance(cpus, list) and cpus else _DASH


def _run_id(run: RunData) -> str:
    return str(run.meta.get("run_id") or run.path.name)


def _page(runs: Sequence[RunData], sections: Sequence[str], target_rps: float | None,
          slo_p99_ms: float | None, *, backends: bool = False) -> str:
    ids = [_run_id(run) for run in runs]
    nav = ""
    if len(runs) > 1:
        links = "".join(
            f'<li><a href="#run-{i}">{_e(_scenario(run.meta).get("name") or _DASH)}'
            f"{_e(' (' + _run_backend(run) + ')') if _run_backend(run) else ''}: "
            f"{_e(run_id)}</a></li>" for i, (run, run_id) in enumerate(zip(runs, ids, strict=True)))
        if backends:
            links += '<li><a href="#backends">Backends side by side</a></li>'
        nav = f"<nav><ul>{links}</ul></nav>"
    options = []
    if slo_p99_ms is not None:
        options.append(f"SLO p99 set to {slo_p99_ms:g} ms for every run (--slo-p99-ms)")
    if target_rps is not None:
        units = {scenarios.rate_unit(_protocol(run.meta, run.trials)) for run in runs}
        unit = units.pop() if len(units) == 1 else "per second of each run's throughput unit"
        options.append(f"capacity planned for {target_rps:g} {unit} (--target-rps)")
    body = "".join(sections) or "<p>No runs given.</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>bench report: {_e(', '.join(ids))}</title><style>{_CSS}</style></head>"
        f"<body><h1>bench report</h1><p class=\"note\">Runs: {_e(', '.join(ids) or _DASH)}"
        f"{_e('; ' + '; '.join(options)) if options else ''}</p>"
        f"{nav}{body}<script>{_SORT_JS}</script></body></html>\n"
    )


def _section(a: _Analysis, index: int, charts: Sequence[str]) -> str:
    meta = a.run.meta
    scenario = _scenario(meta)
    status = str(meta.get("status") or "unknown")
    warning = "" if status == "complete" else (
        f'<p class="warning">Run status is <b>{_e(status)}</b>: the results cover only what '
        "it measured before it stopped.</p>")
    chart_html = "".join(f'<div class="chart">{c}</div>' for c in charts) or \
        '<p class="note">No measurements to plot.</p>'
    verdict_html = "".join(f"<li>{_e(s)}</li>" for s in _verdict(a))
    stream_html = (f"<h3>{_e(a.protocol_name)}: every server config at every level</h3>"
                   f"{_matrix_html(a, index)}") if a.stream else ""
    engine = _engine_html(a)
    engine_html = (f"<h3>Memory: the container engine's view vs PSS</h3>{engine}"
                   if engine else "")
    return (
        f'<section class="run" id="run-{index}">'
        f"<h2>Run {_e(_run_id(a.run))}: {_e(scenario.get('name') or _DASH)}</h2>{warning}"
        f"<h3>Setup</h3>{_header(meta, a)}{_servers_table(meta)}"
        f"<h3>Validity</h3>{_validity(a.trials)}"
        f'<h3>Verdict</h3><ul class="verdict">{verdict_html}</ul>'
        f"{stream_html}"
        f"<h3>Capacity within the SLO</h3>{_capacity_html(a, index)}"
        f"<h3>Per server config and level</h3>{_levels_html(a)}{engine_html}"
        f"<h3>Charts</h3>{chart_html}"
        f"<h3>Trials</h3>{_trials_table(a, index)}"
        f"<h3>Method and caveats</h3>{_method(meta, a)}"
        "</section>"
    )


def _load_mode(meta: Mapping[str, Any], trials: pd.DataFrame) -> str:
    modes = sorted({m for m in trials["load_mode"] if m})
    if not modes and meta.get("load_mode"):
        modes = [str(meta["load_mode"])]
    return ", ".join(modes) or _DASH


def _header(meta: Mapping[str, Any], a: _Analysis) -> str:
    scenario = _scenario(meta)
    git = meta.get("git") or {}
    machine = meta.get("machine") or {}
    cpus = meta.get("cpus") or {}
    commit = str(git.get("commit") or _DASH) + (" (dirty)" if git.get("dirty") else "")
    command = meta.get("command")
    slo = (f"p99 ≤ {a.slo.p99_ms:g} ms" if a.slo.p99_ms > 0 else "p99: none recorded") + \
        f", error rate ≤ {_percent(a.slo.max_error_rate)} %" + \
        (" (p99 from --slo-p99-ms)" if a.slo.source == "--slo-p99-ms" else "")
    return _kv([
        ("run id", str(meta.get("run_id") or _DASH)),
        ("status", str(meta.get("status") or _DASH)),
        ("started / ended", f"{meta.get('started_at') or _DASH} / {meta.get('ended_at') or _DASH}"),
        ("command", shlex.join(map(str, command)) if isinstance(command, list) else _DASH),
        ("scenario", f"{scenario.get('name') or _DASH}: {scenario.get('description') or ''}"),
        ("request", f"{scenario.get('protocol') or ''} {scenario.get('request_path') or _DASH}"),
        ("params", _pairs(scenario.get("params"))),
        ("load mode", _load_mode(meta, a.trials)),
        ("levels (users)", ", ".join(map(str, scenario.get("users") or [])) or _DASH),
        ("warm-up / measurement", (f"{_num(scenario.get('warmup_s'))} s / "
                                   f"{_num(scenario.get('duration_s'))} s per level")),
        ("repeats", str(scenario.get("repeats") or _DASH)),
        ("SLO", slo),
        ("validity thresholds", _pairs(scenario.get("validity"))),
        ("commit", commit),
        ("machine", _pairs(machine)),
        ("CPU sets", (f"server: {_cpus(cpus.get('server'))}; load generator: "
                      f"{_cpus(cpus.get('load'))}")),
        ("versions", _pairs(meta.get("versions"))),
    ])


def _servers_table(meta: Mapping[str, Any]) -> str:
    servers = [s for s in meta.get("servers") or [] if isinstance(s, Mapping)]
    if not servers:
        return ""
    columns = [("server config", False), ("interface", False), ("workers", True),
               ("threads", True), ("worker connections", True), ("command line", False)]
    rows: list[tuple[str, Sequence[Cell]]] = [(str(s.get("interface") or ""), [
        str(s.get("name") or _DASH), str(s.get("interface") or _DASH), _int(s.get("workers")),
        _int(s.get("threads")), _int(s.get("worker_connections")),
        shlex.join(map(str, s.get("argv") or [])) or _DASH,
    ]) for s in servers]
    return _table(columns, rows)


def _validity(trials: pd.DataFrame) -> str:
    """Counts of trials per status, then each non-ok reason with its count and configs."""
    counts = trials["status"].value_counts()
    known = ("ok", "invalid", "unsupported", "failed")
    statuses = list(known) + sorted(set(counts.index) - set(known))
    summary = '<p class="validity">' + " · ".join(
        f'<span class="status-{_e(s)}">{_e(s or "(none)")}: {int(counts.get(s, 0))}</span>'
        for s in statuses) + f" (of {len(trials)} trials)</p>"
    bad = trials[trials["status"] != "ok"]
    if bad.empty:
        return summary
    rows: list[tuple[str, Sequence[Cell]]] = [
        (status, [status, reason or _DASH, str(len(group)), ", ".join(sorted(set(group["server"])))])
        for (status, reason), group in bad.groupby(["status", "reason"], sort=True)]
    note = ('<p class="note">Trials that are not ok are excluded from the verdict, the '
            "capacity table and every line; charts mark invalid and failed ones with ×, and "
            "name unsupported configs under their titles.</p>")
    return summary + _table([("status", False), ("reason", False), ("trials", True),
                             ("server configs", False)], rows) + note


def _capacity_html(a: _Analysis, index: int) -> str:
    if not a.slo.p99_ms > 0:
        return ('<p class="note">No SLO p99 recorded for this run: pass --slo-p99-ms to '
                "compute capacity.</p>")
    if a.capacity.empty:
        return '<p class="note">No trials.</p>'
    planned = a.target_rps is not None
    at = "users" if a.level == "users" else "offered req/s"
    columns: list[tuple[str, bool]] = [
        ("server config", False), ("interface", False), ("workers", True),
        (f"max sustainable {a.rate_unit}", True), ("95 % CI", False), (f"at {at}", True),
        ("repeats", True), (f"peak {a.rate_unit}", True), (f"peak at {at}", True),
        ("p50 ms", True), ("p95 ms", True), ("p99 ms", True), ("CPU % (of one core)", True),
        ("PSS MiB", True), ("PSS MiB per worker (approx.)", True),
        (f"{a.rate_unit} per core", True),
        ("USL σ", True), ("USL κ", True), ("USL peak users N*", True), ("USL R²", True)]
    if planned:
        columns += [("instances needed", True), ("memory of instances MiB", True)]
    columns.append(("note", False))
    order = {name: i for i, name in enumerate(a.configs)}
    cap = a.capacity.assign(_o=[order.get(s, len(order)) for s in a.capacity["server"]])
    unsupported = _unsupported_configs(a)
    rows: list[tuple[str, Sequence[Cell]]] = []
    for r in cap.sort_values(["_o", "server"]).to_dict("records"):
        if r["server"] in unsupported:  # one row that says so, with the reason
            blank: list[Cell] = [(_DASH, math.nan)] * (len(columns) - 5)
            rows.append((f"{r['interface']} not-valid unsupported", [
                str(r["server"]), str(r["interface"] or _DASH), _n(r["workers"], 0),
                ("unsupported", math.nan, "status-unsupported"), *blank,
                (f"unsupported at every level: {unsupported[r['server']]}; left out of "
                 "the ranking")]))
            continue
        low, high = _float(r["sustainable_rps_ci_low"]), _float(r["sustainable_rps_ci_high"])
        cells: list[Cell] = [
            str(r["server"]), str(r["interface"] or _DASH), _n(r["workers"], 0),
            _n(r["sustainable_rps"]), _DASH if math.isnan(low) else
            f"{_num(low)}–{_num(high)}", _n(_cap_level(a, r), 0),
            _n(r["sustainable_n"], 0), _n(r["peak_rps"]), _n(_cap_level(a, r, "peak"), 0),
            _n(r["sustainable_p50_ms"], 2), _n(r["sustainable_p95_ms"], 2),
            _n(r["sustainable_p99_ms"], 2), _n(r["sustainable_cpu_percent"]),
            _n(r["sustainable_pss_mib"]), _n(r["pss_mib_per_worker"]), _n(r["rps_per_core"], 0),
            _n(r["usl_sigma"], 4), _n(r["usl_kappa"], 6), _n(r["usl_peak_users"], 0),
            _n(r["usl_r2"], 3)]
        if planned:
            needed = r["instances_needed"]
            cells += [(_DASH, math.nan) if pd.isna(needed) else (str(int(needed)), float(needed)),
                      _n(r["instances_pss_mib"])]
        cells.append(str(r["note"]))
        state = "" if not math.isnan(_float(r["sustainable_rps"])) else " no-capacity"
        rows.append((f"{r['interface']}{state}", cells))
    text = (f'<p class="note">Max sustainable: the highest median throughput among levels '
            f"whose median p99 ≤ {a.slo.p99_ms:g} ms and median error rate ≤ "
            f"{_percent(a.slo.max_error_rate)} % over ok repeats. 95 % CI: Student-t interval "
            f"of the mean over repeats (– with one repeat). {a.rate_unit} per core = "
            "throughput ÷ "
            "CPU % × 100 (a linear extrapolation). PSS per worker = PSS of the whole tree ÷ "
            "workers (approximate: the tree includes the master process). USL: Universal "
            "Scalability Law fitted to every ok trial when ≥ 4 levels (Gunther 1993).</p>")
    if planned:
        text += (f'<p class="note">Instances needed for {a.target_rps:g} {a.rate_unit} = '
                 "ceil(target ÷ "
                 f"(max sustainable × {a.headroom:g})): headroom factor {a.headroom:g}, i.e. "
                 f"each instance runs at no more than {100 * a.headroom:g} % of its max "
                 "sustainable throughput. Memory = instances × PSS at the sustainable "
                 "level.</p>")
    return text + _table(columns, rows, table_id=f"capacity-run{index}", sortable=True)


def stream_matrix(run: RunData) -> pd.DataFrame:
    """Every server config at every level of a stream run, as the report's matrix shows.

    One row per (config, level); columns ``server``, ``interface``, the level column
    (``users``, or ``offered_rps`` under open loop), ``state`` (``ok``, ``mixed``: some
    repeats not ok, ``unsupported``, ``failed``, ``invalid``, ``none``: not measured),
    ``p99_ms`` (median over ok repeats of the headline p99: time to first event for SSE,
    echo round trip for WebSocket; ms), ``rate`` (median events/s or messages/s) and
    ``text``: the cell, e.g. ``"TTFE p99 6.7 ms · 445 events/s"`` or ``"unsupported
    (WebSocket handshake answered 404 Not Found)"``. Empty for runs that are not streams.
    """
    return _matrix(_analyse(run))


def _matrix(a: _Analysis) -> pd.DataFrame:
    columns = ["server", "interface", a.level, "state", "p99_ms", "rate", "text"]
    if not a.stream or a.trials.empty:
        return pd.DataFrame(columns=columns)
    p99, rate, what, unit = (("ttfe_ms_p99", "events_per_s", "TTFE", "events/s")
                             if a.protocol == "sse" else
                             ("rtt_ms_p99", "messages_per_s", "RTT", "msg/s"))
    levels = sorted(a.trials[a.level].dropna().unique())
    rows = []
    for server in a.configs:
        mine = a.trials[a.trials["server"] == server]
        for level in levels:
            group = mine[mine[a.level] == level]
            ok = group[group["status"] == "ok"]
            bad = group[group["status"] != "ok"]
            figure, per_s = (float(ok[c].median()) if len(ok) else math.nan
                             for c in (p99, rate))
            if group.empty:
                state, text = "none", "not measured"
            elif len(ok):
                state = "ok" if bad.empty else "mixed"
                text = f"{what} p99 {_num(figure, 1)} ms · {_num(per_s, 0)} {unit}"
                if len(bad):
                    text += " (" + ", ".join(
                        f"{n} of {len(group)} {status}" for status, n
                        in bad["status"].value_counts().sort_index().items()) + ")"
            else:
                state = min(set(bad["status"]), key=lambda x: (_STATUS_ORDER.get(x, 9), x))
                reasons = sorted({r for r in bad.loc[bad["status"] == state, "reason"] if r})
                text = f"{state or 'no status'} ({'; '.join(reasons)})" if reasons \
                    else state or "no status"
            rows.append({"server": server, "interface": a.configs[server], a.level: level,
                         "state": state, "p99_ms": figure, "rate": per_s, "text": text})
    return pd.DataFrame(rows, columns=columns)


def _matrix_html(a: _Analysis, index: int) -> str:
    """The stream matrix (:func:`stream_matrix`) as a table: a row per config, a column
    per level; unsupported, invalid and failed cells say so, styled apart."""
    matrix = _matrix(a)
    if matrix.empty:
        return '<p class="note">No trials.</p>'
    levels = list(dict.fromkeys(matrix[a.level]))
    columns = [("server config", False), ("interface", False),
               *((a.level_text(v), False) for v in levels)]
    rows: list[tuple[str, Sequence[Cell]]] = []
    for server, part in matrix.groupby("server", sort=False):
        states = set(part["state"])
        state = "ok" if states == {"ok"} else (
            f"not-valid {next(iter(states))}" if len(states) == 1 and "ok" not in states
            else "mixed")
        cells: list[Cell] = [str(server), a.configs.get(str(server)) or _DASH]
        cells += [(str(r.text), _float(r.p99_ms), f"cell cell-{r.state}")
                  for r in part.itertuples(index=False)]
        rows.append((f"{a.configs.get(str(server), '')} {state}", cells))
    figure = ("time to first event (TTFE) p99 and events delivered per second"
              if a.protocol == "sse" else "echo round-trip time (RTT) p99 and echoes "
              "received per second")
    note = (f'<p class="note">Each cell: {figure}, medians over ok repeats. A config that '
            "cannot serve the protocol is <b>unsupported</b> (a result, with what the server "
            "answered), not a missing row; invalid and failed cells give their reason and "
            "count in no figure.</p>")
    return note + _table(columns, rows, table_id=f"matrix-run{index}", css="matrix")


_LEVEL_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("server config", False), ("interface", False), ("workers", True), ("level", True),
    ("trials", False), ("throughput (median)", True), ("95 % CI", False),
    ("CV %", True), ("noisy", False), ("p50 ms", True), ("p95 ms", True), ("p99 ms", True),
    ("p99.9 ms", True), ("errors %", True), ("CPU % (mean)", True), ("PSS peak MiB", True),
    ("generator CPU %", True), ("Little's law ratio", True), ("reason", False),
)


def _levels_html(a: _Analysis) -> str:
    """One row per (level, config), WSGI before ASGI at each level; figures are medians
    over the ok repeats (dashes where none is ok)."""
    if a.levels.empty:
        return '<p class="note">No trials.</p>'
    order = {name: i for i, name in enumerate(a.configs)}
    levels = a.levels.assign(_o=[order.get(s, len(order)) for s in a.levels["server"]],
                             _u=[_sort_users(u) for u in a.levels[a.level]])
    rows: list[tuple[str, Sequence[Cell]]] = []
    previous: object = None
    for r in levels.sort_values(["_u", "_o", "server"]).to_dict("records"):
        group = a.trials[(a.trials["server"] == r["server"])
                         & (a.trials[a.level] == r[a.level])]
        statuses = group["status"]
        classes = [a.configs.get(r["server"], ""), _row_state(statuses)]
        if r[a.level] != previous and rows:
            classes.append("level-start")
        previous = r[a.level]
        low = _float(r["throughput_rps_ci_low"])
        reasons = sorted({x for x in group.loc[statuses != "ok", "reason"] if x})
        rows.append((" ".join(c for c in classes if c), [
            str(r["server"]), a.configs.get(r["server"]) or _DASH, _n(r["workers"], 0),
            _n(r[a.level], 0), str(r["statuses"]), _n(r["throughput_rps_median"]),
            _DASH if math.isnan(low) else f"{_num(low)}–{_num(r['throughput_rps_ci_high'])}",
            _n(100 * _float(r["throughput_rps_cv"]), 1),
            "noisy" if r["throughput_rps_noisy"] else "",
            _n(r["latency_p50_ms_median"], 2), _n(r["latency_p95_ms_median"], 2),
            _n(r["latency_p99_ms_median"], 2), _n(r["latency_p999_ms_median"], 2),
            _n(100 * _float(r["error_rate_median"]), 2), _n(r["cpu_percent_mean_median"]),
            _n(r["pss_mib_peak_median"]), _n(r["generator_cpu_percent_median"]),
            _n(r["littles_law_ratio_median"], 3), "; ".join(reasons),
        ]))
    note = ('<p class="note">Medians over ok repeats; CI: 95 % Student-t interval of the mean; '
            "CV: standard deviation ÷ mean over repeats, noisy above 5 %. Tinted rows hold a "
            "trial that is not ok (reason in the last column); where none is ok the row has "
            "no figures.</p>")
    names = {"level": "users" if a.level == "users" else "offered req/s",
             "throughput (median)": f"throughput {a.rate_unit} (median)"}
    columns = [(names.get(name, name), numeric) for name, numeric in _LEVEL_COLUMNS]
    return note + _table(columns, rows, sortable=True)


def _sort_users(users: Any) -> float:
    number = _float(users)
    return math.inf if math.isnan(number) else number


def _row_state(statuses: pd.Series) -> str:
    """CSS class of a group of trials: ok, mixed (some ok) or not-valid plus the status."""
    if (statuses == "ok").all():
        return "ok"
    if (statuses == "ok").any():
        return "mixed"
    return f"not-valid {statuses[statuses != 'ok'].iloc[0]}"


#: Stream figures the trials table adds per protocol: (header, trial column, decimals).
_STREAM_COMMON = (("connect p99 ms", "connect_ms_p99", 2),
                  ("held peak", "concurrent_connections_peak", 0), ("served mean", "concurrent_served_mean", 1),
                  ("waiting at end", "connects_waiting_at_end", 0),
                  ("streams completed", "streams_completed", 0),
                  ("streams failed", "streams_failed", 0),
                  ("PSS KiB per connection", "pss_kib_per_connection", 1))
_TRIAL_STREAM_COLUMNS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "sse": (("TTFE p99 ms", "ttfe_ms_p99", 2), ("event lag p99 ms", "event_lag_ms_p99", 2),
            ("events/s", "events_per_s", 1), *_STREAM_COMMON),
    "websocket": (("RTT p99 ms", "rtt_ms_p99", 2), ("messages/s", "messages_per_s", 1),
                  *_STREAM_COMMON),
}


def _trials_table(a: _Analysis, index: int) -> str:
    if a.trials.empty:
        return '<p class="note">No trials.</p>'
    columns = [("trial", False), ("server config", False), ("interface", False),
               ("users", True), ("offered req/s", True), ("repeat", True), ("status", False),
               ("reason", False), ("flags", False), ("window s", True), ("requests", True), ("failures", True),
               (f"throughput {a.rate_unit}", True), ("errors %", True), ("p50 ms", True),
               ("p99 ms", True), ("CPU %", True), ("PSS peak MiB", True),
               ("RSS peak MiB", True), ("generator CPU %", True)]
    extra = _TRIAL_STREAM_COLUMNS.get(a.protocol, ())
    columns += [(label, True) for label, _, _ in extra]
    rows: list[tuple[str, Sequence[Cell]]] = []
    for t in a.trials.itertuples(index=False):
        state = "ok" if t.status == "ok" else f"not-valid {t.status}"
        rows.append((f"{a.configs.get(t.server, '')} {state}", [
            t.trial_id, t.server, t.interface or _DASH, _n(t.users, 0), _n(t.offered_rps, 0),
            _n(t.repeat, 0), t.status or _DASH, t.reason, t.flags, _n(t.window_s),
            _n(t.requests, 0),
            _n(t.failures, 0), _n(t.throughput_rps), _n(100 * _float(t.error_rate), 2),
            _n(t.latency_p50_ms, 2), _n(t.latency_p99_ms, 2), _n(t.cpu_percent_mean),
            _n(t.pss_mib_peak), _n(t.rss_mib_peak), _n(t.generator_cpu_percent),
            *(_n(getattr(t, column, math.nan), digits) for _, column, digits in extra),
        ]))
    table = _table(columns, rows, table_id=f"trials-run{index}", sortable=True)
    table = table.replace("<td>invalid</td>", '<td class="status-invalid">invalid</td>') \
        .replace("<td>unsupported</td>", '<td class="status-unsupported">unsupported</td>') \
        .replace("<td>failed</td>", '<td class="status-failed">failed</td>')
    return ('<p class="note">Click a column header to sort. Tinted rows are not ok and '
            "count in no figure.</p>" + table)


def _method(meta: Mapping[str, Any], a: _Analysis) -> str:
    scenario = _scenario(meta)
    cpus = meta.get("cpus") or {}
    server_cpus, load_cpus = cpus.get("server") or [], cpus.get("load") or []
    shared = sorted(set(server_cpus) & set(load_cpus)) if isinstance(server_cpus, list) \
        and isinstance(load_cpus, list) else []
    mode = _load_mode(meta, a.trials)
    if "closed" in mode:
        loop = ("Load is closed-loop: each locust user sends its next request only when the "
                "previous one has finished, so a slower server is offered fewer requests. "
                "Coordinated omission (Tene): while the server stalls, the requests that "
                "users arriving at a steady rate would have sent are never issued, so their "
                "queueing delay is never measured. The latencies here are therefore what a "
                "fixed population of users sees, a lower bound on what open traffic at the "
                "same throughput would see, and the tail (p99) is the most understated; "
                "throughput is what that many users achieve, not an arrival rate the server "
                "could absorb.")
    elif "open" in mode:
        loop = ("Load is open-loop: requests are sent at a set arrival rate whether or not "
                "earlier ones have finished, so queueing delay is part of the latencies and "
                "coordinated omission does not apply as long as the generator kept its "
                "schedule (see its CPU).")
    else:
        loop = (f"Load mode: {mode}. Under closed-loop load, latency percentiles understate "
                "what open traffic would see (coordinated omission).")
    paragraphs = [
        loop,
        (f"Each level has a warm-up of {_num(scenario.get('warmup_s'))} s, excluded from every "
         f"number and chart, then a measurement window of {_num(scenario.get('duration_s'))} s; "
         f"{scenario.get('repeats') or 1} repeat(s), configs interleaved. Lines and tables show "
         "the median across ok repeats, never the best; the 95 % confidence interval is a "
         "Student-t interval of the mean; repeats whose coefficient of variation exceeds 5 % "
         "are flagged noisy. The WSGI/ASGI ratio's interval is a percentile bootstrap of the "
         "ratio of medians (rough with few repeats)."),
        ("Latency is measured per request and stored unrounded by the harness (ms). Throughput "
         "counts successful responses only, divided by the measured window (req/s): errors "
         "never count as throughput. The latency CDF uses the raw per-request records of one "
         "trial per config, requests that completed in the measurement window, failed ones "
         "included."),
        ("Memory is PSS of the whole server process tree: each shared page is divided among the "
         "processes that map it, so the sum is the real footprint; summing RSS over forked "
         "workers would count shared pages once per worker (RSS is shown beside it in the "
         "trials table). PSS is read about once a second, RSS and CPU ten times a second. "
         "CPU % is of one core (200 % = two cores busy)."),
        ("Capacity: a level is sustainable when its median p99 and error rate are within the "
         "SLO; req/s per core extrapolates linearly from the measured CPU, so it overstates "
         "what a core could do when the server was mostly waiting; instances needed assume "
         "throughput adds up across instances, which holds only while shared resources "
         "(database, network) are not the limit."),
        (f"The load generator (locust) ran on the same machine as the server, over loopback, "
         f"pinned to CPUs {_cpus(load_cpus)}; servers ran on CPUs {_cpus(server_cpus)}. A trial "
         "whose generator used ≥ its CPU limit is marked invalid (generator-saturated): its "
         "figures describe the generator, not the server."),
    ]
    text = "".join(f"<p>{_e(p)}</p>" for p in paragraphs)
    if shared:
        text += (f'<p class="warning">Server and load generator shared CPUs '
                 f"{_e(_cpus(shared))}: they competed for the same cores.</p>")
    return text
