"""The load driver: one headless locust subprocess per level, pinned to the load CPUs.

locust is never imported here (it monkey-patches the process with gevent); it is
run as ``python -m locust`` with ``scenarios/locustfile.py``. It hands back files,
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
from typing import Any

from harness import PROJECT_ROOT
from harness.procs import child_env, spawn, stop_group, tail
from harness.sampler import Sample, TreeSampler

LOCUSTFILE = PROJECT_ROOT / "scenarios" / "locustfile.py"
#: Extra seconds given to locust past warm-up + measurement: spawning, then the
#: stop (``--stop-timeout``), before the driver kills it.
SPAWN_SLACK_S = 1.0
KILL_AFTER_S = 30.0
#: Closed loop: each user starts after a random delay in [0, this] (capped at half the
#: warm-up, so every user runs through the whole window).
MAX_START_SPREAD_S = 1.0


def start_spread_s(warmup_s: float) -> float:
    """How far apart closed-loop users start (s): ``min(1, warm-up / 2)``.

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
    #: The locust User class in scenarios/locustfile.py (or a module it imports).
    user_class: str = "BenchUser"
    #: Extra settings for the user class, passed through the spec JSON.
    options: dict[str, Any] = field(default_factory=dict)
    #: locust processes (``--processes``): >1 runs locust's own master + workers.
    processes: int = 1

    @property
    def run_time_s(self) -> int:
        return math.ceil(self.warmup_s + self.duration_s + SPAWN_SLACK_S)


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

    @property
    def problem(self) -> str:
        """Why this run cannot be trusted at all ("" when it can be analysed)."""
        if self.aborted:
            return self.aborted
        if self.timed_out:
            return f"locust did not stop within its time limit: {tail(self.log_path, 3)}"
        if not self.meta or "spawn_complete_unix_s" not in self.meta:
            return f"locust exited with code {self.exit_code} without results: {tail(self.log_path)}"
        return ""


def locust_argv(spec: LoadSpec, *, port: int, spec_path: Path, json_path: Path) -> list[str]:
    """The locust command line for one level (headless, fixed users, bounded run time)."""
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--users", str(spec.users), "--spawn-rate", str(max(spec.users * 10, 100)),
        "--run-time", f"{spec.run_time_s}s", "--stop-timeout", "5",
        "--host", f"http://127.0.0.1:{port}", "--only-summary", "--exit-code-on-error", "0",
        "--loglevel", "WARNING", "--json-file", str(json_path.with_suffix("")),
        "--bench-spec", str(spec_path),
        *(["--processes", str(spec.processes)] if spec.processes > 1 else []),
        spec.user_class,
    ]


def run_level(spec: LoadSpec, *, port: int, cpus: list[int], trial_dir: Path, trial_id: str,
              log_dir: Path, clock: Callable[[], float],
              keep_going: Callable[[float], str] = lambda _elapsed: "") -> LoadResult:
    """Run locust for one level and wait for it, with a hard deadline.

    ``keep_going(elapsed_s)`` is polled about 10 times a second; a non-empty string
    aborts the run with that reason (e.g. the server died). locust's whole process
    group is stopped in a ``finally`` whatever happens.
    """
    from harness.results import atomic_write_json

    records_dir = trial_dir / "requests" / trial_id
    spec_path = trial_dir / "locust" / f"{trial_id}.spec.json"
    json_path = trial_dir / "locust" / f"{trial_id}.json"
    log_path = log_dir / f"locust-{trial_id}.log"
    records_dir.mkdir(parents=True, exist_ok=True)
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(spec_path, {
        "name": spec.name, "method": spec.method, "path": spec.path,
        "expected_status": spec.expected_status,
        "expected_body": spec.expected_body.decode("latin-1"),
        "records_dir": str(records_dir),
        "start_spread_s": start_spread_s(spec.warmup_s),
        "options": {**spec.options, "processes": spec.processes},
    })
    argv = locust_argv(spec, port=port, spec_path=spec_path, json_path=json_path)
    deadline_s = spec.run_time_s + KILL_AFTER_S
    timed_out = False
    aborted = ""
    proc = spawn(argv, cpus=cpus, log_path=log_path, env=child_env())
    sampler: TreeSampler | None = None
    try:
        sampler = TreeSampler(proc.pid, clock=clock, full_memory=False, cpus=cpus).__enter__()
        start = time.monotonic()
        while proc.poll() is None:
            elapsed = time.monotonic() - start
            if elapsed > deadline_s:
                timed_out = True
                break
            aborted = keep_going(elapsed)
            if aborted:
                break
            time.sleep(0.1)
    finally:
        if sampler is not None:
            sampler.stop()
        exit_code = stop_group(proc, grace_s=5.0)
    return LoadResult(records_dir, merge_meta(records_dir), exit_code, timed_out, aborted,
                      log_path, sampler.samples if sampler else [])


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
    return merged
