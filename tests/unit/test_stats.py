"""harness.stats on synthetic data whose true values are known."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness import stats
from harness.results import TRIAL_COLUMNS

TRUE_LAMBDA, TRUE_SIGMA, TRUE_KAPPA = 120.0, 0.04, 0.0008
USERS = np.array([1, 2, 4, 8, 16, 32, 48, 64, 96, 128], dtype=float)


def _trial(server: str, users: int, repeat: int, rps: float, p99: float, *,
           status: str = "ok", interface: str = "asgi", workers: int = 2,
           error_rate: float = 0.0, cpu: float = 50.0, pss: float = 80.0,
           **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(TRIAL_COLUMNS, math.nan)
    row.update(trial_id=f"{server}-u{users}-r{repeat}", scenario="io-heavy", server=server,
               interface=interface, backend="local", workers=workers, threads=1, users=users,
               repeat=repeat, status=status, reason="" if status == "ok" else "why not",
               load_mode="closed-loop", throughput_rps=rps, error_rate=error_rate,
               latency_p50_ms=p99 / 2, latency_p95_ms=p99 * 0.9, latency_p99_ms=p99,
               cpu_percent_mean=cpu, pss_mib_peak=pss)
    row.update(extra)
    return row


# --- summarize_repeats ------------------------------------------------------------------


def test_summary_is_the_median_never_the_best_of_n() -> None:
    trials = pd.DataFrame([
        _trial("uvicorn", 10, 1, 100.0, 20.0),
        _trial("uvicorn", 10, 2, 300.0, 10.0),
        _trial("uvicorn", 10, 3, 200.0, 30.0),
        _trial("uvicorn", 10, 4, 5000.0, 1.0, status="invalid"),  # excluded, however good
    ])
    (row,) = stats.summarize_repeats(trials).to_dict("records")
    assert row["n"] == 3 and row["trials"] == 4
    assert row["statuses"] == "ok×3, invalid×1"
    assert row["throughput_rps_median"] == 200.0
    assert row["throughput_rps_mean"] == 200.0
    assert row["latency_p99_ms_median"] == 20.0  # not the best (lowest) p99 either
    # t-interval: 200 +- t(0.975, 2) * 100 / sqrt(3)
    half = 4.302652729911275 * 100.0 / math.sqrt(3)
    assert row["throughput_rps_ci_low"] == pytest.approx(200 - half)
    assert row["throughput_rps_ci_high"] == pytest.approx(200 + half)
    assert row["throughput_rps_cv"] == pytest.approx(0.5)
    assert row["throughput_rps_noisy"] is True


def test_summary_columns_are_stable_and_groups_without_ok_trials_kept() -> None:
    trials = pd.DataFrame([
        _trial("uvicorn", 10, 1, 100.0, 20.0),
        _trial("gunicorn-sync", 10, 1, 40.0, 50.0, interface="wsgi", status="unsupported"),
    ]).drop(columns=["pss_mib_peak"])  # a metric missing from the input
    out = stats.summarize_repeats(trials)
    assert list(out.columns) == stats.summary_columns()
    for metric in ("throughput_rps", "latency_p50_ms", "latency_p99_ms", "pss_mib_peak",
                   "cpu_percent_mean"):
        for suffix in ("median", "ci_low", "ci_high", "cv", "noisy"):
            assert f"{metric}_{suffix}" in out.columns
    sync = out.set_index("server").loc["gunicorn-sync"]
    assert sync["n"] == 0 and math.isnan(sync["throughput_rps_median"])
    assert sync["statuses"] == "unsupported×1"
    uvicorn = out.set_index("server").loc["uvicorn"]
    assert uvicorn["n"] == 1 and uvicorn["throughput_rps_median"] == 100.0
    # one repeat: no interval, no CV, not flagged noisy
    assert math.isnan(uvicorn["throughput_rps_ci_low"]) and math.isnan(uvicorn["throughput_rps_cv"])
    assert uvicorn["throughput_rps_noisy"] is np.False_ or not uvicorn["throughput_rps_noisy"]
    assert math.isnan(uvicorn["pss_mib_peak_median"])
    assert out["throughput_rps_noisy"].dtype == bool


def test_quiet_repeats_are_not_noisy() -> None:
    trials = pd.DataFrame([_trial("uvicorn", 10, r, rps, 20.0)
                           for r, rps in enumerate((1000.0, 1010.0, 990.0))])
    (row,) = stats.summarize_repeats(trials).to_dict("records")
    assert row["throughput_rps_cv"] == pytest.approx(0.01)
    assert not row["throughput_rps_noisy"]


def test_summary_raises_on_missing_keys() -> None:
    with pytest.raises(ValueError, match="status"):
        stats.summarize_repeats(pd.DataFrame([_trial("u", 1, 1, 1.0, 1.0)]).drop(columns="status"))


@pytest.mark.parametrize(("n", "distribution"), [(5, "normal"), (3, "normal"), (10, "lognormal")])
@pytest.mark.slow
def test_confidence_interval_covers_the_true_mean_95_percent(n: int, distribution: str) -> None:
    """1000 simulated repeat sets of throughput: ~95 % of the 95 % CIs hold the true mean."""
    rng = np.random.default_rng(20250101 + n)
    sims = 1000
    if distribution == "normal":
        true_mean = 1000.0
        samples = rng.normal(true_mean, 50.0, size=(sims, n))
    else:  # mildly skewed, like throughput with occasional slow repeats (sigma 0.05)
        true_mean = 1000.0 * math.exp(0.05 ** 2 / 2)
        samples = 1000.0 * rng.lognormal(0.0, 0.05, size=(sims, n))
    trials = pd.DataFrame([_trial("uvicorn", level + 1, r, float(v), 20.0)
                           for level, row in enumerate(samples) for r, v in enumerate(row)])
    out = stats.summarize_repeats(trials)
    assert len(out) == sims and (out["n"] == n).all()
    covered = ((out["throughput_rps_ci_low"] <= true_mean)
               & (true_mean <= out["throughput_rps_ci_high"])).mean()
    # binomial sd of the coverage at p = 0.95, 1000 trials: 0.0069; allow ~3.5 sd
    assert covered == pytest.approx(0.95, abs=0.025), covered


def test_describe_handles_constant_and_empty_samples() -> None:
    constant = stats.describe([7.0, 7.0, 7.0])
    assert constant["ci_low"] == constant["ci_high"] == 7.0 and constant["cv"] == 0.0
    empty = stats.describe([math.nan])
    assert math.isnan(empty["median"]) and empty["noisy"] is False


# --- USL --------------------------------------------------------------------------------


def test_usl_fit_recovers_known_parameters_without_noise() -> None:
    x = stats.usl_throughput(USERS, TRUE_LAMBDA, TRUE_SIGMA, TRUE_KAPPA)
    fit = stats.usl_fit(USERS, x)
    assert fit is not None
    assert fit.lambda_ == pytest.approx(TRUE_LAMBDA, rel=1e-4)
    assert fit.sigma == pytest.approx(TRUE_SIGMA, rel=1e-3)
    assert fit.kappa == pytest.approx(TRUE_KAPPA, rel=1e-3)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert fit.peak_users == pytest.approx(math.sqrt((1 - TRUE_SIGMA) / TRUE_KAPPA), rel=1e-3)
    assert fit.levels == len(USERS)


def test_usl_fit_recovers_known_parameters_with_noise_and_repeats() -> None:
    rng = np.random.default_rng(7)
    users = np.repeat(USERS, 3)
    x = stats.usl_throughput(users, TRUE_LAMBDA, TRUE_SIGMA, TRUE_KAPPA)
    noisy = x * rng.normal(1.0, 0.01, size=x.shape)  # 1 % measurement noise
    fit = stats.usl_fit(users, noisy)
    assert fit is not None
    assert fit.lambda_ == pytest.approx(TRUE_LAMBDA, rel=0.03)
    assert fit.sigma == pytest.approx(TRUE_SIGMA, abs=0.01)
    assert fit.kappa == pytest.approx(TRUE_KAPPA, rel=0.15)
    assert fit.peak_users == pytest.approx(34.6, rel=0.1)
    assert fit.r2 > 0.99
    assert fit.levels == len(USERS)


def test_usl_linear_scaling_has_no_peak() -> None:
    """An event loop waiting 20 ms: X = N / 0.02 s exactly, sigma = kappa = 0, N* = inf."""
    users = np.array([5, 10, 20, 40, 80], dtype=float)
    fit = stats.usl_fit(users, users / 0.020)
    assert fit is not None
    assert fit.lambda_ == pytest.approx(50.0, rel=1e-3)
    assert fit.sigma == pytest.approx(0.0, abs=1e-4) and fit.kappa == pytest.approx(0.0, abs=1e-6)
    assert fit.peak_users > 1e3
    assert stats.UslFit(50.0, 0.0, 0.0, 1.0, math.inf, 5).throughput([10])[0] == 500.0


def test_usl_needs_four_distinct_levels() -> None:
    users = [10, 10, 20, 20, 40, 40]
    assert stats.usl_fit(users, [1, 2, 3, 4, 5, 6]) is None
    assert stats.usl_fit([10, 20, 40, math.nan], [1, 2, 3, 4]) is None
    with pytest.raises(ValueError, match="differ in length"):
        stats.usl_fit([1, 2, 3, 4], [1, 2, 3])


# --- capacity -------------------------------------------------------------------------


def _sweep() -> pd.DataFrame:
    """uvicorn: 3 repeats per level, p99 passes the 100 ms SLO up to 40 users; gthread
    never does; granian only has unsupported trials."""
    rows = []
    for repeat, jitter in enumerate((0.98, 1.0, 1.02), start=1):
        for users, rps, p99 in ((5, 240.0, 25.0), (10, 480.0, 30.0), (20, 900.0, 60.0),
                                (40, 1500.0, 95.0), (80, 1400.0, 250.0)):
            rows.append(_trial("uvicorn", users, repeat, rps * jitter, p99, cpu=60.0,
                               pss=30.0))
        rows.append(_trial("gunicorn-gthread", 10, repeat, 400.0, 150.0, interface="wsgi"))
    rows.append(_trial("uvicorn", 40, 4, 9999.0, 10.0, status="invalid"))  # ignored
    rows.append(_trial("granian-wsgi", 10, 1, math.nan, math.nan, interface="wsgi",
                       status="unsupported"))
    return pd.DataFrame(rows)


def test_capacity_table_picks_the_max_sustainable_level() -> None:
    table = stats.capacity_table(_sweep(), slo_p99_ms=100.0, slo_max_error_rate=0.01)
    assert list(table.columns) == list(stats.CAPACITY_COLUMNS)
    uv = table.set_index("server").loc["uvicorn"]
    assert uv["sustainable_users"] == 40 and uv["sustainable_rps"] == pytest.approx(1500.0)
    assert uv["sustainable_n"] == 3 and uv["repeats"] == 3 and uv["levels"] == 5
    assert uv["sustainable_rps_ci_low"] < 1500.0 < uv["sustainable_rps_ci_high"]
    assert uv["sustainable_p99_ms"] == 95.0
    assert uv["peak_rps"] == pytest.approx(1500.0) and uv["peak_users"] == 40
    assert uv["pss_mib_per_worker"] == pytest.approx(15.0)
    assert uv["rps_per_core"] == pytest.approx(1500.0 / 60.0 * 100.0)
    assert uv["interface"] == "asgi" and uv["note"] == ""
    assert uv["usl_peak_users"] > 0 and 0 <= uv["usl_sigma"] <= 1
    gthread = table.set_index("server").loc["gunicorn-gthread"]
    assert math.isnan(gthread["sustainable_rps"]) and gthread["peak_rps"] == 400.0
    assert "no level met the SLO" in gthread["note"] and "150.0 ms at 10 users" in gthread["note"]
    assert math.isnan(gthread["usl_lambda"])  # one level only
    granian = table.set_index("server").loc["granian-wsgi"]
    assert granian["levels"] == 0 and granian["note"] == "no ok trial (1× unsupported: why not)"


def test_capacity_error_bound_and_retrograde_levels() -> None:
    rows = [_trial("uvicorn", 10, 1, 500.0, 20.0),
            _trial("uvicorn", 20, 1, 800.0, 30.0, error_rate=0.02),  # errors over the bound
            _trial("uvicorn", 40, 1, 700.0, 40.0)]  # retrograde but within the SLO
    uv = stats.capacity_table(pd.DataFrame(rows), 100.0, 0.01).iloc[0]
    assert uv["sustainable_rps"] == 700.0 and uv["sustainable_users"] == 40
    assert uv["peak_rps"] == 800.0 and uv["peak_users"] == 20


def test_capacity_table_rejects_a_missing_slo() -> None:
    with pytest.raises(ValueError, match="slo_p99_ms"):
        stats.capacity_table(_sweep(), math.nan, 0.01)


@pytest.mark.parametrize(("target", "sustainable", "headroom", "expected"), [
    (5000.0, 1000.0, 0.7, 8),      # 5000 / 700 = 7.14
    (700.0, 1000.0, 0.7, 1),       # exactly one instance's budget (float 0.7 must not add one)
    (701.0, 1000.0, 0.7, 2),
    (0.0, 1000.0, 0.7, 0),
    (5000.0, 1933.8, 0.7, 4),      # 5000 / 1353.66 = 3.69
    (10000.0, 100.0, 1.0, 100),
])
def test_instances_needed_arithmetic(target: float, sustainable: float, headroom: float,
                                     expected: int) -> None:
    assert stats.instances_needed(target, sustainable, headroom) == expected


@pytest.mark.parametrize(("target", "sustainable", "headroom"), [
    (-1.0, 100.0, 0.7), (100.0, 0.0, 0.7), (100.0, math.nan, 0.7), (100.0, 100.0, 0.0),
    (100.0, 100.0, 1.5),
])
def test_instances_needed_rejects_nonsense(target: float, sustainable: float,
                                           headroom: float) -> None:
    with pytest.raises(ValueError):
        stats.instances_needed(target, sustainable, headroom)


def test_plan_instances_adds_instances_and_memory() -> None:
    table = stats.capacity_table(_sweep(), 100.0, 0.01)
    planned = stats.plan_instances(table, 5000.0).set_index("server")
    assert planned.loc["uvicorn", "instances_needed"] == math.ceil(5000 / (1500 * 0.7)) == 5
    assert planned.loc["uvicorn", "instances_pss_mib"] == pytest.approx(5 * 30.0)
    assert planned.loc["gunicorn-gthread", "instances_needed"] is pd.NA
    assert math.isnan(planned.loc["gunicorn-gthread", "instances_pss_mib"])


# --- ratio of medians -----------------------------------------------------------------


def test_ratio_ci_of_medians() -> None:
    ratio, low, high = stats.ratio_ci([400.0, 410.0, 390.0, 405.0], [100.0, 98.0, 102.0, 101.0])
    assert ratio == pytest.approx(402.5 / 100.5)
    assert low <= ratio <= high and high - low < 0.5
    assert stats.ratio_ci([400.0, 410.0], [100.0, 98.0]) == stats.ratio_ci([400.0, 410.0],
                                                                             [100.0, 98.0])
    single = stats.ratio_ci([400.0], [100.0])
    assert single[0] == 4.0 and math.isnan(single[1]) and math.isnan(single[2])
    assert all(math.isnan(v) for v in stats.ratio_ci([], [1.0]))


def test_ratio_ci_coverage_on_simulated_repeats() -> None:
    """Percentile bootstrap of a ratio of medians, 8 repeats each: it covers the true ratio
    in most simulations (bootstrap intervals run narrow at small n, so ~0.9, not 0.95)."""
    rng = np.random.default_rng(3)
    sims, covered = 300, 0
    for _ in range(sims):
        a = rng.normal(400.0, 20.0, 8)
        b = rng.normal(100.0, 5.0, 8)
        _, low, high = stats.ratio_ci(a, b, n_resamples=999)
        covered += low <= 4.0 <= high
    assert 0.82 <= covered / sims <= 0.99, covered / sims


def test_open_loop_levels_are_told_apart_by_offered_rate() -> None:
    """Open loop: every level has the same users cap; the offered rate is the level."""
    rows = []
    for rate, rps, p99 in ((100.0, 100.0, 30.0), (200.0, 198.0, 40.0), (400.0, 300.0, 900.0)):
        row = _trial("uvicorn", 1000, 1, rps, p99)
        row.update(offered_rps=rate, load_mode="open-loop")
        rows.append(row)
    summary = stats.summarize_repeats(pd.DataFrame(rows))
    assert list(summary["offered_rps"]) == [100.0, 200.0, 400.0]
    assert list(summary["throughput_rps_median"]) == [100.0, 198.0, 300.0]
    uv = stats.capacity_table(pd.DataFrame(rows), 100.0, 0.01).iloc[0]
    assert uv["sustainable_offered_rps"] == 200.0 and uv["sustainable_rps"] == 198.0
    assert uv["peak_offered_rps"] == 400.0
    assert math.isnan(uv["usl_lambda"])  # users is a cap, not a concurrency level
    closed = stats.summarize_repeats(pd.DataFrame(rows).drop(columns="offered_rps"))
    assert len(closed) == 1 and closed["offered_rps"].isna().all()  # no column: closed loop
