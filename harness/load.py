"""The load driver: one headless locust session per run, pinned to the load CPUs.

The measurement window of a level opens either a fixed warm-up after spawning
completed (``--warmup``), or, by default, when the steady-state detector
(:mod:`harness.steady`) finds the stack steady in the completions locust streams to
its request files, at the latest ``max_warmup_s`` after spawning. Once the window
is over the driver ends the level (the users stop, or, ``hold``, keep running for
the next level to step up from), so a level costs its warm-up plus its window, not
a fixed run time. The session outlives deployments (each level names its target);
one that went wrong is closed and the next level starts a fresh locust.

With ``agents`` (``bench run --load-agents N``) the local locust is the master only of
``bench agent`` workers on load hosts (the agents end with their master),
:meth:`LoadSession.wait_for_agents` waits for them, and the master writes what they
send into the same records folders (harness/loadgen/agents.py).

locust is never imported here (it monkey-patches the process with gevent); it is
run as ``python -m locust`` with ``harness/loadgen/locustfile.py``. It hands back files,
not text to scrape: per-request records, a meta JSON from our listener, and
locust's own ``--json-file`` (kept for cross-checking; ``--json`` is not passed
with it, since that combination empties the file in locust 2.47).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from harness import PACKAGE_DIR
from harness.errors import UserError
from harness.procs import child_env, empty_config, free_port, poll_until, spawn, stop_group, tail
from harness.sampler import Sample, TreeSampler
from harness.steady import CHECK_EVERY_S, Detector, RecordTail, Steadiness

LOCUSTFILE = PACKAGE_DIR / "loadgen" / "locustfile.py"
#: The name of the empty config file locust is given (procs.empty_config).
LOCUST_CONFIG = "locust.conf"
#: Extra seconds given to locust past warm-up + measurement: spawning, then the
#: stop (``--stop-timeout``), before the driver kills it.
SPAWN_SLACK_S = 1.0
KILL_AFTER_S = 30.0
#: Closed loop: each user starts after a random delay in [0, this] (capped at half the
#: warm-up, so every user runs through the whole window).
MAX_START_SPREAD_S = 0.25
#: After the window ends, this long before the level is ended (s). A completion inside
#: the window is in locust's records by then: the end order is read at least one
#: control poll later, and ending the level closes (flushes) the records first.
END_GRACE_S = 0.02
#: How often the driver looks at a running level (s).
LOOP_EVERY_S = 0.05
#: After a level, how long to wait for every locust process's meta file (s).
META_WAIT_S = 10.0


def start_spread_s(warmup_s: float) -> float:
    """How far apart closed-loop users start (s): ``min(0.25, warm-up / 2)``.

    locust spawns every user within ~0.1 s. Users started together stay in phase in a
    closed loop, so their requests reach the server in bursts (all N at once, every
    response time) and queue behind each other even where the server's mean CPU is low,
    which penalises a config for a load shape no real client population has. Random
    starts over a spread longer than one response time leave the phases uniform.
    """
    return min(MAX_START_SPREAD_S, max(0.0, warmup_s / 2))


@dataclass(frozen=True)
class LoadSpec:
    """One level of closed-loop load. Durations in seconds."""

    users: int
    warmup_s: float
    duration_s: float
    method: str
    path: str
    expected_status: int
    expected_body: bytes
    name: str
    #: The locust User class in harness/loadgen/locustfile.py (or a module it imports).
    user_class: str = "BenchUser"
    #: Extra settings for the user class, passed through the spec JSON.
    options: dict[str, Any] = field(default_factory=dict)
    #: locust processes (``--processes``): >1 runs locust's own master + workers.
    processes: int = 1
    #: Open the window when the stack is steady (harness.steady), at most
    #: ``max_warmup_s`` after spawning; False: exactly ``warmup_s`` after spawning.
    steady: bool = False
    max_warmup_s: float = 0.0
    #: Open loop: the arrival rate (req/s) the steady-state rules compare with.
    arrival_rate: float | None = None
    #: The record name the detector follows (the primary latency).
    record_name: str = "request"
    #: Load agents (``bench agent``, locust workers on other hosts): the local locust is
    #: then their master only, bound to ``master_bind`` (``HOST:PORT``; "": 127.0.0.1
    #: on a free port), and waits up to ``agent_timeout_s`` for them.
    agents: int = 0
    master_bind: str = ""
    agent_timeout_s: float = 60.0
    #: The address the load targets (the server's published port is on it): agents on
    #: other hosts cannot reach a server on 127.0.0.1.
    target_host: str = "127.0.0.1"

    @property
    def users_offered(self) -> int:
        """Closed loop: the users; open loop: the cap on requests in flight."""
        return int(self.options.get("max_in_flight", self.users)) if self.arrival_rate \
            else self.users

    @property
    def longest_warmup_s(self) -> float:
        return max(self.warmup_s, self.max_warmup_s) if self.steady else self.warmup_s

    @property
    def run_time_s(self) -> int:
        """locust's own time limit (s): the longest warm-up + window + slack. The
        driver normally stops it earlier, as soon as the window is over."""
        return math.ceil(self.longest_warmup_s + self.duration_s + SPAWN_SLACK_S)


@dataclass
class LoadResult:
    """What one locust run left behind. ``meta`` is empty when locust never wrote it.

    ``meta`` merges the per-process meta files: timing from the process that ran the
    test (``local`` or ``master``), ``cpu_warning`` if any process warned, error
    counts summed over processes.
    """

    records_dir: Path
    meta: dict[str, Any]
    exit_code: int | None
    timed_out: bool
    aborted: str
    log_path: Path
    generator_samples: list[Sample] = field(default_factory=list)
    #: The measurement window, unix s (NaN when spawning never completed).
    window_start_unix_s: float = math.nan
    window_end_unix_s: float = math.nan
    #: Seconds from spawning complete to the window's start.
    warmup_used_s: float = math.nan
    #: "steady" (detected), "max" (never steady: opened at the ceiling), "fixed".
    warmup_mode: str = "fixed"
    #: The detector's last evaluation before the window opened (None: fixed warm-up).
    steadiness: Steadiness | None = None

    @property
    def problem(self) -> str:
        """Why this run cannot be trusted at all ("" when it can be analysed)."""
        if self.aborted:
            return self.aborted
        if self.timed_out:
            return f"locust did not stop within its time limit: {tail(self.log_path, 3)}"
        if not self.meta or "spawn_complete_unix_s" not in self.meta:
            how = (f"exited with code {self.exit_code}" if self.exit_code is not None
                   else "wrote no meta for the level" if not self.meta
                   else f"reported {'; '.join(self.meta.get('errors', {})) or 'no start'}")
            return f"locust {how} without results: {tail(self.log_path)}"
        return ""


#: How long locust lets users finish when a level stops (s), per user class. Request
#: users: 0 (nothing after the window counts; a 5 s request would hold the next level
#: up). Stream users: they notice the stop within ~0.5 s and record what was still
#: open (a client queued for a worker is a failed connect with its wait), so they get
#: time to do it.
STOP_TIMEOUT_S = {"BenchUser": 0, "OpenLoopUser": 0}
STREAM_STOP_TIMEOUT_S = 5


def locust_argv(spec: LoadSpec, *, port: int, spec_path: Path, users: int | None = None,
                run_time_s: int | None = None) -> list[str]:
    """The locust command line: headless, bounded run time, ``users`` to start with
    (default: the spec's; 0 for a session the control file drives).

    ``--config`` names an empty file: locust also reads ``~/.locust.conf``,
    ``./locust.conf`` and ``./pyproject.toml`` by default, which the children's empty
    working directory and ``HOME`` (``procs.child_env``) rule out. With ``--processes``,
    locust's master binds ZeroMQ on ``*:5557`` by default (every interface, one fixed
    port): it is bound to 127.0.0.1 on a free port instead, and the forked workers,
    which connect to ``--master-host``/``--master-port``, are pointed at it (locust
    2.x ``main.py``: the workers keep the master's parsed options).
    """
    users = spec.users if users is None else users
    stop_timeout = STOP_TIMEOUT_S.get(spec.user_class, STREAM_STOP_TIMEOUT_S)
    master: list[str] = []
    if spec.agents:
        host, _, bind_port = (spec.master_bind or "127.0.0.1:0").rpartition(":")
        bind_port = bind_port if bind_port != "0" else str(free_port(host))
        # No --expect-workers N: locust installs its SIGTERM handler (which tells the
        # workers to quit) only after that many connected; the locustfile waits instead.
        master = ["--master", "--master-bind-host", host, "--master-bind-port", bind_port]
    elif spec.processes > 1:
        zmq_port = str(free_port())
        master = ["--master-bind-host", "127.0.0.1", "--master-bind-port", zmq_port,
                  "--master-host", "127.0.0.1", "--master-port", zmq_port]
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--config", str(empty_config(LOCUST_CONFIG)),
        "--users", str(users), "--spawn-rate", str(max(users * 10, 100)),
        "--run-time", f"{run_time_s or spec.run_time_s}s", "--stop-timeout", str(stop_timeout),
        "--host", f"http://{spec.target_host}:{port}", "--only-summary", "--exit-code-on-error", "0",
        "--loglevel", "WARNING", "--bench-spec", str(spec_path),
        *(["--processes", str(spec.processes)] if spec.processes > 1 else []), *master,
        spec.user_class,
    ]


def _level_entry(spec: LoadSpec, records_dir: Path) -> dict[str, Any]:
    """What one level tells locust: its users, records folder and options."""
    return {
        "users": spec.users,
        "records_dir": str(records_dir),
        "start_spread_s": start_spread_s(spec.longest_warmup_s),
        # Open loop: each locust process (or agent) sends rate / processes.
        "options": {**spec.options, "processes": spec.agents or spec.processes},
        "live": spec.steady,
    }


class AgentsMissing(UserError):
    """Fewer load agents than ``--load-agents`` connected within ``--agent-timeout``."""


class LoadSession:
    """One locust process (or master + workers) that serves every level of a run,
    pinned to the load CPUs (see harness/loadgen/locustfile.py, "Levels").

    Starting locust costs about a second of the load CPU (importing gevent and
    locust); a session pays it once per run, and :meth:`start` lets it start while the
    first server does. ``base`` gives what every level shares (request, expected
    answer, user class, processes); :meth:`level` runs one level against the port it
    is given. After a level that went wrong (locust died or hung; without agents,
    also the server died) the session is closed and the next :meth:`level` starts a
    fresh locust. Use it as a context manager: its locust group is stopped in a
    ``finally`` whatever happens.
    """

    def __init__(self, base: LoadSpec, *, port: int, cpus: list[int], run_dir: Path,
                 session_id: str, log_dir: Path, clock: Callable[[], float],
                 max_run_s: float = 3600.0) -> None:
        self.base = base
        self.port = port
        self.cpus = cpus
        self.run_dir = run_dir
        self.session_id = session_id
        self.log_path = log_dir / f"locust-{session_id}.log"
        self.clock = clock
        self.max_run_s = max_run_s
        self.spec_path = run_dir / "locust" / f"{session_id}.spec.json"
        self.control_path = run_dir / "locust" / f"{session_id}.control.json"
        #: Agents mode: the master's list of connected agents (harness/loadgen/agents.py).
        self.agents_path = run_dir / "locust" / f"{session_id}.agents.json"
        self.master_address = ""
        self.proc: Any = None
        self.sampler: TreeSampler | None = None
        self._seq = 0
        self._starts = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start locust (no users) if it is not running; returns at once."""
        if self.proc is None:
            self._start()

    def _start(self) -> None:
        from harness.atomic import atomic_write_json

        self._starts += 1
        self._seq += 1
        atomic_write_json(self.control_path, {"seq": 0, "action": "none"})
        b = self.base
        atomic_write_json(self.spec_path, {
            "name": b.name, "method": b.method, "path": b.path,
            "expected_status": b.expected_status,
            "expected_body": b.expected_body.decode("latin-1"),
            "control_path": str(self.control_path),
            "records_dir": str(self.run_dir / "requests" / f"_idle-{self.session_id}"),
            "start_spread_s": 0.0, "options": {**b.options, "processes": b.agents or b.processes},
            "agents": b.agents, "agents_path": str(self.agents_path),
            "agents_wait_s": b.agent_timeout_s,
        })
        argv = locust_argv(b, port=self.port, spec_path=self.spec_path, users=0,
                           run_time_s=math.ceil(self.max_run_s))
        if b.agents:
            at = argv.index("--master-bind-host")
            self.master_address = f"{argv[at + 1]}:{argv[at + 3]}"
        self.proc = spawn(argv, cpus=self.cpus, log_path=self.log_path, env=child_env())
        try:
            self.sampler = TreeSampler(self.proc.pid, clock=self.clock, full_memory=False,
                                       cpus=self.cpus).__enter__()
        except BaseException:
            self.close()
            raise

    def agents(self) -> list[dict[str, Any]]:
        """The agents connected to this session's master so far (agents.json)."""
        try:
            return list(json.loads(self.agents_path.read_text()))
        except (OSError, ValueError):
            return []

    def wait_for_agents(self, on_wait: Callable[[str], None] = lambda _address: None) -> None:
        """Agents mode: start the master and wait until ``base.agents`` agents connected
        and had their clock measured. ``on_wait(address)`` is called once with the
        address the agents must reach (``HOST:PORT``).

        Raises:
            AgentsMissing: fewer connected within ``base.agent_timeout_s`` (the master is
                stopped first); the message names how many and from where.
        """
        if self.proc is None:
            self._start()
        assert self.proc is not None
        on_wait(self.master_address)
        want = self.base.agents

        def ready() -> bool:
            return sum("offset_ms" in a for a in self.agents()) >= want

        if not poll_until(lambda: ready() or self.proc.poll() is not None,
                          self.base.agent_timeout_s, every_s=0.1) or not ready():
            came = self.agents()
            died = self.proc.poll() is not None
            self.close()
            where = ", ".join(f"agent {a['index']} from {a.get('address') or '?'} "
                              f"(host {a.get('host')}, pid {a.get('pid')})" for a in came)
            raise AgentsMissing(
                f"--load-agents {want}: {len(came)} of {want} agents connected to "
                f"{self.master_address} within {self.base.agent_timeout_s:g} s"
                + (f" ({where})" if where else "")
                + (f"; locust's master exited: {tail(self.log_path, 2)}" if died else
                   f"; start one `bench agent --master {self.master_address}` per load host"))

    def close(self) -> int | None:
        """Stop locust's whole group (SIGTERM, grace, SIGKILL); its exit code."""
        code = None
        try:
            if self.sampler is not None:
                self.sampler.stop()
        finally:
            self.sampler = None
            if self.proc is not None:
                code = stop_group(self.proc, grace_s=5.0)
                self.proc = None
        return code

    def _order(self, action: str, level: dict[str, Any] | None = None) -> None:
        from harness.atomic import atomic_write_json

        self._seq += 1
        atomic_write_json(self.control_path, {"seq": self._seq, "action": action,
                                              "level": level or {}})

    def level(self, spec: LoadSpec, *, trial_id: str,
              keep_going: Callable[[float], str] = lambda _elapsed: "",
              port: int | None = None, hold: bool = False,
              ready: Callable[[], bool] = lambda: True) -> LoadResult:
        """Run one level and wait for its window to pass, with a hard deadline.

        ``keep_going(elapsed_s)`` is polled about 10 times a second; a non-empty string
        aborts the level with that reason (e.g. the server died). ``port``: the server's,
        when it changed since the session started (a session outlives deployments: each
        level names its target). ``hold``: after the window the users keep running and
        only the level's meta is written, so the next level on the same server steps up
        from them (no stop, no idle gap); otherwise the users are stopped and their
        connections closed. ``ready()``: whether the window may open (False while the
        previous server is still stopping; the warm-up goes on until it is True).
        """
        records_dir = self.run_dir / "requests" / trial_id
        records_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or self.port
        if self.proc is None:
            self._start()
        assert self.proc is not None and self.sampler is not None
        first_sample = len(self.sampler.samples)
        self._order("run", {**_level_entry(spec, records_dir),
                            "host": f"http://{spec.target_host}:{self.port}"})
        deadline_s = spec.run_time_s + KILL_AFTER_S
        timed_out, aborted, died = False, "", False
        window = _WindowClock(spec, records_dir)
        start = time.monotonic()
        try:
            while True:
                if self.proc.poll() is not None:
                    died = True
                    break
                elapsed = time.monotonic() - start
                if elapsed > deadline_s:
                    timed_out = True
                    break
                aborted = keep_going(elapsed)
                if aborted:
                    break
                if window.update(time.time(), ready()):
                    break  # the window is over
                if spec.agents and (records_dir / f"{self.proc.pid}.meta.json").exists():
                    break  # the master ended the level early (no agent connected)
                time.sleep(window.pause(time.time()))
            # Agents end with their master: a level aborted for the server's sake ends
            # like any other, and the master (and its agents) serve the next one.
            keep = not (died or timed_out or (aborted and not spec.agents))
            if keep:
                self._order("hold" if hold else "idle")
                want = 1 if spec.processes <= 1 else spec.processes + 1
                # Agents: the master writes its own meta last (after the agents' or
                # after giving up on them: harness/loadgen/agents.py META_WAIT_S).
                lead = records_dir / f"{self.proc.pid}.meta.json"
                poll_until(lambda: (lead.exists() if spec.agents else
                                    len(list(records_dir.glob("*.meta.json"))) >= want)
                           or self.proc.poll() is not None, META_WAIT_S)
        except BaseException:
            self.close()
            raise
        # Taken before a close (which drops the sampler): a failed level keeps them too.
        samples = list(self.sampler.samples[first_sample:]) if self.sampler else []
        exit_code = None
        if not keep:
            exit_code = self.close()
        meta = merge_meta(records_dir)
        window.finish(meta)
        return LoadResult(records_dir, meta, exit_code, timed_out, aborted, self.log_path,
                          samples, window_start_unix_s=window.start,
                          window_end_unix_s=window.end,
                          warmup_used_s=window.start - window.spawned,
                          warmup_mode=window.mode, steadiness=window.last)


def run_level(spec: LoadSpec, *, port: int, cpus: list[int], trial_dir: Path, trial_id: str,
              log_dir: Path, clock: Callable[[], float],
              keep_going: Callable[[float], str] = lambda _elapsed: "") -> LoadResult:
    """One level in a locust session of its own (started and stopped here)."""
    with LoadSession(spec, port=port, cpus=cpus, run_dir=trial_dir, session_id=trial_id,
                     log_dir=log_dir, clock=clock,
                     max_run_s=spec.run_time_s + KILL_AFTER_S) as session:
        result = session.level(spec, trial_id=trial_id, keep_going=keep_going)
        code = session.close()
    if result.exit_code is None:
        result.exit_code = code
    return result


class _WindowClock:
    """Decides the measurement window of one running level (see the module docstring)."""

    def __init__(self, spec: LoadSpec, records_dir: Path) -> None:
        self.spec = spec
        self.records_dir = records_dir
        self.spawned = math.nan
        self.start = math.nan
        self.end = math.nan
        self.mode = "steady" if spec.steady else "fixed"
        self.last: Steadiness | None = None
        self.detector: Detector | None = None
        self.tail = RecordTail(records_dir, spec.record_name)
        self._next_check = 0.0

    def _spawn_time(self) -> float:
        lead = math.nan
        for f in self.records_dir.glob("*.spawned"):
            try:
                info = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            t = float(info.get("spawn_complete_unix_s", math.nan))
            if info.get("role") in ("local", "master"):
                return t
            lead = t if math.isnan(lead) else max(lead, t)
        # With --processes the master writes its file last; until then, no start.
        return lead if self.spec.processes <= 1 else math.nan

    def pause(self, now: float) -> float:
        """How long the level loop sleeps (s): ``LOOP_EVERY_S`` (the harness shares the
        load CPUs with locust), or less to wake at the window's end plus its grace."""
        if math.isnan(self.end):
            return LOOP_EVERY_S
        return min(LOOP_EVERY_S, max(0.001, self.end + END_GRACE_S - now))

    def update(self, now: float, ready: bool = True) -> bool:
        """Advance with the clock; True once the window is over (stop locust). The
        window does not open while ``ready`` is False (the previous server is still
        stopping): the warm-up lasts until then."""
        if math.isnan(self.spawned):
            self.spawned = self._spawn_time()
            if math.isnan(self.spawned):
                return False
            if self.spec.steady:
                open_loop = self.spec.arrival_rate is not None
                spread = 0.0 if open_loop else start_spread_s(self.spec.longest_warmup_s)
                self.detector = Detector(users=self.spec.users_offered,
                                         started_at=self.spawned + spread,
                                         arrival_rate=self.spec.arrival_rate)
        if math.isnan(self.start) and not self.spec.steady and ready:
            self.start = max(self.spawned + self.spec.warmup_s, now)
            self.end = self.start + self.spec.duration_s
        if math.isnan(self.start) and self.detector is not None and ready:
            if now >= self._next_check:
                self._next_check = now + CHECK_EVERY_S
                for end, latency in self.tail.read():
                    self.detector.add(end, latency)
                earliest = self.spawned + self.spec.warmup_s
                state = self.detector.check(now)
                if state is not None:
                    self.last = state
                if state is not None and state.steady and now >= earliest:
                    self.start, self.mode = now, "steady"
                elif now >= self.spawned + max(self.spec.max_warmup_s, self.spec.warmup_s):
                    self.start, self.mode = now, "max"
            if not math.isnan(self.start):
                self.end = self.start + self.spec.duration_s
        return not math.isnan(self.end) and now >= self.end + END_GRACE_S

    def finish(self, meta: dict[str, Any]) -> None:
        """Fall back on locust's own meta when the files never told the start."""
        if math.isnan(self.spawned) and "spawn_complete_unix_s" in meta:
            self.spawned = float(meta["spawn_complete_unix_s"])
        if math.isnan(self.start) and not math.isnan(self.spawned):
            warm = self.spec.warmup_s if not self.spec.steady else self.spec.longest_warmup_s
            self.start = self.spawned + warm
            self.mode = "fixed" if not self.spec.steady else "max"
            self.end = self.start + self.spec.duration_s


def merge_meta(records_dir: Path) -> dict[str, Any]:
    """Merge the ``<pid>.meta.json`` files locust's processes wrote (see LoadResult)."""
    metas = []
    for f in sorted(records_dir.glob("*.meta.json")):
        try:
            metas.append(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    if not metas:
        return {}
    lead = next((m for m in metas if m.get("role") in ("local", "master")), metas[0])
    merged = dict(lead)
    merged["cpu_warning"] = any(m.get("cpu_warning") for m in metas)
    errors: dict[str, int] = {}
    for m in metas:
        for k, v in m.get("errors", {}).items():
            errors[k] = errors.get(k, 0) + int(v)
    merged["errors"] = errors
    merged["processes"] = len(metas)
    lag: dict[str, list[float]] = {}
    sends: dict[str, list[int]] = {}
    for m in metas:
        for sec, (n, total, peak) in m.get("lag_slices", {}).items():
            slot = lag.setdefault(sec, [0, 0.0, 0.0])
            slot[0] += n
            slot[1] += total
            slot[2] = max(slot[2], peak)
        for sec, values in m.get("open_loop_slices", {}).items():
            slot2 = sends.setdefault(sec, [0, 0, 0, 0])
            for i, v in enumerate(values):
                slot2[i] += int(v)
    merged["lag_slices"] = lag
    merged["open_loop_slices"] = sends
    return merged
