"""The report page: one section per run, then the backends side by side, rendered from
``templates/report.html.j2`` (:func:`render`).

Every value reaches the page through a template, which escapes it; the functions here
only choose what to show and word it (plain text, no markup).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness import stats
from harness.report.backends import _run_backend, backend_comparison
from harness.report.charts import STACK_CHART_KEYS, _figures
from harness.report.fmt import _DASH, _cpus, _num, _pairs, _percent, _run_id
from harness.report.model import Analysis, _check_options, analyse
from harness.report.realio import pool_part, realio_part
from harness.report.stacks import matrix_table, overhead_table, stacked
from harness.report.tables import (
    _backend_pairs,
    _capacity_table,
    _engine_table,
    _levels_table,
    _matrix_table,
    _servers_table,
    _trials_table,
    _validity_table,
    agents_table,
    agreement_table,
)
from harness.report.templating import plot_div, render_template
from harness.report.traces import template_held
from harness.report.verdict import _verdict
from harness.results import RunData, atomic_write_bytes
from harness.runmeta import RunMeta

#: Height of every chart of the report (CSS).
CHART_HEIGHT = "520px"


def render(runs: Sequence[RunData | Analysis], out: Path, *, target_rps: float | None = None,
           slo_p99_ms: float | None = None,
           headroom: float = stats.DEFAULT_HEADROOM) -> Path:
    """Write the HTML report for ``runs`` to ``out`` (atomically); return ``out``.

    ``runs`` are run folders read with :func:`harness.results.load_run`, or their models
    (:func:`analyse`, built with the options: then leave the options here unset).
    ``target_rps`` (req/s) adds instances needed and their memory to each capacity
    table; ``slo_p99_ms`` (ms) overrides every run's SLO p99; ``headroom`` is the
    fraction of max sustainable throughput each instance may run at. One section per
    run; then, when ``runs`` hold one scenario under several backends, a section setting
    them side by side (:func:`backend_comparison`). plotly.js is embedded inline with the
    first chart of the file only (none when there is nothing to plot). The output
    depends on the arguments alone: no clock, no random ids (bootstrap intervals use a
    fixed seed).

    Raises:
        ValueError: ``target_rps`` or ``slo_p99_ms`` not > 0, ``headroom`` not in (0, 1];
            an :class:`Analysis` given together with options.
        OSError: ``out`` cannot be written.
    """
    _check_options(target_rps, slo_p99_ms, headroom)
    given_options = (target_rps, slo_p99_ms, headroom) != (None, None, stats.DEFAULT_HEADROOM)
    models = []
    for run in runs:
        if isinstance(run, Analysis):
            if given_options:
                raise ValueError("target_rps, slo_p99_ms, headroom: pass them to analyse(), "
                                 "not with an Analysis")
            models.append(run)
        else:
            models.append(analyse(run, slo_p99_ms=slo_p99_ms, target_rps=target_rps,
                                  headroom=headroom))
    if models and not given_options:
        target_rps, slo_p99_ms = _common_options(models)
    with template_held():  # every chart of the page, in one hold (its docstring says why)
        sections, realio_pool = _chart_sections(models)
    backends = backend_comparison(models)
    pairs = _backend_pairs(backends) if not backends.empty else []
    ids = [_run_id(a.run) for a in models]
    nav = []
    if len(models) > 1:
        nav = [(f"#run-{i}", f"{a.run.meta.scenario.name or _DASH}"
                + (f" ({_run_backend(a.run)})" if _run_backend(a.run) else "") + f": {run_id}")
               for i, (a, run_id) in enumerate(zip(models, ids, strict=True))]
        if pairs:
            nav.append(("#backends", "Backends side by side"))
    page = render_template("report.html.j2", ids=ids, dash=_DASH, nav=nav,
                           options=_options_text(models, target_rps, slo_p99_ms),
                           sections=sections, backend_pairs=pairs, realio_pool=realio_pool)
    atomic_write_bytes(out, page.encode("utf-8"))
    return out


def _chart_sections(models: Sequence[Analysis]
                    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Per model its section (charts, realio part), and the pool chart of them all."""
    include_js = True
    sections = []
    for index, a in enumerate(models):
        charts, lead = [], []
        for key, fig in _figures(a).items():  # the stack charts come first, and lead the page
            (lead if key in STACK_CHART_KEYS else charts).append(plot_div(
                fig, div_id=f"run{index}-{key}", include_js=include_js, height=CHART_HEIGHT))
            include_js = False
        sections.append(_section(a, index, charts, lead))
        sections[-1]["realio"], include_js = realio_part(a, index, include_js=include_js)
    realio_pool, _ = pool_part(models, include_js=include_js)
    return sections, realio_pool


def _common_options(models: Sequence[Analysis]) -> tuple[float | None, float | None]:
    """The (target_rps, slo_p99_ms) every model was built with, None where they differ."""
    targets = {a.target_rps for a in models}
    overrides = {a.slo.p99_ms if a.slo.source == "--slo-p99-ms" else None for a in models}
    return (targets.pop() if len(targets) == 1 else None,
            overrides.pop() if len(overrides) == 1 else None)


def _options_text(models: Sequence[Analysis], target_rps: float | None,
                  slo_p99_ms: float | None) -> list[str]:
    options = []
    if slo_p99_ms is not None:
        options.append(f"SLO p99 set to {slo_p99_ms:g} ms for every run (--slo-p99-ms)")
    if target_rps is not None:
        units = {a.rate_unit for a in models}
        unit = units.pop() if len(units) == 1 else "per second of each run's throughput unit"
        options.append(f"capacity planned for {target_rps:g} {unit} (--target-rps)")
    return options


def _section(a: Analysis, index: int, charts: Sequence[Any],
             stack_charts: Sequence[Any] = ()) -> dict[str, Any]:
    """What the section of one run shows (the context of ``section.html.j2``). A run with
    framework apps leads with its verdict, the stack matrix and the framework overhead;
    its setup follows."""
    meta = a.run.meta
    counts = a.trials["status"].value_counts()
    known = ("ok", "invalid", "unsupported", "failed")
    statuses = list(known) + sorted(set(counts.index) - set(known))
    engine = _engine_table(a)
    return {
        "index": index, "run_id": _run_id(a.run),
        "name": meta.scenario.name or _DASH,
        "status": meta.status or "unknown",
        "header": _header(meta, a), "servers": _servers_table(meta),
        "validity": [(s, s or "(none)", int(counts.get(s, 0))) for s in statuses],
        "trial_count": len(a.trials), "validity_table": _validity_table(a.trials),
        "verdict": _verdict(a),
        "stream": a.stream, "protocol_name": a.protocol_name, "rate_unit": a.rate_unit,
        "matrix": _matrix_table(a, index) if a.stream else None,
        "matrix_figure": ("time to first event (TTFE) p99 and events delivered per second"
                          if a.protocol == "sse" else "echo round-trip time (RTT) p99 and "
                          "echoes received per second"),
        "capacity": _capacity(a, index),
        "levels": _levels_table(a),
        "engine": engine,
        "charts": charts,
        "trials": _trials_table(a, index),
        "agreement": agreement_table(a),
        "agents": agents_table(a, index),
        "method": _method(meta, a),
        "shared_cpus": _shared_cpus(meta),
        "stacks": ({"matrix": matrix_table(a, index), "overhead": overhead_table(a, index),
                    "charts": list(stack_charts)} if stacked(a) else None),
    }


def _capacity(a: Analysis, index: int) -> dict[str, Any]:
    """The capacity part: ``missing`` (why there is no table) or ``notes`` and ``table``."""
    if not a.slo.p99_ms > 0:
        return {"missing": "No SLO p99 recorded for this run: pass --slo-p99-ms to compute "
                           "capacity."}
    if a.capacity.empty:
        return {"missing": "No trials."}
    notes = [(f"Max sustainable: the highest median throughput among levels "
              f"whose median p99 ≤ {a.slo.p99_ms:g} ms and median error rate ≤ "
              f"{_percent(a.slo.max_error_rate)} % over ok repeats. 95 % CI: Student-t interval "
              f"of the mean over repeats (– with one repeat). {a.rate_unit} per core = "
              "throughput ÷ "
              "CPU % × 100 (a linear extrapolation). PSS per worker = PSS of the whole tree ÷ "
              "workers (approximate: the tree includes the master process). USL: Universal "
              "Scalability Law fitted to every ok trial when ≥ 4 levels (Gunther 1993).")]
    notes.append("CPU ms per request = the server tree's CPU time over the window ÷ the "
                 "successful requests in it, at the sustainable level.")
    if a.target_rps is not None:
        notes.append(f"Server cores for the target = {a.target_rps:g} {a.rate_unit} × CPU ms "
                     "per request ÷ 1000: the CPU that load costs at the sustainable level's "
                     "latency (no headroom added).")
        notes.append(f"Instances needed for {a.target_rps:g} {a.rate_unit} = "
                     "ceil(target ÷ "
                     f"(max sustainable × {a.headroom:g})): headroom factor {a.headroom:g}, "
                     f"i.e. each instance runs at no more than {100 * a.headroom:g} % of its "
                     "max sustainable throughput. Memory = instances × PSS at the sustainable "
                     "level.")
    return {"missing": None, "notes": notes, "table": _capacity_table(a, index)}


def _load_mode(meta: RunMeta, trials: pd.DataFrame) -> str:
    modes = sorted({m for m in trials["load_mode"] if m})
    if not modes and meta.load_mode:
        modes = [meta.load_mode]
    return ", ".join(modes) or _DASH


def _header(meta: RunMeta, a: Analysis) -> list[tuple[str, str]]:
    """The setup of the run as (key, value) rows."""
    scenario, cpus = meta.scenario, meta.cpus
    commit = (meta.git.commit or _DASH) + (" (dirty)" if meta.git.dirty else "")
    slo = (f"p99 ≤ {a.slo.p99_ms:g} ms" if a.slo.p99_ms > 0 else "p99: none recorded") + \
        f", error rate ≤ {_percent(a.slo.max_error_rate)} %" + \
        (" (p99 from --slo-p99-ms)" if a.slo.source == "--slo-p99-ms" else "")
    return [
        ("run id", meta.run_id or _DASH),
        ("status", meta.status or _DASH),
        ("started / ended", f"{meta.started_at or _DASH} / {meta.ended_at or _DASH}"),
        ("command", shlex.join(meta.command) if meta.command else _DASH),
        ("scenario", f"{scenario.name or _DASH}: {scenario.description or ''}"),
        ("request", f"{scenario.protocol or ''} {scenario.request_path or _DASH}"),
        ("params", _pairs(scenario.params)),
        ("load mode", _load_mode(meta, a.trials)),
        ("levels (users)", ", ".join(map(str, scenario.users)) or _DASH),
        ("warm-up / measurement", (f"{_num(scenario.warmup_s)} s / "
                                   f"{_num(scenario.duration_s)} s per level")),
        ("repeats", str(scenario.repeats or _DASH)),
        ("SLO", slo),
        ("validity thresholds", _pairs(scenario.validity.to_dict())),
        ("commit", commit),
        ("machine", _pairs(meta.machine.to_dict())),
        ("CPU sets", f"server: {_cpus(cpus.server)}; load generator: {_cpus(cpus.load)}"),
        ("versions", _pairs(meta.versions)),
        *_engine_rows(meta),
    ]


def _engine_rows(meta: RunMeta) -> list[tuple[str, str]]:
    """A docker run's engine and load target, and, when psutil could not see the
    servers' processes (a remote engine: harness.dockerhost), where the server figures
    come from and which are missing. None for other runs."""
    rows = []
    engine, view = meta.engine, meta.resource_view
    if engine:
        rows.append(("docker engine", (f"{engine.url or _DASH} (from "
                     f"{engine.source or _DASH}); load target "
                     f"{meta.target_host or '127.0.0.1'}")))
    if view.psutil is False:
        missing = ", ".join(view.missing) or _DASH
        rows.append(("server figures", (f"{view.source or _DASH}. "
                     f"{view.reason or ''}; missing: {missing}")))
    return rows


def _shared_cpus(meta: RunMeta) -> str:
    """The CPUs the server and the load generator shared, '' when none."""
    shared = sorted(set(meta.cpus.server) & set(meta.cpus.load))
    return _cpus(shared) if shared else ""


def _method(meta: RunMeta, a: Analysis) -> list[str]:
    """The method and caveats, one paragraph per item."""
    scenario = meta.scenario
    server_cpus, load_cpus = meta.cpus.server, meta.cpus.load
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
    if scenario.steady:
        warm = (f"Each level's measurement window opens when the stack is in steady state "
                f"(at most {_num(scenario.max_warmup_s)} s after the users started): "
                "at least one full cycle of the queue since every user started (users ÷ "
                "throughput), a latency drift over the last second of at most 10 % of the "
                "mean (1 ms floor) and Little's law within 10 %; the finished window is held "
                "to the same drift and Little's-law bounds, and a level that misses them is "
                "invalid (not-steady). The warm-up each trial used is in the trials table. "
                "The warm-up is excluded from every number and chart; then a measurement "
                f"window of {_num(scenario.duration_s)} s; ")
    else:
        held = (" (its window is still held to the steady-state drift and Little's-law "
                "bounds)" if meta.warmup else "")
        warm = (f"Each level has a fixed warm-up of {_num(scenario.warmup_s)} s, "
                f"excluded from every number and chart{held}, then a measurement window of "
                f"{_num(scenario.duration_s)} s; ")
    if meta.level_transition == "step-up":
        warm = ("A server's first level starts from no users on an idle server; each later "
                "level adds users to the previous level's running ones (no stop between "
                "levels), and its warm-up counts from the last user added. " + warm)
    return [
        loop,
        (warm +
         f"{scenario.repeats or 1} repeat(s), configs interleaved. Lines and tables show "
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
         "figures describe the generator, not the server. The generator also measures "
         "itself: the time each user waited between a response and its next request "
         "(pure generator overhead with no think time); a trial whose users waited on it "
         "more than 3 % of their time while the server had room for them is invalid "
         "(generator-limited), as is an open-loop "
         "trial that sent more than 1 % of its requests late (generator-behind)."),
    ]
