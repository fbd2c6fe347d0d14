"""The stack axis in the report: the stack matrix (apps by server configs, each cell the
capacity within the SLO), the framework overhead against the raw app on the same server
(capacity and CPU per request, as a table and a figure), and the verdict's sentences about
them.

Shown only for a run with an app other than ``raw`` (:func:`stacked`): a run of the raw
apps alone renders as before. Every figure comes from the run's capacity table
(:func:`harness.stats.capacity_table`, one row per stack) and its trials; the model names
each stack ``{server}+{app}`` (``server``) and keeps the config in ``server_config``
(:func:`harness.report.model._by_stack`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.report.fmt import _DASH, _float, _num, _rounded
from harness.report.model import _STATUS_ORDER, Analysis, _unsupported_configs, once
from harness.report.tables import Cell, Table, make_table
from harness.report.traces import white
from harness.stacks import APPS, RAW

#: Buckets of the matrix's colour scale (CSS classes ``heat-0`` .. ``heat-9``).
HEAT_STEPS = 10
#: Columns of :func:`stack_cells`.
CELL_COLUMNS = ("stack", "server", "app", "interface", "framework_version", "state",
                "sustainable_rps", "at_level", "cpu_ms_per_request", "pss_mib",
                "peak_rps", "peak_level", "peak_cpu_ms_per_request", "peak_pss_mib", "reason")
#: Columns of :func:`overhead`.
OVERHEAD_COLUMNS = ("server", "app", "framework_version", "state", "basis", "rps", "raw_rps",
                    "capacity_ratio", "cpu_ms_per_request", "raw_cpu_ms_per_request",
                    "cpu_ms_extra", "cpu_ratio", "pss_mib", "raw_pss_mib", "note")


def stacked(a: Analysis) -> bool:
    """Whether the run served an app other than the raw ones."""
    return bool(set(a.trials["app"]) - {RAW, ""})


def _app_order(names: Sequence[str]) -> list[str]:
    """Raw first, then the registry's order, then any other app by name."""
    known = {name: i for i, name in enumerate(APPS)}
    return sorted(dict.fromkeys(names), key=lambda n: (known.get(n, len(known)), n))


@once
def stack_cells(a: Analysis) -> pd.DataFrame:
    """One row per stack of the run (:data:`CELL_COLUMNS`), in the report's config order.

    ``state``: ``ok`` (a sustainable level: its throughput, level, CPU ms per request and
    PSS), ``no-slo`` (ok trials, none within the SLO), ``unsupported`` (every trial, with
    the reason), or the worst status of trials none of which is ok (reason joined). The
    ``peak_*`` columns: the ok level of highest median throughput, SLO or not, with the
    median CPU ms per request and PSS of its ok repeats."""
    unsupported = _unsupported_configs(a)
    capacity = {str(r["server"]): r for r in a.capacity.to_dict("records")}
    rows = []
    for stack, interface in a.configs.items():
        trials = a.trials[a.trials["server"] == stack]
        if trials.empty:
            continue
        first = trials.iloc[0]
        cap = capacity.get(stack, {})
        row: dict[str, Any] = {
            "stack": stack, "server": str(first["server_config"]), "app": str(first["app"]),
            "interface": interface, "framework_version": str(first["framework_version"]),
            "sustainable_rps": _float(cap.get("sustainable_rps")),
            "at_level": _float(cap.get("sustainable_offered_rps" if a.level == "offered_rps"
                                       else "sustainable_users")),
            "cpu_ms_per_request": _float(cap.get("sustainable_cpu_ms_per_request")),
            "pss_mib": _float(cap.get("sustainable_pss_mib")),
            "peak_rps": _float(cap.get("peak_rps")),
            "peak_level": _float(cap.get("peak_offered_rps" if a.level == "offered_rps"
                                         else "peak_users")), "reason": ""}
        at_peak = trials[(trials["status"] == "ok") & (trials[a.level] == row["peak_level"])]
        row["peak_cpu_ms_per_request"] = _float(at_peak["cpu_ms_per_request"].median())
        row["peak_pss_mib"] = _float(at_peak["pss_mib_peak"].median())
        if stack in unsupported:
            row.update(state="unsupported", reason=unsupported[stack])
        elif not math.isnan(row["sustainable_rps"]):
            row["state"] = "ok"
        elif (trials["status"] == "ok").any():
            row.update(state="no-slo", reason=str(cap.get("note") or ""))
        else:
            bad = trials[trials["status"] != "ok"]
            status = min(set(bad["status"]), key=lambda s: (_STATUS_ORDER.get(s, 9), s))
            row.update(state=status, reason="; ".join(sorted(
                {r for r in bad.loc[bad["status"] == status, "reason"] if r})))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CELL_COLUMNS))


def _server_interfaces(a: Analysis, cells: pd.DataFrame) -> dict[str, str]:
    """Server config -> interface, in the run's order of server configs (run.json's
    ``servers``; WSGI ones first as the registry lists them), then any other."""
    found = {str(r.server): str(r.interface) for r in cells.itertuples(index=False)}
    listed = [str(e.name) for e in a.run.meta.servers]
    order = {name: i for i, name in enumerate(listed)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], len(order)),
                                                      kv[1] != "wsgi", kv[0])))


def _short(state: str, reason: str) -> str:
    """A matrix cell's text for a stack without a figure: ``unsupported: <reason>``; for
    invalid or failed trials their kinds of reason (the text before each ``:``)."""
    if state == "unsupported" or not reason:
        return f"{state}: {reason}" if reason else state
    heads = [part.strip().split(":")[0] for part in reason.split(";") if part.strip()]
    kinds = sorted({h for h in heads if re.fullmatch(r"[a-z][a-z-]*", h)})
    return f"{state}: {', '.join(kinds) if kinds else reason[:80]}"


def _app_interfaces(a: Analysis, cells: pd.DataFrame) -> dict[str, set[str]]:
    """App -> the interfaces it can be served through: run.json's ``apps``, else the
    interfaces it ran under."""
    out: dict[str, set[str]] = {}
    for entry in a.run.meta.apps:
        if entry.name:
            out[entry.name] = set(entry.interfaces)
    for r in cells.itertuples(index=False):
        out.setdefault(str(r.app), set()).add(str(r.interface))
    return out


def matrix_table(a: Analysis, index: int) -> Table | None:
    """Apps (rows) by server configs (columns); a cell holds the stack's max sustainable
    throughput, coloured from the matrix's lowest (``heat-0``) to its highest (``heat-9``),
    or why it has none: ``unsupported`` (the reason follows), ``none within SLO`` (with
    the peak), the status of trials none of which was ok, or ``–`` where the app does not
    speak the server's interface (no such stack)."""
    cells = stack_cells(a)
    if cells.empty:
        return None
    servers = _server_interfaces(a, cells)
    interfaces = _app_interfaces(a, cells)
    low, top = cells["sustainable_rps"].min(), cells["sustainable_rps"].max()
    by_pair = {(str(r.app), str(r.server)): r for r in cells.itertuples(index=False)}
    columns = [("app", False), ("framework", False),
               *((f"{s} ({i.upper()})", True) for s, i in servers.items())]
    rows: list[tuple[str, Sequence[Cell]]] = []
    for app in _app_order(list(cells["app"])):
        mine = cells[cells["app"] == app]
        version = next((v for v in mine["framework_version"] if v), "")
        row: list[Cell] = [app, version or (_DASH if app != RAW else "none (reference)")]
        for server, interface in servers.items():
            r = by_pair.get((app, server))
            if r is None:
                na = interface not in interfaces.get(app, set())
                row.append(((f"– (not {interface.upper()})" if na else "not run"), None,
                            "cell cell-none"))
            elif r.state == "ok":
                step = (min(HEAT_STEPS - 1, int(HEAT_STEPS * (r.sustainable_rps - low)
                                                / (top - low))) if top > low else HEAT_STEPS - 1)
                row.append((f"{_num(r.sustainable_rps, 1)} at {a.level_label(r.at_level)}",
                            float(r.sustainable_rps), f"cell heat-{step}"))
            elif r.state == "unsupported":
                row.append((f"unsupported: {r.reason}", None, "cell cell-unsupported"))
            elif r.state == "no-slo":
                row.append((f"none within SLO (peak {_num(r.peak_rps, 1)})", math.nan,
                            "cell cell-mixed"))
            else:
                row.append((_short(str(r.state), str(r.reason)), None, f"cell cell-{r.state}"))
        rows.append(("", row))
    return make_table(columns, rows, table_id=f"stacks-run{index}", css="matrix stacks")


@once
def overhead(a: Analysis) -> pd.DataFrame:
    """Each framework stack against the raw app on the same server config
    (:data:`OVERHEAD_COLUMNS`), app by app in registry order, server by server:
    ``capacity_ratio`` = its throughput ÷ raw's; ``cpu_ms_extra`` = its server CPU ms per
    request − raw's, ``cpu_ratio`` their ratio; PSS beside raw's. ``basis`` says which
    throughput: ``sustainable`` (both have a level within the SLO: each at its own max
    sustainable level) or ``peak`` (one of them has none: each at its highest ok level,
    outside the SLO). NaN, with a note, where there is nothing to compare: no raw stack
    on the server, or either side with no ok trial."""
    cells = stack_cells(a)
    rows = []
    for server in _server_interfaces(a, cells):
        here = cells[cells["server"] == server]
        raw = here[here["app"] == RAW]
        base = raw.iloc[0] if len(raw) else None
        for app in _app_order([x for x in here["app"] if x != RAW]):
            r = here[here["app"] == app].iloc[0]
            row: dict[str, Any] = dict.fromkeys(OVERHEAD_COLUMNS, math.nan)
            row.update(server=server, app=app, framework_version=r["framework_version"],
                       state=r["state"], basis="", note="")
            if base is not None and r["state"] == base["state"] == "ok":
                prefix = ""
                row["basis"] = "sustainable"
            elif (base is not None and not math.isnan(_float(r["peak_rps"]))
                  and not math.isnan(_float(base["peak_rps"]))):
                prefix = "peak_"
                row["basis"] = "peak"
                row["note"] = "at peak, outside the SLO: " + (
                    "neither has" if r["state"] != "ok" and base["state"] != "ok"
                    else "raw has" if r["state"] == "ok" else f"{app} has") + \
                    " no level within the SLO"
            else:
                prefix = ""
                row["note"] = ("no raw stack on this server in this run" if base is None
                               else _short(str(r["state"]), str(r["reason"])) if r["state"]
                               not in ("ok", "no-slo") else
                               "raw: " + _short(str(base["state"]), str(base["reason"])))
            if row["basis"]:
                rps = "peak_rps" if prefix else "sustainable_rps"
                row.update(rps=r[rps], raw_rps=base[rps],
                           cpu_ms_per_request=r[f"{prefix}cpu_ms_per_request"],
                           raw_cpu_ms_per_request=base[f"{prefix}cpu_ms_per_request"],
                           pss_mib=r[f"{prefix}pss_mib"], raw_pss_mib=base[f"{prefix}pss_mib"])
            rows.append(row)
    out = pd.DataFrame(rows, columns=list(OVERHEAD_COLUMNS))
    for column in ("raw_rps", "raw_cpu_ms_per_request", "raw_pss_mib", "rps",
                   "cpu_ms_per_request", "pss_mib"):
        out[column] = pd.to_numeric(out[column], errors="coerce")
    out["capacity_ratio"] = out["rps"] / out["raw_rps"]
    out["cpu_ms_extra"] = out["cpu_ms_per_request"] - out["raw_cpu_ms_per_request"]
    out["cpu_ratio"] = out["cpu_ms_per_request"] / out["raw_cpu_ms_per_request"]
    return out


def _ratio(value: Any) -> tuple[str, float]:
    number = _float(value)
    return (_DASH if math.isnan(number) else f"{number:.2f}×"), number


def _signed(value: Any, digits: int) -> tuple[str, float]:
    number = _float(value)
    return (_DASH if math.isnan(number) else f"{number:+.{digits}f}"), number


def overhead_table(a: Analysis, index: int) -> Table | None:
    """:func:`overhead` as a table, one row per framework stack, server by server; None
    when no stack could be compared with the raw app (none ran, or none had an ok level)."""
    frame = overhead(a)
    if frame.empty or not (frame["basis"] != "").any():
        return None
    unit = a.rate_unit
    columns = [("server config", False), ("app", False), ("framework version", False),
               ("compared at", False), (unit, True), (f"raw {unit}", True), ("× raw", True),
               ("CPU ms per request", True), ("raw CPU ms per request", True),
               ("extra CPU ms per request", True), ("CPU × raw", True), ("PSS MiB", True),
               ("raw PSS MiB", True), ("note", False)]
    rows: list[tuple[str, Sequence[Cell]]] = []
    for r in frame.to_dict("records"):
        rows.append(("" if r["basis"] else f"not-valid {r['state']}", [
            str(r["server"]), str(r["app"]), str(r["framework_version"] or _DASH),
            {"sustainable": "max sustainable", "peak": "peak"}.get(r["basis"], _DASH),
            (_num(r["rps"], 1), _float(r["rps"])),
            (_num(r["raw_rps"], 1), _float(r["raw_rps"])), _ratio(r["capacity_ratio"]),
            (_num(r["cpu_ms_per_request"], 3), _float(r["cpu_ms_per_request"])),
            (_num(r["raw_cpu_ms_per_request"], 3), _float(r["raw_cpu_ms_per_request"])),
            _signed(r["cpu_ms_extra"], 3), _ratio(r["cpu_ratio"]),
            (_num(r["pss_mib"], 1), _float(r["pss_mib"])),
            (_num(r["raw_pss_mib"], 1), _float(r["raw_pss_mib"])), str(r["note"])]))
    return make_table(columns, rows, table_id=f"overhead-run{index}", sortable=True)


@white
def overhead_figure(a: Analysis) -> go.Figure:
    """Two panels, server configs on the x axis, one bar per app (:func:`overhead`):
    throughput ÷ raw's on the same server (1 = no overhead; at max sustainable levels, or
    at peaks where either has none: hover says which), and server CPU ms per request there
    (raw's bar beside the flavours'). Empty when nothing could be compared."""
    frame = overhead(a)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        f"{a.rate_unit} ÷ raw's on the same server",
        "server CPU ms per request"))
    frame = frame[frame["basis"] != ""]
    if frame.empty:
        return fig
    servers = list(dict.fromkeys(frame["server"]))
    for app in _app_order([RAW, *frame["app"]]):
        if app == RAW:  # raw's CPU: as compared with the first flavour on each server
            mine = frame.drop_duplicates("server").assign(
                cpu_ms_per_request=lambda f: f["raw_cpu_ms_per_request"])
            ratio = pd.Series(dtype=float)
        else:
            mine = frame[frame["app"] == app]
            ratio = mine.set_index("server")["capacity_ratio"]
        cpu = mine.set_index("server")["cpu_ms_per_request"]
        colour = _APP_COLOURS[_app_order(list(APPS)).index(app) % len(_APP_COLOURS)] \
            if app in APPS else "#7f7f7f"
        if app != RAW and ratio.notna().any():
            fig.add_trace(go.Bar(x=servers, y=_rounded([ratio.get(s, math.nan) for s in servers], 3),
                                 name=app, legendgroup=app, marker_color=colour,
                                 hovertemplate=f"{app} on %{{x}}: %{{y:.2f}}× raw<extra></extra>"),
                          row=1, col=1)
        if cpu.notna().any():
            fig.add_trace(go.Bar(x=servers, y=_rounded([cpu.get(s, math.nan) for s in servers], 4),
                                 name=app, legendgroup=app, marker_color=colour,
                                 showlegend=app == RAW or not ratio.notna().any(),
                                 hovertemplate=f"{app} on %{{x}}: %{{y:.3f}} ms CPU per "
                                               "request<extra></extra>"),
                          row=1, col=2)
    if any(len(t.x or ()) for t in fig.data):
        fig.add_hline(y=1.0, line={"color": "#555", "dash": "dot"}, row=1, col=1)
    fig.update_layout(title="Framework overhead against the raw app on the same server",
                      barmode="group")
    fig.update_yaxes(title_text="× raw capacity", row=1, col=1)
    fig.update_yaxes(title_text="CPU ms per request", row=1, col=2)
    return fig


#: A colour per app of the registry (raw grey-black), in its order.
_APP_COLOURS = ("#333333", "#1f77b4", "#2ca02c", "#98df8a", "#d62728", "#9467bd",
                "#ff7f0e", "#8c564b", "#17becf", "#e377c2")


def stack_sentences(a: Analysis) -> list[str]:
    """The verdict's sentences about stacks: the matrix's size, the best server for each
    app, and per server each framework's capacity and CPU per request against raw."""
    cells = stack_cells(a)
    if cells.empty:
        return []
    out = []
    n_apps, n_servers = cells["app"].nunique(), cells["server"].nunique()
    unsupported = int((cells["state"] == "unsupported").sum())
    out.append(f"Stacks: {len(cells)} (server config, app) pairs of matching interface from "
               f"{n_apps} apps and {n_servers} server configs"
               + (f", {unsupported} of them unsupported for this workload" if unsupported
                  else "") + ".")
    best = []
    for app in _app_order(list(cells["app"])):
        able = cells[(cells["app"] == app) & (cells["state"] == "ok")]
        if len(able):
            top = able.loc[able["sustainable_rps"].idxmax()]
            best.append(f"{app} → {top['server']} ({_num(top['sustainable_rps'], 1)} "
                        f"{a.rate_unit})")
    if best:
        out.append("Best server config for each app, by max sustainable throughput: "
                   + "; ".join(best) + ".")
    frame = overhead(a).dropna(subset=["capacity_ratio"])
    for server, part in frame.groupby("server", sort=False):
        raw = part[part["basis"] == "sustainable"]
        raw = (raw if len(raw) else part).iloc[0]
        parts = [f"{r.app} {r.capacity_ratio:.2f}×"
                 + ("" if r.basis == "sustainable" else " at peak (outside the SLO)")
                 + (f", {r.cpu_ms_extra:+.3f} ms CPU per request" if not math.isnan(
                     _float(r.cpu_ms_extra)) else "")
                 for r in part.sort_values("capacity_ratio", ascending=False).itertuples()]
        out.append(f"Framework overhead on {server}, throughput against raw's "
                   f"({_num(raw['raw_rps'], 1)} {a.rate_unit} at "
                   f"{_num(raw['raw_cpu_ms_per_request'], 3)} ms CPU per request): "
                   + "; ".join(parts) + ".")
    return out
