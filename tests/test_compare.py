"""The regression gate: its decision rule on simulated samples, then `bench compare` on real runs.

Real runs: io-heavy on gunicorn-sync (1 worker, 4 users, so throughput = 1 / latency by
Little's law: 20 req/s at latency_ms=50, 16.7 req/s at 60), 6 repeats each: two runs at
50 ms (same code, same config) and one at 60 ms. 6 repeats, not 5: with Holm over the
3 default metrics at alpha 0.01 the first threshold is 0.0033, and 5 vs 5 repeats reach
p = 1/252 = 0.0040 at best (see test_five_repeats_cannot_decide_three_metrics).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from harness import compare as cmp
from harness import gates
from harness.errors import UserError
from harness.results import atomic_write_csv, atomic_write_json, load_run
from tests.support import bench, real_run

ROOT = Path(__file__).resolve().parent.parent
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


# --- real runs --------------------------------------------------------------------------


def _real_run(base: Path, latency_ms: int) -> Path:
    return real_run(base, "--scenario", "io-heavy", "--servers", "gunicorn-sync",
                    "--users", "4", "--workers", "1", "--param", f"latency_ms={latency_ms}",
                    "--duration", "2", "--warmup", "0.5", "--repeats", str(REPEATS))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three real runs, made once: 'a' and 'a2' at latency_ms=50, 'slow' at 60."""
    base = tmp_path_factory.mktemp("compare")
    return {"a": _real_run(base / "a", 50), "a2": _real_run(base / "a2", 50),
            "slow": _real_run(base / "slow", 60)}


def _decisions(compare_json: Path) -> dict[str, dict[str, object]]:
    data = json.loads(compare_json.read_text())
    return {r["metric"]: r for r in data["results"]}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_same_config_twice_is_no_change(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    r = bench("compare", str(runs["a"]), str(runs["a2"] / "run.json"), "--json-out", str(out),
              "--markdown", str(tmp_path / "pr.md"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no regression" in r.stdout and "Traceback" not in r.stderr
    decisions = _decisions(out)
    assert set(decisions) == {"throughput_rps", "latency_p99_ms", "pss_mib_peak"}
    for d in decisions.values():
        assert d["decision"] == "no change", d  # decided, not "insufficient repeats"
        assert d["n_baseline"] == d["n_current"] == REPEATS
    assert json.loads(out.read_text())["verdict"] == "no regression"
    assert "**No regression**" in (tmp_path / "pr.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_slower_candidate_regresses_and_exits_1(runs: dict[str, Path], tmp_path: Path) -> None:
    md = tmp_path / "pr.md"
    r = bench("compare", str(runs["a"]), str(runs["slow"]), "--force", "--markdown", str(md),
              "--json-out", str(tmp_path / "c.json"))
    assert r.returncode == 1, r.stdout + r.stderr
    decisions = _decisions(tmp_path / "c.json")
    thr = decisions["throughput_rps"]
    assert thr["decision"] == "regression"
    # 20 -> 16.7 req/s: 1.2x slower; 6 vs 6 complete separation: raw p = 1/924.
    assert thr["baseline_median"] / thr["current_median"] == pytest.approx(1.2, rel=0.05)
    assert thr["p_regression"] == pytest.approx(1 / 924)
    ratio = thr["baseline_median"] / thr["current_median"]
    assert thr["summary"].startswith(f"{ratio:.2f}x slower, p=0.00"), thr["summary"]
    assert decisions["latency_p99_ms"]["decision"] == "regression"  # 200 -> 240 ms
    assert decisions["pss_mib_peak"]["decision"] == "no change"
    line = next(x for x in r.stdout.splitlines() if "throughput" in x and "regression" in x)
    assert "x slower, p=0.00" in line
    assert "2 regressions" in r.stdout
    # --force was needed: the parameters differ; the warning says which.
    assert "compared despite: scenario parameters {'latency_ms': 50} vs {'latency_ms': 60}" in r.stderr
    text = md.read_text()
    assert text.startswith("### bench compare: **2 regressions**")
    assert "| throughput (req/s) |" in text and "**regression**" in text


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_faster_candidate_is_an_improvement_and_exits_0(runs: dict[str, Path],
                                                        tmp_path: Path) -> None:
    r = bench("compare", str(runs["slow"]), str(runs["a"]), "--force",
              "--json-out", str(tmp_path / "c.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    thr = _decisions(tmp_path / "c.json")["throughput_rps"]
    assert thr["decision"] == "improvement" and "x faster, p=" in thr["summary"]
    assert "no regression, 2 improvements" in r.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_no_fail_flag_reports_but_exits_0(runs: dict[str, Path], tmp_path: Path) -> None:
    r = bench("compare", str(runs["a"]), str(runs["slow"]), "--force",
              "--no-fail-on-regression", "--json-out", str(tmp_path / "c.json"))
    assert r.returncode == 0 and "2 regressions" in r.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_json_defaults_to_the_current_run_folder(runs: dict[str, Path], tmp_path: Path) -> None:
    current = tmp_path / "current"
    shutil.copytree(runs["a2"], current)
    r = bench("compare", str(runs["a"]), str(current))
    assert r.returncode == 0, r.stderr
    assert json.loads((current / "compare.json").read_text())["kind"] == "bench-compare"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_different_parameters_are_refused_without_force(runs: dict[str, Path],
                                                        tmp_path: Path) -> None:
    r = bench("compare", str(runs["a"]), str(runs["slow"]), "--json-out", str(tmp_path / "c.json"))
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("bench: error: cannot compare: request ")
    assert "scenario parameters {'latency_ms': 50} vs {'latency_ms': 60}" in line
    assert "request '/io?latency_ms=50' vs '/io?latency_ms=60'" in line and "--force" in line
    assert not (tmp_path / "c.json").exists()


def _copy_run(src: Path, dst: Path, **meta_changes: object) -> Path:
    shutil.copytree(src, dst)
    meta = json.loads((dst / "run.json").read_text())
    for dotted, value in meta_changes.items():
        section, _, key = dotted.partition("__")
        if key:
            meta[section][key] = value
        else:
            meta[section] = value
    atomic_write_json(dst / "run.json", meta)
    return dst


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_other_machine_is_refused_unless_forced(runs: dict[str, Path], tmp_path: Path) -> None:
    other = _copy_run(runs["a2"], tmp_path / "other", machine__cpu_model="Some Other CPU",
                      machine__logical_cpus=64)
    r = bench("compare", str(runs["a"]), str(other))
    assert r.returncode == 2
    assert "CPU model" in r.stderr and "'Some Other CPU'" in r.stderr and "logical CPUs" in r.stderr
    r = bench("compare", str(runs["a"]), str(other), "--force")
    assert r.returncode == 0, r.stderr
    assert "warning: compared despite: CPU model" in r.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_not_ok_trials_are_excluded_and_named(runs: dict[str, Path], tmp_path: Path) -> None:
    current = _copy_run(runs["a2"], tmp_path / "cur")
    trials = pd.read_csv(current / "trials.csv", dtype={"reason": object})
    trials.loc[1, ["status", "reason"]] = ["invalid", "generator-saturated: test"]
    trials.loc[1, "throughput_rps"] = 1.0  # would be a regression if it took part
    atomic_write_csv(current / "trials.csv", trials)
    r = bench("compare", str(runs["a"]), str(current), "--json-out", str(tmp_path / "c.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["excluded"]["current"] == [{"run_id": load_run(current).meta.run_id,
                                            "trial_id": trials.loc[1, "trial_id"],
                                            "status": "invalid",
                                            "reason": "generator-saturated: test"}]
    thr = _decisions(tmp_path / "c.json")["throughput_rps"]
    assert thr["n_current"] == REPEATS - 1 and thr["decision"] == "no change"
    assert f"excluded from current (not ok): 1: {trials.loc[1, 'trial_id']} (invalid)" in r.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_folder_of_runs_is_pooled(runs: dict[str, Path], tmp_path: Path) -> None:
    pooled = tmp_path / "base"
    pooled.mkdir()
    for name in ("a", "a2"):
        (pooled / name).symlink_to(runs[name], target_is_directory=True)
    c = cmp.compare(cmp.load_side(pooled), cmp.load_side(runs["slow"]), force=True)
    thr = next(v for _, v in c.rows if v.metric.column == "throughput_rps")
    assert (thr.n_baseline, thr.n_current) == (2 * REPEATS, REPEATS)
    assert thr.decision == "regression" and c.regressed


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("args", "message"), [
    (["--alpha", "2"], "--alpha 2: must be between 0 and 1"),
    (["--metrics", "throughput"], "unknown metric 'throughput'; did you mean throughput_rps"),
    (["--min-effect", "throughput_rps"], "expected METRIC=10% or METRIC=0.10"),
    (["--min-effect", "throughput_rps=10"], "ambiguous; write 10% or a fraction"),
    (["--min-effect", "latency_p50_ms=5%"], "not a gated metric"),
])
@pytest.mark.slow
def test_bad_options_are_one_line_exit_2(runs: dict[str, Path], args: list[str],
                                        message: str, tmp_path: Path) -> None:
    r = bench("compare", str(runs["a"]), str(runs["a2"]), "--json-out",
              str(tmp_path / "c.json"), *args)
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("bench: error: ") and message in line


def test_missing_run_is_one_line_exit_2(tmp_path: Path) -> None:
    r = bench("compare", str(tmp_path / "nope"), str(tmp_path))
    assert r.returncode == 2 and "no run here" in r.stderr and "Traceback" not in r.stderr


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


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_gate_that_cannot_decide_does_not_pass_silently(runs: dict[str, Path],
                                                          tmp_path: Path) -> None:
    sides = []
    for name in ("a", "a2"):
        side = _copy_run(runs[name], tmp_path / name)
        trials = pd.read_csv(side / "trials.csv", dtype={"reason": object})
        atomic_write_csv(side / "trials.csv", trials[trials["repeat"] == 1])
        sides.append(str(side))
    r = bench("compare", *sides, "--json-out", str(tmp_path / "c.json"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "nothing could be decided" in r.stderr and "1 vs 1" in r.stderr
    r = bench("compare", *sides, "--no-fail-on-regression", "--json-out", str(tmp_path / "d.json"))
    assert r.returncode == 0, r.stdout + r.stderr
