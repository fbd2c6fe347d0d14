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

Each run is analysed once per report (:func:`analyse`, :class:`Analysis`); every public
function here takes a run or its model. Modules, one concept each: :mod:`.model` (the
analysis model), :mod:`.stream_model` (PSS per connection, the stream matrix),
:mod:`.backends` (backends side by side, the engine's memory), :mod:`.verdict`,
:mod:`.charts` / :mod:`.charts_streams` / :mod:`.traces` (plotly figures),
:mod:`.tables` and :mod:`.page` (the page, from jinja2 templates in ``templates/``
through :mod:`.templating`, shared with ``bench history``), :mod:`.png` (PNG export),
:mod:`.fmt` (formatting helpers).
"""


from __future__ import annotations

from harness.report.backends import (
    BACKEND_COLUMNS,
    BACKEND_METRICS,
    ENGINE_COLUMNS,
    backend_comparison,
    engine_memory,
)
from harness.report.charts import (
    CDF_MAX_POINTS,
    CDF_TAIL_POINTS,
    CHART_KEYS,
    MAX_POINTS_PER_CHART,
    MAX_POINTS_PER_TRACE,
    figures,
)
from harness.report.charts_streams import STREAM_CHART_KEYS
from harness.report.model import (
    CDF_RECORD_NAMES,
    DEFAULT_MAX_ERROR_RATE,
    LEVEL_METRICS,
    STREAM_LEVEL_METRICS,
    STREAM_PROTOCOLS,
    Analysis,
    Slo,
    analyse,
    measured_latencies,
    representative_trials,
)
from harness.report.page import render
from harness.report.png import BROWSER_CANDIDATES, BrowserNotFound, find_browser, write_pngs
from harness.report.stream_model import per_connection_fits, stream_matrix
from harness.report.verdict import LOW_CPU_PERCENT, verdict

__all__ = [
    "BACKEND_COLUMNS", "BACKEND_METRICS", "BROWSER_CANDIDATES", "CDF_MAX_POINTS",
    "CDF_RECORD_NAMES", "CDF_TAIL_POINTS", "CHART_KEYS", "DEFAULT_MAX_ERROR_RATE",
    "ENGINE_COLUMNS", "LEVEL_METRICS", "LOW_CPU_PERCENT", "MAX_POINTS_PER_CHART",
    "MAX_POINTS_PER_TRACE", "STREAM_CHART_KEYS", "STREAM_LEVEL_METRICS", "STREAM_PROTOCOLS",
    "Analysis", "BrowserNotFound", "Slo", "analyse", "backend_comparison", "engine_memory",
    "figures", "find_browser", "measured_latencies", "per_connection_fits", "render",
    "representative_trials", "stream_matrix", "verdict", "write_pngs",
]
