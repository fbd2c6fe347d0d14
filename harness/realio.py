"""Real I/O: the components a scenario needs (PostgreSQL, an upstream HTTP service),
the drivers and pools the apps reach them with, and what a trial records of them.

A scenario names its components (``components = ["postgres"]`` in its TOML). The
runner starts them once per run (:func:`started`), before the first server, and stops
them in its ``finally`` (local processes: harness.postgres, harness.upstream; under
``--backend docker`` the database is a compose service: harness.dockerdb); meanwhile:

* the server processes learn the addresses, the driver of their interface and the pool
  size from their environment (:data:`harness.apps.drivers.ENV_NAMES`, passed on by
  :data:`harness.procs.ENV_ALLOW`), never from the request;
* the components' process trees are sampled like the server's (CPU, RSS, PSS: psutil),
  and the database's client connections and the active ones among them are read from
  ``pg_stat_activity`` (:class:`ActivitySampler`);
* each trial records the driver, the pool size, the database's peak active and total
  connections, and the database's and upstream's CPU and memory, with their CPU per
  request (:meth:`Components.trial_metrics`), and what bounded its throughput
  (:func:`bound_by`).

Drivers (``--param driver=...``): ``auto`` gives each interface its own
(:data:`harness.apps.drivers.DEFAULT_DRIVERS`: psycopg / asyncpg, requests / httpx); a
named driver replaces the default of the interface it serves only, so a run can still
hold WSGI and ASGI servers (the trial records the driver it used). ``blocking`` is the
ASGI anti-pattern: the sync driver inside ``async def``, one request at a time per
event loop, flagged ``blocking-driver``.

Concurrency a stack can hold at the component (:func:`concurrency_capacity`):
``min(workers x threads, pool_size x workers)``, ``workers`` for ``blocking`` (one
call at a time per event loop); the Little's-law ceiling is then
``min(users, that) / wait`` (``harness.analysis.io_ceiling_rps``).

CPU placement: the components get the CPUs that neither the server nor the load
generator uses, when there are any; otherwise they share the server's set (the
report says so), since the time a request spends in them is the server's time too.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.apps.drivers import DEFAULT_DRIVERS, DRIVERS, ENV_DRIVER, ENV_NAMES
from harness.errors import UserError
from harness.procs import ProcessError
from harness.sampler import Sample, TreeSampler

#: The database's tree has a process per connection: sampled at 4 Hz (PSS every 2 s),
#: so that reading /proc for a few hundred backends stays a small share of a core.
PG_SAMPLE_INTERVAL_S = 0.25
PG_MEMORY_EVERY = 8
#: pg_stat_activity is read at 10 Hz: one indexed catalog scan per reading.
ACTIVITY_INTERVAL_S = 0.1
#: Connections the harness keeps for itself (the activity sampler, seeding) and slack
#: for a server's connections still closing when the next one starts.
EXTRA_CONNECTIONS = 20
#: Of a core (%), above which a component counts as CPU-bound in :func:`bound_by`.
BUSY_PERCENT = 90.0
#: efficiency at or above this: the trial ran at its Little's-law ceiling.
AT_CEILING = 0.9

#: The per-trial figures :meth:`Components.trial_metrics` fills (trials.csv columns).
METRIC_COLUMNS = ("db_connections_peak", "db_active_peak", "db_active_mean",
                  "db_cpu_percent_mean", "db_pss_mib_peak", "db_cpu_ms_per_request",
                  "upstream_cpu_percent_mean", "upstream_pss_mib_peak",
                  "upstream_cpu_ms_per_request")


def _component(scenario: Any) -> str:
    return "postgres" if "postgres" in scenario.components else "upstream"


def check(scenario: Any, backend: str, *, psutil_view: bool = True) -> None:
    """Refuse, before anything starts, a run whose components cannot start here.

    The docker backend runs the database as a compose service (harness.dockerdb), not
    the upstream service, and only where psutil sees the engine's processes
    (``psutil_view``): the database is sampled with psutil, and an engine elsewhere
    (harness.dockerhost) has no such view.

    Raises:
        UserError: the docker backend with the upstream service, without psutil's view
            or without the database image; no PostgreSQL binaries (names the package);
            root without a way to drop to the ``postgres`` user.
    """
    if not scenario.components:
        return
    if backend == "docker" and not psutil_view:
        raise UserError(f"scenario {scenario.name} needs {', '.join(scenario.components)}, "
                        "sampled with psutil, which cannot see the processes of an engine on "
                        "another host (or with --target-host); run it on a local engine")
    if backend == "docker" and scenario.components == ("postgres",):
        from harness import dockerdb

        dockerdb.require_image()  # the database as a compose service
        return
    if backend != "local":
        raise UserError(f"--backend {backend}: scenario {scenario.name} needs "
                        f"{', '.join(scenario.components)}, which only the local backend "
                        "starts so far; use --backend local")
    if "postgres" in scenario.components:
        from harness import postgres

        postgres.find_binaries()
        postgres.run_as()


def drivers(scenario: Any) -> dict[str, str]:
    """The driver each interface's app uses: ``{"wsgi": ..., "asgi": ...}``; empty for a
    scenario without components."""
    if not scenario.components:
        return {}
    component = _component(scenario)
    chosen = {iface: DEFAULT_DRIVERS[(component, iface)] for iface in ("wsgi", "asgi")}
    named = str(scenario.values.get("driver", "auto"))
    if named != "auto":
        chosen[DRIVERS[named][1]] = named
    return chosen


def pool_size(scenario: Any) -> int:
    return int(scenario.values.get("pool_size", 10))


def concurrency_capacity(plan: Any, config: Any) -> float:
    """Requests the stack can have waiting on the component at once: the server's
    ``workers x threads`` (``inf`` for event loops), capped by ``pool_size x workers``,
    or by ``workers`` for the blocking driver. Without components: the server's."""
    capacity = float(config.concurrency_capacity(plan.workers))
    if not plan.scenario.components:
        return capacity
    driver = drivers(plan.scenario)[config.interface]
    if DRIVERS[driver][2]:
        return min(capacity, float(plan.workers))
    return min(capacity, float(pool_size(plan.scenario) * plan.workers))


def trial_fields(plan: Any, config: Any) -> dict[str, Any]:
    """``driver`` and ``pool_size`` of a trial of ``config`` (nothing without components)."""
    if not plan.scenario.components:
        return {}
    return {"driver": drivers(plan.scenario)[config.interface],
            "pool_size": pool_size(plan.scenario)}


def component_cpus(server_cpus: list[int], load_cpus: list[int]) -> tuple[list[int], bool]:
    """(CPUs for the components, whether they share the server's set): the machine's
    CPUs that neither the server nor the load generator uses, else the server's."""
    usable = _machine_cpus()
    free = sorted(usable - set(server_cpus) - set(load_cpus))
    return (free, False) if free else (list(server_cpus), True)


def _machine_cpus() -> set[int]:
    """The CPUs this machine (or container: cgroup v2 ``cpuset.cpus.effective``) offers;
    not this process's affinity, which the CLI narrowed to the load set."""
    with contextlib.suppress(OSError, ValueError):
        text = Path("/sys/fs/cgroup/cpuset.cpus.effective").read_text().strip()
        if text:
            cpus: set[int] = set()
            for part in text.split(","):
                lo, _, hi = part.partition("-")
                cpus.update(range(int(lo), int(hi or lo) + 1))
            return cpus
    return set(range(os.cpu_count() or 1))


def bound_by(trial: dict[str, Any], *, capacity: float, workers: int, driver: str,
             pool: int, server_cpus: int, shared: bool) -> str:
    """What bounded a real-I/O trial's throughput, in words from its own figures.

    At its Little's-law ceiling (efficiency >= 0.9): the smallest of the limits that
    set it: ``users``, ``blocking`` (one call per event loop), ``pool``
    (pool_size x workers) or ``workers`` (workers x threads). Below it, or without a
    ceiling: the first resource that was busy: ``server-cpu`` (the server's CPU set
    >= 90% busy; ``shared-cpu`` when the components share that set),
    ``database-cpu``, ``upstream-cpu`` (>= 90% of a core per CPU of their set) or
    ``generator`` (an invalid trial naming it); "" when none was.
    """
    efficiency = float(trial.get("efficiency", math.nan))
    users = float(trial.get("users", math.nan))
    if not math.isnan(efficiency) and efficiency >= AT_CEILING:
        if users <= capacity:
            return "users"
        if DRIVERS.get(driver, ("", "", False))[2]:
            return "blocking"
        return "pool" if pool * workers <= capacity else "workers"
    if "generator" in str(trial.get("reason", "")):
        return "generator"
    busy = float(trial.get("server_cpus_busy_percent", math.nan))
    if busy >= BUSY_PERCENT:
        return "shared-cpu" if shared else "server-cpu"
    for name, column in (("database-cpu", "db_cpu_percent_mean"),
                         ("upstream-cpu", "upstream_cpu_percent_mean")):
        if float(trial.get(column, math.nan)) >= BUSY_PERCENT * (server_cpus if shared else 1):
            return name
    return ""


class ActivitySampler:
    """Reads ``pg_stat_activity`` every :data:`ACTIVITY_INTERVAL_S` on a daemon thread:
    ``(t_s, active, connections)``: the seeded database's client backends running a
    query, and all of them (its own connection left out)."""

    QUERY = ("SELECT count(*) FILTER (WHERE state = 'active'), count(*) FROM pg_stat_activity "
             "WHERE backend_type = 'client backend' AND datname = current_database() "
             "AND pid <> pg_backend_pid()")

    def __init__(self, url: str, clock: Callable[[], float]) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self.clock = clock
        self.rows: list[tuple[float, int, int]] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pg-activity", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        next_t = self.clock()
        try:
            while not self._stop.is_set():
                row = self.conn.execute(self.QUERY).fetchone()
                if row is not None:
                    self.rows.append((self.clock(), int(row[0]), int(row[1])))
                next_t += ACTIVITY_INTERVAL_S
                self._stop.wait(max(0.0, next_t - self.clock()))
        except Exception as exc:  # noqa: BLE001 - the server went away: say so in run.json
            if not self._stop.is_set():
                self.error = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.conn.close()


class Components:
    """The run's components: started by :meth:`start`, stopped by :meth:`stop`.

    A component that fails to start is not raised: :attr:`error` says why, and the
    runner fails every trial with it (:meth:`problem`), so the run still writes its
    folder and report.
    """

    def __init__(self, plan: Any, run_dir: Path, clock: Callable[[], float]) -> None:
        self.plan = plan
        self.run_dir = run_dir
        self.clock = clock
        self.names: tuple[str, ...] = tuple(plan.scenario.components)
        self.cpus, self.shared = component_cpus(plan.server_cpus, plan.load_cpus)
        self.postgres: Any = None
        self.upstream: Any = None
        self.samplers: dict[str, TreeSampler] = {}
        self.activity: ActivitySampler | None = None
        self.error = ""
        self._env_before: dict[str, str | None] = {}

    def start(self) -> None:
        """Start the scenario's components (logs in ``run_dir/logs/``), their samplers,
        and set the server processes' environment; on failure record :attr:`error`."""
        if not self.names:
            return
        logs = self.run_dir / "logs"
        current = "postgres"
        try:
            if "postgres" in self.names and self.plan.backend == "docker":
                from harness.dockerdb import DockerPostgres

                self.postgres = DockerPostgres(
                    cpus=self.cpus, log_path=logs / "postgres.log",
                    max_connections=self._max_connections(),
                    run_id=os.environ.get("BENCH_RUN_ID", ""))
                self.postgres.start()
            elif "postgres" in self.names:
                from harness.postgres import Postgres, find_binaries

                self.postgres = Postgres(
                    find_binaries(), cpus=self.cpus, log_path=logs / "postgres.log",
                    max_connections=self._max_connections())
                self.postgres.start()
            if self.postgres is not None:
                self.samplers["postgres"] = TreeSampler(
                    self.postgres.pid, clock=self.clock, interval_s=PG_SAMPLE_INTERVAL_S,
                    memory_every=PG_MEMORY_EVERY, cpus=self.cpus).__enter__()
                self.activity = ActivitySampler(self.postgres.url, self.clock)
            if "upstream" in self.names:
                from harness.upstream import Upstream

                current = "upstream"
                self.upstream = Upstream(cpus=self.cpus, log_path=logs / "upstream.log").start()
                self.samplers["upstream"] = TreeSampler(
                    self.upstream.proc.pid, clock=self.clock, cpus=self.cpus).__enter__()
        except Exception as exc:  # noqa: BLE001 - every trial fails with it; the run goes on
            tail = exc.log_tail if isinstance(exc, ProcessError) else ""
            self.error = f"{current} failed to start: {type(exc).__name__}: {exc}" + (
                f": {tail}" if tail else "")
            return
        self._set_env()

    def _max_connections(self) -> int:
        """Every worker's pool at once, plus the harness's own and slack."""
        return max(100, pool_size(self.plan.scenario) * self.plan.workers + EXTRA_CONNECTIONS)

    def _set_env(self) -> None:
        """The variables the server processes read (harness.apps.drivers)."""
        values = {"BENCH_POOL_SIZE": str(pool_size(self.plan.scenario))}
        for iface, name in drivers(self.plan.scenario).items():
            values[ENV_DRIVER[iface]] = name
        if self.postgres is not None:
            values["BENCH_PG_URL"] = self.postgres.url
            if hasattr(self.postgres, "container_url"):  # docker: the servers' own address
                values["BENCH_PG_URL_CONTAINER"] = self.postgres.container_url
                values["BENCH_DATA_NETWORK"] = self.postgres.network
        if self.upstream is not None:
            values["BENCH_UPSTREAM_URL"] = self.upstream.url
        for key, value in values.items():
            self._env_before.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def problem(self) -> str:
        """Why no trial can run ("" when the components are up)."""
        return self.error

    def info(self) -> dict[str, Any]:
        """run.json's ``components``: each one's settings, version, CPUs; the drivers."""
        if not self.names:
            return {}
        out: dict[str, Any] = {
            "names": list(self.names), "drivers": drivers(self.plan.scenario),
            "pool_size": pool_size(self.plan.scenario), "pool_scope": "per worker process",
            "cpus": self.cpus, "cpus_shared_with_server": self.shared,
            "placement": ("shared with the server's CPU set (no CPU left for a set of "
                          "their own)" if self.shared else "CPUs of their own"),
            "env": sorted(ENV_NAMES), "error": self.error or None}
        if self.postgres is not None:
            pg = self.postgres.info()
            with contextlib.suppress(Exception):
                if self.postgres.pid is not None:
                    pg["settings"] = self.postgres.settings()
                    pg["version"] = pg["settings"].get("server_version")
            pg["sampling"] = {"interval_s": PG_SAMPLE_INTERVAL_S,
                              "pss_every_s": PG_SAMPLE_INTERVAL_S * PG_MEMORY_EVERY,
                              "activity_interval_s": ACTIVITY_INTERVAL_S}
            if self.activity is not None and self.activity.error:
                pg["activity_error"] = self.activity.error
            out["postgres"] = pg
        if self.upstream is not None:
            out["upstream"] = self.upstream.info()
        return out

    def trial_metrics(self, trial: dict[str, Any], t0: float, t1: float) -> dict[str, Any]:
        """The components' figures over the window [t0, t1] (run-clock s): connections
        at the database (peak and mean active, peak total, from pg_stat_activity), the
        components' CPU (% of one core, mean) and PSS peak (MiB), and their CPU per
        successful request (ms), as ``analysis.cost_metrics`` does for the server."""
        out: dict[str, Any] = {}
        if not self.names:
            return out
        rps = float(trial.get("throughput_rps", math.nan))
        for name, prefix in (("postgres", "db"), ("upstream", "upstream")):
            sampler = self.samplers.get(name)
            if sampler is None:
                continue
            window = [s for s in list(sampler.samples) if t0 <= s.t_s <= t1]
            cpu = _mean([s.cpu_percent for s in window])
            out[f"{prefix}_cpu_percent_mean"] = cpu
            out[f"{prefix}_pss_mib_peak"] = _max([s.pss_mib for s in window])
            out[f"{prefix}_cpu_ms_per_request"] = (cpu * 10.0 / rps if rps > 0
                                                   and not math.isnan(cpu) else math.nan)
        if self.activity is not None:
            rows = [r for r in list(self.activity.rows) if t0 <= r[0] <= t1]
            out["db_active_peak"] = _max([r[1] for r in rows])
            out["db_active_mean"] = _mean([r[1] for r in rows])
            out["db_connections_peak"] = _max([r[2] for r in rows])
        return out

    def finish_trial(self, trial: dict[str, Any], *, capacity: float) -> None:
        """Add ``bound_by`` and the ``blocking-driver`` flag to a measured trial."""
        if not self.names or not trial.get("driver"):
            return
        driver = str(trial["driver"])
        trial["bound_by"] = bound_by(trial, capacity=capacity, workers=self.plan.workers,
                                     driver=driver, pool=pool_size(self.plan.scenario),
                                     server_cpus=len(self.plan.server_cpus),
                                     shared=self.shared)
        if DRIVERS.get(driver, ("", "", False))[2]:
            flags = [f for f in str(trial.get("flags") or "").split(";") if f]
            trial["flags"] = ";".join([*flags, "blocking-driver"])

    def sample_rows(self, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The components' samples as samples.csv rows (``source`` = the component,
        ``server`` = the config whose measurement window the sample fell in, if any)."""
        windows = [(t.get("t_start_s", math.nan), t.get("t_end_s", math.nan), t["server"],
                    t["repeat"], t["users"]) for t in trials]
        rows = []
        for name, sampler in self.samplers.items():
            for s in list(sampler.samples):
                hit = next(((srv, rep, u) for a, b, srv, rep, u in windows if a <= s.t_s <= b),
                           ("", math.nan, math.nan))
                rows.append({**_sample_fields(s), "source": name, "server": hit[0],
                             "repeat": hit[1], "users": hit[2]})
        return rows

    def activity_frame(self) -> Any:
        import pandas as pd

        rows = self.activity.rows if self.activity is not None else []
        return pd.DataFrame(rows, columns=["t_s", "active", "connections"])

    def stop(self) -> None:
        """Stop sampling and every component, restore the environment; idempotent."""
        try:
            if self.activity is not None:
                self.activity.stop()
            for sampler in self.samplers.values():
                sampler.stop()
        finally:
            try:
                if self.upstream is not None:
                    self.upstream.stop()
            finally:
                if self.postgres is not None:
                    self.postgres.stop()
                for key, value in self._env_before.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
                self._env_before = {}


def _sample_fields(s: Sample) -> dict[str, Any]:
    return {k: getattr(s, k) for k in ("t_s", "processes", "cpu_percent", "cpu_percent_top",
                                       "cpuset_busy_percent", "rss_mib", "pss_mib",
                                       "uss_mib", "threads", "fds", "connections")}


def _finite(values: list[float]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def _mean(values: list[float]) -> float:
    v = _finite(values)
    return sum(v) / len(v) if v else math.nan


def _max(values: list[float]) -> float:
    v = _finite(values)
    return max(v) if v else math.nan


@contextlib.contextmanager
def started(plan: Any, run_dir: Path, clock: Callable[[], float],
            state: Any) -> Iterator[Components]:
    """The run's components, up for the ``with`` block (a ``harness.results.RunState`` as
    ``state``: its meta gets ``components``, its samples the components' rows, and
    ``db_activity.csv`` is written beside them). Stopped, and the cluster folder
    removed, however the block ends."""
    components = Components(plan, run_dir, clock)
    try:
        components.start()
        if components.names:
            state.meta = state.meta.updated({"components": components.info()})
            state.save()
        yield components
    finally:
        try:
            if components.names:
                state.meta = state.meta.updated({"components": components.info()})
        finally:
            components.stop()
            if components.names:
                state.samples.extend(components.sample_rows(state.trials))
                if components.activity is not None:
                    from harness.results import atomic_write_csv

                    atomic_write_csv(run_dir / "db_activity.csv", components.activity_frame())
