"""Trace helpers shared by every chart: a config's line of medians over ok repeats, its
non-ok trials as ``x`` markers, reference lines (SLO, ceiling, fit) and the unsupported
note under a title.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import ParamSpec

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from harness.report.fmt import _e, _rounded, _status_text
from harness.report.model import Analysis, _Style, _unsupported_configs

_SLO_COLOUR = "#c00"
#: The plotly template of every chart.
TEMPLATE = "plotly_white"

P = ParamSpec("P")


@contextlib.contextmanager
def template_held() -> Iterator[None]:
    """Hold :data:`TEMPLATE` as plotly's default template for the block; plotly's own
    default is put back after it. Inside a block already holding it, nothing is done.

    plotly hands a new figure its default template as it is, while ``template=...`` in
    ``update_layout`` validates a deep copy of the whole template (~12 ms a figure). Setting
    the default validates one too (18 ms measured, plotly 7.1), so a page holds it once
    around all its figures rather than twice per figure: ``bench publish`` of 12 stored
    runs (96 figures) took 7.0 s instead of 9.3 s, a report of two runs 2.49 s instead of
    2.66 s (medians of 5 and 7 runs on 2 cores). The figures are the same either way."""
    saved = pio.templates.default
    if saved == TEMPLATE:
        yield
        return
    pio.templates.default = TEMPLATE
    try:
        yield
    finally:
        pio.templates.default = saved


def white(build: Callable[P, go.Figure]) -> Callable[P, go.Figure]:
    """Run the figure builder ``build`` inside :func:`template_held`."""
    @functools.wraps(build)
    def built(*args: P.args, **kwargs: P.kwargs) -> go.Figure:
        with template_held():
            return build(*args, **kwargs)
    return built


def _has_data(fig: go.Figure) -> bool:
    """At least one trace that is not a reference line (SLO, ceiling, fit) has a point."""
    return any(len(t.x or ()) and not (t.meta or {}).get("reference") for t in fig.data)


def _ok_levels(a: Analysis, server: str) -> pd.DataFrame:
    rows = a.levels[(a.levels["server"] == server) & (a.levels["n"] > 0)]
    return rows.dropna(subset=[a.level]).sort_values(a.level)


def _not_valid_trace(a: Analysis, server: str, style: _Style, x_col: str, y_col: str,
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


def _level_traces(a: Analysis, metric: str, label: str, unit: str,
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


def _dedupe_legend(fig: go.Figure) -> None:
    """Show each trace name once in the legend (the panels repeat the same configs)."""
    seen: set[str] = set()
    for trace in fig.data:
        trace.showlegend = trace.name not in seen
        seen.add(trace.name)


def _note_unsupported(a: Analysis, fig: go.Figure) -> None:
    """Say under the chart's title which configs are unsupported, and why: they have no
    line (plotly's subtitle idiom, a ``<br><sup>`` second line)."""
    unsupported = _unsupported_configs(a)
    if not unsupported or not _has_data(fig):
        return
    text = "unsupported (no line): " + "; ".join(f"{s} ({r})" for s, r in unsupported.items())
    fig.update_layout(title_text=f"{fig.layout.title.text}<br><sup>{_e(text)}</sup>")

