"""The plotly charts of one run (:func:`figures`), keyed by :data:`CHART_KEYS`.

Stream runs add :data:`~harness.report.charts_streams.STREAM_CHART_KEYS` after
``latency`` (:mod:`harness.report.charts_streams`); the page embeds them with
:func:`harness.report.templating.plot_div`, plotly.js inline once per page.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.report.charts_streams import _stream_figures
from harness.report.fmt import _float, _int, _rounded, _significant
from harness.report.model import (
    Analysis,
    _representatives,
    _sustainable_level,
    as_analysis,
    latency_cdf,
)
from harness.report.stacks import overhead_figure, stacked
from harness.report.traces import (
    _SLO_COLOUR,
    _dedupe_legend,
    _has_data,
    _level_traces,
    _not_valid_trace,
    _note_unsupported,
    _ok_levels,
    _reference_line,
    template_held,
    white,
)
from harness.results import RunData

#: Samples drawn per time-series trace at most; longer traces keep every k-th sample.
MAX_POINTS_PER_TRACE = 5000
#: Samples drawn per time-series chart at most (all traces together, so that a long
#: run of many configs stays a few hundred kB); each trace keeps at least 200.
MAX_POINTS_PER_CHART = 12000
#: Points per latency-CDF curve at most: evenly spaced ranks, plus the slowest
#: :data:`CDF_TAIL_POINTS` requests, every one of them (the tail is what matters).
CDF_MAX_POINTS = 2000
CDF_TAIL_POINTS = 500
#: Chart keys of :func:`figures`, in report order (also the PNG file suffixes); a run
#: with framework apps starts with ``overhead`` (harness.report.stacks.overhead_figure).
CHART_KEYS = ("throughput", "latency", "latency_cdf", "error_rate", "pss", "cpu")
#: Charts shown with the stack matrix, at the head of a run with framework apps.
STACK_CHART_KEYS = ("overhead",)


def figures(run: RunData | Analysis, *, slo_p99_ms: float | None = None) -> dict[str, go.Figure]:
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
    return _figures(as_analysis(run, slo_p99_ms=slo_p99_ms))


def _figures(a: Analysis) -> dict[str, go.Figure]:
    with template_held():  # once for the run's figures (the PNG export's too), not per figure
        candidates = {
            **({"overhead": overhead_figure(a)} if stacked(a) else {}),
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
        if key not in ("pss", "cpu", "overhead"):  # these draw an unsupported server's samples
            _note_unsupported(a, fig)
    return {key: fig for key, fig in candidates.items() if _has_data(fig)}


@white
def _throughput_figure(a: Analysis) -> go.Figure:
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
                      yaxis_title=f"throughput ({a.rate_unit})")
    return fig


@white
def _latency_figure(a: Analysis) -> go.Figure:
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
    fig.update_layout(title="Latency percentiles vs achieved throughput (median of ok repeats)")
    fig.update_yaxes(type="log", title_text="latency (ms, log scale)", row=1, col=1)
    fig.update_yaxes(type="log")
    fig.update_xaxes(title_text=f"throughput ({a.rate_unit})")
    return fig


def _cdf_points(latencies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF (x ms ascending, y = fraction <= x), at most CDF_MAX_POINTS points:
    evenly spaced ranks over the body plus every one of the slowest CDF_TAIL_POINTS."""
    x = np.sort(latencies)
    return _thin_cdf(x, np.arange(1, len(x) + 1) / len(x))


def _thin_cdf(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most CDF_MAX_POINTS of the CDF points (x ascending): evenly spaced ranks over
    the body plus every one of the slowest CDF_TAIL_POINTS."""
    n = len(x)
    if n > CDF_MAX_POINTS:
        body = np.linspace(0, n - CDF_TAIL_POINTS - 1, CDF_MAX_POINTS - CDF_TAIL_POINTS)
        idx = np.unique(np.concatenate([body.round().astype(int),
                                        np.arange(n - CDF_TAIL_POINTS, n)]))
        x, y = x[idx], y[idx]
    return x, y


@white
def _cdf_figure(a: Analysis) -> go.Figure:
    fig = go.Figure()
    kinds: set[str] = set()
    for server, trial in _representatives(a).items():
        x, y, count, kind = latency_cdf(a.run, trial)
        if not count:
            continue
        kinds.add(kind)
        style = a.styles[server]
        x, y = _thin_cdf(x, y)
        level = _float(trial[a.level])
        basis = ("max sustainable level" if _sustainable_level(a, server) == level
                 else "highest ok level")
        fig.add_trace(go.Scatter(
            x=_significant(x), y=_rounded(y, 5), name=f"{server} @ {a.level_text(level)}",
            legendgroup=server, mode="lines",
            line={"color": style.colour, "dash": style.dash, "width": 1.5},
            hovertemplate=(f"{server}, {a.level_text(level)} ({basis}), trial "
                           f"{trial['trial_id']}<br>%{{y:.2%}} of {count} {kind} "
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
                      yaxis={"title": "fraction of requests ≤ latency", "range": [0, 1.02]})
    return fig


@white
def _error_figure(a: Analysis) -> go.Figure:
    fig = go.Figure(_level_traces(a, "error_rate", "errors", "%", scale=100.0))
    levels = a.trials[a.level].dropna()
    if fig.data and len(levels):
        fig.add_trace(_reference_line([levels.min(), levels.max()],
                                      [100 * a.slo.max_error_rate] * 2,
                                      f"SLO errors ≤ {100 * a.slo.max_error_rate:g} %",
                                      _SLO_COLOUR, "dash"))
    fig.update_layout(title="Error rate vs load (failed / completed requests in the window)",
                      xaxis_title=a.level_title, yaxis_title="errors (%)")
    return fig


@white
def _timeline_figure(a: Analysis, metric: str, title: str, y_title: str) -> go.Figure:
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
                      shapes=shapes, annotations=notes)
    return fig


def _thin(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """Every k-th row so that at most ``limit`` rows remain (peaks may fall between)."""
    step = max(1, math.ceil(len(frame) / limit))
    return frame.iloc[::step]


def _windows(a: Analysis) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
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

