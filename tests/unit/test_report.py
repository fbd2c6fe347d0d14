"""The HTML report: rendered from small but realistic run folders written on disk.

The run folders here are synthetic (the figures in them are chosen so that every
expected number can be worked out by hand); tests/unit/report/test_png.py renders a real
``bench run`` and opens it in Chromium.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.offline
import pytest

from harness import report
from harness.results import (
    SAMPLE_COLUMNS,
    RunData,
    atomic_write_json,
    load_run,
)
from tests import synth
from tests.support import bench, tables

INVALID_RPS = 987.6
PLOTLY_MARKER = "plotly.js v"
FIGURE_DIV = 'class="plotly-graph-div"'
CHARTS_PER_RUN = len(report.CHART_KEYS)
MAX_REPORT_BYTES = 6_000_000


TRIALS = [
    synth.trial("t1", "gunicorn-sync", "wsgi", 10, "ok", "", 2.0, 39.1),
    synth.trial("t2", "gunicorn-sync", "wsgi", 50, "invalid", "generator-saturated", 9.0, INVALID_RPS),
    synth.trial("t3", "uvicorn", "asgi", 10, "ok", "", 20.0, 197.3),
    synth.trial("t4", "uvicorn", "asgi", 50, "failed", "server exited with code 3", 27.0, synth.NAN),
]


@pytest.fixture
def run(tmp_path: Path) -> RunData:
    return load_run(synth.write_report_run(tmp_path, "20250101-100000-io-heavy", TRIALS, synth.samples()))


def _plotly_js_copies(text: str) -> int:
    return text.count(PLOTLY_MARKER)


# --- the page ---------------------------------------------------------------------------


def test_render_writes_one_self_contained_file(run: RunData, tmp_path: Path) -> None:
    out = report.render([run], tmp_path / "reports" / "r.html")
    text = out.read_text(encoding="utf-8")

    assert out == tmp_path / "reports" / "r.html"
    assert _plotly_js_copies(text) == 1
    # The bundle itself names cdn.plot.ly once (a topojson default URL); nothing else may.
    assert text.count("cdn.plot.ly") == plotly.offline.get_plotlyjs().count("cdn.plot.ly")
    assert "<script src" not in text and "<link" not in text
    assert text.count(FIGURE_DIV) == CHARTS_PER_RUN
    for key in report.CHART_KEYS:
        assert f'id="run0-{key}"' in text, key
    for needle in ("gunicorn-sync", "uvicorn", "generator-saturated",
                   "server exited with code 3", f"p99 ≤ {synth.SLO_P99_MS} ms", "abc1234",
                   "/io?latency_ms=50", "latency_ms=50", "locust=2.32.0", "server: 0,1",
                   "load generator: 2,3", "Test CPU", "PSS", "closed-loop",
                   "Verdict", "Capacity within the SLO", "Method and caveats",
                   "coordinated omission", "PSS of the whole server process tree"):
        assert needle.lower() in text.lower(), needle
    assert not list(out.parent.glob(".*.tmp"))


def test_report_is_small_and_deterministic(run: RunData, tmp_path: Path) -> None:
    first = report.render([run], tmp_path / "a.html", target_rps=5000).read_bytes()
    second = report.render([run], tmp_path / "b.html", target_rps=5000).read_bytes()
    assert first == second
    assert len(first) < len(plotly.offline.get_plotlyjs()) + 500_000


def test_non_ok_trials_are_marked_in_tables(run: RunData, tmp_path: Path) -> None:
    text = report.render([run], tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'class="wsgi not-valid invalid level-start"' in text  # per-level table
    assert 'class="asgi not-valid failed"' in text
    assert '<td class="status-invalid">invalid</td>' in text  # trials table
    assert '<td class="status-failed">failed</td>' in text
    assert '<td class="long">generator-saturated</td>' in text  # reason has its own column
    trials = tables(text)["trials-run0"]
    assert [r["status"][0] for r in trials] == ["ok", "invalid", "ok", "failed"]
    assert "invalid: 1" in text and "failed: 1" in text and "ok: 2" in text


def test_invalid_trial_is_not_a_valid_trace_point(run: RunData) -> None:
    figs = report.figures(run)
    throughput, latency = figs["throughput"], figs["latency"]
    valid = {t.name: list(t.y) for t in throughput.data
             if not t.name.endswith("(not valid)") and not (t.meta or {}).get("reference")}
    marked = {t.name: t for t in throughput.data if t.name.endswith("(not valid)")}

    assert valid["gunicorn-sync"] == [39.1]
    assert INVALID_RPS not in valid["gunicorn-sync"]
    flagged = marked["gunicorn-sync (not valid)"]
    assert list(flagged.y) == [INVALID_RPS]
    assert flagged.mode == "markers" and flagged.marker.symbol == "x"
    assert list(flagged.hovertext) == ["invalid: generator-saturated"]
    # The failed trial has no numbers: nothing to draw, not even a marked point.
    assert "uvicorn (not valid)" not in marked
    for trace in latency.data:
        if not trace.name.endswith("(not valid)") and not (trace.meta or {}).get("reference"):
            assert INVALID_RPS not in trace.x
    # The CDF and the capacity figures only use ok trials.
    cdf_names = [t.name for t in figs["latency_cdf"].data if not (t.meta or {}).get("reference")]
    assert cdf_names == ["gunicorn-sync @ 10 users", "uvicorn @ 10 users"]


def test_interfaces_are_styled_apart_and_consistently(run: RunData) -> None:
    styles: dict[str, set[tuple[str, str]]] = {}
    for fig in report.figures(run).values():
        for trace in fig.data:
            if (trace.meta or {}).get("reference"):
                continue
            name = trace.name.split(" ")[0]
            styles.setdefault(name, set()).add((trace.line.color or trace.marker.color,
                                                trace.line.dash or ""))
    wsgi_lines = {s for s in styles["gunicorn-sync"] if s[1]}
    asgi_lines = {s for s in styles["uvicorn"] if s[1]}
    assert wsgi_lines == {("#1f77b4", "solid")}
    assert asgi_lines == {("#ff7f0e", "dash")}


def test_slo_lines_ceiling_and_measurement_windows(run: RunData) -> None:
    figs = report.figures(run)
    slo = [t for t in figs["latency"].data if t.name == f"SLO p99 {synth.SLO_P99_MS} ms"]
    assert len(slo) == 1 and list(slo[0].y) == [synth.SLO_P99_MS, synth.SLO_P99_MS]
    assert slo[0].xaxis == "x3"  # the p99 panel
    assert figs["latency"].layout.yaxis.type == "log"
    cdf_slo = [t for t in figs["latency_cdf"].data if t.name == f"SLO p99 {synth.SLO_P99_MS} ms"]
    assert list(cdf_slo[0].x) == [synth.SLO_P99_MS, synth.SLO_P99_MS]
    assert figs["latency_cdf"].layout.xaxis.type == "log"
    errors = [t for t in figs["error_rate"].data if t.name.startswith("SLO errors")]
    assert list(errors[0].y) == [1.0, 1.0]  # 1 % bound, in percent
    ceilings = {t.name: list(t.y) for t in figs["throughput"].data if "ceiling" in t.name}
    assert ceilings == {"gunicorn-sync ceiling (Little's law)": [40.0, 40.0],
                        "uvicorn ceiling (Little's law)": [200.0]}
    for key in ("pss", "cpu"):
        fig = figs[key]
        bands = [(s.x0, s.x1) for s in fig.layout.shapes if s.type == "rect"]
        assert bands == [(t["t_start_s"], t["t_end_s"]) for t in TRIALS]
        assert {a.text for a in fig.layout.annotations} == {"10u", "50u invalid", "50u failed"}
    pss = figs["pss"]
    assert [t.name for t in pss.data] == ["gunicorn-sync", "uvicorn"]
    assert all(not any(y is None or math.isnan(y) for y in t.y) for t in pss.data)
    assert [len(t.y) for t in pss.data] == [16, 16]  # PSS is read on every tenth sample


def test_repeats_are_aggregated_by_median_with_ci_bars(tmp_path: Path) -> None:
    trials = [synth.trial(f"r{repeat}", "uvicorn", "asgi", 10, "ok", "", 2.0 + 10 * repeat, rps,
                     repeat=repeat)
              for repeat, rps in enumerate((100.0, 300.0, 200.0), start=1)]
    run = load_run(synth.write_report_run(tmp_path, "rep", trials, synth.samples((("uvicorn", 0.0),))))
    line = report.figures(run)["throughput"].data[0]
    assert line.name == "uvicorn" and list(line.y) == [200.0]  # the median, not the best
    half = 4.302652729911275 * 100.0 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n)
    assert line.error_y.array[0] == pytest.approx(half, abs=0.01)
    assert line.error_y.arrayminus[0] == pytest.approx(half, abs=0.01)


def test_long_timelines_are_downsampled(tmp_path: Path) -> None:
    n = 3 * report.MAX_POINTS_PER_TRACE
    samples = pd.DataFrame({"t_s": [i / 10 for i in range(n)], "source": "server",
                            "server": "uvicorn", "repeat": 1, "users": 10, "processes": 1,
                            "cpu_percent": 50.0, "rss_mib": 80.0, "pss_mib": 60.0,
                            "uss_mib": 40.0, "threads": 2, "fds": 9},
                           columns=list(SAMPLE_COLUMNS))
    run = load_run(synth.write_report_run(tmp_path, "long", TRIALS[2:3], samples))
    figs = report.figures(run)
    assert 0 < len(figs["cpu"].data[0].y) <= report.MAX_POINTS_PER_TRACE
    assert 0 < len(figs["pss"].data[0].y) <= report.MAX_POINTS_PER_TRACE


def test_latency_cdf_uses_the_window_only_and_keeps_the_tail(tmp_path: Path) -> None:
    trial = synth.trial("big", "uvicorn", "asgi", 10, "ok", "", 2.0, 197.3)
    folder = synth.write_report_run(tmp_path, "cdf", [trial], synth.samples((("uvicorn", 0.0),)), records=False)
    records = synth.requests(trial, np.random.default_rng(5), n=20_000)
    out = folder / "requests" / "big" / "4242.csv"
    out.parent.mkdir(parents=True)
    records.to_csv(out, header=False, index=False)
    run = load_run(folder)
    latencies, kind = report.measured_latencies(run, run.trials.iloc[0])
    assert kind == "request" and len(latencies) == 20_000  # the 20 warm-up ones left out
    assert latencies.max() < 10_000
    (curve,) = [t for t in report.figures(run)["latency_cdf"].data
                if not (t.meta or {}).get("reference")]
    assert len(curve.x) <= report.CDF_MAX_POINTS
    assert curve.x[-1] == pytest.approx(latencies.max(), rel=1e-3)
    assert curve.y[-1] == 1.0
    assert list(curve.x) == sorted(curve.x)
    # every one of the slowest 500 requests is a point of the curve
    assert np.allclose(sorted(latencies)[-report.CDF_TAIL_POINTS:],
                       curve.x[-report.CDF_TAIL_POINTS:], rtol=1e-3)


def test_two_runs_two_sections_one_plotly(tmp_path: Path) -> None:
    runs = [load_run(synth.write_report_run(tmp_path, name, TRIALS, synth.samples()))
            for name in ("run-a", "run-b")]
    text = report.render(runs, tmp_path / "two.html").read_text(encoding="utf-8")
    assert text.count('<section class="run"') == 2
    assert "Run run-a" in text and "Run run-b" in text
    assert _plotly_js_copies(text) == 1
    assert text.count(FIGURE_DIV) == 2 * CHARTS_PER_RUN
    assert len(set(_div_ids(text))) == 2 * CHARTS_PER_RUN
    assert {"capacity-run0", "capacity-run1", "trials-run0", "trials-run1"} <= set(tables(text))


def _div_ids(text: str) -> list[str]:
    marker = '<div id="'
    return [part.split('"', 1)[0] for part in text.split(marker)[1:]]


@pytest.mark.filterwarnings("error")
def test_all_failed_run_without_samples_renders(tmp_path: Path) -> None:
    trials = [synth.trial("f1", "uvicorn", "asgi", 10, "failed", "port 8000 <busy> & taken", 0.0, synth.NAN)]
    trials[0].update(load_mode=synth.NAN, backend=synth.NAN)  # all-empty text columns read back as float64
    folder = synth.write_report_run(tmp_path, "failed", trials, pd.DataFrame(columns=list(SAMPLE_COLUMNS)))
    (folder / "samples.csv").write_text("")
    run = load_run(folder)
    assert report.figures(run) == {}
    text = report.render([run], tmp_path / "f.html").read_text(encoding="utf-8")
    assert "port 8000 &lt;busy&gt; &amp; taken" in text
    assert "<busy>" not in text
    assert _plotly_js_copies(text) == 0
    assert "No measurements to plot." in text
    assert "No server config has an ok trial" in text


def test_empty_run_with_sparse_meta_renders(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    atomic_write_json(folder / "run.json", {"schema_version": 1, "status": "interrupted"})
    run = load_run(folder)
    text = report.render([run], tmp_path / "e.html").read_text(encoding="utf-8")
    assert "Run empty" in text
    assert "interrupted" in text
    assert "No trials." in text


def test_no_runs_renders_a_page(tmp_path: Path) -> None:
    text = report.render([], tmp_path / "none.html").read_text(encoding="utf-8")
    assert "No runs given." in text


# --- capacity and verdict ---------------------------------------------------------------


def _sweep_trials() -> list[dict[str, Any]]:
    """Three repeats: gthread (WSGI) sustains 600 req/s at 40 users, uvicorn (ASGI) about
    1800 at 80; sync never meets the 150 ms SLO; one invalid uvicorn trial at 9999 req/s
    that must count nowhere."""
    rows: list[dict[str, Any]] = []
    t = 0.0
    for repeat, jitter in enumerate((0.98, 1.0, 1.02), start=1):
        for users, g_rps, g_p99, u_rps in ((20, 400.0, 60.0, 400.0), (40, 600.0, 100.0, 800.0),
                                           (80, 640.0, 400.0, 1800.0)):
            rows.append(synth.trial(f"gthread-{users}-{repeat}", "gunicorn-gthread", "wsgi", users,
                               "ok", "", t, g_rps * jitter, repeat=repeat,
                               latency=g_p99 - 5, cpu=60.0, pss=48.0))
            rows.append(synth.trial(f"uvicorn-{users}-{repeat}", "uvicorn", "asgi", users, "ok", "",
                               t + 6, u_rps * jitter, repeat=repeat, latency=50.0, cpu=90.0,
                               pss=30.0))
            rows.append(synth.trial(f"sync-{users}-{repeat}", "gunicorn-sync", "wsgi", users, "ok",
                               "", t + 12, 40.0, repeat=repeat, latency=users / 40 * 1000))
            t += 20
    rows.append(synth.trial("cheat", "uvicorn", "asgi", 160, "invalid", "generator-saturated", t,
                       9999.0, latency=10.0))
    return rows


@pytest.fixture
def sweep(tmp_path: Path) -> RunData:
    samples = synth.samples((("gunicorn-gthread", 0.0), ("uvicorn", 6.0), ("gunicorn-sync", 12.0)))
    return load_run(synth.write_report_run(tmp_path, "sweep", _sweep_trials(), samples, repeats=3))


def test_capacity_table_and_instances_needed(sweep: RunData, tmp_path: Path) -> None:
    text = report.render([sweep], tmp_path / "c.html", target_rps=5000).read_text("utf-8")
    rows = {r["server config"][0]: r for r in tables(text)["capacity-run0"]}
    uv, gt, sync = rows["uvicorn"], rows["gunicorn-gthread"], rows["gunicorn-sync"]
    assert float(uv["max sustainable req/s"][1] or "nan") == pytest.approx(1800.0)
    assert uv["at users"][0] == "80" and uv["repeats"][0] == "3"
    assert float(gt["max sustainable req/s"][1] or "nan") == pytest.approx(600.0)
    assert gt["at users"][0] == "40" and gt["peak at users"][0] == "80"
    # instances = ceil(5000 / (0.7 x max sustainable)), memory = instances x PSS there
    assert uv["instances needed"][0] == str(math.ceil(5000 / (0.7 * 1800.0))) == "4"
    assert gt["instances needed"][0] == str(math.ceil(5000 / (0.7 * 600.0))) == "12"
    assert float(gt["memory of instances MiB"][1] or "nan") == pytest.approx(12 * 48.0)
    assert float(gt["PSS MiB per worker (approx.)"][1] or "nan") == pytest.approx(24.0)
    assert float(uv["req/s per core"][1] or "nan") == pytest.approx(1800.0 / 90.0 * 100)
    assert sync["max sustainable req/s"][0] == "–" and sync["instances needed"][0] == "–"
    assert "no level met the SLO" in sync["note"][0]
    assert "headroom factor 0.7" in text
    lo, hi = (float(v) for v in uv["95 % CI"][0].replace(",", "").split("–"))
    assert lo < 1800.0 < hi
    assert "9,999" not in uv["max sustainable req/s"][0] and "160" not in uv["at users"][0]


def test_verdict_has_a_number_behind_every_claim(sweep: RunData) -> None:
    sentences = report.verdict(sweep)
    text = " ".join(sentences)
    assert sentences[0].startswith("Most throughput within the SLO (p99 ≤ 150 ms and errors "
                                   "≤ 1 %): uvicorn (ASGI), 1,800.0 req/s")
    assert "at 80 users" in sentences[0] and "3 repeats" in sentences[0]
    assert "Most throughput per core within the SLO: uvicorn, 2,000 req/s per fully used " \
           "core" in text
    assert "Least memory at its sustainable level: uvicorn, 30.0 MiB PSS" in text
    ratio = [s for s in sentences if s.startswith("WSGI vs ASGI")]
    assert len(ratio) == 1
    assert "sustains 3.00× the throughput of the best WSGI config (gunicorn-gthread" in ratio[0]
    low, high = (float(x) for x in ratio[0].split("ratio of medians ")[1].split(",")[0]
                 .split("–"))
    assert low <= 3.0 <= high and high - low < 0.5
    assert "gunicorn-sync: no level met the SLO" in text
    assert "1 of 28 trials are not ok (1 invalid)" in text
    assert "9999" not in text and "9,999" not in text


def test_verdict_when_nothing_meets_the_slo(sweep: RunData) -> None:
    sentences = report.verdict(sweep, slo_p99_ms=10.0)
    assert sentences[0].startswith("No server config met the SLO (p99 ≤ 10 ms and errors ≤ "
                                   "1 %) at any measured level: the lowest median p99 was "
                                   "55.0 ms (uvicorn at 20 users)")
    assert not any(s.startswith("Most throughput") for s in sentences)


def test_verdict_wsgi_faster_and_single_repeat(tmp_path: Path) -> None:
    trials = [synth.trial("a", "gunicorn-sync", "wsgi", 10, "ok", "", 0, 500.0, latency=20.0),
              synth.trial("b", "uvicorn", "asgi", 10, "ok", "", 10, 250.0, latency=20.0)]
    run = load_run(synth.write_report_run(tmp_path, "w", trials, synth.samples()))
    (ratio,) = [s for s in report.verdict(run) if s.startswith("WSGI vs ASGI")]
    assert "best WSGI config (gunicorn-sync, 500.0 req/s at 10 users) sustains 2.00×" in ratio
    assert "one repeat each: no confidence interval" in ratio


def test_open_loop_levels_are_offered_rates(tmp_path: Path) -> None:
    trials = []
    for i, (rate, rps, p99) in enumerate(((100.0, 100.0, 55.0), (200.0, 199.0, 60.0),
                                          (400.0, 310.0, 900.0))):
        row = synth.trial(f"o{i}", "uvicorn", "asgi", 1000, "ok", "", 10.0 * i, rps, latency=p99 - 5)
        row.update(offered_rps=rate, load_mode="open-loop")
        trials.append(row)
    run = load_run(synth.write_report_run(tmp_path, "open", trials, synth.samples((("uvicorn", 0.0),))))
    figs = report.figures(run)
    line = figs["throughput"].data[0]
    assert list(line.x) == [100.0, 200.0, 400.0] and list(line.y) == [100.0, 199.0, 310.0]
    assert figs["throughput"].layout.xaxis.title.text == "offered load (req/s, open loop)"
    assert "at 200 req/s offered" in report.verdict(run)[0]
    assert {a.text for a in figs["cpu"].layout.annotations} == {"100/s", "200/s", "400/s"}


def test_report_options_are_checked(run: RunData, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="target_rps"):
        report.render([run], tmp_path / "x.html", target_rps=0)
    with pytest.raises(ValueError, match="slo_p99_ms"):
        report.render([run], tmp_path / "x.html", slo_p99_ms=-1)


# --- scale: 200 trials --------------------------------------------------------------------




@pytest.mark.slow
def test_200_trial_report_is_small_and_whole(tmp_path: Path) -> None:
    """Its render time is a benchmark (benchmarks/report_render.py), not a bound here, so
    the test need not hold the machine alone."""
    folder = synth.big_run(tmp_path)
    out = report.render([load_run(folder)], tmp_path / "big.html", target_rps=5000)
    assert out.stat().st_size < MAX_REPORT_BYTES
    text = out.read_text("utf-8")
    assert len(tables(text)["trials-run0"]) == 200
    assert text.count(FIGURE_DIV) == CHARTS_PER_RUN


# --- CLI ------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_png_without_a_browser_says_so_and_writes_the_html(run: RunData,
                                                               tmp_path: Path) -> None:
    r = bench("report", str(run.path), "-o", str(tmp_path / "r.html"), "--png",
               str(tmp_path / "png"), env={"BROWSER_PATH": str(tmp_path / "no-such-chrome")})
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == ("bench: no Chromium or Chrome found (set BROWSER_PATH); PNG "
                                "charts not written")
    assert (tmp_path / "r.html").stat().st_size > 100_000
    assert list((tmp_path / "png").iterdir()) == []


def test_write_pngs_without_a_browser_raises(run: RunData, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    with pytest.raises(report.BrowserNotFound, match="set BROWSER_PATH"):
        report.write_pngs([run], tmp_path / "png")


@pytest.mark.parametrize(("option", "value"), [("--target-rps", "0"), ("--slo-p99-ms", "-5")])
@pytest.mark.slow
def test_cli_rejects_bad_report_options(run: RunData, tmp_path: Path, option: str,
                                        value: str) -> None:
    r = bench("report", str(run.path), "-o", str(tmp_path / "r.html"), option, value)
    assert r.returncode == 2
    assert r.stderr.strip() == f"bench: error: {option} {float(value)}: must be a number > 0"
    assert not (tmp_path / "r.html").exists()


def test_find_browser_honours_browser_path(tmp_path: Path) -> None:
    fake = tmp_path / "chrome"
    fake.write_text("#!/bin/sh\n")
    assert report.find_browser({"BROWSER_PATH": str(fake)}) is None  # not executable
    fake.chmod(0o755)
    assert report.find_browser({"BROWSER_PATH": str(fake)}) == str(fake)
    assert report.find_browser({"BROWSER_PATH": str(tmp_path / "none")}) is None


def test_verdict_when_only_one_interface_meets_the_slo(sweep: RunData) -> None:
    (sentence,) = [s for s in report.verdict(sweep, slo_p99_ms=57.0)
                   if s.startswith("WSGI vs ASGI")]
    assert sentence == ("WSGI vs ASGI: no WSGI config met the SLO, while the best ASGI config "
                        "(uvicorn) sustained 1,800.0 req/s; the best WSGI peak, outside the SLO, "
                        "was gunicorn-gthread at 640.0 req/s (80 users).")


# --- backends side by side (synthetic: docker runs are slow) ------------------------------


def _backend_run(root: Path, run_id: str, backend: str, scale: float, latency: float,
                 pss: float, *, engine: bool = False, invalid_sync_50: bool = False,
                 **scenario: Any) -> RunData:
    """io-heavy, gunicorn-sync and uvicorn at 10 and 50 users, under ``backend``:
    throughput x ``scale`` of the local figures (40 and 200 req/s at 10 users), every
    latency ``latency`` ms (p99 = latency + 5), PSS peak ``pss`` MiB. With ``engine``,
    1 Hz engine samples: 75 MiB inside ok windows, 500 MiB everywhere else (warm-ups,
    the invalid window), which no figure may show."""
    trials = []
    for trial_id, server, interface, users, t0, rps in (
            ("s10", "gunicorn-sync", "wsgi", 10, 2.0, 40.0),
            ("s50", "gunicorn-sync", "wsgi", 50, 9.0, 40.0),
            ("u10", "uvicorn", "asgi", 10, 20.0, 200.0),
            ("u50", "uvicorn", "asgi", 50, 27.0, 900.0)):
        bad = invalid_sync_50 and trial_id == "s50"
        row = synth.trial(trial_id, server, interface, users, "invalid" if bad else "ok",
                     "generator-saturated" if bad else "", t0, rps * scale, latency=latency,
                     pss=pss)
        row["backend"] = backend
        trials.append(row)
    samples = synth.samples()
    if engine:
        ok_windows = [(t["t_start_s"], t["t_end_s"], t["server"]) for t in trials
                      if t["status"] == "ok"]
        rows = []
        for server, start in (("gunicorn-sync", 0.0), ("uvicorn", 18.0)):
            for k in range(17):
                t = start + k
                inside = any(a <= t < b and s == server for a, b, s in ok_windows)
                rows.append({**dict.fromkeys(SAMPLE_COLUMNS, synth.NAN), "t_s": t, "source": "engine",
                             "server": server, "repeat": 1, "cpu_percent": 20.0,
                             "rss_mib": 75.0 if inside else 500.0})
        samples = pd.concat([samples, pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))],
                            ignore_index=True)
    folder = synth.write_report_run(root, run_id, trials, samples, records=False, **scenario)
    meta = load_run(folder).meta
    atomic_write_json(folder / "run.json", {**meta.to_dict(), "backend": backend})
    return load_run(folder)


@pytest.fixture
def backends(tmp_path: Path) -> tuple[RunData, RunData]:
    local = _backend_run(tmp_path, "local-run", "local", 1.0, 51.0, 64.0)
    docker = _backend_run(tmp_path, "docker-run", "docker", 0.9, 61.0, 80.0, engine=True,
                          invalid_sync_50=True)
    return local, docker


def test_backend_comparison_pairs_levels_with_ratios(backends: tuple[RunData, RunData]) -> None:
    table = report.backend_comparison(list(backends)).set_index(["server", "users"])
    assert list(report.backend_comparison(list(backends)).columns) == \
        list(report.BACKEND_COLUMNS)
    assert sorted(table.index) == [("gunicorn-sync", 10), ("gunicorn-sync", 50),
                                   ("uvicorn", 10), ("uvicorn", 50)]
    assert set(table["baseline"]) == {"local"} and set(table["backend"]) == {"docker"}
    uv = table.loc[("uvicorn", 50)]
    assert uv["throughput_rps_baseline"] == 900.0
    assert uv["throughput_rps_other"] == pytest.approx(810.0)
    assert uv["throughput_rps_ratio"] == pytest.approx(0.9)
    assert uv["latency_p99_ms_ratio"] == pytest.approx(66.0 / 56.0)
    assert uv["pss_mib_peak_ratio"] == pytest.approx(80.0 / 64.0)
    assert uv["state_baseline"] == "ok" and uv["state"] == "ok"
    # The invalid docker trial is named, and gives no ratio.
    sync = table.loc[("gunicorn-sync", 50)]
    assert sync["state"] == "invalid: generator-saturated"
    assert math.isnan(sync["throughput_rps_other"]) and math.isnan(sync["throughput_rps_ratio"])


def test_backend_section_in_the_report(backends: tuple[RunData, RunData],
                                       tmp_path: Path) -> None:
    text = report.render(list(backends), tmp_path / "b.html").read_text("utf-8")
    assert '<a href="#backends">Backends side by side</a>' in text
    assert "io-heavy (docker): docker-run" in text
    rows = {(r["server config"][0], r["users"][0]): r
            for r in tables(text)["backends-io-heavy-docker-local"]}
    assert len(rows) == 4
    uv = rows[("uvicorn", "10")]
    assert uv["req/s local"][0] == "200.0" and uv["req/s docker"][0] == "180.0"
    assert float(uv["req/s docker ÷ local"][1] or "nan") == pytest.approx(0.9)
    assert float(uv["PSS peak MiB docker ÷ local"][1] or "nan") == pytest.approx(1.25)
    assert uv["note"][0] == ""
    sync = rows[("gunicorn-sync", "50")]
    assert sync["req/s docker"][0] == "–" and sync["req/s docker ÷ local"][0] == "–"
    assert sync["note"][0] == "docker: invalid: generator-saturated"
    # 3 levels measured ok under both: throughput ratios 0.9, 0.9, 0.9
    assert "docker ÷ local, median over 3 level(s) measured ok under both: req/s 0.90×" in text


def test_runs_of_other_parameters_are_not_compared(tmp_path: Path) -> None:
    local = _backend_run(tmp_path, "l", "local", 1.0, 51.0, 64.0)
    docker = _backend_run(tmp_path, "d", "docker", 0.9, 61.0, 80.0,
                          request_path="/io?latency_ms=20")
    assert report.backend_comparison([local, docker]).empty
    assert report.backend_comparison([local, local]).empty  # one backend: nothing beside
    text = report.render([local, docker], tmp_path / "x.html").read_text("utf-8")
    assert 'id="backends"' not in text


def test_engine_memory_beside_pss(backends: tuple[RunData, RunData], tmp_path: Path) -> None:
    local, docker = backends
    assert report.engine_memory(local).empty
    table = report.engine_memory(docker).set_index("server")
    # psutil PSS in the ok windows: gunicorn-sync [2, 7) s reads 60.2..60.6 MiB (the
    # invalid 50-user window is left out); uvicorn [20, 25) and [27, 32) s up to 61.3.
    assert table.loc["gunicorn-sync", "engine_mib_peak"] == 75.0  # never the 500 outside
    assert table.loc["gunicorn-sync", "pss_mib_peak"] == pytest.approx(60.6)
    assert table.loc["gunicorn-sync", "engine_minus_pss_mib"] == pytest.approx(14.4)
    assert table.loc["gunicorn-sync", "windows"] == 1
    assert table.loc["uvicorn", "pss_mib_peak"] == pytest.approx(61.3)
    assert table.loc["uvicorn", "engine_to_pss"] == pytest.approx(75.0 / 61.3)
    assert table.loc["uvicorn", "windows"] == 2
    text = html.unescape(report.render([docker], tmp_path / "e.html").read_text("utf-8"))
    assert "Memory: the container engine's view vs PSS" in text
    assert "Here the engine's peak was 13.7–14.4 MiB above the PSS peak" in text
    assert "kernel memory" in text
    local_text = report.render([local], tmp_path / "l.html").read_text("utf-8")
    assert "engine's view" not in html.unescape(local_text)
