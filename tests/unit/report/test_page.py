"""The report page: options are checked before anything is written, options every model
was built with are stated once at the top, the setup names a dirty commit, a remote
engine and CPUs shared with the load generator, and the method paragraph follows the
run's load mode, warm-up and level transition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.report import model, page
from harness.results import RunData, atomic_write_json, load_run
from tests import synth
from tests.support import tables


def _run(root: Path, run_id: str, trials: list[dict[str, Any]] | None = None,
         **meta: Any) -> RunData:
    """A two-server io-heavy run; ``meta`` keys replace run.json's."""
    trials = trials or [synth.trial("s10", "gunicorn-sync", "wsgi", 10, "ok", "", 2.0, 39.1),
                        synth.trial("u10", "uvicorn", "asgi", 10, "ok", "", 20.0, 197.3)]
    folder = synth.write_report_run(root, run_id, trials, synth.samples(), records=False)
    stored = json.loads((folder / "run.json").read_text())
    atomic_write_json(folder / "run.json", {**stored, **meta})
    return load_run(folder)


def test_options_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    run = _run(tmp_path, "r")
    out = tmp_path / "out" / "r.html"
    for bad in (0.0, 1.2):
        with pytest.raises(ValueError, match="headroom"):
            page.render([run], out, headroom=bad)
    with pytest.raises(ValueError, match="pass them to analyse"):
        page.render([model.analyse(run)], out, target_rps=5000.0)
    assert not out.exists() and not out.parent.exists()


def test_options_every_model_shares_are_stated_once(tmp_path: Path) -> None:
    one = [synth.trial("u10", "uvicorn", "asgi", 10, "ok", "", 20.0, 197.3)]
    first, second = _run(tmp_path, "run-a", one), _run(tmp_path, "run-b", one)
    models = [model.analyse(r, slo_p99_ms=80.0, target_rps=5000.0) for r in (first, second)]
    text = page.render(models[:1], tmp_path / "r.html").read_text("utf-8")
    assert ("Runs: run-a; SLO p99 set to 80 ms for every run (--slo-p99-ms); capacity planned "
            "for 5000 req/s (--target-rps)") in text
    header = {row["0"][0]: row["1"][0] for row in tables(text)["anon0"]}
    assert header["SLO"] == "p99 ≤ 80 ms, error rate ≤ 1.00 % (p99 from --slo-p99-ms)"
    assert page._common_options(models) == (5000.0, 80.0)
    # models built with different targets: no common option to state
    mixed = [models[0], model.analyse(second, slo_p99_ms=80.0, target_rps=100.0)]
    assert page._common_options(mixed) == (None, 80.0)
    assert page._common_options([model.analyse(first)]) == (None, None)


def test_setup_names_dirty_commit_remote_engine_and_shared_cpus(tmp_path: Path) -> None:
    run = _run(tmp_path, "remote", git={"commit": "abc1234", "dirty": True},
               cpus={"server": [0, 1], "load": [1, 2]},
               engine={"url": "ssh://box", "source": "DOCKER_HOST"}, target_host="10.0.0.2",
               resource_view={"psutil": False, "source": "docker stats",
                              "reason": "the engine is remote", "missing": ["pss_mib"]})
    a = model.analyse(run)
    header = dict(page._header(run.meta, a))
    assert header["commit"] == "abc1234 (dirty)"
    assert header["CPU sets"] == "server: 0,1; load generator: 1,2"
    assert header["docker engine"] == "ssh://box (from DOCKER_HOST); load target 10.0.0.2"
    assert header["server figures"] == "docker stats. the engine is remote; missing: pss_mib"
    assert page._shared_cpus(run.meta) == "1"
    local = _run(tmp_path, "local")
    assert page._shared_cpus(local.meta) == ""  # synth: server 0,1, load 2,3
    assert "docker engine" not in dict(page._header(local.meta, model.analyse(local)))


def test_method_follows_load_mode_warm_up_and_transition(tmp_path: Path) -> None:
    closed = _run(tmp_path, "closed")
    loop, warm, *_, generator = page._method(closed.meta, model.analyse(closed))
    assert loop.startswith("Load is closed-loop") and "Coordinated omission (Tene)" in loop
    assert warm.startswith("Each level has a fixed warm-up of 2.0 s")
    assert "pinned to CPUs 2,3; servers ran on CPUs 0,1" in generator
    trials = []
    for i, rate in enumerate((100.0, 200.0)):
        row = synth.trial(f"o{i}", "uvicorn", "asgi", 1000, "ok", "", 10.0 * i, rate)
        row.update(offered_rps=rate, load_mode="open-loop")
        trials.append(row)
    stored = json.loads((closed.path / "run.json").read_text())
    scenario = {**stored["scenario"], "steady": True, "max_warmup_s": 30}
    opened = _run(tmp_path, "open", trials, level_transition="step-up", scenario=scenario)
    loop, warm, *_ = page._method(opened.meta, model.analyse(opened))
    assert loop.startswith("Load is open-loop") and "Coordinated omission" not in loop
    assert warm.startswith("A server's first level starts from no users on an idle server")
    assert "at most 30.0 s after the users started" in warm
