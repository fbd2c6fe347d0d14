"""`bench history`: change points at the right run, the overview and the dashboard page.

The change-point rule is checked on synthetic run folders (written with harness.results'
atomic helpers) so that a step of known size at a known run can be planted; its
assertions are on the detected indices, not only on the HTML. The overview and the small
multiples are checked on real runs: copies of the stored runs under tests/data (an
io-heavy run with an invalid trial, a websocket-echo run with unsupported ones) made into
a week of history, and the session's real sweep (``conftest.io_sweep``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import history, history_page
from tests.support import bench
from tests.synth import DAYS, DRIFT, STEP_DAY, STORED, copy_run, stored_history, write_run

PLOTLY_MARKER = "plotly.js v"
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


@pytest.mark.slow
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
@pytest.mark.slow
def test_bad_history_input(args: list[str], message: str, tmp_path: Path) -> None:
    r = bench("history", *[a.replace("{empty}", str(tmp_path)) for a in args],
              "-o", str(tmp_path / "h.html"))
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("bench: error: ") and message in line


# --- real runs: the overview and the small multiples -------------------------------------


#: Days of the stored history, the day the io-heavy throughput drops 25%, its daily drift.
def test_overview_of_stored_runs(tmp_path: Path) -> None:
    h = history.collect(stored_history(tmp_path / "results"))
    assert len(h.runs) == 2 * DAYS and not h.skipped
    latest = {(i.series.scenario, i.series.config["server"], i.series.config["users"],
               i.series.metric.column): i for i in history.overview(h)}
    io = "io-heavy latency_ms=50"
    # The invalid trial (gunicorn-sync, 2 users) and the unsupported WebSocket configs
    # never feed a series.
    assert (io, "gunicorn-sync", 2, "throughput_rps") not in latest
    assert not [k for k in latest if k[0].startswith("websocket-echo") and k[1] == "gunicorn-sync"]
    last = pd.read_csv(tmp_path / "results" / f"io-heavy-{DAYS}" / "trials.csv")
    before = pd.read_csv(STORED / "io-heavy" / "trials.csv")
    for server, users in (("gunicorn-sync", 4), ("uvicorn", 2), ("uvicorn", 4)):
        item = latest[(io, server, users, "throughput_rps")]
        (value,) = last.query("server == @server and users == @users")["throughput_rps"]
        assert item.median == pytest.approx(value) and not item.stale
        assert item.vs_previous == pytest.approx(DRIFT, abs=1e-9)
        cp = item.change_point
        assert cp is not None and item.verdict == "regression"
        assert h.runs[cp.position].started_at.startswith(f"2026-12-{STEP_DAY:02d}")
        (original,) = before.query("server == @server and users == @users")["throughput_rps"]
        assert cp.before == pytest.approx(original * (1 + DRIFT) ** 2, rel=0.02)
        assert item.vs_change_point == pytest.approx(value / cp.before - 1)
        # p99 and PSS did not move: no change point, no verdict
        for metric in ("latency_p99_ms", "pss_mib_peak"):
            flat = latest[(io, server, users, metric)]
            assert flat.change_point is None and flat.verdict == "" and flat.vs_previous == 0
    ws = [i for k, i in latest.items() if k[0].startswith("websocket-echo")]
    assert ws and all(i.verdict == "" for i in ws)  # a 1%-a-day drift is not a change point


def test_small_multiples_share_axes_from_zero(tmp_path: Path) -> None:
    h = history.collect(stored_history(tmp_path / "results"))
    groups = history_page.groups(h)
    # one figure per scenario and metric, one panel per config with ok trials
    assert [(g.title.split()[0], g.metric) for g in groups] == [
        (s, m) for s in ("io-heavy", "websocket-echo")
        for m in ("throughput", "p99 latency", "peak PSS")]
    assert [len(g.series) for g in groups] == [3, 3, 3, 2, 2, 2]
    for g in groups:
        fig = history_page.group_figure(g, h.runs)
        axes = [fig.layout[k] for k in fig.layout if k.startswith("yaxis")]
        assert len(axes) == len(g.series)
        top = max(float(s.points["max"].max()) for s in g.series)
        assert all(a.matches in (None, "y") for a in axes)  # one y scale for the figure
        assert list(fig.layout.yaxis.range) == pytest.approx([0, top * 1.08])
        medians = [t for t in fig.data if t.name == "median of ok repeats"]
        assert len(medians) == len(g.series)
        assert all(len(t.x) == DAYS for t in medians)
    page = history_page.render(h, tmp_path / "h.html").read_text()
    assert page.count('class="plotly-graph-div"') == 6 and page.count("plotly.js v") == 1
    cells = re.findall(r'<td class="num cell ([a-z ]*)"', page)
    assert len(cells) == (3 + 2) * 3 and cells.count("regression") == 3
    assert page.index('id="overview"') < page.index('id="trends"') < page.index('id="changes"')
    assert "3 series regressed at their last change point" in page


@pytest.mark.slow
def test_history_of_the_real_sweep(io_sweep: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    for day in (1, 2, 3):
        copy_run(io_sweep, results / f"sweep-{day}", day)
    out = tmp_path / "history.html"
    r = bench("history", str(results), "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    page = out.read_text()
    assert page.count('class="plotly-graph-div"') == 3  # throughput, p99, PSS
    configs = 2 * 4  # gunicorn-sync and uvicorn at 4 levels
    assert len(re.findall(r'<td class="num cell', page)) == configs * 3
    assert "3 runs · 24 series · 0 change points · 0 regressed" in r.stdout
