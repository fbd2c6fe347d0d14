"""The history page (``bench history``, and ``history.html`` of ``bench publish``).

It opens with an overview a reviewer reads in one screen: one row per (scenario,
configuration), one column per metric, each cell the series' latest median, its change
against the previous run and against the level before its last change point; a cell
whose last change point moved the metric the worse way is highlighted as a regression
(an improvement in green). Then the series as small multiples: one plotly figure per
(scenario, machine, metric), one panel per configuration, x and y axes shared within
the figure and y from zero (so a 1% wobble stays a wobble), each panel with the median
of the ok repeats per run, the min-max band of the repeats, runs not complete marked,
and change points as dashed lines (red: regression, green: improvement). Then the
change points, the runs and the method. Rendered from ``history.html.j2`` with the
report's templating (:mod:`harness.report.templating`: jinja2, autoescape); plotly.js is
inlined with the first figure only, so the page works offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.compare import config_label
from harness.gates import METRICS
from harness.history import ChangePoint, History, Latest, RunInfo, Series, overview
from harness.results import atomic_write_bytes

#: Panels per row of a figure, and the height of one row of panels (px).
COLUMNS = 4
PANEL_HEIGHT = 190
#: Most x tick labels one axis shows (every k-th run beyond).
MAX_TICKS = 10

_BLUE, _BAND, _RED, _GREEN, _AMBER = "#1f77b4", "rgba(31,119,180,0.2)", "#a50f15", "#238b45", "#e6a700"


def _scenario_title(s: Series) -> str:
    return f"{s.scenario} · {s.machine}" if s.machine else s.scenario


def _direction(series: Series, cp: ChangePoint) -> str:
    worse = cp.change < 0 if series.metric.higher_is_better else cp.change > 0
    return "regression" if worse else "improvement"


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.1%}"


@dataclass(frozen=True, slots=True)
class Group:
    """One figure: the series of a (scenario, machine) for one metric, in config order."""

    title: str
    metric: str
    unit: str
    series: tuple[Series, ...]


def groups(history: History) -> list[Group]:
    """The small-multiples figures, by scenario (first-seen order), then metric (the
    order charted)."""
    keyed: dict[tuple[str, str], list[Series]] = {}
    for s in history.series:
        if len(s.points):
            keyed.setdefault((_scenario_title(s), s.metric.column), []).append(s)
    return [Group(title, METRICS[metric].label, METRICS[metric].unit, tuple(members))
            for (title, metric), members in keyed.items()]


def _hover(s: Series, runs: Sequence[RunInfo]) -> list[str]:
    unit = s.metric.unit
    return [f"{r.run_id}<br>{r.label}<br>median {r.median:.4g} {unit} (n={r.n}), "
            f"min {r.min:.4g}, max {r.max:.4g}"
            + ("" if r.complete else f"<br>run {runs[r.position].status}")
            for r in s.points.itertuples()]


def group_figure(group: Group, runs: Sequence[RunInfo]) -> go.Figure:
    """Small multiples of ``group``: one panel per configuration (:data:`COLUMNS` a row),
    axes shared, y from 0 to 8% above the largest repeat of the group."""
    n = len(group.series)
    cols = min(COLUMNS, n)
    rows = math.ceil(n / cols)
    fig = make_subplots(
        rows=rows, cols=cols, shared_xaxes="all", shared_yaxes="all",
        subplot_titles=[config_label(s.config) for s in group.series],
        horizontal_spacing=0.03 if cols > 1 else 0.0,
        vertical_spacing=min(0.3 / rows, 0.08) if rows > 1 else 0.0)
    top = max(float(s.points["max"].max()) for s in group.series)
    for i, s in enumerate(group.series):
        row, col = i // cols + 1, i % cols + 1
        p = s.points
        fig.add_trace(go.Scatter(x=p["position"], y=p["max"], mode="lines", line={"width": 0},
                                 hoverinfo="skip", showlegend=False), row=row, col=col)
        fig.add_trace(go.Scatter(x=p["position"], y=p["min"], mode="lines", line={"width": 0},
                                 fill="tonexty", fillcolor=_BAND, name="min–max of repeats",
                                 hoverinfo="skip"),
                      row=row, col=col)
        fig.add_trace(go.Scatter(x=p["position"], y=p["median"], mode="lines+markers",
                                 line={"color": _BLUE, "width": 1.5}, marker={"size": 5},
                                 name="median of ok repeats", hovertext=_hover(s, runs),
                                 hoverinfo="text"), row=row, col=col)
        partial = p[~p["complete"].astype(bool)]
        if len(partial):
            fig.add_trace(go.Scatter(
                x=partial["position"], y=partial["median"], mode="markers",
                marker={"symbol": "x-open", "size": 10, "color": _AMBER},
                name="run not complete", hoverinfo="skip"), row=row, col=col)
        for cp in s.change_points:
            colour = _RED if _direction(s, cp) == "regression" else _GREEN
            fig.add_vline(x=cp.position - 0.5, row=row, col=col,
                          line={"dash": "dash", "color": colour, "width": 1.5},
                          annotation={"text": f"{cp.change:+.0%} at {cp.label}",
                                      "font": {"size": 10, "color": colour}},
                          annotation_position="top left")
    # x: the runs that measured this group (other scenarios' runs get no tick)
    present = sorted({int(x) for s in group.series for x in s.points["position"]})
    step = max(1, math.ceil(len(present) / MAX_TICKS))
    ticks = [runs[x] for x in present[::step]]
    fig.update_xaxes(range=[present[0] - 0.5, present[-1] + 0.5], tickmode="array",
                     tickvals=[r.position for r in ticks], ticktext=[r.label for r in ticks],
                     tickangle=-45, tickfont={"size": 9})
    fig.update_yaxes(range=[0, top * 1.08 if top > 0 else 1], rangemode="tozero",
                     tickfont={"size": 9})
    fig.update_yaxes(title_text=group.unit, title_font={"size": 10}, col=1)
    for a in fig.layout.annotations[:n]:  # the panel titles
        a.font = {"size": 11}
    fig.update_layout(height=80 + rows * PANEL_HEIGHT, margin={"t": 40, "b": 60, "l": 60, "r": 10},
                      showlegend=False, hovermode="closest")
    return fig


def _cell(item: Latest) -> dict[str, Any]:
    s, cp = item.series, item.change_point
    unit = s.metric.unit
    title = [s.title, (f"latest: {item.median:.4g} {unit} (median of {item.n} ok "
                       f"repeats) at {item.label}")]
    if cp is not None:
        title.append(f"last change point at {cp.label} ({cp.run_id}): {cp.before:.4g} → "
                     f"{cp.after:.4g} {unit} ({cp.change:+.1%}), p={cp.p_value:.2g}")
    if item.stale:
        title.append("not measured in the latest run")
    return {"value": f"{item.median:.4g} {unit}", "n": item.n,
            "previous": _percent(item.vs_previous),
            "since": (f"{_percent(item.vs_change_point)} since {cp.label}" if cp else ""),
            "css": " ".join(filter(None, (item.verdict, "stale" if item.stale else ""))),
            "title": "\n".join(title)}


def overview_rows(history: History) -> tuple[list[str], list[tuple[str, list[dict[str, Any]]]]]:
    """(metric column titles, [(scenario title, rows)]): a row is ``{"config": str,
    "cells": [cell or None per metric]}``, a cell as :func:`_cell` makes it."""
    metrics = list(history.min_effects)
    heads = [f"{METRICS[m].label} ({METRICS[m].unit})" for m in metrics]
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for item in overview(history):
        s = item.series
        row = table.setdefault(_scenario_title(s), {}).setdefault(
            config_label(s.config), {"config": config_label(s.config),
                                     "cells": [None] * len(metrics)})
        row["cells"][metrics.index(s.metric.column)] = _cell(item)
    return heads, [(title, list(rows.values())) for title, rows in table.items()]


def render(history: History, out: Path, *, links: Sequence[tuple[str, str]] = ()) -> Path:
    """Write the page for ``history`` to ``out`` (atomically); return ``out``. ``links``
    are (href, text) shown at the top (the published site's index)."""
    from harness.report.tables import make_table
    from harness.report.templating import plot_div, render_template
    from harness.report.traces import template_held

    charts = []
    with template_held():  # the report's template, held once for every figure
        for number, g in enumerate(groups(history)):
            rows = math.ceil(len(g.series) / min(COLUMNS, len(g.series)))
            charts.append((g, plot_div(group_figure(g, history.runs), div_id=f"group{number}",
                                       include_js=number == 0,
                                       height=f"{80 + rows * PANEL_HEIGHT}px")))
    runs = make_table(
        [("#", True), ("commit", False), ("run", False), ("started", False),
         ("status", False), ("ok / trials", True), ("machine", False)],
        [("" if r.status == "complete" else "incomplete",
          [str(r.position), r.label, r.run_id, r.started_at, r.status,
           f"{r.ok_trials} / {r.trials}", r.machine]) for r in history.runs])
    cps = [(s, cp) for s in history.series for cp in s.change_points]
    changes = make_table(
        [("series", False), ("at run", False), ("median before → after", True),
         ("change", True), ("", False), ("p (Bonferroni)", True)],
        [(_direction(s, cp), [s.title, f"{cp.label} ({cp.run_id})",
                              f"{cp.before:.4g} → {cp.after:.4g} {s.metric.unit}",
                              (f"{cp.change:+.1%}", None, "change"), _direction(s, cp),
                              f"{cp.p_value:.2g}"])
         for s, cp in cps]) if cps else None
    latest = overview(history)
    regressions = [i for i in latest if i.verdict == "regression"]
    heads, table = overview_rows(history)
    effects = ", ".join(f"{METRICS[m].label} {e:.0%}" for m, e in history.min_effects.items())
    page = render_template("history.html.j2", history=history, charts=charts,
                           changes=changes, change_count=len(cps), runs=runs,
                           effects=effects, heads=heads, overview=table,
                           regressions=regressions, links=list(links))
    atomic_write_bytes(out, page.encode("utf-8"))
    return out
