"""harness.analysis: per-trial figures as pure functions of records and samples: the
latency percentiles, mean, max and trend are numpy's over the requests completed in the
window (only the named records count), resource figures are taken over a closed
interval of the run clock ignoring missing readings, Little's law and the wait ceiling
from their definitions, open-loop sends by overlap, and the verdict's thresholds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.analysis import (
    PERCENTILES,
    Window,
    engine_metrics,
    generator_load,
    io_ceiling_rps,
    littles_law,
    open_loop_sends,
    request_metrics,
    resource_metrics,
    verdict,
)
from harness.results import REQUEST_COLUMNS, SAMPLE_COLUMNS


def records(start: np.ndarray, latency_ms: np.ndarray, ok: np.ndarray,
            name: str = "request") -> pd.DataFrame:
    return pd.DataFrame({"start_unix_s": start, "latency_ms": latency_ms, "ok": ok,
                         "status": np.where(ok == 1, 200, 500), "bytes": 30, "name": name},
                        columns=list(REQUEST_COLUMNS))


def test_request_figures_are_numpys_over_the_requests_completed_in_the_window() -> None:
    rng = np.random.default_rng(7)
    window = Window(1000.0, 1004.0)
    n = 2000
    latency = rng.lognormal(math.log(20.0), 0.1, n) + np.linspace(0.0, 8.0, n)  # a queue builds
    end = np.sort(rng.uniform(998.0, 1006.0, n))  # some before, some after the window
    ok = (rng.uniform(size=n) > 0.03).astype(int)
    frame = pd.concat([records(end - latency / 1000, latency, ok),
                       records(np.full(5, 1001.0), np.full(5, 9000.0), np.ones(5, int),
                               name="connect")],  # another kind of record: not counted
                      ignore_index=True)
    m = request_metrics(frame, window)
    inside = (end >= window.start) & (end < window.end)
    lat, good = latency[inside], ok[inside]
    assert m["requests"] == inside.sum() and m["failures"] == (good == 0).sum()
    assert m["throughput_rps"] == pytest.approx(good.sum() / 4.0)
    assert m["error_rate"] == pytest.approx((good == 0).mean())
    assert m["latency_mean_ms"] == pytest.approx(lat.mean())
    assert m["latency_max_ms"] == pytest.approx(lat.max())
    for key, q in PERCENTILES.items():
        assert m[key] == pytest.approx(np.percentile(lat, q)), key
    slope = np.polyfit(end[inside] - window.start, lat, 1)[0]
    assert m["latency_trend_ms_per_s"] == pytest.approx(slope)
    assert 0.7 < m["latency_trend_ms_per_s"] < 1.3  # 8 ms more over 8 s of completions


def test_a_window_without_completions_has_no_figures() -> None:
    m = request_metrics(records(np.array([10.0, 20.0]), np.array([5.0, 5.0]),
                                np.array([1, 1])), Window(100.0, 101.0))
    assert (m["requests"], m["failures"], m["throughput_rps"], m["incomplete"]) == (0, 0, 0, 0)
    for key in ("error_rate", "latency_mean_ms", "latency_max_ms", "latency_trend_ms_per_s",
                *PERCENTILES):
        assert math.isnan(m[key]), key


def samples(rows: list[dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{c: math.nan for c in SAMPLE_COLUMNS} | r for r in rows],
                        columns=list(SAMPLE_COLUMNS))


def test_resource_figures_over_a_closed_interval_ignore_missing_readings() -> None:
    """10 Hz CPU readings, PSS/USS only every tenth: the mean PSS is over the readings
    there are, not diluted by the gaps; t0 and t1 themselves count."""
    rows = [{"t_s": 1.0 + i / 10, "cpu_percent": float(i), "rss_mib": 100.0 + i,
             "processes": 3.0 if i < 15 else 4.0,
             "pss_mib": 60.0 + i if i % 10 == 0 else math.nan,
             "uss_mib": 50.0 + i if i % 10 == 0 else math.nan,
             "cpuset_busy_percent": 40.0} for i in range(31)]  # t = 1.0 .. 4.0 s
    r = resource_metrics(samples(rows), 2.0, 3.0)  # i = 10 .. 20
    assert r["cpu_percent_mean"] == pytest.approx(15.0)
    assert r["cpu_percent_peak"] == 20.0 and r["rss_mib_peak"] == 120.0
    assert r["pss_mib_mean"] == pytest.approx((70.0 + 80.0) / 2) and r["pss_mib_peak"] == 80.0
    assert r["uss_mib_peak"] == 70.0 and r["server_processes"] == 4.0
    assert r["server_cpus_busy_percent"] == 40.0
    empty = resource_metrics(samples(rows), 10.0, 11.0)
    assert all(math.isnan(v) for v in empty.values())
    gen = generator_load(samples([{**row, "cpu_percent_top": 30.0} for row in rows]), 2.0, 3.0)
    assert (gen["generator_cpu_percent"], gen["generator_cpu_percent_peak"],
            gen["generator_cpu_percent_top"], gen["load_cpus_busy_percent"]) == (
        pytest.approx(15.0), 20.0, 30.0, 40.0)
    engine = engine_metrics(samples([{"t_s": 1.0, "cpu_percent": 90.0, "rss_mib": 10.0},
                                     {"t_s": 2.0, "cpu_percent": 50.0, "rss_mib": 30.0},
                                     {"t_s": 3.0, "cpu_percent": 70.0, "rss_mib": math.nan}]),
                            2.0, 3.0)
    assert engine == {"engine_cpu_percent_mean": 60.0, "engine_mib_mean": 30.0,
                      "engine_mib_peak": 30.0}


def test_littles_law_and_the_wait_ceiling_from_their_definitions() -> None:
    # 100 req/s x 50 ms = 5 requests in flight, of 5 users: 1.0; of 10 users: 0.5
    assert littles_law(100.0, 50.0, 5) == pytest.approx(1.0)
    assert littles_law(100.0, 50.0, 10) == pytest.approx(0.5)
    assert math.isnan(littles_law(100.0, math.nan, 5)) and math.isnan(littles_law(1.0, 5.0, 0))
    # min(users, workers x threads) / 20 ms
    assert io_ceiling_rps(8, 2, 20.0) == pytest.approx(100.0)
    assert io_ceiling_rps(8, math.inf, 20.0) == pytest.approx(400.0)  # an event loop
    assert math.isnan(io_ceiling_rps(8, 2, 0.0))


def test_open_loop_sends_count_seconds_in_proportion_to_their_overlap() -> None:
    slices = {"100": [10, 2, 0, 0], "101": [20, 4, 6, 2], "102": [40, 0, 0, 8],
              "99": [1000, 1000, 1000, 1000]}  # second 99 is before the window
    sends = open_loop_sends(slices, Window(100.5, 102.25))
    # half of second 100, all of 101, a quarter of 102
    assert sends == pytest.approx({"sends_due": 5 + 20 + 10, "sends_late": 1 + 4 + 0,
                                   "sends_capped": 0 + 6 + 0, "sends_unsent": 0 + 2 + 2})
    older = open_loop_sends({"100": [10, 2, 4]}, Window(100.0, 101.0))  # no unsent field
    assert older["sends_unsent"] == 0.0 and older["sends_capped"] == 4.0
    assert all(math.isnan(v) for v in open_loop_sends({}, Window(0.0, 1.0)).values())


def test_verdict_fails_an_empty_window_and_invalidates_errors_past_the_threshold() -> None:
    assert verdict({"requests": 0, "error_rate": math.nan}, max_error_rate=0.01) == (
        "failed", "no request completed in the measurement window")
    assert verdict({"requests": 100, "error_rate": 0.01}, max_error_rate=0.01) == ("ok", "")
    assert verdict({"requests": 100, "error_rate": 0.0125}, max_error_rate=0.01) == (
        "invalid", "error rate 1.25% > 1.00%")
