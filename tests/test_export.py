"""`bench export` on a real run: github-action-benchmark's JSON files and the history CSV.

The format check follows benchmark-action/github-action-benchmark: for the tools
``customBiggerIsBetter`` / ``customSmallerIsBetter`` the file is a JSON array of
``BenchmarkResult`` objects, ``{name: string, value: number, unit: string, range?: string,
extra?: string}`` (its README, "custom benchmarks", and ``src/extract.ts``).

The run exported is the session's shared io-heavy sweep (``conftest.io_sweep``).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness.export import BIGGER_FILE, HISTORY_RUN_COLUMNS, SMALLER_FILE
from harness.results import atomic_write_csv, atomic_write_json, load_run
from tests.conftest import IO_SWEEP_LATENCY_MS, IO_SWEEP_LEVELS
from tests.support import bench

pytestmark = pytest.mark.slow  # every test here reads the session's real sweep
SERVERS = ("gunicorn-sync", "uvicorn")
REQUIRED = {"name": str, "unit": str, "value": (int, float)}
OPTIONAL = {"range": str, "extra": str}


@pytest.fixture(scope="module")
def run_dir(io_sweep: Path) -> Path:
    """The session's io-heavy sweep (conftest.io_sweep): gunicorn-sync and uvicorn at 20 ms
    per request, 4 levels, 2 repeats, every trial ok."""
    return io_sweep


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
    # Throughput is bigger-is-better: one entry per config and level, the median of its
    # ok repeats.
    levels = ok.groupby(["server", "users"])
    assert {e["unit"] for e in bigger} == {"req/s"} and len(bigger) == levels.ngroups
    for (server, users), group in levels:
        (entry,) = [e for e in bigger if f" · {server} · " in e["name"]
                    and f"users={users} " in e["name"]]
        assert entry["value"] == pytest.approx(group["throughput_rps"].median())
        assert entry["name"].startswith(f"io-heavy latency_ms={IO_SWEEP_LATENCY_MS} · {server}")
        lo, hi = (float(x) for x in entry["range"].split(".."))
        assert lo == pytest.approx(group["throughput_rps"].min(), rel=1e-5)
        assert hi == pytest.approx(group["throughput_rps"].max(), rel=1e-5)
        assert f"median of {len(group)} ok repeats" in entry["extra"]
        # Little's law: 1 sync worker at 20 ms serves ~50 req/s whatever the users,
        # uvicorn users / 20 ms. The value is req/s over the window: requests per window
        # (1.5x), per ms (1/1000x) or with the warm-up's requests (1.33x) are far outside
        # these bounds, which a loaded machine's slower servers stay inside.
        ceiling = 1000 / IO_SWEEP_LATENCY_MS * (1 if server == "gunicorn-sync" else users)
        assert 0.6 * ceiling <= entry["value"] <= 1.05 * ceiling, (entry, ceiling)
    # Latency and memory are smaller-is-better.
    assert {e["unit"] for e in smaller} == {"ms", "MiB"}
    p99 = [e for e in smaller if e["name"].endswith("p99 latency")]
    assert len(p99) == levels.ngroups


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
    assert frame.loc[0, "params"] == f"latency_ms={IO_SWEEP_LATENCY_MS}"
    metric_columns = list(frame.columns[len(HISTORY_RUN_COLUMNS):])
    # one column per config, level and metric (throughput, p50, p99, PSS)
    assert metric_columns == sorted(metric_columns)
    assert len(metric_columns) == len(SERVERS) * len(IO_SWEEP_LEVELS) * 4
    trials = pd.read_csv(run_dir / "trials.csv")
    for server in SERVERS:
        for users in IO_SWEEP_LEVELS:
            col = f"io-heavy/{server}/users={users}/throughput_rps"
            assert frame.loc[0, col] == pytest.approx(trials.query(
                "server == @server and users == @users and status == 'ok'")["throughput_rps"].median())
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
    first, last = IO_SWEEP_LEVELS[0], IO_SWEEP_LEVELS[-1]
    atomic_write_csv(cut / "trials.csv", trials[trials["users"] == first])
    r = bench("export", str(cut), "--format", "csv-history", "-o", str(history))
    assert r.returncode == 0, r.stderr
    frame = pd.read_csv(history).set_index("run_id")
    assert frame.loc["cut-run", "run_status"] == "interrupted"
    assert pd.isna(frame.loc["cut-run", f"io-heavy/gunicorn-sync/users={last}/throughput_rps"])
    assert frame.loc["cut-run", f"io-heavy/gunicorn-sync/users={first}/throughput_rps"] > 0
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
