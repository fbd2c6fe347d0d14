"""harness.compare on synthetic run folders: the decision of each gated metric as the module
defines it (one-sided Mann-Whitney, Holm across the metrics, minimum effect), the runs it
refuses to compare, how trials are matched, and compare.json / Markdown renderings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.compare import compare, config_label, load_side, render_markdown
from harness.errors import UserError
from harness.gates import make_gates
from harness.results import atomic_write_csv, atomic_write_json, load_run
from tests.synth import write_run

#: Six repeats a side: baseline around 100 req/s, current around 80 (every current repeat
#: below every baseline one).
BASE_RPS = [100.0, 101.0, 99.0, 102.0, 98.0, 100.5]
SLOW_RPS = [80.0, 81.0, 79.0, 82.0, 78.0, 80.5]


def side(results: Path, index: int, rps: list[float], **kw: object) -> Path:
    return write_run(results, index, rps, **kw)  # type: ignore[arg-type]


def test_a_clear_drop_in_throughput_is_a_regression_by_the_rule(tmp_path: Path) -> None:
    base = side(tmp_path, 1, BASE_RPS)
    current = side(tmp_path, 2, SLOW_RPS)
    c = compare(load_side(base), load_side(current))
    decisions = {v.metric.column: v for _, v in c.rows}
    assert list(decisions) == ["throughput_rps", "latency_p99_ms", "pss_mib_peak"]
    thr = decisions["throughput_rps"]
    assert (thr.n_baseline, thr.n_current) == (6, 6)
    assert thr.baseline_median == np.median(BASE_RPS) and thr.current_median == np.median(SLOW_RPS)
    assert thr.change == pytest.approx(np.median(SLOW_RPS) / np.median(BASE_RPS) - 1)
    # Fully separated 6 vs 6: exact one-sided p = 1 / C(12, 6); Holm over 3 metrics: x 3.
    assert thr.p_regression == pytest.approx(1 / math.comb(12, 6))
    assert thr.p_holm == pytest.approx(3 / math.comb(12, 6))
    assert thr.decision == "regression" and c.regressed and c.count("regression") == 1
    # p99 and PSS are the same repeats on both sides (write_run): no change.
    assert decisions["latency_p99_ms"].decision == decisions["pss_mib_peak"].decision == "no change"
    doc = c.to_json()
    json.dumps(doc, allow_nan=False)  # strict JSON
    assert doc["verdict"] == "regression" and doc["counts"]["regression"] == 1
    assert [r["decision"] for r in doc["results"]] == ["regression", "no change", "no change"]


def test_a_metric_without_values_is_no_data_and_null_in_json(tmp_path: Path) -> None:
    """write_run records no p50: that gate has no data on either side; its NaNs are null."""
    c = compare(load_side(side(tmp_path, 1, BASE_RPS)), load_side(side(tmp_path, 2, BASE_RPS)),
                gates=make_gates(["throughput_rps", "latency_p50_ms"]))
    (thr, p50) = (v for _, v in c.rows)
    assert thr.decision == "no change" and thr.change == 0
    assert p50.decision == "no data" and math.isnan(p50.change)
    (row,) = [r for r in c.to_json()["results"] if r["metric"] == "latency_p50_ms"]
    assert row["change"] is None and row["baseline_median"] is None and row["p_holm"] is None


def test_runs_that_measure_something_else_are_refused_unless_forced(tmp_path: Path) -> None:
    base = side(tmp_path, 1, BASE_RPS)
    other = side(tmp_path, 2, SLOW_RPS)
    meta = json.loads((other / "run.json").read_text())
    meta["machine"]["cpu_model"] = "Other CPU"
    meta["scenario"]["params"] = {"latency_ms": 60}
    atomic_write_json(other / "run.json", meta)
    with pytest.raises(UserError) as info:
        compare(load_side(base), load_side(other))
    text = str(info.value)
    assert text.startswith("cannot compare: CPU model 'Test CPU' vs 'Other CPU'; ")
    assert "scenario parameters {'latency_ms': 50} vs {'latency_ms': 60}" in text
    assert text.endswith("pass --force to compare anyway")
    forced = compare(load_side(base), load_side(other), force=True,
                     gates=make_gates(["throughput_rps"]))
    assert forced.forced == ["CPU model 'Test CPU' vs 'Other CPU'",
                             "scenario parameters {'latency_ms': 50} vs {'latency_ms': 60}"]
    # pooled runs of one side must agree among themselves too
    pool = tmp_path / "pool"
    pool.mkdir()
    side(pool, 3, BASE_RPS)
    (pool / other.name).symlink_to(other, target_is_directory=True)
    with pytest.raises(UserError, match="cannot compare: baseline runs differ: CPU model"):
        compare(load_side(pool), load_side(base))


def test_trials_are_matched_by_configuration_and_ok_status(tmp_path: Path) -> None:
    base = side(tmp_path, 1, BASE_RPS, trial_status=["ok"] * 5 + ["invalid"])
    current = side(tmp_path, 2, SLOW_RPS)
    trials = pd.read_csv(current / "trials.csv")
    atomic_write_csv(current / "trials.csv", pd.concat(
        [trials, trials.assign(users=8, trial_id=trials["trial_id"].str.replace("u4", "u8"))]))
    c = compare(load_side(base), load_side(current))
    assert {config_label(k) for k, _ in c.rows} == {"gunicorn-sync · workers=1 · users=4"}
    assert c.rows[0][1].n_baseline == 5  # the invalid repeat takes no part
    assert c.excluded == {"baseline": [{"run_id": load_run(base).meta.run_id,
                                        "trial_id": "gunicorn-sync-u4-r6",
                                        "status": "invalid", "reason": ""}], "current": []}
    assert [k["users"] for k in c.unmatched["current_only"]] == [8]
    assert c.unmatched["baseline_only"] == []
    lone = side(tmp_path, 3, SLOW_RPS)
    lone_trials = pd.read_csv(lone / "trials.csv").assign(users=16)
    atomic_write_csv(lone / "trials.csv", lone_trials)
    with pytest.raises(UserError, match=r"nothing to compare: .*\(baseline: gunicorn-sync · "
                       r"workers=1 · users=4; current: gunicorn-sync · workers=1 · users=16\)"):
        compare(load_side(base), load_side(lone))


def test_config_labels_name_only_what_is_not_the_default() -> None:
    key = {"server": "gunicorn-sync", "workers": 2, "users": 4}
    assert config_label(key) == "gunicorn-sync · workers=2 · users=4"
    assert config_label({**key, "app": "raw", "backend": "local"}) == config_label(key)
    assert config_label({**key, "app": math.nan, "offered_rps": math.nan}) == config_label(key)
    assert config_label({**key, "app": "flask", "offered_rps": 40.0, "backend": "docker"}) == \
        "gunicorn-sync+flask · workers=2 · users=4 · offered=40 req/s · docker"


def test_sides_and_markdown(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no run here"):
        load_side(tmp_path)
    # every figure apart on every run: no ties, so scipy's exact distribution (no permutations)
    base = side(tmp_path / "base", 1, BASE_RPS)
    side(tmp_path / "base", 3, [v + 0.25 for v in BASE_RPS], p99=300.0, pss=30.0)
    current = side(tmp_path, 2, SLOW_RPS, p99=250.0, pss=25.0)
    pooled = load_side(tmp_path / "base")
    assert [r.path for r in pooled] == sorted((tmp_path / "base").iterdir())
    assert load_side(base / "run.json")[0].path == base
    c = compare(pooled, load_side(current))
    assert c.rows[0][1].n_baseline == 12
    md = render_markdown(c)
    assert md.startswith("### bench compare: **1 regression**\n")
    assert "1 regressed, 0 improved, 2 unchanged of 3 comparisons." in md
    notable = md.split("<details>")[0]
    assert notable.count("| gunicorn-sync · workers=1 · users=4 | throughput") == 1
    assert "| **regression** |" in notable
    assert "alpha 0.01" in md and md.endswith("</sub>\n")
