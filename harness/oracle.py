"""The oracle: an independent load generator (``wrk``) run on the same stack and level to
cross-check ``bench``'s own throughput and latency.

What it does, per (server, level): prove the server idle, run ``wrk`` once for the
trial's warm-up length (figures discarded), prove it idle again, then run ``wrk`` for
the trial's window length and keep that run's figures. ``wrk`` runs with ``-c users``
connections (the trial's concurrency), ``-t min(load CPUs, users)`` threads, HTTP/1.1
keep-alive (its default), ``--timeout`` as locust's network timeout, pinned to the load
CPU set through :func:`harness.procs.spawn`, against ``http://127.0.0.1:PORT/path`` only,
and is killed if it outlives its duration by :data:`KILL_MARGIN_S`. It hands its
figures back as a JSON file written by a Lua ``done()`` hook (:data:`DONE_LUA`), never
as text to scrape.

Why the warm-up is a separate run (and not the first part of one run excluded): wrk
reports one histogram per run and cannot exclude a time span without a Lua hook on
every response, which would slow the generator we want to be fast. Between the two
runs the server is drained (see :func:`drain`), so the measured run starts from an
empty queue like every ``bench`` level does.

What wrk does not do, and what that means for the comparison:

* it does not check bodies: a 200 with wrong bytes counts as success. ``bench``
  verifies the response byte for byte before load (:func:`harness.verify.verify`);
  the oracle relies on that check.
* it is a closed loop, so its latency suffers coordinated omission like any closed
  loop (a slow response delays the next send on that connection). wrk 4 adds a partial
  correction (``stats_correct``: synthetic samples every ``duration / (requests /
  connections)`` below each latency above twice that interval), so its percentiles are
  not the raw sample percentiles when latency varies a lot; for a steady ``io-heavy``
  level the correction adds nothing. wrk2 (a constant-rate, fully corrected variant)
  is not packaged in Debian.
* its durations are whole seconds (``-d`` and ``--timeout`` take integers), so the
  window is rounded to the nearest second (at least 1); the throughput divides by the
  duration wrk measured itself (``summary.duration``), never by the one asked for.
* its ``status`` errors are responses with status > 399 and its ``timeout`` errors
  are responses that arrived later than ``--timeout``: both are counted in
  ``summary.requests`` and are subtracted from it. ``connect``, ``read`` and
  ``write`` errors are socket failures that produced no response, so they are not in
  ``summary.requests`` (wrk.c ``response_complete``) and subtracting them too would
  count a failure twice; they are reported in :class:`WrkErrors`.
* ``oha`` is not supported (not installed here; see issue 14).

Sources: wrk 4.1 ``src/wrk.c`` and ``src/stats.c`` (github.com/wg/wrk); Gil Tene, "How
NOT to measure latency" (coordinated omission).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness import procs
from harness.errors import UserError
from harness.procs import child_env, http_get, spawn, stop_group, tail

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
#: wrk's ``--timeout``, s: locust's network timeout for HTTP users (scenarios/locustfile.py).
WRK_TIMEOUT_S = 30
#: wrk is killed (its whole process group) if it is still running this long after its
#: ``-d`` duration; normally it stops within 0.1 s of it.
KILL_MARGIN_S = 15.0
#: How long the server may take to finish the work left by the previous load (requests
#: of closed connections still queued) before the oracle gives up on it, s.
DRAIN_DEADLINE_S = 60.0
#: How long the server may keep client connections open after that, s.
IDLE_DEADLINE_S = 10.0
INSTALL_HINT = "apt-get install wrk"
#: The environment variable that tells the Lua hook where to write its JSON.
OUT_ENV = "BENCH_WRK_OUT"

#: wrk's ``done()`` hook: every figure as JSON, times in µs, NaN and inf as null.
DONE_LUA = r"""
-- Written by bench (harness/oracle.py): wrk's figures as JSON, times in microseconds.
local function num(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  return string.format("%.17g", x)
end

done = function(summary, latency, requests)
  local e = summary.errors
  local parts = {
    '"requests": ' .. num(summary.requests),
    '"duration_us": ' .. num(summary.duration),
    '"bytes": ' .. num(summary.bytes),
    '"errors": {"connect": ' .. num(e.connect) .. ', "read": ' .. num(e.read)
      .. ', "write": ' .. num(e.write) .. ', "status": ' .. num(e.status)
      .. ', "timeout": ' .. num(e.timeout) .. '}',
    '"latency_us": {"mean": ' .. num(latency.mean) .. ', "max": ' .. num(latency.max)
      .. ', "p50": ' .. num(latency:percentile(50)) .. ', "p90": ' .. num(latency:percentile(90))
      .. ', "p99": ' .. num(latency:percentile(99)) .. ', "p99.9": '
      .. num(latency:percentile(99.9)) .. '}',
  }
  local f = assert(io.open(os.getenv("BENCH_WRK_OUT"), "w"))
  f:write("{" .. table.concat(parts, ", ") .. "}\n")
  f:close()
end
"""


class OracleError(RuntimeError):
    """wrk could not produce figures (it failed, hung, or the server would not drain)."""


@dataclass(frozen=True, slots=True)
class WrkErrors:
    """wrk's error counters for one run (``summary.errors``).

    ``status``: responses with status > 399; ``timeout``: responses later than
    ``--timeout``; both are in ``summary.requests``. ``connect``/``read``/``write``:
    socket failures, no response, not in ``summary.requests``.
    """

    connect: int = 0
    read: int = 0
    write: int = 0
    status: int = 0
    timeout: int = 0

    @property
    def socket(self) -> int:
        """Socket failures that produced no response."""
        return self.connect + self.read + self.write

    @property
    def total(self) -> int:
        return self.socket + self.status + self.timeout


@dataclass(frozen=True, slots=True)
class OracleResult:
    """One measured wrk run.

    ``throughput_rps``: successful responses (``requests - status - timeout`` errors)
    over the duration wrk measured, req/s; latencies in ms (wrk's histogram, 1 µs
    resolution, NaN when no response was timed); ``duration_s`` as measured by wrk;
    ``argv`` the exact command; ``warmup_s`` the length of the discarded warm-up run;
    CPU figures (% of one core, or of a CPU set) say whether wrk or a neighbour on the
    machine may have set the pace.
    """

    tool: str
    version: str
    argv: tuple[str, ...]
    connections: int
    threads: int
    duration_s: float
    requests: int
    successes: int
    bytes: int
    errors: WrkErrors
    throughput_rps: float
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_p999_ms: float
    latency_max_ms: float
    warmup_s: float = 0.0
    #: wrk's own CPU over its run, % of one core (getrusage of the reaped child).
    generator_cpu_percent: float = math.nan
    #: How busy the load CPUs were from anything during the run, % of the set.
    load_cpus_busy_percent: float = math.nan
    #: The server tree's CPU (% of one core) and its CPU set's busy % during the run,
    #: from the deployment's sampler; NaN without one.
    server_cpu_percent: float = math.nan
    server_cpus_busy_percent: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["argv"] = list(self.argv)
        return out


# ------------------------------------------------------------------------------ wrk itself

def find_wrk(environ: Mapping[str, str] | None = None) -> str | None:
    """The path of ``wrk`` on ``PATH`` (``environ``'s, default this process's), or None."""
    path = None if environ is None else environ.get("PATH", "")
    return shutil.which("wrk", path=path)


def require_wrk() -> str:
    """The path of ``wrk``.

    Raises:
        UserError: wrk is not on PATH (one line, with the install hint).
    """
    wrk = find_wrk()
    if wrk is None:
        raise UserError(f"wrk not found on PATH: the independent load generator for "
                        f"cross-checks; install it ({INSTALL_HINT})")
    return wrk


def wrk_version(wrk: str) -> str:
    """wrk's version line, e.g. ``wrk debian/4.1.0-3+b2 [epoll]`` (``wrk -v`` exits 1)."""
    try:
        r = procs.run([wrk, "-v"], timeout_s=10)
    except procs.CommandError as exc:
        raise OracleError(f"{wrk} -v: {exc}") from None
    first = (r.stdout or r.stderr).strip().splitlines()
    line = first[0] if first else ""
    return line.split(" Copyright", 1)[0].strip() or "wrk (unknown version)"


def wrk_argv(wrk: str, *, port: int, path: str, users: int, load_cpus: int,
             duration_s: float, script: Path) -> list[str]:
    """wrk's command line: ``-c users``, ``-t min(load CPUs, users)``, ``-d`` whole
    seconds (at least 1), ``--timeout`` :data:`WRK_TIMEOUT_S`, the Lua hook, and
    ``http://127.0.0.1:port/path`` (loopback only)."""
    if users < 1:
        raise ValueError(f"users must be >= 1, got {users}")
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', got {path!r}")
    threads = max(1, min(load_cpus, users))
    seconds = max(1, round(duration_s))
    return [wrk, "-t", str(threads), "-c", str(users), "-d", f"{seconds}s",
            "--timeout", f"{WRK_TIMEOUT_S}s", "-s", str(script),
            f"http://127.0.0.1:{port}{path}"]


def _ms(us: Any) -> float:
    return float(us) / 1000.0 if isinstance(us, int | float) else math.nan


def parse_summary(data: Mapping[str, Any], *, version: str, argv: list[str] | tuple[str, ...],
                  warmup_s: float = 0.0) -> OracleResult:
    """An :class:`OracleResult` from the JSON :data:`DONE_LUA` wrote (times in µs).

    Raises:
        OracleError: a field is missing or the duration is not positive.
    """
    try:
        errs = WrkErrors(**{k: int(data["errors"][k])
                            for k in ("connect", "read", "write", "status", "timeout")})
        requests = int(data["requests"])
        duration_s = float(data["duration_us"]) / 1e6
        lat = data["latency_us"]
        nbytes = int(data["bytes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise OracleError(f"wrk's JSON lacks {exc}: {dict(data)!r:.200}") from None
    if not duration_s > 0:
        raise OracleError(f"wrk measured a duration of {duration_s} s")
    argv = tuple(argv)
    successes = max(0, requests - errs.status - errs.timeout)
    timed = requests - errs.timeout  # responses whose latency is in wrk's histogram
    lat_ms = {k: (_ms(lat.get(k)) if timed > 0 else math.nan)
              for k in ("mean", "max", "p50", "p90", "p99", "p99.9")}
    return OracleResult(
        tool="wrk", version=version, argv=argv,
        connections=int(argv[argv.index("-c") + 1]) if "-c" in argv else 0,
        threads=int(argv[argv.index("-t") + 1]) if "-t" in argv else 0,
        duration_s=duration_s, requests=requests, successes=successes, bytes=nbytes,
        errors=errs, throughput_rps=successes / duration_s,
        latency_mean_ms=lat_ms["mean"], latency_p50_ms=lat_ms["p50"],
        latency_p90_ms=lat_ms["p90"], latency_p99_ms=lat_ms["p99"],
        latency_p999_ms=lat_ms["p99.9"], latency_max_ms=lat_ms["max"], warmup_s=warmup_s,
    )


def run_wrk(port: int, path: str, *, users: int, cpus: list[int], duration_s: float,
            out_dir: Path, label: str, wrk: str | None = None,
            version: str | None = None) -> OracleResult:
    """One wrk run against ``127.0.0.1:port``; its JSON is kept as ``out_dir/label.json``
    and its text output in ``out_dir/label.log``.

    The whole process group is stopped in a ``finally`` (also on Ctrl-C), and killed if
    it runs :data:`KILL_MARGIN_S` past its duration.

    Raises:
        OracleError: wrk exited non-zero, hung, or wrote no JSON.
    """
    wrk = wrk or require_wrk()
    version = version or wrk_version(wrk)
    out_dir.mkdir(parents=True, exist_ok=True)
    script = out_dir / "done.lua"
    if not script.is_file() or script.read_text() != DONE_LUA:
        script.write_text(DONE_LUA)
    out, log = out_dir / f"{label}.json", out_dir / f"{label}.log"
    out.unlink(missing_ok=True)
    argv = wrk_argv(wrk, port=port, path=path, users=users, load_cpus=len(cpus),
                    duration_s=duration_s, script=script)
    seconds = int(argv[argv.index("-d") + 1].rstrip("s"))
    cpu_before, children_before = _cpu_times(cpus), _children_cpu_s()
    proc = spawn(argv, cpus=cpus, log_path=log, env=child_env({OUT_ENV: str(out)}))
    try:
        code = procs.wait_exit(proc, seconds + KILL_MARGIN_S)
        if code is None:
            raise OracleError(f"wrk still running {KILL_MARGIN_S:.0f} s after its "
                              f"{seconds} s duration; killed") from None
    finally:
        stop_group(proc, grace_s=2.0)
    wrk_cpu_s = _children_cpu_s() - children_before  # wrk is the only child reaped here
    load_busy = _busy_percent(cpu_before, _cpu_times(cpus))
    if code != 0:
        raise OracleError(f"wrk exited with code {code}: {tail(log, 3)}")
    try:
        data = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise OracleError(f"wrk wrote no readable JSON ({exc}): {tail(log, 3)}") from None
    result = parse_summary(data, version=version, argv=argv)
    return replace(result, generator_cpu_percent=100.0 * wrk_cpu_s / result.duration_s,
                   load_cpus_busy_percent=load_busy)


def _children_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_times(cpus: list[int]) -> list[tuple[float, float]]:
    """(busy, total) CPU seconds so far of each CPU in ``cpus``."""
    import psutil

    per_cpu = psutil.cpu_times(percpu=True)
    out = []
    for c in cpus:
        t = per_cpu[c]
        total = sum(t)
        out.append((total - t.idle - getattr(t, "iowait", 0.0), total))
    return out


def _busy_percent(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> float:
    busy = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    total = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    return 100.0 * busy / total if total > 0 else math.nan


def drain(port: int, wait_idle: Callable[[float], bool],
          deadline_s: float = DRAIN_DEADLINE_S) -> None:
    """Wait until the server finished the work the previous load left behind.

    A generator that stops closes its connections, but requests already read or
    queued (e.g. in a sync worker's accept queue) are still served. One ``GET
    /health`` joins the back of that queue, so its answer means the backlog is gone;
    then no client connection may remain (``wait_idle``).

    Raises:
        OracleError: no answer within ``deadline_s``, or connections still open.
    """
    try:
        status, _, _ = http_get(port, "/health", timeout_s=deadline_s)
    except OSError as exc:
        raise OracleError(f"server did not answer /health within {deadline_s:.0f} s "
                          f"after the load stopped: {exc}") from None
    if status != 200:
        raise OracleError(f"server answered /health with {status} after the load stopped")
    if not wait_idle(IDLE_DEADLINE_S):
        raise OracleError(f"server still had connections open {IDLE_DEADLINE_S:.0f} s "
                          "after the load stopped")


def _warmup_used(trial: Mapping[str, Any], default_s: float) -> float:
    """The warm-up the trial itself needed (a steady-state warm-up differs per level),
    so wrk meets the same queue state; ``default_s`` where it was not recorded."""
    used = trial.get("warmup_s")
    try:
        value = float(used)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default_s
    return value if math.isfinite(value) and value >= 0 else default_s


def drive(server: Deployment, path: str, *, users: int, cpus: list[int], warmup_s: float,
          duration_s: float, out_dir: Path, label: str,
          wrk: str | None = None) -> OracleResult:
    """The oracle on one running server and level: drain, warm-up run (discarded, kept
    on disk as ``label-warmup.json``), drain, measured run; the server is drained
    again afterwards so the next level starts idle.

    Raises:
        OracleError: wrk failed or the server would not drain.
    """
    wrk = wrk or require_wrk()
    version = wrk_version(wrk)
    drain(server.port, server.wait_idle)
    if warmup_s > 0:
        run_wrk(server.port, path, users=users, cpus=cpus, duration_s=warmup_s,
                out_dir=out_dir, label=f"{label}-warmup", wrk=wrk, version=version)
        drain(server.port, server.wait_idle)
    sampler = getattr(server, "sampler", None)
    first = len(sampler.samples) if sampler is not None else 0
    result = run_wrk(server.port, path, users=users, cpus=cpus, duration_s=duration_s,
                     out_dir=out_dir, label=label, wrk=wrk, version=version)
    during = list(sampler.samples)[first:] if sampler is not None else []
    drain(server.port, server.wait_idle)
    return replace(result, warmup_s=float(max(1, round(warmup_s)) if warmup_s > 0 else 0),
                   server_cpu_percent=_mean([x.cpu_percent for x in during]),
                   server_cpus_busy_percent=_mean([x.cpuset_busy_percent for x in during]))


def _mean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


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
    """True when ``ratio`` (bench / wrk) is off 1 by more than ``tolerance`` (inf too)."""
    return not math.isnan(ratio) and not abs(ratio - 1.0) <= tolerance


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


def _oracle_meta(meta: dict[str, Any], wrk: str) -> dict[str, Any]:
    existing = meta.get("oracle")
    if isinstance(existing, dict):
        return existing
    return meta.setdefault("oracle", {
        "tool": "wrk", "path": wrk, "version": wrk_version(wrk),
        "tolerance": AGREEMENT_TOLERANCE, "timeout_s": WRK_TIMEOUT_S,
        "warmup": "separate wrk run of the trial's warm-up length, discarded",
        "trials": {},
    })


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
                      run_dir: Path, meta: dict[str, Any]) -> None:
    """``bench run --cross-check``: run the oracle on the server that just served
    (and recorded) ``trial``, at its concurrency, on the plan's load CPUs, with the plan's warm-up and
    window lengths; fill the trial's ``oracle_*`` columns and record the run (argv,
    version, errors) or why there is none in ``meta["oracle"]["trials"][trial_id]``.

    Never raises for wrk's own failures (they become the reason); Ctrl-C and SIGTERM
    pass through, after wrk was stopped. The caller saves the run afterwards.
    """
    wrk = require_wrk()
    entries = _oracle_meta(meta, wrk)["trials"]
    reason = not_checked_reason(trial, plan.scenario.protocol)
    if reason:
        entries[trial["trial_id"]] = {"reason": reason}
        return
    try:
        result = drive(server, plan.scenario.request_path, users=int(trial["users"]),
                       cpus=list(plan.load_cpus), warmup_s=_warmup_used(trial, plan.warmup_s),
                       duration_s=plan.duration_s, out_dir=run_dir / "oracle",
                       label=trial["trial_id"], wrk=wrk)
    except OracleError as exc:
        entries[trial["trial_id"]] = {"reason": f"not cross-checked: {exc}"}
        return
    fill_trial(trial, result)
    entries[trial["trial_id"]] = {"reason": _result_reason(result), **result.as_dict()}


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


def reasons_from_meta(meta: Mapping[str, Any]) -> dict[str, str]:
    """trial_id -> the oracle's reason (why not checked, or wrk's errors) from run.json."""
    trials = (meta.get("oracle") or {}).get("trials") or {}
    return {tid: str(entry.get("reason", "")) for tid, entry in trials.items()}


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
    sc = meta.get("scenario") or {}
    protocol, path = str(sc.get("protocol") or "http"), str(sc.get("request_path") or "")
    recorded = {s["name"]: s for s in meta.get("servers", [])}
    names = list(recorded)
    if servers:
        unknown = [s for s in servers if s not in recorded]
        if unknown:
            raise UserError(f"--servers {','.join(unknown)}: not in this run "
                            f"(it has: {', '.join(names) or 'none'})")
        names = [n for n in names if n in servers]
    configs = ({n: server_registry.select([n], protocol)[0] for n in names}
               if protocol == "http" else {})
    cpus = meta.get("cpus") or {}
    server_cpus = parse_cpus(format_cpus(cpus.get("server") or []), "the run's server CPUs")
    load_cpus = parse_cpus(format_cpus(cpus.get("load") or []), "the run's load CPUs")
    backend = get_backend(str(meta.get("backend") or "local"))
    if pin_self:
        os.sched_setaffinity(0, load_cpus)
    warmup_s, duration_s = float(sc.get("warmup_s") or 0), float(sc.get("duration_s") or 1)
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
        mine = [t for _, t in trials[trials["server"] == name].iterrows()]
        checked = [t for t in mine if not not_checked_reason(t, protocol)]
        for t in mine:
            reason = not_checked_reason(t, protocol)
            if reason:
                rows.append(_oracle_row(t, None, reason))
        if not checked:
            save()
            continue
        log(f"{name}: deploying ({meta.get('backend') or 'local'}, "
            f"{recorded[name].get('workers')} workers, CPUs {format_cpus(server_cpus)})")
        server = None
        try:
            try:
                server = backend.deploy(configs[name], workers=int(recorded[name]["workers"]),
                                        cpus=server_cpus, run_id=str(meta.get("run_id") or ""),
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
                    used = max(_warmup_used(t, warmup_s) for t in level)
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
