"""One ``bench run``: for each repeat and stack (server config serving an app), deploy,
verify, load each level, sample, tear down; record every trial, whatever happened to it.

Stacks are interleaved across repeats (A B C, A B C, ...) so drift hits all alike. A
stack whose app cannot serve the scenario (harness.stacks.AppSpec.unsupported) gets
``unsupported`` trials with the reason, without a server being started.
A server is started once per (stack, repeat) and serves its levels in order; before
each level the harness proves it idle (no established connection on its port), so
no level inherits a backlog. A server that dies is restarted for the next level.

Results are written after every trial (atomically), so an interrupted run keeps
what it measured; ``run.json``'s status says how the run ended.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from pathlib import Path
from subprocess import Popen
from typing import Any, Protocol

import pandas as pd

from harness import agents, analysis, cross_check, latency, procs, realio, stats, steady, streams
from harness.apps.work import expected
from harness.backends import BackgroundStops, Deployment, get_backend
from harness.interrupts import INTERRUPT_SIGNALS, Interrupted, _signals_as_interrupt  # noqa: F401
from harness.load import (
    KILL_AFTER_S,
    LOCUST_CONFIG,
    LoadResult,
    LoadSession,
    LoadSpec,
)
from harness.ownapp import own_load_checks
from harness.plan import (
    RunPlan,
    initial_meta,
    iso_time,
    make_run_dir,
    new_run_id,
    trial_id,
)
from harness.procs import ProcessError
from harness.results import (
    SAMPLE_COLUMNS,
    TRIAL_COLUMNS,
    RunState,
    atomic_write_csv,
    atomic_write_json,
)
from harness.runmeta import AgentsMeta, ChildrenMeta, HarnessProcess
from harness.sampler import Sample
from harness.servers import GUNICORN_CONFIG
from harness.stacks import Stack
from harness.trial import Trial
from harness.verify import verify, verify_own

IDLE_DEADLINE_S = 10.0
#: In the run folder: the process groups the run has running (harness.procs.record_groups).
GROUPS_FILE = "groups.json"
#: The locust user class (harness/loadgen/locustfile.py, harness/loadgen/streams.py) per protocol.
USER_CLASSES = {"http": "BenchUser", "sse": "SSEUser", "websocket": "WebSocketUser"}
#: The records whose latency is a stream scenario's headline latency (latency_*_ms,
#: throughput_rps, error_rate, SLO): time to first event for SSE, since it includes
#: waiting for a worker; the echo round trip for WebSocket.
PRIMARY_RECORDS = {"http": "request", "sse": "ttfe", "websocket": "rtt"}


class Reporter(Protocol):
    """What the runner tells the user while it works (the CLI renders it with rich)."""

    def trial_started(self, server: str, users: int, repeat: int, seconds: float) -> None: ...
    def tick(self, elapsed_s: float) -> None: ...
    def trial_finished(self, trial: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...


class SilentReporter:
    def trial_started(self, server: str, users: int, repeat: int, seconds: float) -> None:
        pass

    def tick(self, elapsed_s: float) -> None:
        pass

    def trial_finished(self, trial: dict[str, Any]) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class Runner:
    """Carries out a :class:`RunPlan`; call :meth:`execute` once."""

    def __init__(self, plan: RunPlan, reporter: Reporter | None = None) -> None:
        self.plan = plan
        self.reporter = reporter or SilentReporter()
        self.backend = get_backend(plan.backend, docker_host=plan.docker_host,
                                   target_host=plan.target_host)
        self.run_id = new_run_id(plan.scenario.name)
        os.environ["BENCH_RUN_ID"] = self.run_id  # inherited by every child (procs.ENV_ALLOW)
        self.run_dir = make_run_dir(plan.results_dir, self.run_id)
        self.state = RunState(self.run_dir, initial_meta(plan, self.run_id))
        self.t0_mono = time.monotonic()
        self.t0_unix = time.time()
        self._session: LoadSession | None = None
        self._sessions = 0
        #: Servers stopping while the next one starts (the next window waits for them).
        self._stops = BackgroundStops()
        #: --load-agents: one row per (trial, agent), written to agents.csv.
        self._agent_rows: list[dict[str, Any]] = []
        self.components = realio.Components(plan, self.run_dir, self.clock)  # started in execute
        #: The stack being run (set by :meth:`_stack`).
        self._current = plan.stacks[0] if plan.stacks else None  # type: ignore[assignment]
        #: Each app's framework version, read once (importlib.metadata).
        self._versions = {st.app.name: st.app.version() for st in plan.stacks}
        self.state.meta = self.state.meta.replace(
            clock_origin_unix_s=self.t0_unix).updated(self.backend.run_meta())
        self._record_processes()
        self.state.save()

    def _record_processes(self) -> None:
        """run.json names this harness process (pid, start time: ``procs.identity``) and
        the file listing the process groups it runs (``groups.json``, kept current by
        ``procs.record_groups``), so a watchdog, ``bench clean`` and readers can tell a
        crashed run from a running one and stop exactly what it left; plus the empty
        folder and config files children run with (no stray gunicorn.conf.py/locust.conf)."""
        me = procs.identity(os.getpid()) or {"pid": os.getpid()}
        home = procs.child_dir() / "cwd"
        self.state.meta = self.state.meta.replace(
            harness=HarnessProcess(**me, host=socket.gethostname()),
            process_groups_file=GROUPS_FILE,
            children=ChildrenMeta(
                dir=str(procs.child_dir()), cwd=str(home), home=str(home),
                gunicorn_config=str(procs.empty_config(GUNICORN_CONFIG)),
                locust_config=str(procs.empty_config(LOCUST_CONFIG)),
                note="children run in an empty folder that is also their HOME; gunicorn and "
                     "locust are given these empty config files, so no default config is read"))
        procs.record_groups(self.run_dir / GROUPS_FILE)

    def _start_watchdog(self) -> Popen[bytes] | None:
        """``harness.watchdog`` for this run: its own group, no parent-death signal, so it
        outlives a ``kill -9`` of this process and cleans up after it. It gets the
        variables naming the docker engine (harness.dockerhost), so it sweeps that one."""
        from harness.dockerhost import ENGINE_ENV

        engine = {k: os.environ[k] for k in ENGINE_ENV if os.environ.get(k)}
        try:
            return procs.spawn([sys.executable, "-m", "harness.watchdog", str(self.run_dir)],
                               cpus=sorted(os.sched_getaffinity(0)),
                               log_path=self.run_dir / "logs" / "watchdog.log",
                               env=procs.child_env(engine), die_with_parent=False)
        except OSError as exc:  # the run still tears down in its finally; say what is missing
            self.state.meta = self.state.meta.replace(
                watchdog_error=f"{type(exc).__name__}: {exc}")
            return None

    def clock(self) -> float:
        """Seconds since the run started (monotonic): the time base of samples and trials."""
        return time.monotonic() - self.t0_mono

    def execute(self) -> RunState:
        """Run every trial. Always leaves run.json with a final status; re-raises
        :class:`Interrupted`/``KeyboardInterrupt`` after recording them."""
        status = "failed"
        with _signals_as_interrupt():
            watchdog = None
            try:
                watchdog = self._start_watchdog()
                if self.plan.load_agents:  # one master for the whole run: agents end with it
                    self._wait_for_agents()
                with realio.started(self.plan, self.run_dir, self.clock,
                                    self.state) as self.components:
                    for repeat in range(1, self.plan.repeats + 1):
                        for stack in self.plan.stacks:
                            self._stack(stack, repeat)
                    self._stops.join()
                status = "complete"
            except (Interrupted, KeyboardInterrupt):
                status = "interrupted"
                raise
            finally:
                self._stops.join(raise_errors=False)
                self._close_session(end=True)
                self.state.meta = self.state.meta.replace(status=status, ended_at=iso_time())
                self.state.save()
                self._write_analysis()
                if watchdog is not None:
                    procs.stop_group(watchdog, grace_s=2.0)
                procs.record_groups(None)
        return self.state

    def _write_analysis(self) -> None:
        """summary.csv (per level: median, 95% CI, CV over repeats) and capacity.csv
        (per config: max sustainable throughput within the SLO, peak, USL fit), from
        the ``ok`` trials only (harness.stats)."""
        trials = pd.DataFrame(self.state.trials, columns=list(TRIAL_COLUMNS))
        sc = self.plan.scenario
        try:
            summary = stats.summarize_repeats(trials)
            capacity = stats.capacity_table(trials, sc.slo_p99_ms, sc.slo_max_error_rate)
        except Exception as exc:  # noqa: BLE001 - in a finally: never mask why the run ended
            self.state.meta = self.state.meta.replace(
                analysis_error=f"{type(exc).__name__}: {exc}")
            self.state.save()
            return
        atomic_write_csv(self.run_dir / "summary.csv", summary)
        atomic_write_csv(self.run_dir / "capacity.csv", capacity)

    def _base_trial(self, stack: Stack, index: int, users: int, offered_rps: float,
                    repeat: int) -> dict[str, Any]:
        open_loop = not math.isnan(offered_rps)
        config = stack.server
        row: dict[str, Any] = {c: math.nan for c in TRIAL_COLUMNS}
        row.update({
            "trial_id": trial_id(stack.name, index, users, offered_rps, repeat),
            "scenario": self.plan.scenario.name,
            "server": config.name, "interface": config.interface, "backend": self.plan.backend,
            "workers": self.plan.workers, "threads": config.threads or 1, "users": users,
            "offered_rps": offered_rps, "repeat": repeat, "status": "", "reason": "",
            "flags": "", "load_mode": "open-loop" if open_loop else "closed-loop",
            "app": stack.app.name, "framework_version": self._versions[stack.app.name],
        })
        row.update(realio.trial_fields(self.plan, config))
        return row

    def _record(self, trial: dict[str, Any]) -> None:
        if not trial["status"]:  # every path sets a status; this guards a future one that forgets
            trial["status"], trial["reason"] = "failed", trial["reason"] or "no measurement"
        # Frozen and checked here (unknown column, unknown status); the row kept is the
        # same dict, which later steps of this config (per-connection slope, the oracle)
        # may still complete before the next save.
        trial.update(Trial.from_row(trial).to_row())
        self.state.trials.append(trial)
        self.state.save()
        self.reporter.trial_finished(trial)

    def _stack(self, stack: Stack, repeat: int) -> None:
        """All levels of one stack in one repeat, on one server (restarted if it dies).

        A server that cannot start, or answers the scenario wrongly, fails every
        remaining level of this (stack, repeat) with that reason; the run goes on. An app
        that cannot serve the scenario makes every level ``unsupported``, nothing started.
        """
        self._current = stack
        log_path = self.run_dir / "logs" / f"server-{stack.name}-r{repeat}.log"
        server: Deployment | None = None
        held = False  # the previous level's users still run (RunPlan.holds)
        done = False
        blocked: tuple[str, str] | None = None  # (status, reason) for the remaining levels
        if self.plan.unsupported(stack):
            blocked = ("unsupported", self.plan.unsupported(stack))
        try:
            for index, (users, offered_rps) in enumerate(self.plan.levels, start=1):
                trial = self._base_trial(stack, index, users, offered_rps, repeat)
                if server is not None and server.exit_code() is not None:
                    self._close_session(end=not self.plan.load_agents)
                    self._keep_samples(server, stack, repeat)
                    server.stop()
                    server = None
                    held = False
                if blocked is None and server is None:
                    self._prestart_session(trial)
                    server, blocked = self._start(stack, repeat, log_path)
                elif server is not None and not held and not server.wait_idle(IDLE_DEADLINE_S):
                    trial["status"] = "invalid"
                    trial["reason"] = (f"server still had connections open {IDLE_DEADLINE_S:.0f} s "
                                       "after the previous level")
                if blocked is not None or server is None:
                    trial["status"], trial["reason"] = blocked or ("failed", "no server")
                    self._record(trial)
                    continue
                hold = self.plan.holds(index)
                self._level(server, trial, hold=hold)
                held = hold and self._session is not None and self._session.proc is not None
                if trial["status"] == "unsupported":  # it cannot, whatever the load
                    blocked = ("unsupported", trial["reason"])
            self._per_connection(stack, repeat)
            done = True
        except BaseException:
            self._close_session(end=True)
            raise
        finally:
            if server is not None:
                self._keep_samples(server, stack, repeat)
                if done and self.plan.backend == "local":
                    self._stops.stop(server)
                else:
                    server.stop()
                self.state.save()

    def _prestart_session(self, trial: dict[str, Any]) -> None:
        """Start the run's locust session (if it is not running) while a server starts."""
        if not self.plan.load_agents:
            self._session_for(self._session.port if self._session else 0,
                              self._load_spec(trial), trial).start()

    def _close_session(self, *, end: bool = False) -> None:
        """Stop the run's locust session (``end``: the run ends, or it must restart)."""
        if self._session is not None and end:
            session, self._session = self._session, None
            session.close()

    def _session_for(self, port: int, spec: LoadSpec, trial: dict[str, Any]) -> LoadSession:
        """The run's locust session (each level names its server's ``port``); a new one
        after a level that went wrong."""
        if self._session is not None and self._session.proc is None:
            self._close_session(end=True)
        if self._session is None:
            self._sessions += 1
            plan = self.plan
            per_level = plan.longest_warmup_s + plan.duration_s + KILL_AFTER_S
            levels = len(plan.levels) * len(plan.stacks) * plan.repeats
            self._session = LoadSession(
                spec, port=port, cpus=plan.load_cpus, run_dir=self.run_dir,
                session_id="agents" if plan.load_agents else f"run-s{self._sessions}",
                log_dir=self.run_dir / "logs", clock=self.clock,
                max_run_s=levels * per_level + 60 + plan.agent_timeout_s)
        return self._session

    def _wait_for_agents(self) -> None:
        """Start the agents' master and wait for them (harness.load.AgentsMissing)."""
        trial = self._base_trial(self._current, 1, *self.plan.levels[0], 1)
        session = self._session_for(0, self._load_spec(trial), trial)
        n = self.plan.load_agents
        session.wait_for_agents(lambda address: self.reporter.message(
            f"waiting up to {self.plan.agent_timeout_s:g} s for {n} load agent(s): run "
            f"`bench agent --master {address}` on each load host"))
        self.state.meta = self.state.meta.replace(agents=AgentsMeta.from_dict(
            {"master": session.master_address, "connected": session.agents()}))
        self.state.save()

    def _per_connection(self, stack: Stack, repeat: int) -> None:
        """Stream scenarios: PSS per held connection, the slope across this stack's
        levels (harness.streams.pss_kib_per_connection), written on each of its rows."""
        if self.plan.scenario.protocol == "http":
            return
        rows = [t for t in self._rows_of(stack, repeat) if t["status"] == "ok"]
        if not rows:
            return
        slope = streams.pss_kib_per_connection(pd.DataFrame(rows))
        for t in rows:
            t["pss_kib_per_connection"] = slope
        self.state.save()

    def _rows_of(self, stack: Stack, repeat: int) -> list[dict[str, Any]]:
        """The trials recorded so far of ``stack`` in ``repeat``."""
        return [t for t in self.state.trials if t["server"] == stack.server.name
                and t["app"] == stack.app.name and t["repeat"] == repeat]

    def _start(self, stack: Stack, repeat: int,
               log_path: Path) -> tuple[Deployment | None, tuple[str, str] | None]:
        """Deploy and verify ``stack``: (deployment, None), or (None, (status, reason)).

        A config that cannot run here (``ServerConfig.unsupported``) is not started.
        """
        config = stack.server
        cannot = config.unsupported(backend=self.plan.backend, workers=self.plan.workers)
        if cannot:
            return None, ("unsupported", cannot)
        if self.components.problem():
            return None, ("failed", self.components.problem())
        # The raw app is each config's own default: backends are asked for an app only
        # when it is another (the docker backend serves the raw apps only).
        app = {} if stack.app.is_raw else stack.launch()
        try:
            server = self.backend.deploy(config, workers=self.plan.workers,
                                         cpus=self.plan.server_cpus, log_path=log_path,
                                         clock=self.clock, run_id=self.run_id, repeat=repeat,
                                         **app)
        except ProcessError as exc:
            return None, ("failed", f"server failed to start: {exc}: {exc.log_tail}")
        try:
            # Stream scenarios need held connections counted (costly, so off for http).
            server.sampler.count_connections = self.plan.scenario.protocol != "http"
            self.state.meta = self.state.meta.with_deployment(
                {"server": config.name, "app": stack.app.name, "repeat": repeat,
                 **server.info()})
            if stack.app.reference:
                problem = verify(server.port, self.plan.scenario.request_path,
                                 protocol=self.plan.scenario.protocol)
            else:
                assert self.plan.own_answer is not None, "an own app's run needs its preflight"
                problem = verify_own(server.port, self.plan.scenario, self.plan.own_answer)
        except BaseException:
            server.stop()
            raise
        if problem:
            self._keep_samples(server, stack, repeat)
            server.stop()
            return None, ("failed", problem)
        return server, None

    def _keep_samples(self, server: Deployment, stack: Stack, repeat: int) -> None:
        samples = server.sampler.stop()
        levels = [(t["t_start_s"], t["t_end_s"], t["users"])
                  for t in self._rows_of(stack, repeat)]
        for row in server.extra_samples():  # e.g. the docker engine's own stats
            row["users"] = next((u for a, b, u in levels if a <= row["t_s"] <= b), math.nan)
            row["app"] = stack.app.name
            self.state.samples.append(row)
        self.state.samples.extend(self._sample_rows(samples, "server", stack, repeat, levels))
        server.sampler.samples = []

    @staticmethod
    def _sample_rows(samples: list[Sample], source: str, stack: Stack, repeat: int,
                     levels: list[tuple[float, float, int]]) -> list[dict[str, Any]]:
        rows = []
        for s in samples:
            users = next((u for a, b, u in levels if a <= s.t_s <= b), math.nan)
            row = {k: getattr(s, k) for k in ("t_s", "processes", "cpu_percent",
                                              "cpu_percent_top", "cpuset_busy_percent",
                                              "rss_mib", "pss_mib", "uss_mib", "threads",
                                              "fds", "connections")}
            row.update(source=source, server=stack.server.name, app=stack.app.name,
                       repeat=repeat, users=users)
            rows.append(row)
        return rows

    def _load_spec(self, trial: dict[str, Any]) -> LoadSpec:
        plan, sc = self.plan, self.plan.scenario
        status, _, body = expected(sc.request_path)
        open_loop = trial["load_mode"] == "open-loop"
        options: dict[str, Any] = dict(sc.values)
        if not self._current.app.reference:
            status, body = own_load_checks(plan, options)
        if open_loop:
            options.update(arrival_rate=trial["offered_rps"], max_in_flight=trial["users"])
        return LoadSpec(
            users=(plan.load_agents or plan.load_processes) if open_loop else trial["users"],
            warmup_s=plan.warmup_s, duration_s=plan.duration_s, method=sc.method,
            path=sc.request_path, expected_status=status, expected_body=body, name=sc.name,
            user_class="OpenLoopUser" if open_loop else USER_CLASSES[sc.protocol],
            options=options, processes=plan.load_processes,
            steady=plan.steady and sc.protocol == "http", max_warmup_s=plan.max_warmup_s,
            arrival_rate=trial["offered_rps"] if open_loop else None,
            record_name=PRIMARY_RECORDS[sc.protocol], agents=plan.load_agents,
            master_bind=plan.master_bind, agent_timeout_s=plan.agent_timeout_s)

    def _level(self, server: Deployment, trial: dict[str, Any], *, hold: bool = False) -> None:
        plan = self.plan
        spec = self._load_spec(trial)
        expected_s = (plan.expected_warmup_s if spec.steady else plan.warmup_s) \
            + plan.duration_s
        self.reporter.trial_started(self._current.name, trial["users"], trial["repeat"],
                                    expected_s)

        def keep_going(elapsed: float) -> str:
            self.reporter.tick(elapsed)
            code = server.exit_code()
            if code is not None:
                return (f"server exited with code {code} during the trial: "
                        f"{server.log_tail(5)}")
            return ""

        session = self._session_for(server.port, spec, trial)
        result = session.level(spec, trial_id=trial["trial_id"], keep_going=keep_going,
                               port=server.port, hold=hold, ready=self._stops.idle)
        if result.problem:
            # Keep what was measured up to the fault; the trial is failed whatever it shows.
            trial["status"], trial["reason"] = "failed", result.problem
        self._measure(trial, result, server)
        self._record(trial)
        self._stops.join()  # done before the window opened; a failed stop raises now
        if plan.cross_check:  # after recording it: a Ctrl-C during wrk loses no trial
            self.state.meta = cross_check.cross_check_trial(
                trial, server, plan, run_dir=self.run_dir, meta=self.state.meta)
            self.state.save()

    def _measure(self, trial: dict[str, Any], result: LoadResult, server: Deployment) -> None:
        plan, meta = self.plan, result.meta
        gen_rows = self._sample_rows(result.generator_samples, "generator", self._current,
                                     trial["repeat"], [])
        self.state.samples.extend(gen_rows)
        if "spawn_complete_unix_s" not in meta or math.isnan(result.window_start_unix_s):
            trial["status"] = "failed"
            return
        window = analysis.Window(result.window_start_unix_s, result.window_end_unix_s)
        stopped = meta.get("test_stop_unix_s", math.inf)
        if trial["status"] == "failed":
            window = analysis.Window(window.start, min(window.end, stopped))
        t0, t1 = window.start - self.t0_unix, window.end - self.t0_unix
        trial.update(t_start_s=t0, t_end_s=t1, window_s=window.seconds,
                     warmup_s=result.warmup_used_s, warmup_mode=result.warmup_mode)
        if window.seconds <= 0:
            return
        protocol = plan.scenario.protocol
        primary = PRIMARY_RECORDS[protocol]
        closed = trial["load_mode"] == "closed-loop"
        window_state: steady.Steadiness | None = None
        agent_rows = agents.agent_rows(result.records_dir, window, trial_id=trial["trial_id"],
                                       name=primary) if plan.load_agents else []
        agents.save(self.run_dir, self._agent_rows, agent_rows)
        if protocol == "http":
            # Streamed into HDR histograms: bounded memory however long the trial
            # (harness.latency); the raw records are kept only with --keep-requests.
            hist = latency.scan_records(result.records_dir, window, name=primary)
            m: dict[str, Any] = hist.metrics()
            window_state = hist.steadiness(trial["users"],
                                           None if closed else trial["offered_rps"])
            atomic_write_json(self.run_dir / "latency" / f"{trial['trial_id']}.json",
                              hist.to_json())
            if not plan.keep_requests:
                for f in result.records_dir.glob("*.csv"):
                    f.unlink(missing_ok=True)
            records = None
        else:
            records = analysis.read_records(result.records_dir)
            m = analysis.request_metrics(
                records[records["name"].isin([primary, "incomplete"])], window, name=primary)
        trial.update(m)
        server_rows = self._sample_rows(list(server.sampler.samples), "server",
                                        self._current, trial["repeat"], [])
        server_frame = _frame(server_rows)
        trial.update(analysis.resource_metrics(server_frame, t0, t1))
        engine = analysis.engine_metrics(_frame(server.engine_samples()), t0, t1)
        trial.update(engine)
        if not server.psutil_view:
            # No psutil view of a remote engine's containers: the server's CPU is the
            # cgroup's, as the engine reports it (harness.backends.docker_stats.engine_row).
            trial["cpu_percent_mean"] = engine["engine_cpu_percent_mean"]
        if records is not None:
            trial.update(streams.stream_metrics(records, window.start, window.end,
                                                protocol=protocol))
            held = server_frame[(server_frame["t_s"] >= t0) & (server_frame["t_s"] <= t1)]
            held = held["connections"].dropna()
            trial["concurrent_connections_peak"] = float(held.max()) if len(held) else math.nan
            unsupported = (streams.websocket_unsupported(records)
                           if protocol == "websocket" else None)
            if unsupported:
                trial["status"], trial["reason"] = "unsupported", unsupported
                return
        gen = analysis.generator_load(_frame(gen_rows), t0, t1)
        master_gen = dict(gen)
        if plan.load_agents:  # the local locust is the master only: the agents' CPU
            gen.update(agents.generator_figures(agent_rows))
        trial.update(gen)
        if closed:
            trial["littles_law_ratio"] = analysis.littles_law(
                m["requests"] / window.seconds, m["latency_mean_ms"], trial["users"])
            trial.update(analysis.generator_lag(meta.get("lag_slices", {}), window,
                                                users=trial["users"]))
        else:
            trial.update(analysis.open_loop_sends(meta.get("open_loop_slices", {}), window))
        trial.update(analysis.cost_metrics(trial, window.seconds))
        trial.update(self.components.trial_metrics(trial, t0, t1))
        latency_ms = plan.scenario.ceiling_wait_ms
        capacity = realio.concurrency_capacity(plan, server.config)
        if latency_ms is not None:
            offered = trial["users"] if closed else math.inf
            ceiling = analysis.io_ceiling_rps(offered, capacity, latency_ms)
            if not closed:
                ceiling = min(ceiling, trial["offered_rps"])
            trial["ceiling_rps"] = ceiling
            if not math.isnan(ceiling):
                trial["efficiency"] = m["throughput_rps"] / ceiling
        trial["flags"] = analysis.flags(trial)
        not_steady = ""
        if window_state is not None:
            trial["queue_cycle_s"] = window_state.cycle_s
            not_steady = steady.window_problem(window_state, closed_loop=closed)
            if not_steady and result.warmup_mode == "max":
                detector = result.steadiness.reason() if result.steadiness else "no data"
                not_steady += (f"; not steady within the longest warm-up "
                               f"({plan.longest_warmup_s:g} s: {detector})")
        if trial["status"] in ("failed", "unsupported"):
            return
        reasons = [trial["reason"]] if trial["reason"] else []
        if stopped < window.end:
            reasons.append("locust stopped before the measurement window ended")
        limit = plan.scenario.max_generator_cpu_percent
        saturated = agents.problems(
            agent_rows, meta, master_gen, planned=plan.load_agents, limit_percent=limit,
            protocol=protocol) if plan.load_agents else analysis.generator_saturation(
                gen, load_cpus=len(plan.load_cpus), limit_percent=limit,
                locust_warned=bool(meta.get("cpu_warning")))
        n_load = plan.load_agents or len(plan.load_cpus)
        limited = analysis.generator_limited(
            trial, load_processes=plan.load_agents or plan.load_processes, load_cpus=n_load,
            server_cpus=len(plan.server_cpus),
            server_concurrency=capacity
        ) if not saturated else ""
        behind = analysis.generator_behind(trial) if not closed else ""
        # One cause per trial: a generator that set the pace also bends Little's law
        # and the trend, so it is named first and "not-steady" only when it did not.
        for problem in (saturated, limited, behind):
            if problem:
                reasons.append(problem)
        if not_steady and not (saturated or limited or behind):
            reasons.append(not_steady)
        status, reason = analysis.verdict(trial, max_error_rate=plan.scenario.max_error_rate)
        if reason:
            reasons.append(reason)
        if status == "failed":
            trial["status"], trial["reason"] = status, reason
        else:
            trial["status"] = "invalid" if reasons else "ok"
            trial["reason"] = "; ".join(reasons)
        self.components.finish_trial(trial, capacity=capacity)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
