"""Cross-checking bench against an independent generator: per-trial agreement, the
report's agreement table, and ``bench cross-check RUN`` (a stored run driven again).

The wrk driver itself is :mod:`harness.oracle`; this module decides what is compared
with what: the same server and level, right after the trial (``bench run
--cross-check``) or re-deployed from a stored run, and how far apart is "disagrees".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import UserError
from harness.oracle import (
    WRK_TIMEOUT_S,
    OracleError,
    OracleResult,
    drive,
    require_wrk,
    warmup_used,
    wrk_version,
)
from harness.runmeta import OracleMeta, RunMeta

if TYPE_CHECKING:
    import pandas as pd

    from harness.backends import Deployment
    from harness.scenarios import Scenario

#: How far (as a fraction) bench's throughput may differ from wrk's on the same server
#: and level before the trial is flagged ``oracle-disagrees``: |bench / wrk - 1| > 5%,
#: the bound issue 14 sets. Two independent closed loops at the same concurrency against
#: the same server differ by their own per-request overhead only; beyond 5% one of them,
#: usually the Python generator, set the pace.
AGREEMENT_TOLERANCE = 0.05
#: The flag a trial gets when bench and wrk disagree beyond the tolerance.
DISAGREES_FLAG = "oracle-disagrees"


# ------------------------------------------------------------------------ per-trial figures

def agreement(bench_rps: float, oracle_rps: float) -> float:
    """bench throughput / wrk throughput: 1.0 when they agree; NaN when either is
    unknown or both are 0; inf when wrk got nothing through and bench did."""
    if math.isnan(bench_rps) or math.isnan(oracle_rps):
        return math.nan
    if oracle_rps > 0:
        return bench_rps / oracle_rps
    return math.inf if bench_rps > 0 else math.nan


def disagrees(ratio: float, tolerance: float = AGREEMENT_TOLERANCE) -> bool:
    """True when ``ratio`` (bench / wrk) is off 1 by more than ``tolerance`` (inf too);
    exactly ``tolerance`` off agrees (1e-9 of slack for the division's rounding:
    105 / 100 - 1 is 0.05000000000000004)."""
    return not math.isnan(ratio) and not abs(ratio - 1.0) <= tolerance + 1e-9


def not_checked_reason(trial: Mapping[str, Any], protocol: str) -> str:
    """Why a trial is not cross-checked, or "" if it is: wrk speaks plain request and
    response HTTP in a closed loop, so stream scenarios, open-loop trials and trials
    without a measurement (failed, unsupported) are left out."""
    if protocol != "http":
        return (f"not cross-checked: {protocol} is a stream scenario; wrk drives request/"
                "response HTTP only")
    if trial.get("load_mode") == "open-loop":
        return "not cross-checked: open-loop trial; wrk is a closed loop"
    if trial.get("status") not in ("ok", "invalid"):
        return f"not cross-checked: trial {trial.get('status') or 'without status'}"
    return ""


def fill_trial(trial: dict[str, Any], result: OracleResult) -> None:
    """Write the oracle's figures into a trial row (``oracle_*`` columns) and add the
    ``oracle-disagrees`` flag when bench and wrk disagree beyond the tolerance."""
    ratio = agreement(float(trial.get("throughput_rps", math.nan)), result.throughput_rps)
    trial.update(oracle_throughput_rps=result.throughput_rps,
                 oracle_latency_p50_ms=result.latency_p50_ms,
                 oracle_latency_p99_ms=result.latency_p99_ms, oracle_agreement=ratio)
    if disagrees(ratio):
        flags = trial.get("flags")
        kept = [f for f in str(flags).split(";") if f] if isinstance(flags, str) else []
        if DISAGREES_FLAG not in kept:
            kept.append(DISAGREES_FLAG)
        trial["flags"] = ";".join(kept)


def _with_entry(meta: RunMeta, wrk: str, trial_id: str, entry: dict[str, Any]) -> RunMeta:
    """``meta`` with the oracle's ``entry`` for ``trial_id`` (the oracle section made on
    the first one)."""
    oracle = meta.oracle
    if oracle.tool is None:
        try:
            version = wrk_version(wrk)
        except OracleError as exc:  # recorded, never raised: the trial's figures stand
            version = f"unknown ({exc})"
        oracle = OracleMeta(tool="wrk", path=wrk, version=version,
                            tolerance=AGREEMENT_TOLERANCE, timeout_s=WRK_TIMEOUT_S,
                            warmup="separate wrk run of the trial's warm-up length, discarded")
    return meta.replace(oracle=oracle.replace(trials={**oracle.trials, trial_id: entry}))


class PlanView(Protocol):
    """What :func:`cross_check_trial` reads of a run plan (``harness.plan.RunPlan``)."""

    @property
    def scenario(self) -> Scenario: ...
    @property
    def load_cpus(self) -> list[int]: ...
    @property
    def warmup_s(self) -> float: ...
    @property
    def duration_s(self) -> float: ...


def cross_check_trial(trial: dict[str, Any], server: Deployment, plan: PlanView, *,
                      run_dir: Path, meta: RunMeta) -> RunMeta:
    """``bench run --cross-check``: run the oracle on the server that just served
    (and recorded) ``trial``, at its concurrency, on the plan's load CPUs, with the plan's warm-up and
    window lengths; fill the trial's ``oracle_*`` columns and record the run (argv,
    version, errors) or why there is none in the run's ``oracle.trials[trial_id]``:
    returns ``meta`` with it.

    Never raises for wrk's own failures (they become the reason); Ctrl-C and SIGTERM
    pass through, after wrk was stopped. The caller saves the run afterwards.
    """
    wrk = require_wrk()
    reason = not_checked_reason(trial, plan.scenario.protocol)
    if reason:
        return _with_entry(meta, wrk, trial["trial_id"], {"reason": reason})
    try:
        result = drive(server, plan.scenario.request_path, users=int(trial["users"]),
                       cpus=list(plan.load_cpus), warmup_s=warmup_used(trial, plan.warmup_s),
                       duration_s=plan.duration_s, out_dir=run_dir / "oracle",
                       label=trial["trial_id"], wrk=wrk)
    except OracleError as exc:
        return _with_entry(meta, wrk, trial["trial_id"], {"reason": f"not cross-checked: {exc}"})
    fill_trial(trial, result)
    return _with_entry(meta, wrk, trial["trial_id"],
                       {"reason": _result_reason(result), **result.as_dict()})


#: A CPU set busier than this (% of its capacity) during the wrk run is noted in the
#: reason: wrk or the server shared its cores with something else.
BUSY_PERCENT = 90.0


def _result_reason(result: OracleResult) -> str:
    """wrk's errors and a busy machine during its run, or "" (a clean run)."""
    e, notes = result.errors, []
    if e.total:
        notes.append(f"wrk errors: connect {e.connect}, read {e.read}, write {e.write}, "
                     f"status {e.status}, timeout {e.timeout}")
    if result.generator_cpu_percent >= BUSY_PERCENT:
        notes.append(f"wrk at {result.generator_cpu_percent:.0f}% of a core")
    if result.load_cpus_busy_percent >= BUSY_PERCENT:
        notes.append(f"load CPUs {result.load_cpus_busy_percent:.0f}% busy during wrk "
                     f"(wrk itself {result.generator_cpu_percent:.0f}%)")
    return "; ".join(notes)


def reasons_from_meta(meta: RunMeta) -> dict[str, str]:
    """trial_id -> the oracle's reason (why not checked, or wrk's errors) from run.json."""
    return meta.oracle.reasons()


# ----------------------------------------------------------------------- agreement table

#: Columns of :func:`agreement_table`.
AGREEMENT_COLUMNS = (
    "server", "users", "repeat", "bench_throughput_rps", "wrk_throughput_rps", "agreement",
    "bench_latency_p50_ms", "bench_latency_p99_ms", "wrk_latency_p50_ms", "wrk_latency_p99_ms",
    "status", "reason",
)


def agreement_table(trials: pd.DataFrame,
                    reasons: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The report's "agreement with an independent generator" table: one row per trial
    that was cross-checked or left out with a reason, sorted by server, users, repeat.

    Input: trial rows (``trials.csv`` or ``oracle.csv``) with ``server``, ``users``,
    ``throughput_rps``, ``latency_p50_ms``, ``latency_p99_ms`` and the ``oracle_*``
    columns; ``reasons`` maps ``trial_id`` to the oracle's reason (see
    :func:`reasons_from_meta`), or rows carry an ``oracle_reason`` column.

    Columns (:data:`AGREEMENT_COLUMNS`): ``server``, ``users``, ``repeat``;
    ``bench_throughput_rps`` and ``wrk_throughput_rps`` (successful responses, req/s);
    ``agreement`` (bench / wrk, 1.0 = same); ``bench_latency_p50_ms``,
    ``bench_latency_p99_ms``, ``wrk_latency_p50_ms``, ``wrk_latency_p99_ms`` (ms);
    ``status``: ``agrees`` (within :data:`AGREEMENT_TOLERANCE`), ``disagrees`` or
    ``not-checked``; ``reason``: why not checked, or wrk's errors. Empty (with these
    columns) when no trial was cross-checked. Pure: reads nothing, writes nothing.
    """
    import pandas as pd

    reasons = dict(reasons or {})
    if "oracle_throughput_rps" not in trials:
        trials = trials.assign(oracle_throughput_rps=math.nan, oracle_latency_p50_ms=math.nan,
                               oracle_latency_p99_ms=math.nan, oracle_agreement=math.nan)
    rows = []
    for _, t in trials.iterrows():
        tid = str(t.get("trial_id", ""))
        reason = reasons.get(tid, "")
        own = t.get("oracle_reason")
        if not reason and isinstance(own, str):
            reason = own
        wrk_rps = float(t["oracle_throughput_rps"])
        if math.isnan(wrk_rps) and not reason:
            continue  # never cross-checked (a run without --cross-check)
        ratio = agreement(float(t["throughput_rps"]), wrk_rps)
        status = ("not-checked" if math.isnan(wrk_rps)
                  else "disagrees" if disagrees(ratio) else "agrees")
        rows.append({
            "server": t["server"], "users": t["users"], "repeat": t.get("repeat", math.nan),
            "bench_throughput_rps": float(t["throughput_rps"]), "wrk_throughput_rps": wrk_rps,
            "agreement": ratio,
            "bench_latency_p50_ms": float(t["latency_p50_ms"]),
            "bench_latency_p99_ms": float(t["latency_p99_ms"]),
            "wrk_latency_p50_ms": float(t["oracle_latency_p50_ms"]),
            "wrk_latency_p99_ms": float(t["oracle_latency_p99_ms"]),
            "status": status, "reason": reason,
        })
    table = pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
    return table.sort_values(["server", "users", "repeat"], ignore_index=True)


# ------------------------------------------------------------------- a stored run, again

#: ``oracle.csv`` (written by ``bench cross-check RUN``): one row per trial of the run,
#: bench's figures (``throughput_rps``, ``latency_*_ms``, ``status``) beside the oracle's
#: for the same (server, users); wrk runs once per (server, users), so repeats share its
#: figures. ``oracle_status``: agrees / disagrees / not-checked; ``oracle_reason`` why
#: not checked, or wrk's errors; ``oracle_errors`` all wrk errors (socket + status +
#: timeout); ``oracle_duration_s`` as wrk measured it; ``oracle_argv`` space-joined.
ORACLE_COLUMNS = (
    "trial_id", "server", "users", "repeat", "status", "throughput_rps", "latency_p50_ms",
    "latency_p99_ms", "oracle_throughput_rps", "oracle_latency_p50_ms", "oracle_latency_p99_ms",
    "oracle_agreement", "oracle_status", "oracle_reason", "oracle_requests", "oracle_errors",
    "oracle_duration_s", "oracle_warmup_s", "oracle_version", "oracle_argv",
)


def _oracle_row(trial: Mapping[str, Any], result: OracleResult | None,
                reason: str) -> dict[str, Any]:
    row: dict[str, Any] = {c: math.nan for c in ORACLE_COLUMNS}
    row.update({k: trial.get(k, math.nan) for k in ("trial_id", "server", "users", "repeat",
                                                     "status", "throughput_rps",
                                                     "latency_p50_ms", "latency_p99_ms")})
    row.update(oracle_status="not-checked", oracle_reason=reason)
    if result is not None:
        ratio = agreement(float(row["throughput_rps"]), result.throughput_rps)
        row.update(oracle_throughput_rps=result.throughput_rps,
                   oracle_latency_p50_ms=result.latency_p50_ms,
                   oracle_latency_p99_ms=result.latency_p99_ms, oracle_agreement=ratio,
                   oracle_status="disagrees" if disagrees(ratio) else "agrees",
                   oracle_reason=reason or _result_reason(result),
                   oracle_requests=result.requests, oracle_errors=result.errors.total,
                   oracle_duration_s=result.duration_s, oracle_warmup_s=result.warmup_s,
                   oracle_version=result.version, oracle_argv=" ".join(result.argv))
    return row


def cross_check_run(run_dir: Path, servers: list[str] | None = None, *, pin_self: bool = False,
                    log: Callable[[str], None] = lambda _line: None) -> pd.DataFrame:
    """``bench cross-check RUN``: re-deploy each server config of a stored run with the
    run's recorded settings (backend, workers, server and load CPU sets, request path
    with its scenario parameters), verify it, and drive each of its closed-loop levels
    with wrk (warm-up and window lengths as recorded). Writes ``run_dir/oracle.csv``
    (:data:`ORACLE_COLUMNS`) atomically after every level and returns it; rows of
    configs not checked this time are kept from an earlier ``oracle.csv``.

    Every server started is stopped in a ``finally`` (also on Ctrl-C). A config that
    will not start or answers wrongly gets its reason on its rows; the others go on.
    With ``pin_self`` (the CLI), this process is pinned to the run's load CPUs once
    they are validated, as ``bench run`` does, so its own threads stay off the server's.

    Raises:
        UserError: not a run folder, wrk missing, a server not in the run, a server
            config or CPU the run names that this machine does not have.
    """
    import os
    import time

    import pandas as pd

    from harness import servers as server_registry
    from harness.backends import get_backend
    from harness.machine import format_cpus, parse_cpus
    from harness.procs import ProcessError
    from harness.results import atomic_write_csv, load_run
    from harness.verify import verify

    wrk = require_wrk()
    data = load_run(run_dir)
    meta, trials = data.meta, data.trials
    sc = meta.scenario
    protocol, path = sc.protocol or "http", sc.request_path or ""
    recorded = {s.name: s for s in meta.servers if s.name}
    names = list(recorded)
    if servers:
        unknown = [s for s in servers if s not in recorded]
        if unknown:
            raise UserError(f"--servers {','.join(unknown)}: not in this run "
                            f"(it has: {', '.join(names) or 'none'})")
        names = [n for n in names if n in servers]
    configs = ({n: server_registry.select([n], protocol)[0] for n in names}
               if protocol == "http" else {})
    server_cpus = parse_cpus(format_cpus(list(meta.cpus.server)), "the run's server CPUs")
    load_cpus = parse_cpus(format_cpus(list(meta.cpus.load)), "the run's load CPUs")
    backend = get_backend(meta.backend or "local")
    if pin_self:
        os.sched_setaffinity(0, load_cpus)
    warmup_s, duration_s = float(sc.warmup_s or 0), float(sc.duration_s or 1)
    out_dir = data.path / "oracle"
    rows: list[dict[str, Any]] = []
    previous = data.path / "oracle.csv"
    if previous.is_file() and previous.stat().st_size > 0:
        # A cross-check of some servers keeps the rows of the others from an earlier one.
        kept = pd.read_csv(previous)
        kept = kept[~kept["server"].isin(names)].reindex(columns=list(ORACLE_COLUMNS))
        rows.extend(kept.to_dict("records"))

    def save() -> None:
        atomic_write_csv(data.path / "oracle.csv",
                         pd.DataFrame(rows, columns=list(ORACLE_COLUMNS)))

    t0 = time.monotonic()
    for name in names:
        own = trials["server"] == name
        # A stack of a framework app is cross-checked during its run (bench run
        # --cross-check, on the live deployment); re-deployed here would be the raw app.
        for _, t in trials[own & (trials["app"] != "raw")].iterrows():
            rows.append(_oracle_row(t, None, f"not cross-checked: app {t['app']}; bench "
                                    "cross-check re-deploys the raw app only (use bench run "
                                    "--cross-check)"))
        mine = [t for _, t in trials[own & (trials["app"] == "raw")].iterrows()]
        checked = [t for t in mine if not not_checked_reason(t, protocol)]
        for t in mine:
            reason = not_checked_reason(t, protocol)
            if reason:
                rows.append(_oracle_row(t, None, reason))
        if not checked:
            save()
            continue
        log(f"{name}: deploying ({meta.backend or 'local'}, "
            f"{recorded[name].workers} workers, CPUs {format_cpus(server_cpus)})")
        server = None
        try:
            try:
                server = backend.deploy(configs[name], workers=recorded[name].workers or 1,
                                        cpus=server_cpus, run_id=meta.run_id or "",
                                        repeat=0,
                                        log_path=data.path / "logs" / f"oracle-server-{name}.log",
                                        clock=lambda: time.monotonic() - t0)
                problem = verify(server.port, path)
            except ProcessError as exc:
                problem = f"server failed to start: {exc}: {exc.log_tail}"
            if problem:
                rows.extend(_oracle_row(t, None, f"not cross-checked: {problem}") for t in checked)
                save()
                continue
            for users in sorted({int(t["users"]) for t in checked}):
                level = [t for t in checked if int(t["users"]) == users]
                try:
                    used = max(warmup_used(t, warmup_s) for t in level)
                    result: OracleResult | None = drive(
                        server, path, users=users, cpus=load_cpus, warmup_s=used,
                        duration_s=duration_s, out_dir=out_dir, label=f"{name}-u{users}",
                        wrk=wrk)
                    reason = ""
                except OracleError as exc:
                    result, reason = None, f"not cross-checked: {exc}"
                rows.extend(_oracle_row(t, result, reason) for t in level)
                save()
                if result is not None:
                    log(f"{name} users={users}: wrk {result.throughput_rps:.1f} req/s, "
                        f"p50 {result.latency_p50_ms:.2f} ms")
        finally:
            if server is not None:
                server.stop()
    rows.sort(key=lambda r: (str(r["server"]), int(r["users"]), int(r["repeat"])))
    save()
    return pd.DataFrame(rows, columns=list(ORACLE_COLUMNS))
