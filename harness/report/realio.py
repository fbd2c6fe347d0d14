"""The report's real-I/O part (runs whose scenario started components: ``db-io``,
``db-rows``, ``upstream-http``; harness.realio).

Per run (:func:`realio_part`): where the components ran and with what settings; a table
per trial with the driver, the pool, the Little's-law ceiling and what bounded the
throughput, the connections the database saw, and the CPU per request split into the
server's, the database's and the upstream's; sentences for the blocking anti-pattern;
charts of throughput and latency vs users per (server, driver), connections at the
database vs offered concurrency, and the cost per request split. Across runs
(:func:`pool_part`): throughput vs ``pool_size`` when the runs held several pool sizes
of the same (scenario, server, driver, users).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from harness.report.fmt import _num
from harness.report.model import Analysis
from harness.report.tables import Cell, Table, _n, _text, make_table
from harness.report.templating import plot_div
from harness.runmeta import RunMeta

CHART_HEIGHT = "480px"
#: The drivers that block the event loop on purpose (harness.apps.drivers.DRIVERS).
BLOCKING = "blocking"


def _has_realio(a: Analysis) -> bool:
    return bool(a.run.meta.components) or bool(
        (a.trials.get("driver", pd.Series(dtype=object)).fillna("").astype(str) != "").any())


def _label(row: Any) -> str:
    return f"{row.server} · {row.driver or '?'}"


def _notes(meta: RunMeta) -> list[str]:
    comp = meta.components
    notes = []
    drivers = comp.drivers
    if drivers:
        notes.append(f"Drivers: WSGI apps {drivers.get('wsgi')}, ASGI apps {drivers.get('asgi')}"
                     f"; pool_size {comp.pool_size} connections per worker process. "
                     "The blocking driver calls the sync one inside async def on purpose: "
                     "each call blocks its event loop, so a worker serves one request at a "
                     "time.")
    if comp.placement:
        notes.append(f"Components ({', '.join(comp.names)}) ran on "
                     f"CPUs {','.join(map(str, comp.cpus))}: {comp.placement}."
                     + (" Their CPU competes with the server's, so the server's figures "
                        "include that contention." if comp.cpus_shared_with_server
                        else ""))
    pg = comp.postgres
    if pg:
        settings = pg.settings
        notes.append(f"PostgreSQL {pg.version or settings.get('server_version') or '?'}"
                     f" as OS user {pg.os_user or 'the harness user'}, 127.0.0.1:"
                     f"{pg.port}, max_connections {settings.get('max_connections')}, "
                     f"shared_buffers {settings.get('shared_buffers')}; "
                     f"{pg.settings_note or ''}. Seeded {pg.rows} rows of "
                     f"{pg.table}. Connections are read from pg_stat_activity every "
                     f"{pg.sampling.get('activity_interval_s', 0.1)} s "
                     "(active = running a query).")
    if comp.upstream:
        notes.append(f"Upstream service: uvicorn on {comp.upstream.url}, one process; it "
                     "waits latency_ms per call and answers fixed bytes.")
    if comp.error:
        notes.append(f"Components failed: {comp.error}")
    return notes


def _table(a: Analysis, index: int) -> Table:
    columns = [("server config", False), ("driver", False), ("pool size", True),
               ("users", True), ("repeat", True), ("status", False), ("req/s", True),
               ("ceiling req/s", True), ("efficiency %", True), ("bound by", False),
               ("p50 ms", True), ("p99 ms", True), ("db active peak", True),
               ("db connections peak", True), ("server CPU ms/req", True),
               ("db CPU ms/req", True), ("upstream CPU ms/req", True),
               ("db PSS peak MiB", True), ("flags", False)]
    rows: list[tuple[str, Sequence[Cell]]] = []
    for t in a.trials.itertuples(index=False):
        state = "ok" if t.status == "ok" else f"not-valid {t.status}"
        rows.append((f"{a.configs.get(t.server, '')} {state}", [
            t.server, _text(t.driver), _n(t.pool_size, 0), _n(t.users, 0), _n(t.repeat, 0),
            t.status or "", _n(t.throughput_rps), _n(t.ceiling_rps),
            _n(100 * float(t.efficiency) if not pd.isna(t.efficiency) else math.nan),
            _text(t.bound_by), _n(t.latency_p50_ms, 2), _n(t.latency_p99_ms, 2),
            _n(t.db_active_peak, 0), _n(t.db_connections_peak, 0),
            _n(t.cpu_ms_per_request, 3), _n(t.db_cpu_ms_per_request, 3),
            _n(t.upstream_cpu_ms_per_request, 3), _n(t.db_pss_mib_peak), _text(t.flags)]))
    return make_table(columns, rows, table_id=f"realio-run{index}", sortable=True,
                      status_cells=True)


def _blocking(a: Analysis) -> list[str]:
    """One sentence per blocking trial: its throughput against workers / latency."""
    out = []
    t = a.trials[a.trials["driver"].fillna("") == BLOCKING]
    for r in t.itertuples(index=False):
        text = (f"{r.server} with the blocking driver (sync driver inside async def): "
                f"{_num(r.throughput_rps)} req/s at {int(r.users)} users against a ceiling "
                f"of {_num(r.ceiling_rps)} req/s = workers ÷ wait, one call at a time per "
                f"event loop ({r.status}{': ' + r.reason if r.reason else ''}).")
        cycle = float(r.queue_cycle_s)
        if "not-steady" in str(r.reason) and cycle > 0 and float(r.latency_p99_ms) > 2000 * cycle:
            text += (f" Its p99 ({_num(r.latency_p99_ms, 0)} ms) is more than twice the queue "
                     f"cycle ({_num(cycle, 2)} s): a blocked loop takes waiting requests in "
                     "readiness order, not arrival order, so some starve, and the window "
                     "cannot close Little's law.")
        out.append(text)
    return out


def _lines(a: Analysis, column: str, title: str, axis: str, *,
           reference: str = "") -> go.Figure | None:
    """``column`` vs users, one line per (server, driver) through ok trials, others as ×;
    ``reference``: a column drawn dotted per line (the ceiling) or ``"y=x"``."""
    t = a.trials.dropna(subset=[column])
    if t.empty:
        return None
    fig = go.Figure()
    for (server, driver), g in t.groupby(["server", t["driver"].fillna("")], sort=False):
        g = g.sort_values("users")
        name = f"{server} · {driver or '?'}"
        ok = g[g["status"] == "ok"]
        med = ok.groupby("users")[column].median()
        fig.add_trace(go.Scatter(x=list(med.index), y=list(med.values), mode="lines+markers",
                                 name=name))
        bad = g[g["status"] != "ok"]
        if len(bad):
            fig.add_trace(go.Scatter(x=bad["users"], y=bad[column], mode="markers",
                                     marker={"symbol": "x", "size": 10},
                                     name=f"{name} (not valid)",
                                     text=[f"{s}: {r}" for s, r in zip(bad["status"],
                                                                        bad["reason"],
                                                                        strict=True)]))
        if reference and reference != "y=x" and g[reference].notna().any():
            ref = g.groupby("users")[reference].median()
            fig.add_trace(go.Scatter(x=list(ref.index), y=list(ref.values),
                                     mode="lines+markers", line={"dash": "dot"},
                                     marker={"symbol": "line-ew-open", "size": 16},
                                     name=f"{name} ceiling"))
    if reference == "y=x":
        users = sorted(t["users"].unique())
        fig.add_trace(go.Scatter(x=users, y=users, mode="lines+markers", line={"dash": "dot"},
                                 marker={"symbol": "line-ew-open", "size": 16},
                                 name="y = users"))
    fig.update_layout(title=title, xaxis_title="users (concurrent, closed loop)",
                      yaxis_title=axis)
    fig.update_yaxes(rangemode="tozero")
    return fig


def _cost(a: Analysis) -> go.Figure | None:
    """CPU ms per successful request, stacked: server, database, upstream, per trial."""
    t = a.trials[a.trials["status"] == "ok"].dropna(subset=["cpu_ms_per_request"])
    if t.empty:
        return None
    labels = [f"{r.server} · {r.driver or '?'} · {int(r.users)} users"
              for r in t.itertuples(index=False)]
    fig = go.Figure()
    for column, name in (("cpu_ms_per_request", "server"), ("db_cpu_ms_per_request",
                                                            "database"),
                         ("upstream_cpu_ms_per_request", "upstream")):
        if t[column].notna().any():
            fig.add_trace(go.Bar(x=labels, y=t[column].fillna(0.0), name=name))
    fig.update_layout(barmode="stack", title="CPU per request: server, database, upstream",
                      yaxis_title="CPU ms per successful request")
    return fig


def realio_part(a: Analysis, index: int, *, include_js: bool
                ) -> tuple[dict[str, Any] | None, bool]:
    """The run's real-I/O part (None for a run without components) and whether
    plotly.js still has to be embedded by a later chart."""
    if not _has_realio(a):
        return None, include_js
    figures = {
        "realio-throughput": _lines(a, "throughput_rps", "Throughput vs users per "
                                    "(server, driver), with the Little's-law ceiling",
                                    "req/s", reference="ceiling_rps"),
        "realio-latency": _lines(a, "latency_p99_ms", "p99 latency vs users per "
                                 "(server, driver)", "p99 ms"),
        "realio-connections": _lines(a, "db_active_peak", "Connections running a query at "
                                     "the database (peak) vs offered concurrency",
                                     "active connections (pg_stat_activity)", reference="y=x"),
        "realio-cost": _cost(a),
    }
    charts = []
    for key, fig in figures.items():
        if fig is None:
            continue
        charts.append(plot_div(fig, div_id=f"run{index}-{key}", include_js=include_js,
                               height=CHART_HEIGHT))
        include_js = False
    part = {"notes": _notes(a.run.meta), "table": _table(a, index), "blocking": _blocking(a),
            "charts": charts}
    return part, include_js


def pool_part(models: Sequence[Analysis], *, include_js: bool
              ) -> tuple[dict[str, Any] | None, bool]:
    """Throughput vs pool_size across runs, one line per (scenario, server, driver,
    users), when some line has two pool sizes or more; None otherwise."""
    frames = []
    for a in models:
        if _has_realio(a):
            t = a.trials[a.trials["status"] == "ok"].copy()
            t["scenario_name"] = a.run.meta.scenario.name or ""
            frames.append(t)
    if not frames:
        return None, include_js
    t = pd.concat(frames, ignore_index=True).dropna(subset=["pool_size", "throughput_rps"])
    keys = ["scenario_name", "server", "driver", "users"]
    fig = go.Figure()
    for key, g in t.groupby(keys, sort=False):
        if g["pool_size"].nunique() < 2:
            continue
        med = g.groupby("pool_size")[["throughput_rps", "ceiling_rps"]].median()
        name = f"{key[0]} · {key[1]} · {key[2]} · {int(key[3])} users"
        fig.add_trace(go.Scatter(x=list(med.index), y=list(med["throughput_rps"]),
                                 mode="lines+markers", name=name))
        if med["ceiling_rps"].notna().any():
            fig.add_trace(go.Scatter(x=list(med.index), y=list(med["ceiling_rps"]),
                                     mode="lines", line={"dash": "dot"},
                                     name=f"{name} ceiling"))
    if not fig.data:
        return None, include_js
    fig.update_layout(title="The pool's effect: throughput vs pool_size (per worker)",
                      xaxis_title="pool_size (connections per worker)", xaxis_type="log",
                      yaxis_title="req/s")
    chart = plot_div(fig, div_id="realio-pool", include_js=include_js, height=CHART_HEIGHT)
    return {"chart": chart}, False
