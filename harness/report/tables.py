"""The report's tables as data (:class:`Table`), rendered by the ``table`` macro of
``templates/macros.html.j2``, which escapes every header and cell once.

A numeric cell carries its raw number in ``data-v`` (``%.6g``; empty when NaN) for
sorting and tests; a table of trials marks its status cells ``status-<status>``.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.report.backends import BACKEND_METRICS, _engine_memory
from harness.report.fmt import _DASH, _float, _int, _num
from harness.report.model import Analysis, _cap_level, _unsupported_configs
from harness.report.stream_model import _matrix
from harness.runmeta import RunMeta

#: Table columns of free text that get room to breathe (CSS class ``long``).
_LONG_TEXT = frozenset({"note", "reason", "command line"})
#: Statuses whose plain cells in the trials table get the CSS class ``status-<status>``.
_STATUS_CELLS = frozenset({"invalid", "unsupported", "failed"})

#: A table cell: text, or (text, raw number for sorting and tests), or (text, raw
#: number or None, CSS class of the cell).
Cell = str | tuple[str, float] | tuple[str, float | None, str]


@dataclass(frozen=True, slots=True)
class TableCell:
    """One ``<td>``: its text, CSS classes ('' for none) and ``data-v`` (None for none)."""

    text: str
    css: str
    value: str | None


@dataclass(frozen=True, slots=True)
class Table:
    """One ``<table>``: id and CSS classes ('' for none), the headers as (text, numeric?),
    and the rows as (row CSS classes, cells)."""

    id: str
    css: str
    head: tuple[tuple[str, bool], ...]
    rows: tuple[tuple[str, tuple[TableCell, ...]], ...]


def make_table(columns: Sequence[tuple[str, bool]], rows: Iterable[tuple[str, Sequence[Cell]]],
           *, table_id: str = "", sortable: bool = False, css: str = "",
           status_cells: bool = False) -> Table:
    """A :class:`Table`; ``columns`` are (header, numeric?), ``rows`` are (row class, cells).

    A cell given as (text, number) carries the number in ``data-v``; (text, number,
    class) also gets that CSS class (and no ``data-v`` when the number is None). With ``status_cells``, a cell without a
    class whose text is ``invalid``, ``unsupported`` or ``failed`` gets
    ``status-<text>``.
    """
    body = []
    for row_class, cells in rows:
        tds = []
        for cell, (name, numeric) in zip(cells, columns, strict=True):
            text, raw, extra = (cell, None, "") if isinstance(cell, str) else \
                (cell[0], cell[1], cell[2] if len(cell) == 3 else "")
            classes = " ".join(c for c in ("num" if numeric else "long" if name in _LONG_TEXT
                                           and text else "", extra) if c)
            if status_cells and not classes and text in _STATUS_CELLS:
                classes = f"status-{text}"
            value = None if raw is None else "" if math.isnan(raw) else f"{raw:.6g}"
            tds.append(TableCell(text, classes, value))
        body.append((row_class, tuple(tds)))
    table_class = " ".join(c for c in ("sortable" if sortable else "", css) if c)
    return Table(table_id, table_class, tuple(columns), tuple(body))


def _n(value: Any, digits: int = 1) -> tuple[str, float]:
    """A numeric cell: formatted text and the raw value."""
    return _num(value, digits), _float(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) and value else _DASH


def agreement_table(a: Analysis) -> Table | None:
    """bench vs wrk per cross-checked trial (``bench run --cross-check`` /
    ``bench cross-check``: harness.cross_check.agreement_table); None when nothing was checked."""
    from harness import cross_check

    rows_in = a.run.trials
    stored = a.run.path / "oracle.csv"  # `bench cross-check RUN` wrote it: it wins
    if stored.is_file() and stored.stat().st_size > 0:
        try:
            rows_in = pd.read_csv(stored)
        except (OSError, ValueError, pd.errors.ParserError):
            rows_in = a.run.trials
    frame = cross_check.agreement_table(rows_in, cross_check.reasons_from_meta(a.run.meta))
    if frame.empty or frame["wrk_throughput_rps"].isna().all():
        return None
    columns = [("server config", False), ("users", True), ("repeat", True),
               (f"bench {a.rate_unit}", True), ("wrk req/s", True), ("bench / wrk", True),
               ("bench p50 ms", True), ("wrk p50 ms", True), ("bench p99 ms", True),
               ("wrk p99 ms", True), ("agreement", False), ("reason", False)]
    rows: list[tuple[str, Sequence[Cell]]] = []
    for r in frame.to_dict("records"):
        state = "ok" if r["status"] == "agrees" else "not-valid invalid"
        rows.append((f"{a.configs.get(r['server'], '')} {state}", [
            str(r["server"]), _n(r["users"], 0), _n(r["repeat"], 0),
            _n(r["bench_throughput_rps"]), _n(r["wrk_throughput_rps"]), _n(r["agreement"], 3),
            _n(r["bench_latency_p50_ms"], 2), _n(r["wrk_latency_p50_ms"], 2),
            _n(r["bench_latency_p99_ms"], 2), _n(r["wrk_latency_p99_ms"], 2),
            str(r["status"]), _text(r.get("reason", ""))]))
    return make_table(columns, rows, sortable=True)


def _servers_table(meta: RunMeta) -> Table | None:
    servers = meta.servers
    if not servers:
        return None
    columns = [("server config", False), ("interface", False), ("workers", True),
               ("threads", True), ("worker connections", True), ("command line", False)]
    rows: list[tuple[str, Sequence[Cell]]] = [(s.interface or "", [
        s.name or _DASH, s.interface or _DASH, _int(s.workers),
        _int(s.threads), _int(s.worker_connections), shlex.join(s.argv) or _DASH,
    ]) for s in servers]
    return make_table(columns, rows)


def _validity_table(trials: pd.DataFrame) -> Table | None:
    """Each non-ok (status, reason) with its count of trials and its configs."""
    bad = trials[trials["status"] != "ok"]
    if bad.empty:
        return None
    rows: list[tuple[str, Sequence[Cell]]] = [
        (status, [status, reason or _DASH, str(len(group)), ", ".join(sorted(set(group["server"])))])
        for (status, reason), group in bad.groupby(["status", "reason"], sort=True)]
    return make_table([("status", False), ("reason", False), ("trials", True),
                   ("server configs", False)], rows)


def _capacity_table(a: Analysis, index: int) -> Table:
    planned = a.target_rps is not None
    at = "users" if a.level == "users" else "offered req/s"
    columns: list[tuple[str, bool]] = [
        ("server config", False), ("interface", False), ("workers", True),
        (f"max sustainable {a.rate_unit}", True), ("95 % CI", False), (f"at {at}", True),
        ("repeats", True), (f"peak {a.rate_unit}", True), (f"peak at {at}", True),
        ("p50 ms", True), ("p95 ms", True), ("p99 ms", True), ("CPU % (of one core)", True),
        ("CPU ms per request", True), ("PSS MiB", True), ("PSS MiB per worker (approx.)", True),
        (f"{a.rate_unit} per core", True),
        ("USL σ", True), ("USL κ", True), ("USL peak users N*", True), ("USL R²", True)]
    if planned:
        columns += [("instances needed", True), ("memory of instances MiB", True),
                    ("server cores for the target", True)]
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
            _n(r.get("sustainable_cpu_ms_per_request", math.nan), 3),
            _n(r["sustainable_pss_mib"]), _n(r["pss_mib_per_worker"]), _n(r["rps_per_core"], 0),
            _n(r["usl_sigma"], 4), _n(r["usl_kappa"], 6), _n(r["usl_peak_users"], 0),
            _n(r["usl_r2"], 3)]
        if planned:
            needed = r["instances_needed"]
            cells += [(_DASH, math.nan) if pd.isna(needed) else (str(int(needed)), float(needed)),
                      _n(r["instances_pss_mib"]), _n(r.get("cores_needed", math.nan), 2)]
        cells.append(str(r["note"]))
        state = "" if not math.isnan(_float(r["sustainable_rps"])) else " no-capacity"
        rows.append((f"{r['interface']}{state}", cells))
    return make_table(columns, rows, table_id=f"capacity-run{index}", sortable=True)


def _matrix_table(a: Analysis, index: int) -> Table | None:
    """The stream matrix (:func:`stream_matrix`) as a table: a row per config, a column
    per level; unsupported, invalid and failed cells say so, styled apart."""
    matrix = _matrix(a)
    if matrix.empty:
        return None
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
    return make_table(columns, rows, table_id=f"matrix-run{index}", css="matrix")


_LEVEL_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("server config", False), ("interface", False), ("workers", True), ("level", True),
    ("trials", False), ("throughput (median)", True), ("95 % CI", False),
    ("CV %", True), ("noisy", False), ("p50 ms", True), ("p95 ms", True), ("p99 ms", True),
    ("p99.9 ms", True), ("errors %", True), ("CPU % (mean)", True), ("PSS peak MiB", True),
    ("generator CPU %", True), ("Little's law ratio", True), ("reason", False),
)


def _levels_table(a: Analysis) -> Table | None:
    """One row per (level, config), WSGI before ASGI at each level; figures are medians
    over the ok repeats (dashes where none is ok)."""
    if a.levels.empty:
        return None
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
    names = {"level": "users" if a.level == "users" else "offered req/s",
             "throughput (median)": f"throughput {a.rate_unit} (median)"}
    columns = [(names.get(name, name), numeric) for name, numeric in _LEVEL_COLUMNS]
    return make_table(columns, rows, sortable=True)


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


def _trials_table(a: Analysis, index: int) -> Table | None:
    if a.trials.empty:
        return None
    columns = [("trial", False), ("server config", False), ("interface", False),
               ("users", True), ("offered req/s", True), ("repeat", True), ("status", False),
               ("reason", False), ("flags", False), ("window s", True), ("requests", True), ("failures", True),
               (f"throughput {a.rate_unit}", True), ("errors %", True), ("p50 ms", True),
               ("p99 ms", True), ("CPU %", True), ("CPU ms per request", True),
               ("PSS peak MiB", True), ("RSS peak MiB", True), ("generator CPU %", True),
               ("generator lag % of users' time", True), ("warm-up s", True),
               ("warm-up", False)]
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
            _n(getattr(t, "cpu_ms_per_request", math.nan), 3),
            _n(t.pss_mib_peak), _n(t.rss_mib_peak), _n(t.generator_cpu_percent),
            _n(100 * _float(getattr(t, "generator_lag_share", math.nan)), 2),
            _n(getattr(t, "warmup_s", math.nan), 2),
            _text(getattr(t, "warmup_mode", "")),
            *(_n(getattr(t, column, math.nan), digits) for _, column, digits in extra),
        ]))
    return make_table(columns, rows, table_id=f"trials-run{index}", sortable=True,
                  status_cells=True)


def agents_table(a: Analysis, index: int) -> Table | None:
    """One row per (trial, load agent) from ``agents.csv`` (``bench run --load-agents``:
    harness.agents.AGENT_COLUMNS); None for a run without agents."""
    path = a.run.path / "agents.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path, dtype={"address": str, "host": str})
    columns = [("trial", False), ("agent", True), ("address", False), ("host", False),
               ("req/s", True), ("p50 ms", True), ("p99 ms", True), ("CPU % of a core", True),
               ("CPU warning", False), ("clock offset ms", True), ("± ms", True)]
    rows: list[tuple[str, Sequence[Cell]]] = [("", [
        str(r.trial_id), _n(r.agent, 0), _text(r.address), _text(r.host), _n(r.throughput_rps),
        _n(r.latency_p50_ms, 2), _n(r.latency_p99_ms, 2), _n(r.cpu_percent, 0),
        "yes" if r.cpu_warning is True or str(r.cpu_warning) == "True" else "no",
        _n(r.clock_offset_ms, 3), _n(r.clock_uncertainty_ms, 3)])
        for r in frame.itertuples(index=False)]
    return make_table(columns, rows, table_id=f"agents-run{index}", sortable=True)


def _engine_table(a: Analysis) -> tuple[str, Table] | None:
    """The engine's memory beside PSS (:func:`engine_memory`): a sentence saying how far
    apart they were here, and the table; None when the run has no engine samples."""
    table = _engine_memory(a)
    if table.empty:
        return None
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
        view = a.run.meta.resource_view
        if view.psutil is False:
            measured = (f"{view.reason or 'psutil had no view of the servers'}, so "
                        "PSS, USS and RSS are missing: the engine's figure is this run's only "
                        "memory figure, and the CPU figures are the engine's too. ")
        else:
            measured = "PSS was not sampled in these windows, so the two cannot be compared. "
    return measured, make_table(columns, rows)


@dataclass(frozen=True, slots=True)
class BackendPair:
    """One (scenario, baseline backend, other backend) of the backends section: its
    summary sentence (None when no level has ok trials on both sides) and its table."""

    scenario: str
    baseline: str
    other: str
    summary: str | None
    table: Table


def _backend_pairs(table: pd.DataFrame) -> list[BackendPair]:
    """The backend comparison (:func:`backend_comparison`) as one table per pair."""
    pairs = []
    for (scenario, baseline, other), part in table.groupby(["scenario", "baseline", "backend"],
                                                           sort=True):
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
        pairs.append(BackendPair(str(scenario), str(baseline), str(other),
                                 _backend_summary(part, str(baseline), str(other)),
                                 make_table(columns, rows, table_id=f"backends-{slug}",
                                        sortable=True)))
    return pairs


def _backend_summary(part: pd.DataFrame, baseline: str, other: str) -> str | None:
    """One sentence: the median ratio of each metric over the levels both sides measured;
    None when there is none."""
    said = []
    for metric, label in BACKEND_METRICS:
        ratios = part[f"{metric}_ratio"].dropna()
        if len(ratios):
            said.append(f"{label} {_num(ratios.median(), 2)}× (range "
                        f"{_num(ratios.min(), 2)}–{_num(ratios.max(), 2)})")
    if not said:
        return None
    matched = int(part[[f"{m}_ratio" for m, _ in BACKEND_METRICS]].notna().any(axis=1).sum())
    return (f"{other} ÷ {baseline}, median over {matched} level(s) measured ok "
            f"under both: {'; '.join(said)}.")
