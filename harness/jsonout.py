"""``--json``: one JSON document on stdout per command, built from the same data as the
human output (which then goes to stderr). Shapes: docs/ci.md, "Machine-readable output".

Every document is an object with ``"bench_json": 1`` (bumped when a key changes meaning
or goes away; new keys may appear) and ``"command"``. Numbers keep their units in their
names (``_ms``, ``_rps``, ``_mib``); a missing figure (NaN) is ``null``; paths are
absolute strings.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.atomic import finite_json

if TYPE_CHECKING:
    from harness.results import RunData
    from harness.scenarios import Scenario
    from harness.servers import ServerConfig
    from harness.slo import Check

#: The version of the documents' shape.
VERSION = 1

#: Per trial in ``bench run --json``: identity, outcome and the headline figures. The
#: rest is in the run folder's trials.csv.
TRIAL_KEYS = ("trial_id", "server", "interface", "backend", "workers", "users", "offered_rps",
              "repeat", "status", "reason", "flags", "throughput_rps", "error_rate",
              "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "cpu_percent_mean",
              "pss_mib_peak")


def dumps(doc: dict[str, Any]) -> str:
    """``doc`` as strict JSON text: NaN/inf as ``null``, numpy scalars as numbers,
    paths as strings."""
    def default(value: Any) -> Any:
        if hasattr(value, "item") and callable(value.item):  # numpy scalar
            return finite_json(value.item())
        return str(value)
    return json.dumps(finite_json(doc), indent=2, default=default, allow_nan=False)


def emit(command: str, doc: dict[str, Any]) -> None:
    """Write the document of ``command`` to stdout, on its own, and flush."""
    sys.stdout.write(dumps({"bench_json": VERSION, "command": command, **doc}) + "\n")
    sys.stdout.flush()


def _scalar(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def run_document(data: RunData, *, report: Path | None, exit_code: int,
                 slo: Check | None) -> dict[str, Any]:
    """``bench run --json``: where the run and its report are, its status, the trials
    (``TRIAL_KEYS`` each) and their count per status, and the SLO check when one ran."""
    from harness.trial import TRIAL_STATUSES

    meta = data.meta
    scenario = meta.scenario
    trials = data.trials.sort_values(["users", "interface", "server", "repeat"])
    statuses = {s: int((trials["status"] == s).sum()) for s in TRIAL_STATUSES}
    return {
        "run_id": meta.run_id, "run_dir": str(data.path.absolute()),
        "report": str(report.absolute()) if report is not None else None,
        "status": meta.status, "exit_code": exit_code,
        "scenario": {"name": scenario.name, "protocol": scenario.protocol,
                     "request_path": scenario.request_path, "params": dict(scenario.params),
                     "slo": scenario.slo.to_dict() if scenario.slo else None},
        "commit": meta.git.commit,
        "counts": {"trials": len(trials), **statuses},
        "trials": [{k: _scalar(t.get(k)) for k in TRIAL_KEYS} for _, t in trials.iterrows()],
        "slo_check": slo.to_json() if slo is not None else None,
    }


def plan_document(plan: Any) -> dict[str, Any]:
    """``bench run --dry-run --json``: the plan, nothing started."""
    return {
        "dry_run": True, "scenario": plan.scenario.name,
        "request_path": plan.scenario.request_path,
        "servers": [c.name for c in plan.servers],
        "levels": [{"users": u, "rate_rps": None if math.isnan(r) else r}
                   for u, r in plan.levels],
        "repeats": plan.repeats, "trials": plan.trial_count, "workers": plan.workers,
        "warmup": ({"mode": "steady", "max_s": plan.max_warmup_s} if plan.steady
                   else {"mode": "fixed", "s": plan.warmup_s}),
        "duration_s": plan.duration_s, "backend": plan.backend,
        "load_processes": plan.load_processes, "load_agents": plan.load_agents,
        "server_cpus": list(plan.server_cpus),
        "load_cpus": list(plan.load_cpus), "results_dir": str(plan.results_dir),
        "estimated_s": round(plan.estimated_seconds(), 1),
    }


def scenario_document(sc: Scenario) -> dict[str, Any]:
    """One scenario of ``bench list scenarios --json``; ``file`` is where it was read."""
    return {
        "name": sc.name, "file": str(sc.source.absolute()), "description": sc.description,
        "protocol": sc.protocol, "method": sc.method, "path": sc.path,
        "request_path": sc.request_path,
        "params": {p.name: {"type": p.type, "default": p.default, "min": p.min, "max": p.max,
                            "unit": p.unit, "description": p.description}
                   for p in sc.params.values()},
        "users": list(sc.users),
        "warmup": ({"mode": "steady", "min_s": sc.warmup_s, "max_s": sc.max_warmup_s}
                   if sc.steady else {"mode": "fixed", "s": sc.warmup_s}),
        "duration_s": sc.duration_s, "repeats": sc.repeats,
        "slo": {"p99_ms": sc.slo_p99_ms, "max_error_rate": sc.slo_max_error_rate},
        "validity": {"max_error_rate": sc.max_error_rate,
                     "max_generator_cpu_percent": sc.max_generator_cpu_percent},
    }


def server_document(c: ServerConfig) -> dict[str, Any]:
    """One server config of ``bench list servers --json``."""
    from harness.servers import DEFAULT_SERVERS

    return {"name": c.name, "interface": c.interface, "protocols": sorted(c.protocols),
            "threads": c.threads, "worker_connections": c.worker_connections,
            "connection_limit": c.connection_limit, "max_workers": c.max_workers,
            "default": c.name in DEFAULT_SERVERS, "unsupported": c.unsupported(),
            "command": [part.replace("{python}", "python") for part in c.template],
            "notes": c.notes}
