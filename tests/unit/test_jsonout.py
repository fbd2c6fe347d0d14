"""harness.jsonout: strict JSON out of NaN, numpy scalars and paths, the envelope every
document has, and the shapes of ``bench run --json`` (counts per status, sorted trials with
their headline keys only), ``--dry-run --json`` (the plan and its estimate, worked by
hand) and ``list scenarios --json``."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import jsonout
from harness.results import load_run
from harness.scenarios import SCENARIOS_DIR, load
from harness.servers import SERVERS
from tests.support import plan
from tests.synth import samples, trial, write_report_run


def strict(text: str) -> Any:
    """``text`` parsed as JSON that has no NaN or Infinity."""
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in JSON")
    return json.loads(text, parse_constant=refuse)


def test_dumps_is_strict_json_of_floats_numpy_and_paths() -> None:
    doc = {"nan": math.nan, "inf": -math.inf, "n": np.int64(7), "x": np.float64(0.5),
           "y": np.float64("nan"), "path": Path("/r/run"), "nested": [{"p99_ms": math.nan}]}
    assert strict(jsonout.dumps(doc)) == {"nan": None, "inf": None, "n": 7, "x": 0.5,
                                          "y": None, "path": "/r/run",
                                          "nested": [{"p99_ms": None}]}


def test_emit_writes_one_document_with_the_envelope(capsys: pytest.CaptureFixture[str]) -> None:
    jsonout.emit("list servers", {"servers": []})
    out = capsys.readouterr().out
    assert out.endswith("}\n") and out.count("\n}\n") == 1
    doc = strict(out)
    assert list(doc)[:2] == ["bench_json", "command"]
    assert doc == {"bench_json": jsonout.VERSION, "command": "list servers", "servers": []}


def test_run_document_counts_and_sorts_the_trials(tmp_path: Path) -> None:
    trials = [
        trial("uvicorn-u50-r1", "uvicorn", "asgi", 50, "ok", "", 30.0, 900.0),
        trial("gunicorn-sync-u50-r1", "gunicorn-sync", "wsgi", 50, "failed", "crashed", 20.0,
              0.0),
        trial("uvicorn-u10-r1", "uvicorn", "asgi", 10, "invalid", "saturated", 10.0, 190.0),
        trial("gunicorn-sync-u10-r1", "gunicorn-sync", "wsgi", 10, "ok", "", 0.0, 40.0),
    ]
    run_dir = write_report_run(tmp_path, "json-run", trials, samples(), records=False)
    doc = jsonout.run_document(load_run(run_dir), report=None, exit_code=0, slo=None)
    strict(jsonout.dumps(doc))
    assert doc["run_dir"] == str(run_dir.absolute()) and doc["report"] is None
    assert doc["counts"] == {"trials": 4, "ok": 2, "invalid": 1, "unsupported": 0, "failed": 1}
    # users, then interface (asgi < wsgi), server, repeat
    assert [t["trial_id"] for t in doc["trials"]] == [
        "uvicorn-u10-r1", "gunicorn-sync-u10-r1", "uvicorn-u50-r1", "gunicorn-sync-u50-r1"]
    assert all(tuple(t) == jsonout.TRIAL_KEYS for t in doc["trials"])
    failed = doc["trials"][-1]
    assert failed["status"] == "failed" and failed["throughput_rps"] is None
    assert failed["latency_p99_ms"] is None and failed["offered_rps"] is None
    assert doc["trials"][1]["latency_p99_ms"] == 50.0 + 10 / 10 + 5  # synth: p50 + 5 ms
    assert doc["scenario"]["slo"] == {"p99_ms": 150, "max_error_rate": 0.01}
    assert doc["slo_check"] is None


def test_plan_document_of_a_closed_and_an_open_loop_plan(tmp_path: Path) -> None:
    closed = jsonout.plan_document(plan(tmp_path, [SERVERS["uvicorn"], SERVERS["hypercorn"]],
                                        users=(4, 8)))
    assert closed["dry_run"] is True and closed["servers"] == ["uvicorn", "hypercorn"]
    assert closed["levels"] == [{"users": 4, "rate_rps": None}, {"users": 8, "rate_rps": None}]
    assert closed["trials"] == 2 * 2 * 1
    assert closed["warmup"] == {"mode": "fixed", "s": 0.5}
    # 3 s + per stack: 1 s + 0.5 s warm-up + 2 s window per level, + 0.6 s for the first
    # (users afresh), 0.2 s for the second (stepped up) (harness.plan.estimated_seconds)
    assert closed["estimated_s"] == round(3.0 + 2 * (1.0 + 2 * 2.5 + 0.6 + 0.2), 1)
    opened = jsonout.plan_document(plan(tmp_path, [SERVERS["uvicorn"]], users=(100,),
                                        arrival_rates=(10.0, 20.0, 40.0)))
    assert opened["levels"] == [{"users": 100, "rate_rps": r} for r in (10.0, 20.0, 40.0)]
    assert opened["estimated_s"] == round(3.0 + 1.0 + 3 * (0.5 + 2.0 + 0.6), 1)  # all afresh
    strict(jsonout.dumps(opened))


def test_scenario_document_says_what_the_file_says() -> None:
    """io-heavy.toml read independently (tomllib) against its document."""
    path = SCENARIOS_DIR / "io-heavy.toml"
    raw = tomllib.loads(path.read_text())
    doc = jsonout.scenario_document(load("io-heavy"))
    strict(jsonout.dumps(doc))
    assert doc["file"] == str(path.absolute())
    assert (doc["name"], doc["protocol"], doc["method"], doc["path"]) == \
        (raw["name"], raw["protocol"], raw["request"]["method"], raw["request"]["path"])
    latency = raw["params"]["latency_ms"]
    assert doc["request_path"] == f"{raw['request']['path']}?latency_ms={latency['default']}"
    assert doc["params"]["latency_ms"] == {k: latency[k] for k in doc["params"]["latency_ms"]}
    assert doc["users"] == raw["load"]["users"] and doc["duration_s"] == raw["load"]["duration_s"]
    assert doc["warmup"]["mode"] == "steady"  # max_warmup_s given
    assert doc["warmup"]["max_s"] == raw["load"]["max_warmup_s"]
    assert doc["slo"] == raw["slo"]
    assert doc["validity"] == raw["validity"]
