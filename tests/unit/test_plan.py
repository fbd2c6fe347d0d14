"""harness.plan: a run plan describes the run before anything starts: its levels (closed
loop: one per users value; open loop: one per rate, capped at the users), when a level
steps up from the one before, how many trials it makes and about how long it takes, the
trial and run ids, and the run.json it starts with."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.plan import (
    RunPlan,
    initial_meta,
    iso_time,
    make_run_dir,
    new_run_id,
    trial_id,
)
from harness.scenarios import load
from harness.servers import SERVERS
from harness.stacks import APPS, RAW, Stack


def plan(tmp_path: Path, scenario: str = "io-heavy", **kw: Any) -> RunPlan:
    base: dict[str, Any] = {
        "scenario": load(scenario), "servers": [SERVERS["gunicorn-sync"], SERVERS["uvicorn"]],
        "users": (4, 16, 8), "warmup_s": 1.0, "duration_s": 5.0, "repeats": 3, "workers": 1,
        "server_cpus": [0], "load_cpus": [1], "results_dir": tmp_path}
    return RunPlan(**{**base, **kw})


def test_levels_trial_count_and_the_raw_stacks_by_default(tmp_path: Path) -> None:
    closed = plan(tmp_path)
    assert [s.name for s in closed.stacks] == ["gunicorn-sync", "uvicorn"]
    assert all(s.app is APPS[RAW] for s in closed.stacks)
    assert [u for u, _ in closed.levels] == [4, 16, 8]
    assert all(math.isnan(rate) for _, rate in closed.levels)
    assert closed.trial_count == 2 * 3 * 3
    open_loop = plan(tmp_path, users=(64,), arrival_rates=(50.0, 200.0))
    assert open_loop.levels == [(64, 50.0), (64, 200.0)]
    assert open_loop.trial_count == 2 * 2 * 3


def test_a_level_steps_up_only_to_at_least_as_many_users(tmp_path: Path) -> None:
    """4 -> 16 steps up (level 1 holds its users), 16 -> 8 does not (level 2 stops them),
    the last level has nothing to hold for."""
    closed = plan(tmp_path)
    assert closed.steps_up
    assert [closed.holds(i) for i in (1, 2, 3)] == [True, False, False]
    for fresh in (plan(tmp_path, cross_check=True), plan(tmp_path, load_agents=2),
                  plan(tmp_path, users=(64,), arrival_rates=(50.0, 200.0)),
                  plan(tmp_path, "sse-stream")):
        assert not fresh.steps_up and not any(fresh.holds(i) for i in (1, 2, 3))


def test_estimate_counts_only_the_stacks_that_are_measured(tmp_path: Path) -> None:
    """websocket-echo: Django cannot serve /ws, so its stack is unsupported at once and
    costs nothing; stream levels start their users afresh. A steady warm-up counts
    1.25 s (or less with a shorter ceiling); a level that steps up costs less than one
    that starts afresh; a cross-checked level runs wrk too."""
    stacks = (Stack(SERVERS["uvicorn"], APPS[RAW]), Stack(SERVERS["uvicorn"], APPS["django"]))
    ws = plan(tmp_path, "websocket-echo", servers=[SERVERS["uvicorn"]], stacks=stacks,
              users=(2, 4), repeats=2)
    assert ws.unsupported(stacks[0]) == "" and "Django" in ws.unsupported(stacks[1])
    assert ws.measured_stacks == [stacks[0]] and ws.trial_count == 2 * 2 * 2
    # 3 s + 2 repeats x 1 stack x (1 s + 2 fresh levels x (1 s warm-up + 5 s + 0.6 s))
    assert ws.estimated_seconds() == pytest.approx(3.0 + 2 * (1.0 + 2 * 6.6))
    steady = plan(tmp_path, steady=True, warmup_s=0.5, max_warmup_s=12.0, repeats=1)
    assert steady.longest_warmup_s == 12.0 and steady.steps_up
    # 2 configs x (1 s + 3 levels: 4 users fresh, 16 stepped up from them, 8 fresh)
    assert steady.estimated_seconds() == pytest.approx(
        3.0 + 2 * (1.0 + 2 * (1.25 + 5.0 + 0.6) + (1.25 + 5.0 + 0.2)))
    short = plan(tmp_path, steady=True, warmup_s=0.5, max_warmup_s=1.0, repeats=1)
    assert short.estimated_seconds() == pytest.approx(
        3.0 + 2 * (1.0 + 2 * (1.0 + 5.0 + 0.6) + (1.0 + 5.0 + 0.2)))
    floor = plan(tmp_path, steady=True, warmup_s=3.0, max_warmup_s=12.0, repeats=1)
    assert floor.expected_warmup_s == 3.0  # the window never opens before warmup_s
    assert (short.expected_warmup_s, steady.expected_warmup_s) == (1.0, 1.25)
    assert plan(tmp_path, warmup_s=2.0).expected_warmup_s == 2.0  # fixed warm-up
    checked = plan(tmp_path, steady=True, warmup_s=0.5, max_warmup_s=12.0, repeats=1,
                   cross_check=True)
    assert not checked.steps_up  # wrk runs between levels, on an idle server
    assert checked.estimated_seconds() == pytest.approx(3.0 + 2 * (1.0 + 6 * (1.25 + 5.0 + 0.6)))
    assert plan(tmp_path, warmup_s=3.0, max_warmup_s=12.0).longest_warmup_s == 3.0


def test_ids_name_the_stack_level_load_and_repeat(tmp_path: Path) -> None:
    assert trial_id("uvicorn+django", 2, 16, math.nan, 3) == "uvicorn+django-l2-u16-r3"
    assert trial_id("uvicorn", 1, 64, 12.5, 1) == "uvicorn-l1-a12.5-r1"
    assert trial_id("uvicorn", 3, 1000, 123456.7, 2) == "uvicorn-l3-a123456.7-r2"  # as given
    assert trial_id("uvicorn", 4, 1000, 1e6, 1) == "uvicorn-l4-a1000000-r1"
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    run_id = new_run_id("io-heavy", at)
    assert re.fullmatch(r"20260304T050607Z-io-heavy-[0-9a-f]{6}", run_id)
    assert new_run_id("io-heavy", at) != run_id  # same second, still two runs
    assert iso_time(0) == "1970-01-01T00:00:00+00:00"
    assert datetime.fromisoformat(iso_time()).tzinfo == UTC
    made = make_run_dir(tmp_path / "results", run_id)
    assert made.is_dir() and made == tmp_path / "results" / run_id
    with pytest.raises(FileExistsError):  # never two runs in one folder
        make_run_dir(tmp_path / "results", run_id)


def test_run_json_at_the_start_says_how_the_run_will_go(tmp_path: Path) -> None:
    closed = initial_meta(plan(tmp_path, warmup_s=0.3), "r1")
    assert closed.status == "running" and closed.ended_at is None and closed.trials == ()
    assert closed.load_mode == "closed-loop" and closed.level_transition == "step-up"
    assert closed.warmup.mode == "fixed" and closed.warmup.s == 0.3
    assert closed.start_spread_s == pytest.approx(0.15)  # min(0.25 s, warm-up / 2)
    assert closed.scenario.users == (4, 16, 8) and closed.scenario.repeats == 3
    assert closed.cpus.server == (0,) and closed.cpus.load == (1,) and not closed.cpus.shared
    assert [s.name for s in closed.stacks] == ["gunicorn-sync", "uvicorn"]
    opened = initial_meta(plan(tmp_path, users=(64,), arrival_rates=(50.0,), steady=True,
                               warmup_s=0.2, max_warmup_s=8.0, server_cpus=[0],
                               load_cpus=[0]), "r2")
    assert opened.load_mode == "open-loop" and opened.level_transition == "fresh"
    assert opened.scenario.arrival_rates == (50.0,)
    assert opened.warmup.mode == "steady" and (opened.warmup.min_s, opened.warmup.max_s) == (
        0.2, 8.0)
    assert opened.start_spread_s == 0.25  # from the longest warm-up (8 s), not the 0.2 s
    assert opened.cpus.shared
