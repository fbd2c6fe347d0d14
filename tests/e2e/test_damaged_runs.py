"""Readers of stored runs (`bench report`, `compare`, `export`, `history`) on damaged
run folders: one line naming the file and the damage, exit 2, never a traceback; in a
folder of runs the others still load. Also: run.json and spec.json are strict JSON,
written atomically; `bench docker build --base` refuses a malformed image reference.

Run folders are synthetic (tests.synth.write_run); nothing is started.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import procs
from harness.load import LoadSpec, run_level
from harness.results import atomic_write_json, load_run
from tests.support import bench_here as bench
from tests.synth import write_run

DAMAGE = {
    "run.json is a list": ("run.json", b"[1, 2, 3]\n", "run.json: damaged: a JSON array, not an object"),
    "run.json is a string": ("run.json", b'"run"', "run.json: damaged: a JSON string, not an object"),
    "run.json not UTF-8": ("run.json", b'{"schema_version": 2, "x": "\xff\xfe"}',
                           "run.json: damaged: not UTF-8 (byte "),
    "run.json not JSON": ("run.json", b"{schema_version: 2", "run.json: damaged: not JSON ("),
    "run.json scenario a list": ("run.json", b'{"schema_version": 2, "scenario": [1]}',
                                 "run.json: damaged: 'scenario' is a JSON array, not an object"),
    "trials.csv not UTF-8": ("trials.csv", b"trial_id,status\n\xff\xfe\xfa,ok\n",
                             "trials.csv: damaged: not UTF-8 (byte "),
    "trials.csv garbage": ("trials.csv", b'a,b\n1,2,3,4\n"unclosed\n',
                           "trials.csv: damaged: not a CSV table ("),
    "trials.csv lacks status": (
        "trials.csv", b"trial_id,scenario,server,users,repeat\nx,io-heavy,uvicorn,4,1\n",
        "trials.csv: damaged: no column status"),
    "trials.csv text in a figure": (
        "trials.csv", (b"trial_id,scenario,server,users,repeat,status,throughput_rps\n"
                       b"x,io-heavy,uvicorn,4,1,ok,fast\n"),
        "trials.csv: damaged: column throughput_rps holds text where numbers belong (row 1: 'fast')"),
    "samples.csv not UTF-8": ("samples.csv", b"t_s,source,server\n\xff,1,2\n",
                              "samples.csv: damaged: not UTF-8"),
    "samples.csv lacks t_s": ("samples.csv", b"source,server\nserver,uvicorn\n",
                              "samples.csv: damaged: no column t_s"),
}


def damaged_run(results: Path, what: str) -> Path:
    run_dir = write_run(results, 1, [100.0, 101.0, 99.0])
    name, data, _ = DAMAGE[what]
    (run_dir / name).write_bytes(data)
    return run_dir


def check_refused(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                  message: str, *args: str) -> None:
    code, out, err = bench(capsys, monkeypatch, *args)
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), err
    assert message in lines[0], lines[0]
    assert not procs._started


@pytest.mark.parametrize("what", list(DAMAGE))
def test_damaged_run_is_named_by_every_reader(what: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = damaged_run(tmp_path / "results", what)
    good = write_run(tmp_path / "other", 2, [100.0, 101.0, 99.0])
    message = f"{run_dir}/{DAMAGE[what][2]}"
    check_refused(capsys, monkeypatch, message, "report", str(run_dir),
                  "-o", str(tmp_path / "r.html"))
    check_refused(capsys, monkeypatch, message, "compare", str(good), str(run_dir),
                  "--json-out", str(tmp_path / "c.json"))
    check_refused(capsys, monkeypatch, message, "export", str(run_dir), "--format",
                  "csv-history", "-o", str(tmp_path / "h.csv"))
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "h.csv").exists()


@pytest.mark.parametrize("what", ["run.json is a list", "trials.csv garbage",
                                  "trials.csv lacks status", "samples.csv not UTF-8"])
def test_history_skips_a_damaged_run_and_reads_the_others(
        what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    damaged = damaged_run(results, what)
    for i in (2, 3):
        write_run(results, i, [100.0, 101.0, 99.0])
    code, out, err = bench(capsys, monkeypatch, "history", str(results), "-o",
                           str(tmp_path / "h.html"))
    assert code == 0, err
    assert "Traceback" not in err
    assert f"skipped: {damaged.name}: {damaged}/{DAMAGE[what][2]}" in err
    assert "· 2 runs ·" in out
    assert (tmp_path / "h.html").is_file()


def test_a_folder_of_runs_with_one_damaged_names_it_in_compare(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """compare pools a folder of runs; one damaged run is refused by name, not dropped
    silently (the gate would otherwise decide on less data than the user gave it)."""
    pool = tmp_path / "pool"
    damaged = damaged_run(pool, "trials.csv garbage")
    write_run(pool, 2, [100.0, 101.0, 99.0])
    base = write_run(tmp_path / "base", 3, [100.0, 101.0, 99.0])
    check_refused(capsys, monkeypatch, f"{damaged}/trials.csv: damaged", "compare",
                  str(base), str(pool), "--json-out", str(tmp_path / "c.json"))


def test_run_json_is_strict_json_and_reads_back(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, 1, [100.0, math.nan, 99.0])
    meta = json.loads((run_dir / "run.json").read_text())
    meta["extra"] = {"a": math.inf, "b": [np.float32("nan"), -math.inf, np.int64(3), 1.5]}
    atomic_write_json(run_dir / "run.json", meta)
    text = (run_dir / "run.json").read_text()

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")
    strict = json.loads(text, parse_constant=refuse)
    assert strict["extra"] == {"a": None, "b": [None, None, 3, 1.5]}
    assert strict["trials"][1]["throughput_rps"] is None
    # Read back from run.json alone (no trials.csv): null figures are NaN, numbers numbers.
    (run_dir / "trials.csv").unlink()
    run = load_run(run_dir)
    assert pd.api.types.is_float_dtype(run.trials["throughput_rps"])
    assert run.trials["throughput_rps"].isna().tolist() == [False, True, False]
    assert run.trials["latency_p999_ms"].isna().all()


@pytest.mark.alone
@pytest.mark.slow
def test_spec_json_is_replaced_atomically(tmp_path: Path) -> None:
    """run_level writes the locust spec through atomic_write_json: a file already at the
    spec's path is replaced (a new inode), never rewritten in place, and it is strict
    JSON. (Against a closed port: locust runs its bounded time and records failures.)"""
    (tmp_path / "locust").mkdir()
    spec_path = tmp_path / "locust" / "t.spec.json"
    other = tmp_path / "other.json"
    other.write_text("untouched")
    os.link(other, spec_path)  # a write in place would change `other` too
    spec = LoadSpec(users=1, warmup_s=0.0, duration_s=0.5, method="GET", path="/io",
                    expected_status=200, expected_body=b"x", name="t",
                    user_class="BenchUser", options={"rate": math.nan})
    port = procs.free_port()
    cpus = sorted(os.sched_getaffinity(0))
    run_level(spec, port=port, cpus=cpus[-1:], trial_dir=tmp_path, trial_id="t",
              log_dir=tmp_path / "logs", clock=lambda: 0.0)
    assert other.read_text() == "untouched"
    loaded = json.loads(spec_path.read_text(), parse_constant=lambda t: pytest.fail(t))
    assert loaded["path"] == "/io" and loaded["options"]["rate"] is None


@pytest.mark.parametrize("base", ["x;id:tag", "UPPER:tag", "a b", "[red]x", "x:" + "t" * 200])
def test_docker_build_refuses_a_malformed_base(base: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    check_refused(capsys, monkeypatch, f"--base {base!r}: not a valid image reference",
                  "docker", "build", "--base", base)
