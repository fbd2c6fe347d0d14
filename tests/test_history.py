"""`bench history`: change points at the right run, and the dashboard page.

Run folders here are synthetic (written with harness.results' atomic helpers) so that a
step of known size at a known run can be planted; the change-point assertions are on
the detected indices, not only on the HTML.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import history, history_page
from harness.results import SCHEMA_VERSION, TRIAL_COLUMNS, atomic_write_csv, atomic_write_json

BENCH = [sys.executable, "-m", "harness.cli"]
PLOTLY_MARKER = "plotly.js v"
MACHINE = {"cpu_model": "Test CPU", "logical_cpus": 2}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "250"}, check=False)


def write_run(results: Path, index: int, throughput: list[float], *, p99: float = 200.0,
              pss: float = 20.0, status: str = "complete", folder: str | None = None,
              trial_status: list[str] | None = None) -> Path:
    """A run folder: run.json + trials.csv, one gunicorn-sync level, one trial per repeat."""
    run_id = f"2026010{index // 10}T{index % 10:02d}0000Z-io-heavy-{index:06x}"
    run_dir = results / (folder or run_id)
    commit = f"{index:02d}{'c0ffee' * 6}"[:40]
    rows = []
    for repeat, value in enumerate(throughput, start=1):
        row: dict[str, object] = dict.fromkeys(TRIAL_COLUMNS, np.nan)
        row.update(trial_id=f"gunicorn-sync-u4-r{repeat}", scenario="io-heavy",
                   server="gunicorn-sync", interface="wsgi", backend="local", workers=1,
                   threads=1, users=4, repeat=repeat, reason="", load_mode="closed-loop",
                   status=(trial_status or ["ok"] * len(throughput))[repeat - 1],
                   throughput_rps=value, latency_p99_ms=p99 * (1 + 0.01 * repeat),
                   pss_mib_peak=pss + 0.1 * repeat)
        rows.append(row)
    trials = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    meta = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "status": status,
        "started_at": f"2026-01-{1 + index:02d}T10:00:00+00:00",
        "git": {"commit": commit, "dirty": False},
        "scenario": {"name": "io-heavy", "request_path": "/io?latency_ms=50",
                     "params": {"latency_ms": 50}},
        "machine": MACHINE, "trials": trials.to_dict("records"),
    }
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / "run.json", meta)
    atomic_write_csv(run_dir / "trials.csv", trials)
    return run_dir


def noisy(rng: np.random.Generator, mean: float, cv: float = 0.015, n: int = 3) -> list[float]:
    return list(rng.normal(mean, mean * cv, n))


@pytest.fixture
def step_results(tmp_path: Path) -> Path:
    """7 runs; throughput drops 100 -> 80 req/s at run 4; p99 and PSS flat. Folder names
    are out of time order, so ordering must come from started_at."""
    rng = np.random.default_rng(11)
    results = tmp_path / "results"
    for i in range(7):
        write_run(results, i, noisy(rng, 100.0 if i < 4 else 80.0), folder=f"run-{6 - i}")
    return results


def series_of(h: history.History, metric: str) -> history.Series:
    (s,) = [s for s in h.series if s.metric.column == metric]
    return s


def test_step_change_found_at_the_right_run(step_results: Path) -> None:
    h = history.collect(step_results)
    assert [r.position for r in h.runs] == list(range(7))
    assert [r.started_at[:10] for r in h.runs] == [f"2026-01-{d:02d}" for d in range(1, 8)]
    thr = series_of(h, "throughput_rps")
    (cp,) = thr.change_points
    assert cp.position == 4 and cp.label == h.runs[4].commit[:7] == "04c0ffe"
    assert cp.before == pytest.approx(100, rel=0.03) and cp.after == pytest.approx(80, rel=0.03)
    assert cp.change == pytest.approx(-0.2, abs=0.03) and cp.p_value <= 0.01
    assert series_of(h, "latency_p99_ms").change_points == []
    assert series_of(h, "pss_mib_peak").change_points == []
    assert list(thr.points["n"]) == [3] * 7


def test_step_at_the_last_run_is_found() -> None:
    rng = np.random.default_rng(12)
    groups = [noisy(rng, 100.0) for _ in range(5)] + [noisy(rng, 125.0)]
    ((index, before, after, change, p),) = history.detect_change_points(groups)
    assert index == 5 and change == pytest.approx(0.25, abs=0.04) and p <= 0.01
    assert before == pytest.approx(100, rel=0.03) and after == pytest.approx(125, rel=0.03)


def test_two_steps_are_both_found() -> None:
    rng = np.random.default_rng(13)
    means = [100] * 4 + [70] * 4 + [90] * 4
    found = history.detect_change_points([noisy(rng, m) for m in means])
    assert [f[0] for f in found] == [4, 8]


def test_noise_alone_gives_no_change_point() -> None:
    # 200 series of 12 runs x 3 repeats at 5% CV, no step: the minimum effect (10%) and
    # the Bonferroni-corrected Welch test must keep every one of them flat.
    rng = np.random.default_rng(14)
    flagged = sum(bool(history.detect_change_points([noisy(rng, 100.0, cv=0.05) for _ in range(12)]))
                  for _ in range(200))
    assert flagged <= 2
    # Below the minimum effect a real step is not reported (a 5% step, 10% minimum)...
    small = [noisy(rng, 100.0, cv=0.005) for _ in range(4)] + [noisy(rng, 95.0, cv=0.005)
                                                               for _ in range(4)]
    assert history.detect_change_points(small, min_effect=0.10) == []
    # ...and is when the minimum allows it.
    assert [f[0] for f in history.detect_change_points(small, min_effect=0.03)] == [4]


def test_interrupted_runs_count_but_are_marked(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    results = tmp_path / "results"
    for i in range(6):
        # Run 2 was interrupted after 2 ok repeats; its third trial is invalid (and wild).
        if i == 2:
            write_run(results, i, [*noisy(rng, 100.0, n=2), 5.0], status="interrupted",
                      trial_status=["ok", "ok", "invalid"])
        else:
            write_run(results, i, noisy(rng, 100.0))
    h = history.collect(results)
    thr = series_of(h, "throughput_rps")
    assert thr.change_points == []  # the invalid 5 req/s trial took no part
    row = thr.points.set_index("position").loc[2]
    assert row["n"] == 2 and not row["complete"] and row["min"] > 90
    assert h.runs[2].status == "interrupted" and h.runs[2].ok_trials == 2
    out = history_page.render(h, tmp_path / "h.html")
    text = out.read_text()
    assert "run not complete" in text and 'class="incomplete"' in text


def test_bench_history_writes_one_self_contained_page(step_results: Path, tmp_path: Path) -> None:
    bad = step_results / "unreadable"
    bad.mkdir()
    (bad / "run.json").write_text('{"schema_version": 99}')
    out = tmp_path / "reports" / "history.html"
    r = bench("history", str(step_results), "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    text = out.read_text()
    assert text.count(PLOTLY_MARKER) == 1  # plotly.js inline once
    assert "<script src" not in text
    assert text.count('class="plotly-graph-div"') == 3  # one chart per series
    assert "-20% at 04c0ffe" in text  # the change point, labelled with its commit
    assert "change point: io-heavy latency_ms=50 · gunicorn-sync" in r.stdout
    assert "at 04c0ffe" in r.stdout and "7 runs · 3 series · 1 change points" in r.stdout
    assert "skipped: unreadable" in r.stderr and "schema_version 99" in r.stderr


def test_machines_are_kept_apart(tmp_path: Path) -> None:
    rng = np.random.default_rng(16)
    results = tmp_path / "results"
    for i in range(4):
        write_run(results, i, noisy(rng, 100.0))
    other = write_run(results, 4, noisy(rng, 60.0))
    meta_path = other / "run.json"
    meta_path.write_text(meta_path.read_text().replace("Test CPU", "Faster CPU"))
    h = history.collect(results)
    machines = sorted({s.machine for s in h.series})
    assert machines == ["Faster CPU ×2", "Test CPU ×2"]
    assert all(s.change_points == [] for s in h.series)  # a new machine is not a regression


@pytest.mark.parametrize(("args", "message"), [
    (["/no/such/folder"], "not a folder of runs"),
    (["{empty}"], "no readable run here"),
    (["{empty}", "--metrics", "throughput"], "unknown metric 'throughput'"),
    (["{empty}", "--alpha", "0"], "--alpha 0: must be between 0 and 1"),
])
def test_bad_history_input(args: list[str], message: str, tmp_path: Path) -> None:
    r = bench("history", *[a.replace("{empty}", str(tmp_path)) for a in args],
              "-o", str(tmp_path / "h.html"))
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("bench: error: ") and message in line
