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
from typing import TYPE_CHECKING, Any

from harness import procs
from harness.errors import UserError
from harness.procs import child_env, http_get, spawn, stop_group, tail

if TYPE_CHECKING:

    from harness.backends import Deployment

#: wrk's ``--timeout``, s: locust's network timeout for HTTP users (harness/loadgen/locustfile.py).
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
    from harness.sampler import busy_percent, busy_times

    cpu_before, children_before = busy_times(cpus), _children_cpu_s()
    proc = spawn(argv, cpus=cpus, log_path=log, env=child_env({OUT_ENV: str(out)}))
    try:
        code = procs.wait_exit(proc, seconds + KILL_MARGIN_S)
        if code is None:
            raise OracleError(f"wrk still running {KILL_MARGIN_S:.0f} s after its "
                              f"{seconds} s duration; killed") from None
    finally:
        stop_group(proc, grace_s=2.0)
    wrk_cpu_s = _children_cpu_s() - children_before  # wrk is the only child reaped here
    load_busy = busy_percent(cpu_before, busy_times(cpus))
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


def warmup_used(trial: Mapping[str, Any], default_s: float) -> float:
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
