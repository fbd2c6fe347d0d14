"""The regression gate's decision rule (harness.gates) on simulated samples, and the
worked CI example that relies on it. `bench compare` on real runs is tests/e2e/test_compare.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness import gates
from harness.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
REPEATS = 6
# The tests on the three real runs are slow: ~2 min on a quiet machine; a shared one
# makes the fixture retry runs whose trials were invalid (after waiting for quiet CPUs).


# --- the decision rule on synthetic samples ---------------------------------------------


def test_holm_adjusts_as_defined() -> None:
    # Holm 1979: sorted p (0.01, 0.03, 0.04) x (3, 2, 1) = (0.03, 0.06, 0.04) -> monotone.
    assert gates.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert gates.holm([0.5]) == [0.5]
    assert gates.holm([0.6, 0.9]) == [1.0, 1.0]


def test_attainable_p_and_repeats_needed() -> None:
    assert gates.min_attainable_p(1, 1) == 0.5
    assert gates.min_attainable_p(5, 5) == pytest.approx(1 / 252)
    assert gates.repeats_needed(0.01, 1) == 5
    assert gates.repeats_needed(0.01, 3) == 6
    assert gates.repeats_needed(0.05, 3) == 4


def test_mann_whitney_is_exact_with_ties() -> None:
    # Complete separation of 5 vs 5 with tied values: exactly 1/252, as without ties.
    low, high = [19.5, 19.5, 19.5, 20.0, 20.0], [16.5, 16.5, 16.5, 16.5, 17.0]
    assert gates.mann_whitney_p(high, low, "less") == pytest.approx(1 / 252)
    assert gates.mann_whitney_p(high, low, "greater") == pytest.approx(1.0)
    assert gates.mann_whitney_p([3.0, 3.0], [3.0, 3.0], "less") == 1.0


def _mc_bound(alpha: float, sims: int) -> float:
    """alpha plus two Monte-Carlo standard errors: the rate may exceed alpha by chance only."""
    return alpha + 2 * math.sqrt(alpha * (1 - alpha) / sims)


def test_false_alarm_rate_at_most_alpha() -> None:
    # 2000 no-change comparisons, 5% CV noise, the default rule (3 metrics, 6 vs 6).
    rates = gates.simulate(6, 6, cv=0.05, sims=2000, seed=1)
    assert rates.regression <= 0.01 and rates.improvement <= 0.01
    assert rates.insufficient == 0
    # The test alone (no minimum effect) holds its level: 5 vs 5, one metric.
    for alpha in (0.01, 0.05):
        only_test = gates.make_gates(["throughput_rps"], {"throughput_rps": 0.0})
        rates = gates.simulate(5, 5, cv=0.05, gates=only_test, alpha=alpha, sims=2000, seed=2)
        assert rates.regression <= _mc_bound(alpha, 2000)
        assert rates.regression > 0  # it is a real test, not a rule that never fires


def test_power_on_a_20_percent_shift() -> None:
    rates = gates.simulate(6, 6, cv=0.05, shift=0.20, sims=1000, seed=3)
    assert rates.regression >= 0.95
    single = gates.simulate(5, 5, cv=0.05, shift=0.20, gates=gates.make_gates(["throughput_rps"]),
                          sims=1000, seed=4)
    assert single.regression >= 0.95
    # A shift the size of the minimum effect is caught about half the time, by design.
    edge = gates.simulate(6, 6, cv=0.05, shift=0.10, sims=500, seed=5)
    assert 0.2 < edge.regression < 0.8


def test_five_repeats_cannot_decide_three_metrics() -> None:
    rates = gates.simulate(5, 5, cv=0.05, shift=0.20, sims=100, seed=6)
    assert rates.insufficient == 1.0 and rates.regression == 0.0


def test_one_repeat_is_insufficient_not_no_change() -> None:
    verdicts = gates.decide([([100.0], [60.0]), ([10.0], [20.0]), ([50.0], [50.0])], gates.make_gates())
    assert [v.decision for v in verdicts] == ["insufficient repeats"] * 3
    assert "1 vs 1 can reach p >= 0.5" in verdicts[0].note
    assert "use >= 6 repeats per side" in verdicts[0].note
    assert verdicts[0].summary == "1.67x slower, insufficient repeats (1 vs 1)"


def test_single_run_threshold_misfires() -> None:
    # The figure quoted in docs/ci.md: one run vs one run, 5% CV noise each, "fail when
    # throughput drops by more than 5%": it fires on a quarter of no-change comparisons.
    rng = np.random.default_rng(7)
    base, cur = rng.normal(100, 5, 200_000), rng.normal(100, 5, 200_000)
    rate = float(np.mean(cur / base < 0.95))
    assert 0.23 < rate < 0.25
    assert 0.46 < float(np.mean(np.abs(cur / base - 1) > 0.05)) < 0.49  # either direction


def test_min_effect_keeps_small_significant_changes_out() -> None:
    rng = np.random.default_rng(8)
    base, cur = rng.normal(100, 0.1, 6), rng.normal(97, 0.1, 6)  # -3%, very significant
    flat = rng.normal(50, 0.5, 6)
    (v, *_) = gates.decide([(base, cur), (flat, flat), (flat, flat)], gates.make_gates())
    assert v.decision == "no change" and v.p_holm <= 0.01
    assert v.note == "below the 10% minimum effect"
    (w, *_) = gates.decide([(base, cur), (flat, flat), (flat, flat)],
                         gates.make_gates(min_effects={"throughput_rps": 0.02}))
    assert w.decision == "regression" and w.summary.startswith("1.03x slower, p=0.0")


def test_ratio_words() -> None:
    m = gates.METRICS
    assert gates.ratio_text(m["throughput_rps"], 20.0, 16.0) == "1.25x slower"
    assert gates.ratio_text(m["throughput_rps"], 16.0, 20.0) == "1.25x faster"
    assert gates.ratio_text(m["latency_p99_ms"], 200.0, 240.0) == "1.20x slower"
    assert gates.ratio_text(m["pss_mib_peak"], 20.0, 22.0) == "1.10x larger"
    assert gates.ratio_text(m["pss_mib_peak"], 20.0, 20.0) == "same"


def test_gate_options_are_checked() -> None:
    with pytest.raises(UserError, match="did you mean throughput_rps"):
        gates.make_gates(["throughput_rsp"])
    with pytest.raises(UserError, match="must be a fraction >= 0 and < 1"):
        gates.make_gates(["throughput_rps"], {"throughput_rps": 1.5})
    with pytest.raises(UserError, match="not a gated metric"):
        gates.make_gates(["throughput_rps"], {"latency_p99_ms": 0.1})


# --- the worked CI example ----------------------------------------------------------------


def test_ci_example_is_valid_and_gates_with_enough_repeats() -> None:
    text = (ROOT / "examples" / "ci" / "github-actions.yml").read_text()
    workflow = yaml.safe_load(text)
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    scripts = "\n".join(str(s.get("run", "")) for s in steps)
    assert "bench compare" in scripts and "--fail-on-regression" in scripts
    assert "git worktree add" in scripts
    uses = [str(s.get("uses", "")) for s in steps]
    assert any(u.startswith("actions/upload-artifact") for u in uses)
    assert any(u.startswith("benchmark-action/github-action-benchmark") for u in uses)
    # Repeats per side = rounds x --repeats, enough for the default gate to decide.
    env = {k: str(v) for job in workflow["jobs"].values() for k, v in job.get("env", {}).items()}
    assert int(env["ROUNDS"]) * int(env["REPEATS_PER_ROUND"]) >= gates.repeats_needed(0.01, 3)


