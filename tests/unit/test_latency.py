"""harness.latency: streamed window figures and HDR percentiles against the exact path
(harness.analysis.request_metrics, harness.steady.evaluate) on records of a real run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness import latency
from harness.analysis import PERCENTILES, Window, read_records, request_metrics
from harness.steady import evaluate

#: The documented bound: half a bucket of a 3-significant-digit histogram.
HALF_BUCKET = 1 / 2048


@pytest.fixture(scope="module")
def recorded(saturated_run: tuple[Path, int, str]) -> tuple[Path, Window, int]:
    """The records of a real run: the session's saturated run (tests/conftest.py: granian,
    50 closed-loop users, no wait, two locust processes, so two record files; ~30,000
    requests in its 3 s window). Returns the trial's records folder, its window (as the
    run stored it) and the users."""
    run_dir = saturated_run[0]
    (trial,) = pd.read_csv(run_dir / "trials.csv").to_dict("records")
    saved = json.loads((run_dir / "latency" / f"{trial['trial_id']}.json").read_text())
    records_dir = run_dir / "requests" / trial["trial_id"]
    assert len(list(records_dir.glob("*.csv"))) == 2
    return records_dir, Window(*saved["window"]), int(trial["users"])


def _close(a: float, b: float, rel: float) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0) or (math.isnan(a) and math.isnan(b))


def _assert_agree(got: dict[str, Any], exact: dict[str, Any], *, trend_rel: float = 1e-6,
                  percentile_rel: float = HALF_BUCKET) -> None:
    assert got.keys() == exact.keys()
    for k in ("requests", "failures", "incomplete"):
        assert got[k] == exact[k], k
    for k in ("throughput_rps", "error_rate", "latency_mean_ms", "latency_max_ms"):
        assert _close(got[k], exact[k], 1e-12), (k, got[k], exact[k])
    assert _close(got["latency_trend_ms_per_s"], exact["latency_trend_ms_per_s"], trend_rel)
    for k in PERCENTILES:
        assert _close(got[k], exact[k], percentile_rel), (k, got[k], exact[k])


@pytest.mark.parametrize("chunk_rows", [latency.CHUNK_ROWS, 997])
@pytest.mark.slow
def test_scan_agrees_with_request_metrics_on_recorded_run(
        recorded: tuple[Path, Window, int], chunk_rows: int) -> None:
    """Counts, throughput, error rate, mean and max exactly; the trend to 1e-6; every
    percentile within half a bucket (0.049%, inside the stated 0.1%), whether the files
    are read in one chunk or in hundreds."""
    records_dir, window, _ = recorded
    records = read_records(records_dir)
    exact = request_metrics(records, window)
    assert exact["requests"] > 1000, exact  # a real sample, not a handful
    got = latency.scan_records(records_dir, window, chunk_rows=chunk_rows).metrics()
    _assert_agree(got, exact)
    errors = {k: abs(got[k] / exact[k] - 1) for k in PERCENTILES}
    print(f"\nrequests {exact['requests']}, largest percentile error "
          f"{max(errors.values()):.2e} (relative)", errors)


def test_steadiness_agrees_with_steady_evaluate(recorded: tuple[Path, Window, int]) -> None:
    records_dir, window, users = recorded
    records = read_records(records_dir)
    rows = records[records["name"] == "request"]
    ends = (rows["start_unix_s"] + rows["latency_ms"] / 1000.0).to_numpy()
    stats = latency.scan_records(records_dir, window, chunk_rows=1000)
    for arrival_rate in (None, 5000.0):
        want = evaluate(ends, rows["latency_ms"].to_numpy(), span_start=window.start,
                        span_end=window.end, started_at=-math.inf, users=users,
                        arrival_rate=arrival_rate)
        got = stats.steadiness(users, arrival_rate)
        assert got.requests == want.requests and got.steady == want.steady
        for k in ("cycle_s", "drift_limit_ms", "littles_law_ratio"):
            assert _close(getattr(got, k), getattr(want, k), 1e-12), k
        for k in ("trend_ms_per_s", "drift_ms"):
            assert _close(getattr(got, k), getattr(want, k), 1e-6), k
        assert got.since_start_s == want.since_start_s


def test_json_round_trip_keeps_every_figure(recorded: tuple[Path, Window, int]) -> None:
    """Through JSON text and back: the same metrics, the same per-second histograms,
    whose counts add up to the window's requests."""
    records_dir, window, _ = recorded
    stats = latency.scan_records(records_dir, window)
    text = json.dumps(stats.to_json())
    back = latency.WindowStats.from_json(json.loads(text))
    assert back.metrics() == stats.metrics()
    assert back.slices.keys() == stats.slices.keys()
    series = back.slice_series()
    assert sum(s["requests"] for s in series) == stats.requests
    assert all(math.floor(window.start) <= s["second"] < window.end for s in series)
    for sec, s in stats.slices.items():
        assert np.array_equal(back.slices[sec].idx, s.idx)
        assert np.array_equal(back.slices[sec].counts, s.counts)
    # Bounded: the stored file is small next to the records it replaces.
    raw = sum(f.stat().st_size for f in records_dir.glob("*.csv"))
    assert len(text) < raw / 5, (len(text), raw)
    with pytest.raises(ValueError, match="format"):
        latency.WindowStats.from_json({**json.loads(text), "format": 99})
    with pytest.raises(ValueError, match="HdrHistogram"):
        latency.WindowStats.from_json({**json.loads(text), "histogram": "not base64"})


def test_cdf_points_are_the_exact_fraction_at_each_point(
        recorded: tuple[Path, Window, int]) -> None:
    records_dir, window, _ = recorded
    stats = latency.scan_records(records_dir, window)
    x, y = latency.cdf_points(stats.histogram)
    records = read_records(records_dir)
    rows = records[records["name"] == "request"]
    end = rows["start_unix_s"] + rows["latency_ms"] / 1000.0
    lat = np.sort(rows["latency_ms"][(end >= window.start) & (end < window.end)].to_numpy())
    assert len(x) > 10 and np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0) and y[-1] == 1.0
    # Latencies are recorded rounded to the nanosecond: fraction <= x + 0.5 ns.
    exact = np.searchsorted(lat, x + 0.5e-6, side="right") / len(lat)
    assert np.allclose(y, exact, rtol=0, atol=1e-12)


def test_vectorised_recording_matches_hdrh_record_value() -> None:
    """record_ms puts every value in the bucket hdrh's own record_value chooses,
    from 1 ns to 1 hour, and both encode to the same bytes."""
    rng = np.random.default_rng(7)
    ms = np.concatenate([rng.uniform(0, 0.005, 2000), rng.lognormal(0, 3, 5000),
                         rng.uniform(0, 3_600_000, 2000), [0.0, 1e-6, 3_600_000.0]])
    mine, theirs = latency.new_histogram(), latency.new_histogram()
    latency.record_ms(mine, ms)
    for v in np.rint(ms * latency.UNITS_PER_MS).astype(int).tolist():
        assert theirs.record_value(v)
    assert mine.get_total_count() == theirs.get_total_count() == len(ms)
    assert mine.encode() == theirs.encode()
    every = np.arange(mine.counts_len)
    lo, hi = latency._bucket_values(mine, every)
    assert lo.tolist() == [mine.get_value_from_index(i) for i in every.tolist()]
    assert hi.tolist() == [mine.get_highest_equivalent_value(int(v)) for v in lo.tolist()]
    # The stated precision: every value's bucket midpoint within 1/2048 of it (>= 1.024 us).
    big = ms[ms >= 0.001024]
    got = np.array(latency.percentiles_ms(mine, [0.0, 100.0]))
    assert got[0] == 0.0 and _close(got[1], 3_600_000.0, HALF_BUCKET)
    single = latency.new_histogram()
    for v in big[:200]:
        single.reset()
        latency.record_ms(single, [v])
        assert _close(latency.percentiles_ms(single, [50.0])[0], v, HALF_BUCKET)


def _write(path: Path, rows: list[tuple[float, float, int, int, int, str]]) -> None:
    path.write_text("".join(f"{s:.6f},{lat:.4f},{ok},{st},{b},{n}\n"
                            for s, lat, ok, st, b, n in rows))


def test_constructed_errors_and_incomplete_rows(tmp_path: Path) -> None:
    """Hand-made records in two <pid>.csv files: failures count in requests and latency
    but not throughput; ``incomplete`` rows count when they started before the window
    end; other names and completions outside [start, end) are left out."""
    t0 = 1_700_000_000.0
    window = Window(t0 + 10.0, t0 + 14.0)
    ok_rows = [(t0 + 10.0 + i * 0.01, 5.0 + (i % 7), 1, 200, 17, "request")
               for i in range(300)]           # complete in [10.005, 13.0): 300 in
    failed = [(t0 + 11.0 + i * 0.1, 30.0 + i, 0, 500, 0, "request")
              for i in range(20)]             # 20 in, latency 30..49 ms
    outside = [(t0 + 9.990, 5.0, 1, 200, 17, "request"),     # ends 9.995: before
               (t0 + 13.990, 10.0, 1, 200, 17, "request"),   # ends 14.000: end excluded
               (t0 + 9.999, 1.0, 1, 200, 17, "request")]     # ends 10.000: start included
    incomplete = [(t0 + 13.5, 600.0, 0, 0, 0, "incomplete"),  # started before the end
                  (t0 + 5.0, 9000.0, 0, 0, 0, "incomplete"),  # long before: counts too
                  (t0 + 14.0, 5.0, 0, 0, 0, "incomplete")]    # at the end: not counted
    other = [(t0 + 12.0, 1.0, 1, 0, 0, "connect")]
    _write(tmp_path / "101.csv", ok_rows[:150] + failed[:10] + outside + incomplete)
    _write(tmp_path / "102.csv", ok_rows[150:] + failed[10:] + other)
    (tmp_path / "103.csv").write_text("")  # a process that recorded nothing
    got = latency.scan_records(tmp_path, window, chunk_rows=64).metrics()
    assert got["requests"] == 321 and got["failures"] == 20 and got["incomplete"] == 2
    assert got["throughput_rps"] == 301 / 4.0
    assert got["error_rate"] == 20 / 321
    assert got["latency_max_ms"] == 49.0
    assert _close(got["latency_mean_ms"],
                  (sum(r[1] for r in ok_rows) + sum(r[1] for r in failed) + 1.0) / 321, 1e-12)
    _assert_agree(got, request_metrics(read_records(tmp_path), window))


def test_nothing_recorded_gives_the_empty_figures(tmp_path: Path) -> None:
    window = Window(100.0, 102.0)
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in
                          ("start_unix_s", "latency_ms", "ok", "name")})
    for folder in (tmp_path / "missing", tmp_path):
        got = latency.scan_records(folder, window).metrics()
        exact = request_metrics(empty, window)
        assert got.keys() == exact.keys()
        assert all(got[k] == exact[k] or (math.isnan(got[k]) and math.isnan(exact[k]))
                   for k in got)
    stats = latency.WindowStats(window)
    assert not stats.steadiness(4).steady and stats.steadiness(4).requests == 0
    assert latency.cdf_points(stats.histogram)[0].size == 0
    assert latency.WindowStats.from_json(json.loads(json.dumps(stats.to_json()))).requests == 0
