"""harness.limits: a plan is checked against a given machine's capacity: the estimated
memory is workers + locust processes + users at their stated sizes, hard bounds refuse
whatever the user asks, soft bounds only without ``--exceed-limits`` (and are returned as
warnings with it), each at its exact edge."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.errors import UserError
from harness.limits import (
    FD_RESERVE,
    Capacity,
    check,
    estimated_memory_mib,
)
from harness.plan import RunPlan
from harness.scenarios import load
from harness.servers import SERVERS

#: A roomy machine: 64 GiB, 32 GiB free, a million open files.
ROOMY = Capacity(memory_total_mib=65536.0, memory_available_mib=32768.0,
                 nofile_soft=1_048_576, nofile_hard=1_048_576)


def plan(tmp_path: Path, **kw: Any) -> RunPlan:
    base: dict[str, Any] = {
        "scenario": load("io-heavy"), "servers": [SERVERS["uvicorn"]], "users": (10, 400),
        "warmup_s": 1.0, "duration_s": 5.0, "repeats": 1, "workers": 2, "server_cpus": [0],
        "load_cpus": [1], "results_dir": tmp_path}
    return RunPlan(**{**base, **kw})


def test_memory_estimate_is_workers_locust_and_users_at_the_peak_level(tmp_path: Path) -> None:
    # 2 workers x 40 MiB + 1 locust x 80 MiB + 400 users x 0.25 MiB
    assert estimated_memory_mib(plan(tmp_path)) == 2 * 40 + 80 + 100
    # open loop: one level per rate, each with the single cap on requests in flight
    open_loop = plan(tmp_path, users=(1000,), arrival_rates=(50.0, 100.0), load_processes=2)
    assert estimated_memory_mib(open_loop) == 2 * 40 + 2 * 80 + 250
    assert check(plan(tmp_path), capacity=ROOMY) == []


def test_users_up_to_the_hard_open_file_limit_less_the_reserve(tmp_path: Path) -> None:
    cap = Capacity(65536.0, 32768.0, nofile_soft=4096, nofile_hard=4096)
    edge = 4096 - FD_RESERVE
    assert check(plan(tmp_path, users=(edge,)), capacity=cap) == []
    for exceed in (False, True):  # a hard bound: --exceed-limits does not pass it
        with pytest.raises(UserError) as caught:
            check(plan(tmp_path, users=(10, edge + 1)), capacity=cap, exceed=exceed,
                  users_from="[load].users")
        assert str(caught.value) == (
            f"[load].users {edge + 1}: more users than one process can hold connections for "
            f"(open-file hard limit 4096, {FD_RESERVE} kept: at most {edge})")


def test_the_soft_open_file_limit_is_a_warning_with_exceed_limits(tmp_path: Path) -> None:
    cap = Capacity(65536.0, 32768.0, nofile_soft=1024, nofile_hard=65536)
    many = plan(tmp_path, users=(2000,))
    with pytest.raises(UserError, match=r"ulimit -n 1024, 64 kept: at most 960\); raise it "
                                        r"with ulimit -n \(pass --exceed-limits to run anyway\)$"):
        check(many, capacity=cap)
    (warning,) = check(many, capacity=cap, exceed=True)
    assert warning.startswith("--users 2000: above the open-file soft limit")


def test_memory_bounds_hard_past_the_total_soft_past_most_of_what_is_free(
        tmp_path: Path) -> None:
    p = plan(tmp_path)  # 260 MiB
    # more than 80% of what is free now: soft
    tight = Capacity(memory_total_mib=4096.0, memory_available_mib=300.0,
                     nofile_soft=65536, nofile_hard=65536)
    (warning,) = check(p, capacity=tight, exceed=True)
    assert warning == ("--users 400 with --workers 2: about 0.3 GiB of memory; "
                       "0.3 GiB is available now")
    assert check(p, capacity=Capacity(4096.0, 325.0, 65536, 65536)) == []  # 260 = 80% of 325
    # more than the machine has at all: hard
    small = Capacity(memory_total_mib=200.0, memory_available_mib=200.0,
                     nofile_soft=65536, nofile_hard=65536)
    with pytest.raises(UserError, match=r"^--users 400 with --workers 2 and --load-processes 1: "
                                        r"about 0\.3 GiB of memory; this machine has 0\.2 GiB$"):
        check(p, capacity=small, exceed=True)


def test_workers_and_locust_processes_per_cpu_are_soft_bounds(tmp_path: Path) -> None:
    crowded = plan(tmp_path, workers=9, server_cpus=[0, 1], load_processes=5, load_cpus=[2])
    warnings = check(crowded, capacity=ROOMY, exceed=True)
    assert warnings == [
        ("--workers 9: more than 4 per server CPU (2 CPU(s): at most 8); they would "
         "measure contention"),
        "--load-processes 5: more than 4 per load CPU (1 CPU(s): at most 4)"]
    assert check(plan(tmp_path, workers=8, server_cpus=[0, 1]), capacity=ROOMY) == []


def test_this_machines_capacity_is_read_from_psutil_and_rlimit() -> None:
    here = Capacity.here()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert here.nofile_soft == min(soft, 1 << 30) or soft == resource.RLIM_INFINITY
    assert here.nofile_hard == min(hard, 1 << 30) or hard == resource.RLIM_INFINITY
    assert here.memory_total_mib == psutil.virtual_memory().total / 2**20
    assert 0 < here.memory_available_mib <= here.memory_total_mib
