"""Locust users for bench scenarios. Run by the harness as a subprocess, never imported by it.

The harness passes ``--bench-spec SPEC.json``: the request path, the exact status
and body every response must have, the load mode, and ``records_dir``, where each
locust process that makes requests (one, or each worker with ``--processes``) writes:

* ``<pid>.csv``: one line per request, ``start_unix_s,latency_ms,ok,status,bytes,name``,
  with the latency unrounded (locust's own statistics round it to whole ms under
  100 ms and to 2 significant figures above);
* ``<pid>.meta.json``: the process's role (local, master, worker), the wall-clock
  time spawning completed (the start of the warm-up), when the test stopped,
  locust's CPU-warning flag and error counts, and the generator's own delays per
  wall-clock second (``lag_slices``, ``open_loop_slices``: see below);
* ``<pid>.spawned``: written the moment spawning completed (the harness watches
  for it to start its steady-state detector while the test runs).

With ``live`` in the spec, the records file is flushed every 0.1 s, so the harness
can read completions while the test runs (steady-state detection).

Levels. With ``control_path`` in the spec, one locust process (or master + workers)
serves every level of a run instead of one process per level (starting locust costs
about a second of the load CPU). locust starts with no users; the harness writes the
control file (JSON, replaced atomically) and every process polls it:
``{"seq": n, "action": "run", "level": {...}}`` switches the records to the level's
``records_dir``, takes its options and target ``host``, and (local runner or master)
ramps to its ``users`` (from none, or from the users a held level left running);
``{"seq": n, "action": "idle"}`` stops the users and has each process write the
level's ``<pid>.meta.json``; ``{"seq": n, "action": "hold"}`` writes the meta and
leaves the users running for the next level to step up from. Without
``control_path`` the spec is the one level and locust's ``--users`` start it.

Agents (``bench run --load-agents N``, harness/loadgen/agents.py). The harness's locust
is then a master only (spec ``agents``): it waits for the agents' clocks, sends each level
to them as a custom message, writes the records and meta they send back into the
level's ``records_dir`` as ``agent-<n>.csv`` / ``agent-<n>.meta.json``, and writes its
own meta last, naming the agents lost. A worker started without ``--bench-spec`` is an
agent (``bench agent``): it takes its levels from those messages, ships its records
instead of writing them, and records every time in the master's clock (``_now``).

The generator measures itself, so a trial it slowed down can be told apart:

* closed loop, *scheduling lag*: the time from a user's previous response being
  handled to its next request being sent. With ``wait_time = constant(0)`` this is
  pure generator overhead (greenlet scheduling, locust's task loop); when the
  process is short of CPU it grows, and users spend time outside a request, which
  the server never sees. Kept per second as ``[count, sum ms, max ms]``.
* open loop, *late and capped sends*: a request sent more than one interval after it
  was due while a connection was free (the generator fell behind its schedule), and a
  request due while all ``max_in_flight`` connections were busy (capped: k6 calls
  these dropped iterations; here they wait and are timed from when they were due),
  and a request that was due before the test stopped but never sent at all (unsent).
  Kept per second of the due time as ``[due, late, capped, unsent]``.

Two load modes:

* closed loop (``BenchUser``): each user starts after a random delay within the
  spec's ``start_spread_s`` (inside the warm-up; see ``harness.load.start_spread_s``)
  and then sends its next request as soon as the previous one ended
  (``wait_time = constant(0)``), on one keep-alive connection;
* open loop (``OpenLoopUser``): requests are *scheduled* at a constant arrival rate
  and each is timed from its intended start, whether or not earlier ones finished,
  so a slow server cannot slow the load down and hide its queueing (coordinated
  omission, Tene 2013). Requests still in flight when the test stops are recorded
  as ``incomplete`` with their latency so far (a lower bound).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from typing import Any

import agents
import gevent
from gevent.pool import Pool
from locust import FastHttpUser, constant, events, task
from streams import SSEUser, WebSocketUser  # noqa: F401

_spec: dict[str, Any] = {}
_records: Any = None
_meta: dict[str, Any] = {"cpu_warning": False, "errors": {}}
_errors: Counter[str] = Counter()
#: unix second -> [requests sent, lag sum ms, lag max ms] (closed loop).
_lag: dict[int, list[float]] = {}
#: unix second -> [due, late, capped, unsent] (open loop).
_sends: dict[int, list[int]] = {}
FLUSH_EVERY_S = 0.1
CONTROL_EVERY_S = 0.02
#: How long a master waits for its forked workers before starting a level (s).
WORKERS_WAIT_S = 60.0
#: The control entry being served (its ``seq``), and whether a level is active.
_control: dict[str, Any] = {"seq": -1, "active": False}
#: A load agent's clock minus the master's (s), set at connect (harness/loadgen/agents.py):
#: every time this process records is in the master's clock. 0 for a local run.
_clock: dict[str, Any] = {"offset_s": 0.0, "agents": None, "cpu": []}


def _now() -> float:
    """Wall-clock time (unix s) in the harness's clock."""
    return time.time() - _clock["offset_s"]


def _note_lag(lag_s: float) -> None:
    slot = _lag.setdefault(int(_now()), [0, 0.0, 0.0])
    ms = lag_s * 1000.0
    slot[0] += 1
    slot[1] += ms
    slot[2] = max(slot[2], ms)


def _note_send(due_unix: float, late: bool, capped: bool, unsent: bool = False) -> None:
    slot = _sends.setdefault(int(due_unix - _clock["offset_s"]), [0, 0, 0, 0])
    slot[0] += 1
    slot[1] += late
    slot[2] += capped
    slot[3] += unsent


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument("--bench-spec", type=str, default="", help="bench: trial spec JSON")
    parser.add_argument("--bench-agent-dir", type=str, default="",
                        help="bench agent: folder for this worker's <pid>.connected")


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    path = environment.parsed_options.bench_spec if environment.parsed_options else ""
    if not path:
        if type(environment.runner).__name__ == "WorkerRunner":
            _agent_init(environment)
        return
    with open(path, encoding="utf-8") as f:
        _spec.update(json.load(f))
    _spec["expected_body_bytes"] = _spec["expected_body"].encode("latin-1")
    _meta["role"] = type(environment.runner).__name__.removesuffix("Runner").lower()
    if _meta["role"] == "local":
        _drop_locust_request_stats(environment)
    _meta["pid"] = os.getpid()
    _meta["init_unix_s"] = time.time()
    if _spec.get("agents") and _meta["role"] == "master":
        _clock["agents"] = agents.Registry(environment.runner, _spec["agents_path"])
    if _spec.get("control_path"):
        gevent.spawn(_control_loop, environment)
    else:
        _control["active"] = True


def _agent_init(environment: Any) -> None:
    """A load agent (``bench agent``): follow the master's custom messages
    (harness/loadgen/agents.py) instead of a spec file and a control file."""
    runner = environment.runner
    _meta["role"] = "worker"
    _meta["pid"] = os.getpid()

    def on_ping(msg: Any, **_kw: Any) -> None:
        t1 = time.time()
        runner.send_message("bench_pong", {"t0": msg.data["t0"], "t1": t1, "t2": time.time()})

    def on_clock(msg: Any, **_kw: Any) -> None:
        _clock["offset_s"] = float(msg.data["offset_s"])
        _meta.update(agent_index=msg.data["index"], clock_offset_s=msg.data["offset_s"],
                     clock_uncertainty_s=msg.data["uncertainty_s"])

    def on_level(msg: Any, **_kw: Any) -> None:
        global _records
        if _records is not None:
            _records.close()
        _spec.clear()
        _spec.update(msg.data)
        _spec["expected_body_bytes"] = _spec["expected_body"].encode("latin-1")
        for key in ("spawn_complete_unix_s", "test_stop_unix_s", "user_count"):
            _meta.pop(key, None)
        _meta["cpu_warning"] = False
        _errors.clear()
        _lag.clear()
        _sends.clear()
        _clock["cpu"] = []
        _control.update(seq=msg.data["seq"], active=True)
        _records = agents.Shipper(runner, msg.data["seq"])
        gevent.spawn(_sample_cpu, msg.data["seq"])

    def on_end(msg: Any, **_kw: Any) -> None:
        gevent.spawn(_agent_end, runner, msg.data["seq"])

    for kind, handler in (("ping", on_ping), ("clock", on_clock), ("level", on_level),
                          ("end", on_end)):
        runner.register_message(f"bench_{kind}", handler)
    runner.send_message("bench_hello", agents.hello(runner))
    environment.events.quitting.add_listener(
        lambda **_kw: runner.send_message("bench_bye", {}))
    folder = environment.parsed_options.bench_agent_dir if environment.parsed_options else ""
    if folder:  # tells `bench agent` this worker reached its master
        with open(os.path.join(folder, f"{os.getpid()}.connected"), "w", encoding="utf-8") as f:
            f.write(runner.client_id)


def _sample_cpu(seq: int) -> None:
    """An agent's CPU time during a level: [master-clock unix s, process CPU s] pairs
    every 0.25 s (``time.process_time``: every thread of this process)."""
    while _control["active"] and _control["seq"] == seq:
        _clock["cpu"].append([_now(), time.process_time()])
        gevent.sleep(0.25)


def _agent_end(runner: Any, seq: int) -> None:
    """The level is over: wait for the master's stop to end the users (bounded), then
    send the last records and the level's meta."""
    deadline = time.time() + 2.0 + float(getattr(runner.environment, "stop_timeout", 0) or 0)
    while runner.user_count and time.time() < deadline:
        gevent.sleep(0.02)
    _clock["cpu"].append([_now(), time.process_time()])
    shipper = _records
    meta = _level_meta()
    _control["active"] = False
    meta = {**meta, "cpu_samples": _clock["cpu"],
            "shipped_bytes": getattr(shipper, "shipped_bytes", 0),
            "shipped_batches": getattr(shipper, "batches", 0)}
    runner.send_message("bench_meta", {"seq": seq, "meta": meta})


def _drop_locust_request_stats(environment: Any) -> None:
    """Remove locust's own per-request statistics listener (``Runner.__init__``'s
    ``on_request``). bench's records replace those statistics, which round latencies and
    which bench never reads; logging them costs about 2% of the generator's CPU per
    request (benchmarks/generator_overhead.py). Local runner only: in locust's
    master/worker mode the workers' statistics reports are part of how the master
    follows them (a run without them never finished here), so they stay. Nothing
    happens if locust names the listener otherwise (it then only costs that CPU)."""
    hook = environment.events.request
    for handler in list(getattr(hook, "_handlers", ())):
        if getattr(handler, "__qualname__", "").endswith("Runner.__init__.<locals>.on_request"):
            hook.remove_listener(handler)


def _control_loop(environment: Any) -> None:
    """Follow the harness's control file (see the module docstring)."""
    path = _spec["control_path"]
    while True:
        gevent.sleep(CONTROL_EVERY_S)
        try:
            with open(path, encoding="utf-8") as f:
                order = json.load(f)
        except (OSError, ValueError):
            continue
        if _clock["agents"] is not None and _control["active"]:
            _clock["agents"].watch()
        if order.get("seq", -1) <= _control["seq"]:
            continue
        _control["seq"] = order["seq"]
        try:
            if order.get("action") == "run":
                _start_level(environment, order["level"])
            elif order.get("action") == "idle":
                _end_level(environment)
            elif order.get("action") == "hold":
                _end_level(environment, stop_users=False)
        except Exception as exc:  # noqa: BLE001 - recorded, the harness sees no meta and says so
            _errors[f"control {order.get('action')}: {type(exc).__name__}: {exc}"[:200]] += 1


def _start_level(environment: Any, level: dict[str, Any]) -> None:
    global _records
    runner = environment.runner
    if _control["active"]:
        _end_level(environment)
    if _records is not None:
        _records.close()
        _records = None
    _spec.update(level)
    _meta.update(cpu_warning=False)
    for key in ("spawn_complete_unix_s", "test_stop_unix_s", "user_count"):
        _meta.pop(key, None)
    # Per-level figures start empty (as on an agent, on_level): a level's meta holds its
    # own seconds of generator lag and open-loop sends, not every earlier level's too.
    _errors.clear()
    _lag.clear()
    _sends.clear()
    _control["active"] = True
    if level.get("host"):  # the session outlives deployments: each level names its target
        environment.host = level["host"]
    registry = _clock["agents"]
    if registry is not None:
        # Agents: each one's clock measured, and locust's own headless start (with no
        # users, once --expect-workers connected) behind us, or it would undo this one.
        want, deadline = int(_spec["agents"]), time.time() + float(_spec["agents_wait_s"])
        while ((len(registry.ready()) < want or runner.state == "ready")
               and time.time() < deadline):
            gevent.sleep(0.05)
        registry.begin(level, _spec)
        if not registry.in_level:  # nobody to run it: the master's meta ends the level
            _errors["no load agent connected to the master"] += 1
            _end_level(environment)
            return
    elif _meta.get("role") == "master":
        # The harness may order the first level before every forked worker has
        # connected; starting then would spread the users over fewer workers (or, with
        # none yet, start nothing). Wait for all of them, bounded.
        want = int(getattr(environment.parsed_options, "expect_workers", 1) or 1)
        deadline = time.time() + WORKERS_WAIT_S
        while runner.worker_count < want and time.time() < deadline:
            gevent.sleep(0.05)
    if _meta.get("role") in ("local", "master"):
        users = int(level["users"])
        runner.start(users, spawn_rate=max(users * 10, 100))


def _end_level(environment: Any, stop_users: bool = True) -> None:
    """Stop the level's users (local/master) and write this process's meta for it.
    ``stop_users`` False (a ``hold`` order): the users keep running into the next
    level, which steps up from them; only the meta is written."""
    if not _control["active"]:
        return
    runner = environment.runner
    if not stop_users:
        pass
    elif _meta.get("role") in ("local", "master") and runner.state not in ("stopped", "ready"):
        runner.stop()
    else:
        # A worker's users are stopped by the master; give its message a moment.
        deadline = time.time() + 2.0
        while runner.user_count and time.time() < deadline:
            gevent.sleep(0.02)
    if _clock["agents"] is not None:
        _clock["agents"].end()
        _meta.update(_clock["agents"].summary())
    _control["active"] = False
    _write_meta()


def _level_meta() -> dict[str, Any]:
    """This process's meta for the level (closes its records first)."""
    global _records
    if _records is not None:
        _records.close()
        _records = None
    _meta.setdefault("test_stop_unix_s", _now())
    _meta["errors"] = dict(_errors.most_common(20))
    _meta["lag_slices"] = {str(k): v for k, v in sorted(_lag.items())}
    _meta["open_loop_slices"] = {str(k): v for k, v in sorted(_sends.items())}
    return _meta


def _write_meta() -> None:
    _level_meta()
    if not _spec.get("records_dir"):
        return  # an agent: its meta goes to the master (_agent_end)
    os.makedirs(_spec["records_dir"], exist_ok=True)
    final = os.path.join(_spec["records_dir"], f"{os.getpid()}.meta.json")
    with open(final + ".tmp", "w", encoding="utf-8") as f:
        json.dump(_meta, f)
    os.replace(final + ".tmp", final)


def _open_records() -> Any:
    # Opened lazily: with --processes, init runs in the master before it forks.
    global _records
    if _records is None and _spec and _control["active"]:
        os.makedirs(_spec["records_dir"], exist_ok=True)
        path = os.path.join(_spec["records_dir"], f"{os.getpid()}.csv")
        _records = open(path, "a", buffering=1 << 20, encoding="ascii")  # noqa: SIM115
        if _spec.get("live"):
            gevent.spawn(_flush_forever, _records)
    return _records


def _flush_forever(records: Any) -> None:
    while not records.closed:
        gevent.sleep(FLUSH_EVERY_S)
        if not records.closed:
            records.flush()


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: BaseException | None,
                response_length: int, start_time: float | None = None,
                response: Any = None, **_kw: Any) -> None:
    records = _open_records()
    if records is None:
        return
    status = getattr(response, "status_code", 0) or 0
    ok = exception is None
    if not ok:
        _errors[f"{type(exception).__name__}: {exception}"[:200]] += 1
    if start_time is None:  # events fired by hand may omit it: start = end - duration
        start_time = time.time() - response_time / 1000.0
    if _clock["offset_s"]:
        if name == "event":  # SSE: the start is the server's send time (the harness's
            response_time -= _clock["offset_s"] * 1000.0  # host); the lag ends on ours
        else:
            start_time -= _clock["offset_s"]
    kind = name.replace(",", ";")
    records.write(f"{start_time:.6f},{response_time:.4f},{int(ok)},{status},"
                  f"{response_length or 0},{kind}\n")


@events.spawning_complete.add_listener
def _on_spawned(user_count: int, **_kw: Any) -> None:
    if not _control["active"] or (_spec.get("control_path") and not user_count):
        return  # the session's start with no users, or after a level ended
    _meta["spawn_complete_unix_s"] = _now()
    _meta["user_count"] = user_count
    if _spec.get("records_dir"):
        os.makedirs(_spec["records_dir"], exist_ok=True)
        final = os.path.join(_spec["records_dir"], f"{os.getpid()}.spawned")
        with open(final + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"spawn_complete_unix_s": _meta["spawn_complete_unix_s"],
                       "role": _meta.get("role", ""), "user_count": user_count}, f)
        os.replace(final + ".tmp", final)


@events.cpu_warning.add_listener
def _on_cpu_warning(**_kw: Any) -> None:
    _meta["cpu_warning"] = True


@events.test_stop.add_listener
def _on_test_stop(**_kw: Any) -> None:
    if _control["active"]:
        _meta.setdefault("test_stop_unix_s", _now())


@events.quitting.add_listener
def _on_quitting(environment: Any = None, **_kw: Any) -> None:
    if not _spec or not _control["active"]:
        return
    # The harness ends a level with SIGTERM, whose handler fires `quitting` before it
    # stops the users: stop them first, so what they record on the way out (open-loop
    # requests still in flight, sends never made) is in the files written below.
    runner = getattr(environment, "runner", None)
    if runner is not None:
        try:
            runner.stop()
        except Exception as exc:  # noqa: BLE001 - the files below must still be written
            _errors[f"stopping users: {type(exc).__name__}: {exc}"[:200]] += 1
    _control["active"] = False
    _write_meta()


def _check(resp: Any) -> None:
    """A success is the expected status and the reference body, byte for byte. An app of
    the user's (options ``check``): ``status`` checks the status only, ``contains`` also
    that the body holds ``expected_contains``."""
    if resp.status_code != _spec["expected_status"]:
        resp.failure(f"status {resp.status_code}")
        return
    check = _spec.get("options", {}).get("check", "exact")
    if check == "exact":
        if resp.content != _spec["expected_body_bytes"]:
            resp.failure("body differs from the reference")
    elif check == "contains":
        wanted = _spec["options"]["expected_contains"].encode("latin-1")
        if wanted not in (resp.content or b""):
            resp.failure("body lacks the expected text")


def _request_kwargs() -> dict[str, Any]:
    """Headers and body of an app of the user's (options ``headers``, ``body``: latin-1
    text); none for the shipped apps."""
    options = _spec.get("options", {})
    kwargs: dict[str, Any] = {}
    if options.get("headers"):
        kwargs["headers"] = dict(options["headers"])
    if options.get("body"):
        kwargs["data"] = options["body"].encode("latin-1")
    return kwargs


class BenchUser(FastHttpUser):
    """Closed loop: GET the request path; a response that is not byte-exact is a failure."""

    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 10.0

    _last_end: float | None = None

    def on_start(self) -> None:
        # Out of lockstep: users spawned together would keep sending in bursts.
        gevent.sleep(random.uniform(0.0, float(_spec.get("start_spread_s", 0.0))))

    def on_stop(self) -> None:
        # A session outlives its levels: close this user's keep-alive connection now, so
        # the server is idle (no connection held) before the next level starts.
        self.client.client.close()

    @task
    def request(self) -> None:
        if self._last_end is not None:
            _note_lag(time.perf_counter() - self._last_end)
        with self.client.request(_spec.get("method", "GET"), _spec["path"], name="request",
                                 catch_response=True, **_request_kwargs()) as resp:
            _check(resp)
        self._last_end = time.perf_counter()


class OpenLoopUser(FastHttpUser):
    """Open loop: one scheduler sends requests at ``options.arrival_rate`` per second.

    Request i is due at t0 + i / rate; it runs in its own greenlet on a pool of up
    to ``options.max_in_flight`` connections, and its latency is measured from when
    it was due, so waiting for a free connection counts as latency, as it would for
    a real client. Run it with exactly one locust user per process.
    """

    wait_time = constant(0)
    network_timeout = 60.0
    connection_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        options = _spec.get("options", {})
        self.rate = float(options["arrival_rate"]) / float(options.get("processes", 1))
        self.interval = 1.0 / self.rate
        self.max_in_flight = int(options.get("max_in_flight", 1000))
        type(self).concurrency = self.max_in_flight
        super().__init__(*args, **kwargs)
        self.pool = Pool(self.max_in_flight)
        self.in_flight: dict[int, float] = {}

    def on_stop(self) -> None:
        self.client.client.close()  # see BenchUser.on_stop

    def _one(self, i: int, due: float, due_unix: float, capped: bool) -> None:
        self.in_flight[i] = due_unix
        # Late: sent more than one interval after it was due with a connection free,
        # i.e. the generator, not the server, fell behind the schedule.
        late = not capped and time.perf_counter() - due > self.interval
        _note_send(due_unix, late, capped)
        try:
            with self.client.request(_spec.get("method", "GET"), _spec["path"], name="request",
                                     catch_response=True, **_request_kwargs()) as resp:
                _check(resp)
                resp.request_meta["start_time"] = due_unix
                resp.request_meta["response_time"] = (time.perf_counter() - due) * 1000.0
        finally:
            self.in_flight.pop(i, None)

    @task
    def schedule(self) -> None:
        t0 = time.perf_counter()
        t0_unix = time.time()
        i = 0
        try:
            while True:
                due = t0 + i / self.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    gevent.sleep(delay)
                # spawn() blocks while the pool is full: the wait is inside the latency
                # (measured from `due`), so overload shows as latency, not as lower load.
                capped = self.pool.full()
                self.pool.spawn(self._one, i, due, t0_unix + (due - t0), capped)
                i += 1
        finally:
            # Due before now but never sent: the schedule ran ahead of the generator.
            last_due = int((time.perf_counter() - t0) * self.rate)
            for k in range(i, last_due + 1):
                _note_send(t0_unix + k / self.rate, False, False, True)
            self._record_incomplete()

    def _record_incomplete(self) -> None:
        now = time.time()
        for due_unix in list(self.in_flight.values()):
            self.environment.events.request.fire(
                request_type="GET", name="incomplete", response_time=(now - due_unix) * 1000.0,
                response_length=0, exception=RuntimeError("in flight when the test stopped"),
                context={}, start_time=due_unix)
        self.in_flight.clear()
        self.pool.kill(block=False)
