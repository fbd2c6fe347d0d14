"""A real `bench run` (the session's io-heavy sweep, conftest.io_sweep: real servers, real
locust), its report rendered by the real CLI, opened in headless Chromium, planned for a
target load, combined with a second real run (conftest.cpu_run) and exported as PNG.

Chromium: Debian's ``chromium`` (``/usr/bin/chromium``) or ``BROWSER_PATH``. The tests
that need it are skipped, saying so, only when there is none.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import plotly.offline
import pytest

from harness import report
from harness.results import load_run
from tests.support import (
    bench,
    chart_problems,
    needs_chromium,
    open_in_chromium,
    report_of,
    tables,
)

SLO_P99_MS = 150.0  # io-heavy.toml
TARGET_RPS = 5000.0


# --- headless Chromium ----------------------------------------------------------------


@needs_chromium
@pytest.mark.slow
def test_the_checker_catches_an_empty_chart_and_a_script_error(tmp_path: Path) -> None:
    """The browser check below can fail: an empty chart and a thrown error are caught."""
    js = plotly.offline.get_plotlyjs()
    page = tmp_path / "bad.html"
    page.write_text(
        f"<html><head><script>{js}</script></head><body>"
        '<div id="good" class="plotly-graph-div" style="height:300px"></div>'
        '<div id="empty" class="plotly-graph-div" style="height:300px"></div><script>'
        'Plotly.newPlot("good", [{"x": [1, 2], "y": [3, 4], "type": "scatter"}]);'
        'Plotly.newPlot("empty", []);'
        'throw new Error("deliberate");</script></body></html>', encoding="utf-8")
    dom, console = open_in_chromium(page, tmp_path / "profile", "--dump-dom")
    assert chart_problems(dom) == {"empty": "drawn without data"}
    assert any("Uncaught Error: deliberate" in line for line in console), console


@pytest.mark.slow
@needs_chromium
def test_report_opens_in_chromium_with_every_chart_drawn(io_sweep: Path, tmp_path: Path) -> None:
    run_dir, page = io_sweep, report_of(io_sweep)
    dom, console = open_in_chromium(page, tmp_path / "profile", "--dump-dom")
    assert console == [], "\n".join(console)
    charts = re.findall(r'<div id="(run0-[a-z_]+)" class="plotly-graph-div', dom)
    trials = pd.read_csv(run_dir / "trials.csv")
    assert (trials["status"] == "ok").any(), trials[["trial_id", "status", "reason"]]
    assert charts == [f"run0-{key}" for key in report.CHART_KEYS]  # with an ok trial: all
    assert chart_problems(dom) == {}
    capacity = tables(dom)["capacity-run0"]
    assert sorted(r["server config"][0] for r in capacity) == ["gunicorn-sync", "uvicorn"]
    for row in capacity:  # a figure, or the reason there is none
        filled = row["max sustainable req/s"][1] not in ("", None)
        assert filled or row["note"][0].strip(), row
        assert row["peak req/s"][1] not in ("", None) or "no ok trial" in row["note"][0], row

    shot = tmp_path / "report.png"
    _, console = open_in_chromium(page, tmp_path / "profile2", f"--screenshot={shot}",
                                  "--window-size=1400,7000")
    assert console == [], "\n".join(console)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    print(f"\nscreenshot: {shot}")


def _sustainable_by_hand(trials: pd.DataFrame, slo_p99_ms: float,
                         max_error_rate: float) -> dict[str, float]:
    """Max sustainable throughput per config, computed here from trials.csv alone: the
    highest median over ok repeats among levels within the SLO."""
    ok = trials[trials["status"] == "ok"]
    medians = ok.groupby(["server", "users"])[["throughput_rps", "latency_p99_ms",
                                               "error_rate"]].median().reset_index()
    within = medians[(medians["latency_p99_ms"] <= slo_p99_ms)
                     & (medians["error_rate"] <= max_error_rate)]
    return within.groupby("server")["throughput_rps"].max().to_dict()


@pytest.mark.slow
def test_target_rps_instances_follow_the_measured_capacity(io_sweep: Path,
                                                           tmp_path: Path) -> None:
    run_dir = io_sweep
    out = tmp_path / "plan.html"
    r = bench("report", str(run_dir), "-o", str(out), "--target-rps", f"{TARGET_RPS:g}")
    assert r.returncode == 0, r.stdout + r.stderr
    html = out.read_text("utf-8")
    rows = {row["server config"][0]: row for row in tables(html)["capacity-run0"]}
    run = load_run(run_dir)
    expected = _sustainable_by_hand(run.trials, SLO_P99_MS,
                                    run.meta.scenario.slo.max_error_rate)
    assert expected, ("no trial of the sweep met the SLO (machine too busy? every trial "
                      f"invalid): {run.trials[['trial_id', 'status', 'reason']]}")
    assert "headroom factor 0.7" in html
    for server, row in rows.items():
        shown = row["max sustainable req/s"][1]
        if server not in expected:
            assert shown == "" and row["instances needed"][0] == "–", row
            continue
        sustainable = expected[server]
        assert float(shown or "nan") == pytest.approx(sustainable, rel=1e-5)
        needed = math.ceil(TARGET_RPS / (sustainable * 0.7))
        assert row["instances needed"][0] == str(needed), (server, sustainable, row)
        pss = float(row["PSS MiB"][1] or "nan")
        assert float(row["memory of instances MiB"][1] or "nan") == pytest.approx(needed * pss,
                                                                                 rel=1e-5)


@pytest.mark.slow
def test_two_runs_combine_into_one_report(io_sweep: Path, cpu_run: Path,
                                          tmp_path: Path) -> None:
    run_dir = io_sweep
    out = tmp_path / "combined.html"
    r = bench("report", str(run_dir), str(cpu_run), "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    html = out.read_text("utf-8")
    assert html.count('<section class="run"') == 2
    titles = re.findall(r"<h2>Run ([^<]+)</h2>", html)
    assert [t.rsplit(": ", 1)[1] for t in titles] == ["io-heavy", "cpu-heavy"]
    assert html.count("plotly.js v") == 1
    assert {"capacity-run0", "capacity-run1"} <= set(tables(html))
    assert html.index('id="run0-throughput"') < html.index('id="run-1"') < \
        html.index('id="run1-throughput"')


@pytest.mark.slow
@needs_chromium
def test_png_export_writes_one_png_per_chart(io_sweep: Path, tmp_path: Path) -> None:
    run_dir = io_sweep
    out, pngs = tmp_path / "r.html", tmp_path / "png"
    r = bench("report", str(run_dir), "-o", str(out), "--png", str(pngs))
    assert r.returncode == 0, r.stdout + r.stderr
    charts = re.findall(r'<div id="run0-([a-z_]+)" class="plotly-graph-div',
                        out.read_text("utf-8"))
    written = sorted(p.name for p in pngs.iterdir())
    run_id = run_dir.name
    assert written == sorted(f"{run_id}-{key}.png" for key in charts)
    for png in pngs.iterdir():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
