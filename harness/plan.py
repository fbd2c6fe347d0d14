"""The plan of a run, decided before anything starts, and what ``run.json`` says of it.

Describing is separate from doing: a :class:`RunPlan` is cheap and starts nothing
(``bench run --dry-run`` prints one); :class:`harness.runner.Runner` carries it out.
:func:`initial_meta` is the run's metadata (harness.runmeta.RunMeta) as written to
``run.json`` when it starts (the runner adds deployments, the harness's pid and the
trials as it goes).
"""

from __future__ import annotations

import math
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness import procs, steady
from harness import runmeta as rm
from harness.load import start_spread_s
from harness.machine import git_info, machine_info, package_versions
from harness.results import SCHEMA_VERSION
from harness.runmeta import RunMeta
from harness.scenarios import Scenario
from harness.servers import GUNICORN_CONFIG, ServerConfig
from harness.stacks import APPS, RAW, Stack
from harness.verify import Answer

# What the estimate counts (RunPlan.estimated_seconds), measured on 2 cores from the
# trials' start and end times in the default `bench run --scenario io-heavy` (27 levels,
# 181 s) and the suite's runs:
#: the run's own start-up and its report (s);
EST_RUN_S = 3.0
#: a stack's server start and stop, per repeat (0.4-0.7 s measured);
EST_STACK_S = 1.0
#: a level that steps up from the running users, beyond warm-up and window (0.04-0.15 s);
EST_STEP_UP_S = 0.2
#: a level whose users start afresh after the idle proof (0.4-0.5 s);
EST_FRESH_LEVEL_S = 0.6
#: a steady-state warm-up: the default run's mean was 1.24 s (most stacks are steady
#: within 1 s; a deep queue waits one queue cycle, up to ``max_warmup_s``).
EST_STEADY_WARMUP_S = 1.25


@dataclass(frozen=True)
class RunPlan:
    """Everything a run will do, decided before anything starts."""

    scenario: Scenario
    servers: list[ServerConfig]
    users: tuple[int, ...]
    warmup_s: float
    duration_s: float
    repeats: int
    workers: int
    server_cpus: list[int]
    load_cpus: list[int]
    results_dir: Path
    command: list[str] = field(default_factory=list)
    backend: str = "local"
    #: locust processes (its own master/worker mode when > 1).
    load_processes: int = 1
    #: Load agents (``bench agent``): the local locust is their master only, bound to
    #: ``master_bind`` (HOST:PORT; "": 127.0.0.1 on a free port); the run waits up to
    #: ``agent_timeout_s`` for them (harness.agents).
    load_agents: int = 0
    master_bind: str = ""
    agent_timeout_s: float = 60.0
    #: Open loop: one level per arrival rate (req/s); ``users`` then holds the single
    #: cap on requests in flight. Empty: closed loop, one level per ``users`` value.
    arrival_rates: tuple[float, ...] = ()
    #: Steady-state warm-up (harness.steady): each window opens when the stack is
    #: steady, between ``warmup_s`` and ``max_warmup_s`` after spawning. False: a
    #: fixed ``warmup_s``.
    steady: bool = False
    max_warmup_s: float = 0.0
    #: Keep every request's record (requests/<trial_id>/*.csv) after an HTTP trial; by
    #: default only its latency histograms (latency/<trial_id>.json) are kept.
    keep_requests: bool = False
    #: After each closed-loop HTTP trial, drive the same server with wrk (harness.oracle).
    cross_check: bool = False
    #: The (server config, app) pairs to run, in order (harness.stacks.pairs); empty:
    #: every server serving the raw app, which is what a plan without apps means.
    stacks: tuple[Stack, ...] = ()
    #: An own app's answer to the scenario's request from its first stack (harness.ownapp
    #: .preflight): what every stack must answer when no expectation is given.
    own_answer: Answer | None = None
    #: Docker backend: the engine (``--docker-host``: a URL or a docker context name; None:
    #: DOCKER_HOST, the current context, the local socket) and the address the load
    #: reaches the published ports at (``--target-host``; None: 127.0.0.1, psutil's view
    #: if the engine is local). harness.dockerhost, harness.backends.check_target_host.
    docker_host: str | None = None
    target_host: str | None = None

    def __post_init__(self) -> None:
        if not self.stacks:
            object.__setattr__(self, "stacks", tuple(Stack(c, APPS[RAW]) for c in self.servers))

    def unsupported(self, stack: Stack) -> str:
        """Why ``stack``'s app cannot serve this scenario ("" when it can): its trials are
        then recorded ``unsupported`` without starting a server."""
        return stack.app.unsupported(self.scenario.path)

    @property
    def measured_stacks(self) -> list[Stack]:
        """The stacks that are started and loaded (the others are unsupported at once)."""
        return [s for s in self.stacks if not self.unsupported(s)]

    @property
    def longest_warmup_s(self) -> float:
        """The longest a level's warm-up can last (s)."""
        return max(self.warmup_s, self.max_warmup_s) if self.steady else self.warmup_s

    @property
    def levels(self) -> list[tuple[int, float]]:
        """(users, offered req/s or NaN) per level, in run order."""
        if self.arrival_rates:
            return [(max(self.users), r) for r in self.arrival_rates]
        return [(u, math.nan) for u in self.users]

    @property
    def steps_up(self) -> bool:
        """Whether a stack's levels step up (harness/load.py ``hold``): the next level
        adds users to the running ones instead of stopping them and proving the server
        idle. Closed-loop HTTP only, and not with ``cross_check`` (wrk runs between
        levels, on an idle server) or load agents; a level only steps up to one of at
        least as many users."""
        return (not self.arrival_rates and self.scenario.protocol == "http"
                and not self.cross_check and not self.load_agents)

    def holds(self, index: int) -> bool:
        """Whether level ``index`` (1-based) leaves its users running for the next."""
        levels = self.levels
        return (self.steps_up and index < len(levels)
                and levels[index][0] >= levels[index - 1][0])

    @property
    def trial_count(self) -> int:
        return len(self.stacks) * len(self.levels) * self.repeats

    @property
    def expected_warmup_s(self) -> float:
        """A level's warm-up as estimates count it (s): ``warmup_s``; steady state,
        :data:`EST_STEADY_WARMUP_S` within [``warmup_s`` (the window never opens sooner),
        :attr:`longest_warmup_s`]."""
        if not self.steady:
            return self.warmup_s
        return min(max(EST_STEADY_WARMUP_S, self.warmup_s), self.longest_warmup_s)

    def estimated_seconds(self) -> float:
        """Rough wall time (s): :data:`EST_RUN_S`, then per measured stack and repeat
        :data:`EST_STACK_S` and per level its warm-up, its window and
        :data:`EST_STEP_UP_S` or :data:`EST_FRESH_LEVEL_S`; with ``cross_check`` each
        level's wrk run too (same warm-up and window, users fresh). A steady-state
        warm-up counts :data:`EST_STEADY_WARMUP_S`, within [``warmup_s``, the longest]."""
        warmup = self.expected_warmup_s
        per_stack = EST_STACK_S
        for index in range(1, len(self.levels) + 1):
            stepped = index > 1 and self.holds(index - 1)
            per_stack += warmup + self.duration_s + (EST_STEP_UP_S if stepped
                                                     else EST_FRESH_LEVEL_S)
            if self.cross_check:
                per_stack += warmup + self.duration_s + EST_FRESH_LEVEL_S
        return EST_RUN_S + self.repeats * len(self.measured_stacks) * per_stack



def trial_id(server: str, level: int, users: int, offered_rps: float, repeat: int) -> str:
    """``{server}-l{level}-u{users}-r{repeat}`` (open loop: ``-a{rate}`` for ``-u``);
    ``server`` is the stack's name (harness.stacks.Stack.name: the server's own for the
    raw app, ``{server}+{app}`` otherwise).

    ``level`` is the 1-based position in the plan's levels, so two levels with the same
    users or rate still get their own id and ``requests/<id>/`` folder (the CLI refuses
    repeated levels; a :class:`RunPlan` built in code may hold them). Runs written before
    the level index was added (``{server}-u{users}-r{repeat}``, same schema) read back
    unchanged: every reader treats the id as an opaque name.
    """
    # 12 significant digits: the rate as given (123456.7, not :g's 123457; 1000000, not 1e+06)
    load = f"a{offered_rps:.12g}" if not math.isnan(offered_rps) else f"u{users}"
    return f"{server}-l{level}-{load}-r{repeat}"


def new_run_id(scenario: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{scenario}-{uuid.uuid4().hex[:6]}"


def make_run_dir(results_dir: Path, run_id: str) -> Path:
    """Create ``results_dir/run_id``. Raises OSError if it cannot be written."""
    run_dir = results_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def iso_time(ts: float | None = None) -> str:
    """A unix time (default: now) as ISO 8601 UTC."""
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC).isoformat()


def initial_meta(plan: RunPlan, run_id: str) -> RunMeta:
    """run.json as a run starts (status ``running``): the plan, the scenario as run, the
    server configs, apps and stacks with their command lines, the CPU sets, the machine,
    package versions and git commit.

    Raises:
        harness.record.RecordError: a value of the wrong type (a bug).
    """
    sc = plan.scenario
    config_file = (str(procs.empty_config(GUNICORN_CONFIG)) if plan.backend == "local"
                   else None)
    own = {} if sc.app is None else {
        "app": rm.OwnAppMeta(target=sc.app.target, interface=sc.app.interface,
                             app_dir=str(sc.app.app_dir), env=tuple(sorted(sc.app.env))),
        "headers": tuple(sorted(sc.headers)), "body_bytes": len(sc.body),
        "expect": rm.ExpectMeta(
            status=sc.expect.status,
            body_bytes=None if sc.expect.body is None else len(sc.expect.body),
            contains=(sc.expect.contains.decode(errors="replace")
                      if sc.expect.contains is not None else None))}
    warmup = (rm.WarmupMeta(mode="steady", min_s=plan.warmup_s, max_s=plan.max_warmup_s,
                            drift_bound=steady.DRIFT_BOUND,
                            drift_floor_ms=steady.DRIFT_FLOOR_MS,
                            littles_law_tolerance=steady.LITTLES_LAW_TOLERANCE,
                            eval_min_s=steady.EVAL_MIN_S,
                            eval_min_requests=steady.EVAL_MIN_REQUESTS)
              if plan.steady else rm.WarmupMeta(mode="fixed", s=plan.warmup_s))
    return RunMeta(
        schema_version=SCHEMA_VERSION, run_id=run_id, status="running",
        started_at=iso_time(), ended_at=None, command=tuple(plan.command),
        backend=plan.backend,
        load_mode="open-loop" if plan.arrival_rates else "closed-loop",
        load_processes=plan.load_processes, load_agents=plan.load_agents,
        level_transition="step-up" if plan.steps_up else "fresh",
        requests_kept=plan.keep_requests,
        keep_alive=True, start_spread_s=start_spread_s(plan.longest_warmup_s),
        warmup=warmup,
        scenario=rm.ScenarioMeta(
            name=sc.name, description=sc.description, protocol=sc.protocol,
            method=sc.method, request_path=sc.request_path, params=dict(sc.values),
            users=tuple(plan.users), arrival_rates=tuple(plan.arrival_rates),
            warmup_s=plan.warmup_s, max_warmup_s=plan.max_warmup_s, steady=plan.steady,
            duration_s=plan.duration_s, repeats=plan.repeats,
            slo=rm.SloMeta(p99_ms=sc.slo_p99_ms, max_error_rate=sc.slo_max_error_rate),
            **own,
            validity=rm.ValidityMeta(max_error_rate=sc.max_error_rate,
                                     max_generator_cpu_percent=sc.max_generator_cpu_percent)),
        servers=tuple(
            rm.ServerEntry(name=c.name, interface=c.interface, workers=plan.workers,
                           threads=c.threads, worker_connections=c.worker_connections,
                           argv=tuple(c.argv(port=0, workers=plan.workers, python="python",
                                             config_file=config_file)))
            for c in plan.servers),
        apps=tuple(
            rm.AppEntry(name=a.name, framework=a.framework, framework_version=a.version(),
                        interfaces=tuple(a.interfaces), targets=dict(a.targets),
                        notes=a.notes)
            for a in dict.fromkeys(st.app for st in plan.stacks)),
        stacks=tuple(
            rm.StackEntry(name=st.name, server=st.server.name, app=st.app.name,
                          interface=st.server.interface, target=st.target,
                          unsupported=plan.unsupported(st),
                          argv=tuple(st.server.argv(port=0, workers=plan.workers,
                                                    python="python", config_file=config_file,
                                                    app=st.target)))
            for st in plan.stacks),
        cpus=rm.CpusMeta(server=tuple(plan.server_cpus), load=tuple(plan.load_cpus),
                         harness=tuple(sorted(os.sched_getaffinity(0))),
                         shared=bool(set(plan.server_cpus) & set(plan.load_cpus))),
        machine=rm.MachineMeta.from_dict(machine_info()),
        versions=package_versions(),
        git=rm.GitMeta.from_dict(git_info()),
        trials=(),
    )
