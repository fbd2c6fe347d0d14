"""The charts of one run: the latency CDF keeps evenly spaced ranks plus the whole tail, a
long run's time series share one point budget per chart, the USL fit drawn is the law with
the fitted parameters, the SLO lines follow an overridden SLO, and a chart with nothing
to draw is left out."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report import charts, model
from harness.results import SAMPLE_COLUMNS, load_run
from tests import synth


def _reference(trace: object) -> bool:
    return bool((getattr(trace, "meta", None) or {}).get("reference"))


def test_cdf_points_keep_even_ranks_and_every_tail_point() -> None:
    rng = np.random.default_rng(3)
    latencies = rng.lognormal(np.log(50.0), 0.4, 10_000)
    x, y = charts._cdf_points(latencies)
    ordered = np.sort(latencies)
    assert len(x) <= charts.CDF_MAX_POINTS and len(x) == len(y)
    assert x[0] == ordered[0] and y[0] == 1 / 10_000  # the fastest request is kept
    assert np.array_equal(x[-charts.CDF_TAIL_POINTS:], ordered[-charts.CDF_TAIL_POINTS:])
    assert np.array_equal(y[-charts.CDF_TAIL_POINTS:],
                          np.arange(10_000 - charts.CDF_TAIL_POINTS + 1, 10_001) / 10_000)
    # each kept point is exact: y = rank / n of its latency
    ranks = np.searchsorted(ordered, x, side="right")
    assert np.array_equal(y, ranks / 10_000)
    small = rng.uniform(1, 10, charts.CDF_MAX_POINTS)  # few enough: every point
    sx, sy = charts._cdf_points(small)
    assert np.array_equal(sx, np.sort(small)) and sy[-1] == 1.0


def test_time_series_share_the_chart_budget(tmp_path: Path) -> None:
    repeats, per_trace = 7, 2000  # 14,000 samples: more than one chart may hold
    repeat = np.repeat(np.arange(1, repeats + 1), per_trace)
    i = np.tile(np.arange(per_trace), repeats)
    samples = pd.DataFrame({"t_s": 300.0 * repeat + i / 10, "source": "server",
                            "server": "uvicorn", "repeat": repeat, "cpu_percent": 40.0 + i % 3,
                            "rss_mib": 80.0, "pss_mib": 60.0}).reindex(columns=SAMPLE_COLUMNS)
    trials = [synth.trial(f"u{r}", "uvicorn", "asgi", 10, "ok", "", 300.0 * r + 2, 200.0,
                          repeat=r) for r in range(1, repeats + 1)]
    run = load_run(synth.write_report_run(tmp_path, "long", trials, samples, records=False,
                                          repeats=repeats))
    cpu = charts._timeline_figure(model.analyse(run), "cpu_percent", "Server CPU", "CPU (%)")
    assert [t.name for t in cpu.data] == [f"uvicorn #{r}" for r in range(1, repeats + 1)]
    limit = charts.MAX_POINTS_PER_CHART // repeats  # 1,714: every 2nd sample
    for r, trace in enumerate(cpu.data, start=1):
        assert len(trace.x) == math.ceil(per_trace / math.ceil(per_trace / limit)) <= limit
        assert trace.x[0] == 300.0 * r  # thinning keeps the first sample
    assert sum(len(t.x) for t in cpu.data) <= charts.MAX_POINTS_PER_CHART


def test_usl_fit_line_is_the_law_with_the_fitted_parameters(tmp_path: Path) -> None:
    lam, sigma, kappa = 100.0, 0.05, 0.001  # req/s of one user, contention, coherency
    users = [1, 2, 4, 8, 16, 32]
    trials = [synth.trial(f"u{n}", "uvicorn", "asgi", n, "ok", "", 6.0 * i,
                          lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)), latency=5.0)
              for i, n in enumerate(users)]
    run = load_run(synth.write_report_run(tmp_path, "usl", trials, synth.samples(),
                                          records=False))
    figure = charts._throughput_figure(model.analyse(run))
    (fit,) = [t for t in figure.data if "USL fit" in t.name]
    assert _reference(fit) and fit.line.dash == "dashdot"
    grid = np.asarray(fit.x, dtype=float)
    assert len(grid) == 60 and grid[0] == 1 and grid[-1] == 32
    named = re.fullmatch(r"uvicorn USL fit \(σ=([\d.]+), κ=([\d.e-]+), R²=([\d.]+)\)",
                         fit.name)
    assert named, fit.name
    assert float(named[1]) == pytest.approx(sigma, abs=1e-3) and float(named[3]) > 0.999
    # the drawn line passes through the measured throughput (noise-free data)
    at_users = np.interp(users, grid, np.asarray(fit.y, dtype=float))
    measured = [t["throughput_rps"] for t in trials]
    assert at_users == pytest.approx(measured, rel=0.01)


def test_slo_lines_follow_an_overridden_slo(tmp_path: Path) -> None:
    trials = [synth.trial("u10", "uvicorn", "asgi", 10, "ok", "", 20.0, 197.3),
              synth.trial("u50", "uvicorn", "asgi", 50, "invalid", "generator-saturated",
                          27.0, 987.6)]
    run = load_run(synth.write_report_run(tmp_path, "slo", trials, synth.samples()))
    a = model.analyse(run, slo_p99_ms=80.0)
    figs = {"latency": charts._latency_figure(a), "latency_cdf": charts._cdf_figure(a)}
    (latency_slo,) = [t for t in figs["latency"].data if t.name == "SLO p99 80 ms"]
    # across the highest throughput of any trial, the invalid one included
    assert list(latency_slo.x) == pytest.approx([0.0, 987.6 * 1.05])
    assert list(latency_slo.y) == [80.0, 80.0]
    cdf = figs["latency_cdf"].data
    (cdf_slo,) = [t for t in cdf if t.name == "SLO p99 80 ms"]
    assert list(cdf_slo.x) == [80.0, 80.0] and list(cdf_slo.y) == [0, 1]
    (ninety_nine,) = [t for t in cdf if t.name == "99 %"]
    xs = [v for t in cdf if t.name not in ("99 %",) for v in t.x if v]
    assert list(ninety_nine.x) == [min(xs), max(xs)] and list(ninety_nine.y) == [0.99, 0.99]
    assert not any(t.name.startswith("SLO p99 150") for f in figs.values() for t in f.data)


def test_charts_with_nothing_to_draw_are_left_out(tmp_path: Path) -> None:
    trials = [synth.trial("u10", "uvicorn", "asgi", 10, "failed", "server exited with code 3",
                          20.0, synth.NAN)]
    run = load_run(synth.write_report_run(tmp_path, "failed", trials,
                                          synth.samples((("uvicorn", 18.0),))))
    figs = charts.figures(run)
    assert list(figs) == ["pss", "cpu"]  # the server was sampled before it failed
    (band,) = figs["cpu"].layout.shapes
    assert (band.x0, band.x1) == (20.0, 25.0)
    assert [a.text for a in figs["cpu"].layout.annotations] == ["10u failed"]


def test_every_chart_is_white_and_plotlys_default_is_left_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The builders take plotly_white as plotly's default while they run (cheaper than
    ``template=`` per figure); each figure has it, and the default is put back. It is
    set once for all the run's figures (held, put back: each set validates a deep copy
    of the template), not twice a figure."""
    import plotly.graph_objects as go
    import plotly.io as pio

    white = pio.templates["plotly_white"].layout.to_plotly_json()
    trials = [synth.trial(f"u{u}", "uvicorn", "asgi", u, "ok", "", 2.0 + 3 * i, 2.0)
              for i, u in enumerate((1, 4, 8))]
    run = load_run(synth.write_report_run(tmp_path, "white", trials,
                                          synth.samples((("uvicorn", 12.0),))))
    templates = type(pio.templates)
    sets: list[object] = []
    real_validate = templates._validate
    monkeypatch.setattr(templates, "_validate",
                        lambda self, value: sets.append(value) or real_validate(self, value))
    before = pio.templates.default
    figs = charts.figures(run)
    assert len(figs) >= 5
    for key, fig in figs.items():
        assert fig.layout.template.layout.to_plotly_json() == white, key
    assert pio.templates.default == before
    assert sets == ["plotly_white", before]
    assert go.Figure().layout.template.layout.to_plotly_json() != white  # plotly's own
