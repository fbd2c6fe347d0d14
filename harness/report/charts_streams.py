"""The charts of stream runs (SSE, WebSocket), keyed by :data:`STREAM_CHART_KEYS`:
per-event and per-message figures vs load, connections held vs offered, and PSS per
held connection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.report.fmt import _rounded
from harness.report.model import Analysis
from harness.report.stream_model import _no_slope, _per_connection_fits
from harness.report.traces import (
    _SLO_COLOUR,
    _dedupe_legend,
    _level_traces,
    _not_valid_trace,
    _reference_line,
    white,
)

#: Chart keys of stream runs (protocol ``sse`` or ``websocket``), drawn after ``latency``:
#: SSE has ttfe, event_lag, events_rate; WebSocket rtt, messages_rate; both connections
#: and pss_per_connection.
STREAM_CHART_KEYS = ("ttfe", "event_lag", "events_rate", "rtt", "messages_rate",
                     "connections", "pss_per_connection")


def _stream_figures(a: Analysis) -> dict[str, go.Figure]:
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


@white
def _panels_figure(a: Analysis, panels: Sequence[tuple[str, str]], unit: str, title: str,
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
    fig.update_layout(title=title)
    fig.update_xaxes(title_text=a.level_title)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    if log:
        fig.update_yaxes(type="log")
    return fig


@white
def _rate_figure(a: Analysis, metric: str, label: str, unit: str, title: str) -> go.Figure:
    fig = go.Figure(_level_traces(a, metric, label, unit))
    fig.update_layout(title=f"{title}: median of ok repeats", xaxis_title=a.level_title,
                      yaxis_title=f"{label} per second ({unit})")
    return fig


@white
def _connections_figure(a: Analysis) -> go.Figure:
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
                             "dotted: y = x, every offered client held at once)"))
    fig.update_xaxes(title_text=a.level_title)
    fig.update_yaxes(title_text="concurrent connections", row=1, col=1)
    return fig


@white
def _pss_per_connection_figure(a: Analysis) -> go.Figure:
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
                      yaxis_title="PSS peak, whole server tree (MiB)")
    return fig

