"""run.json's typed metadata (harness.runmeta): stored runs round-trip to the same
keys, values and order; every older schema migrates on read; strict JSON out; unknown
keys kept; a wrong type fails where it is written, and names the key when read.

Stored runs are the report golden fixtures (tests/data/report_same, schema 2, written
with NaN tokens by an older bench); nothing is started.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from harness.atomic import finite_json
from harness.errors import UserError
from harness.plan import RunPlan, initial_meta
from harness.results import SCHEMA_VERSION, TRIAL_COLUMNS, RunState, load_run
from harness.runmeta import DeploymentEntry, RecordError, RunMeta, ScenarioMeta
from harness.scenarios import load
from harness.servers import SERVERS
from tests.synth import STORED

RUNS = ("io-heavy", "websocket-echo")


def text(obj: object) -> str:
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def no_constants(token: str) -> None:
    raise AssertionError(f"non-standard JSON token {token}")


@pytest.mark.parametrize("stored", RUNS)
def test_a_stored_run_json_round_trips_key_for_key(stored: str) -> None:
    raw = json.loads((STORED / stored / "run.json").read_text())
    meta = RunMeta.from_dict(raw)
    # Same keys, values and order; the NaN tokens this old bench wrote become null.
    assert text(meta.to_dict()) == text(finite_json(raw))
    assert not meta.extra and not meta.scenario.extra and not meta.deployments[0].extra
    assert meta.scenario.name == stored and meta.scenario.slo.p99_ms == raw["scenario"]["slo"]["p99_ms"]
    assert meta.cpus.server == tuple(raw["cpus"]["server"])
    assert [d.port for d in meta.deployments] == [d["port"] for d in raw["deployments"]]
    # Keys the old schema lacked stay absent when written back (no nulls invented).
    assert "apps" not in raw and "apps" not in meta.to_dict() and meta.apps == ()


def test_a_run_this_version_writes_reads_back_to_the_same_bytes(tmp_path: Path) -> None:
    plan = RunPlan(scenario=load("io-heavy"), servers=[SERVERS["uvicorn"]], users=(2, 4),
                   warmup_s=0.5, duration_s=1.0, repeats=1, workers=1, server_cpus=[0],
                   load_cpus=[1], results_dir=tmp_path, command=["bench", "run"], steady=True,
                   max_warmup_s=5.0)
    meta = initial_meta(plan, "20260101T000000Z-io-heavy-abcdef")
    meta = meta.with_deployment({"server": "uvicorn", "app": "raw", "repeat": 1,
                                 "backend": "local", "port": 4321, "pid": 99, "startup_s": 0.2})
    state = RunState(tmp_path, meta, trials=[{"trial_id": "t", "throughput_rps": math.nan}])
    state.save()
    written = (tmp_path / "run.json").read_text()
    raw = json.loads(written, parse_constant=no_constants)  # strict JSON: NaN is null
    assert raw["trials"] == [{"trial_id": "t", "throughput_rps": None}]
    assert list(raw)[:6] == ["schema_version", "run_id", "status", "started_at", "ended_at",
                             "command"]
    assert raw["ended_at"] is None and raw["warmup"]["mode"] == "steady"
    assert "crash" not in raw and "oracle" not in raw  # sections a run had no use for
    assert text(RunMeta.from_dict(raw).to_dict()) == written
    assert load_run(tmp_path).meta.deployments[0].port == 4321


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION + 1))
def test_every_schema_version_reads_back(version: int, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(STORED / "io-heavy", run_dir, ignore=shutil.ignore_patterns("requests"))
    raw = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**raw, "schema_version": version}))
    before = (run_dir / "run.json").read_bytes()
    run = load_run(run_dir)
    assert run.meta.schema_version == SCHEMA_VERSION
    assert run.meta.migrated_from == (version if version < SCHEMA_VERSION else None)
    if version < SCHEMA_VERSION:  # the migrations put every column in today's order
        assert tuple(run.trials.columns[:len(TRIAL_COLUMNS)]) == TRIAL_COLUMNS
    assert run.meta.scenario.name == "io-heavy" and len(run.trials) == 4
    if version < 4:  # before the app axis: every trial served the raw app
        assert set(run.trials["app"]) == {"raw"}
    assert (run_dir / "run.json").read_bytes() == before  # migrated in memory only


def test_nan_is_refused_in_a_typed_field_and_written_as_null_elsewhere() -> None:
    with pytest.raises(RecordError, match=r"'start_spread_s' is nan: not a finite number"):
        RunMeta(start_spread_s=math.nan)
    with pytest.raises(RecordError, match=r"'arrival_rates\[1\]' is inf"):
        RunMeta(scenario=ScenarioMeta(arrival_rates=(1.0, math.inf)))
    meta = RunMeta(schema_version=SCHEMA_VERSION, trials=({"x": math.nan},),
                   extra={"agents": [math.inf, 1.5]})
    out = json.loads(json.dumps(meta.to_dict(), allow_nan=False))
    assert out["trials"] == [{"x": None}] and out["agents"] == [None, 1.5]


def test_a_wrong_type_fails_where_it_is_written() -> None:
    meta = RunMeta(schema_version=SCHEMA_VERSION, run_id="r")
    with pytest.raises(RecordError, match="'status' is a JSON number, not a string or null"):
        meta.replace(status=1)
    with pytest.raises(RecordError, match="'port' is a JSON string, not an integer or null"):
        meta.with_deployment({"server": "uvicorn", "port": "80"})
    with pytest.raises(RecordError, match="'machine.logical_cpus' is a JSON boolean"):
        meta.updated({"machine": {"logical_cpus": True}})
    with pytest.raises(TypeError):  # a key that is no field is a typo, not an extra
        meta.replace(satus="complete")  # type: ignore[call-arg]
    with pytest.raises(RecordError, match="'engin' is not a key of RunMeta"):
        meta.updated({"engin": {"url": "unix:///x"}})
    assert DeploymentEntry.from_dict({"port": 80}).port == 80


def test_unknown_keys_are_kept_in_place_and_written_back(tmp_path: Path) -> None:
    """A newer bench of the same schema (or an older one's dropped key) stays readable,
    and a rewrite (watchdog, bench clean) loses nothing of it."""
    run_dir = tmp_path / "run"
    shutil.copytree(STORED / "io-heavy", run_dir, ignore=shutil.ignore_patterns("requests"))
    raw = json.loads((run_dir / "run.json").read_text())
    raw = {"gpus": {"model": "none", "count": 0}, **raw}
    raw["scenario"] = {**raw["scenario"], "think_time_ms": 5}
    (run_dir / "run.json").write_text(json.dumps(raw))
    meta = load_run(run_dir).meta
    assert meta.extra == {"gpus": {"model": "none", "count": 0}}
    assert meta.scenario.extra == {"think_time_ms": 5} and meta.scenario.name == "io-heavy"
    out = RunMeta.from_dict(raw).replace(status="crashed").to_dict()
    assert list(out) == list(raw) and out["gpus"] == raw["gpus"]
    assert list(out["scenario"]) == list(raw["scenario"]) and out["status"] == "crashed"


@pytest.mark.parametrize(("damage", "message"), [
    ({"scenario": {"users": [2, "4"]}}, "'scenario.users[1]' is a JSON string, not an integer"),
    ({"cpus": {"server": "0"}}, "'cpus.server' is a JSON string, not an array"),
    ({"deployments": [{"port": 1}, 7]}, "'deployments[1]' is a JSON number, not an object"),
    ({"versions": {"locust": 2}}, "'versions.locust' is a JSON number, not a string or null"),
])
def test_a_wrong_type_in_a_stored_run_names_the_key(damage: dict[str, object], message: str,
                                                    tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(STORED / "io-heavy", run_dir, ignore=shutil.ignore_patterns("requests"))
    raw = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**raw, **damage}))
    with pytest.raises(UserError) as caught:
        load_run(run_dir)
    assert str(caught.value) == f"{run_dir / 'run.json'}: damaged: {message}"
