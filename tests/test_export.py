"""`bench export` on a real run: github-action-benchmark's JSON files and the history CSV.

The format check follows benchmark-action/github-action-benchmark: for the tools
``customBiggerIsBetter`` / ``customSmallerIsBetter`` the file is a JSON array of
``BenchmarkResult`` objects, ``{name: string, value: number, unit: string, range?: string,
extra?: string}`` (its README, "custom benchmarks", and ``src/extract.ts``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.export import BIGGER_FILE, HISTORY_RUN_COLUMNS, SMALLER_FILE
from harness.results import atomic_write_csv, atomic_write_json, load_run
from tests.test_compare import real_run

BENCH = [sys.executable, "-m", "harness.cli"]
REQUIRED = {"name": str, "unit": str, "value": (int, float)}
OPTIONAL = {"range": str, "extra": str}


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "250"}, check=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short real run: gunicorn-sync at two load levels, 2 repeats."""
    base = tmp_path_factory.mktemp("export")
    return real_run(base, "--scenario", "io-heavy", "--servers", "gunicorn-sync",
                    "--users", "2,4", "--workers", "1", "--param", "latency_ms=20",
                    "--duration", "1.5", "--warmup", "0.5", "--repeats", "2")


def check_benchmark_results(entries: object) -> None:
    """github-action-benchmark's custom format: an array of BenchmarkResult objects."""
    assert isinstance(entries, list) and entries, "a non-empty JSON array"
    names = set()
    for e in entries:
        assert isinstance(e, dict)
        assert set(e) <= set(REQUIRED) | set(OPTIONAL), set(e)
        for key, kind in {**REQUIRED, **{k: v for k, v in OPTIONAL.items() if k in e}}.items():
            assert isinstance(e[key], kind) and not isinstance(e[key], bool), (key, e)
        assert math.isfinite(e["value"]) and e["name"].strip() and e["unit"].strip()
        names.add(e["name"])
    assert len(names) == len(entries), "one series per name"


def test_github_action_benchmark_files_match_the_format(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "gab"
    r = bench("export", str(run_dir), "--format", "github-action-benchmark", "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    bigger = json.loads((out / BIGGER_FILE).read_text())
    smaller = json.loads((out / SMALLER_FILE).read_text())
    check_benchmark_results(bigger)
    check_benchmark_results(smaller)
    trials = pd.read_csv(run_dir / "trials.csv")
    ok = trials[trials["status"] == "ok"]
    # Throughput is bigger-is-better: one entry per level, the median of its ok repeats.
    assert {e["unit"] for e in bigger} == {"req/s"} and len(bigger) == ok["users"].nunique()
    for users, group in ok.groupby("users"):
        (entry,) = [e for e in bigger if f"users={users} " in e["name"]]
        assert entry["value"] == pytest.approx(group["throughput_rps"].median())
        assert entry["name"].startswith("io-heavy latency_ms=20 · gunicorn-sync")
        lo, hi = (float(x) for x in entry["range"].split(".."))
        assert lo == pytest.approx(group["throughput_rps"].min(), rel=1e-5)
        assert hi == pytest.approx(group["throughput_rps"].max(), rel=1e-5)
        assert f"median of {len(group)} ok repeats" in entry["extra"]
    # Latency and memory are smaller-is-better.
    assert {e["unit"] for e in smaller} == {"ms", "MiB"}
    p99 = [e for e in smaller if e["name"].endswith("p99 latency")]
    assert len(p99) == ok["users"].nunique()
    # Little's law: 1 sync worker at 20 ms serves ~50 req/s whatever the users.
    assert all(e["value"] == pytest.approx(50, rel=0.1) for e in bigger)


def test_github_action_benchmark_leaves_out_not_ok_trials(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    trials = pd.read_csv(copy / "trials.csv")
    trials["status"] = "invalid"
    atomic_write_csv(copy / "trials.csv", trials)
    r = bench("export", str(copy), "--format", "github-action-benchmark", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "no ok trial to export (statuses: invalid)" in r.stderr
    assert not (tmp_path / "o").exists()


def _as_new_run(src: Path, dst: Path, run_id: str, status: str = "complete") -> Path:
    shutil.copytree(src, dst)
    meta = json.loads((dst / "run.json").read_text())
    meta.update(run_id=run_id, status=status)
    atomic_write_json(dst / "run.json", meta)
    return dst


def test_csv_history_appends_one_row_per_run(run_dir: Path, tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    r = bench("export", str(run_dir), "--format", "csv-history", "-o", str(history))
    assert r.returncode == 0, r.stderr
    assert "appended" in r.stdout
    again = bench("export", str(run_dir), "--format", "csv-history", "-o", str(history))
    assert again.returncode == 0 and "already in" in again.stdout
    second = _as_new_run(run_dir, tmp_path / "second", "second-run")
    r = bench("export", str(second), "--format", "csv-history", "-o", str(history))
    assert r.returncode == 0, r.stderr

    frame = pd.read_csv(history, dtype={"commit": str})
    meta = load_run(run_dir).meta
    assert list(frame["run_id"]) == [meta["run_id"], "second-run"]
    assert tuple(frame.columns[:len(HISTORY_RUN_COLUMNS)]) == HISTORY_RUN_COLUMNS
    assert frame.loc[0, "timestamp"] == meta["started_at"]
    assert frame.loc[0, "commit"] == (meta["git"]["commit"] or "") or pd.isna(frame.loc[0, "commit"])
    assert frame.loc[0, "params"] == "latency_ms=20"
    metric_columns = list(frame.columns[len(HISTORY_RUN_COLUMNS):])
    assert metric_columns == sorted(metric_columns) and len(metric_columns) == 2 * 4
    trials = pd.read_csv(run_dir / "trials.csv")
    for users in (2, 4):
        col = f"io-heavy/gunicorn-sync/users={users}/throughput_rps"
        assert frame.loc[0, col] == pytest.approx(
            trials.query("users == @users and status == 'ok'")["throughput_rps"].median())
    assert not list(tmp_path.glob(".history.csv.*"))  # no temp file left behind


def test_csv_history_refuses_other_columns(run_dir: Path, tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text("timestamp,commit,run_id,other/metric\n2026-01-01,abc,r1,1.0\n")
    before = history.read_bytes()
    r = bench("export", str(run_dir), "--format", "csv-history", "-o", str(history))
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"bench: error: {history}: its columns differ from this run's")
    assert "the file has 1 columns (other/metric) that this run lacks" in line
    assert history.read_bytes() == before


def test_csv_history_takes_an_interrupted_run_with_fewer_levels(run_dir: Path,
                                                                tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    assert bench("export", str(run_dir), "--format", "csv-history", "-o", str(history)).returncode == 0
    cut = _as_new_run(run_dir, tmp_path / "cut", "cut-run", status="interrupted")
    trials = pd.read_csv(cut / "trials.csv")
    atomic_write_csv(cut / "trials.csv", trials[trials["users"] == 2])
    r = bench("export", str(cut), "--format", "csv-history", "-o", str(history))
    assert r.returncode == 0, r.stderr
    frame = pd.read_csv(history).set_index("run_id")
    assert frame.loc["cut-run", "run_status"] == "interrupted"
    assert pd.isna(frame.loc["cut-run", "io-heavy/gunicorn-sync/users=4/throughput_rps"])
    assert frame.loc["cut-run", "io-heavy/gunicorn-sync/users=2/throughput_rps"] > 0
    # A complete run with fewer levels is a different configuration: refused.
    fewer = _as_new_run(cut, tmp_path / "fewer", "fewer-run", status="complete")
    r = bench("export", str(fewer), "--format", "csv-history", "-o", str(history))
    assert r.returncode == 2 and "columns differ" in r.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "bogus", "-o", "x"], "'bogus' is not one of"),
    (["--format", "csv-history"], "Missing option '-o'"),
])
def test_bad_export_options(run_dir: Path, args: list[str], message: str) -> None:
    r = bench("export", str(run_dir), *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("bench: error: ") and message in line


def test_export_targets_are_checked(run_dir: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "file.json"
    a_file.write_text("{}")
    r = bench("export", str(run_dir), "--format", "github-action-benchmark", "-o", str(a_file))
    assert r.returncode == 2 and "not a folder" in r.stderr
    r = bench("export", str(run_dir), "--format", "csv-history", "-o", str(tmp_path))
    assert r.returncode == 2 and "csv-history appends to a CSV file" in r.stderr
    r = bench("export", str(tmp_path / "none"), "--format", "csv-history", "-o", str(a_file))
    assert r.returncode == 2 and "no run here" in r.stderr
