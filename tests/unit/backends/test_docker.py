"""harness.backends.docker, the parts that need no engine: engine times, project names,
the task limit, and remove_run_containers where no engine answers."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.backends.docker import (
    PIDS_LIMIT,
    project_name,
    remove_run_containers,
    tasks_needed,
)
from harness.backends.docker_stats import _engine_time, engine_row
from harness.servers import SERVERS


def test_engine_times_read_with_fromisoformat_to_the_microsecond() -> None:
    base = datetime(2026, 3, 1, 12, 30, 15, tzinfo=UTC).timestamp()
    assert _engine_time("2026-03-01T12:30:15Z") == base
    # The engine's nanoseconds: cut to microseconds, below a float timestamp's resolution.
    assert _engine_time("2026-03-01T12:30:15.123456789Z") == pytest.approx(base + 0.123456789,
                                                                            abs=1e-6)
    assert _engine_time("2026-03-01T12:30:15.5Z") == base + 0.5
    assert _engine_time("2026-03-01T14:30:15.25+02:00") == base + 0.25
    assert _engine_time("2026-03-01T12:30:15.000000001-00:00") == base
    for bad in ("2026-03-01T12:30:15", "2026-03-01 12:30:15Z", "not a time", "2026-03-01T12:30:15.Z",
                ""):
        with pytest.raises(ValueError):
            _engine_time(bad)


def test_engine_cpu_percent_between_two_readings() -> None:
    def reading(stamp: str, cpu_ns: int) -> dict[str, object]:
        return {"read": stamp, "cpu_stats": {"cpu_usage": {"total_usage": cpu_ns}},
                "memory_stats": {"usage": 100 * 2**20, "stats": {"inactive_file": 20 * 2**20}},
                "pids_stats": {"current": 7}}

    row, last = engine_row(reading("2026-03-01T12:30:15.000000000Z", 10**9), None, t_s=1.0,
                           server="uvicorn", repeat=2.0)
    assert math.isnan(row["cpu_percent"]) and row["rss_mib"] == 80 and row["threads"] == 7
    row, _ = engine_row(reading("2026-03-01T12:30:15.500000000Z", 10**9 + 25 * 10**7), last,
                        t_s=1.5, server="uvicorn", repeat=2.0)
    assert row["cpu_percent"] == pytest.approx(50.0)  # 0.25 s of CPU in 0.5 s
    assert row["source"] == "engine" and row["repeat"] == 2.0


def test_project_name_comes_from_the_run_id_given() -> None:
    name = project_name("20260301T123015Z-io-heavy-a1b2c3", SERVERS["uvicorn"])
    assert name.startswith("bench-a1b2c3-uvicorn-") and len(name) == len("bench-a1b2c3-uvicorn-") + 6
    assert project_name("hand-made", SERVERS["hypercorn"]).startswith("bench-x-hypercorn-")
    assert project_name("r-a1b2c3", SERVERS["uvicorn"]) != project_name("r-a1b2c3",
                                                                        SERVERS["uvicorn"])


def test_the_task_limit_fits_the_worker_counts_in_use() -> None:
    assert tasks_needed(1) < tasks_needed(8) <= PIDS_LIMIT
    assert tasks_needed(200) > PIDS_LIMIT  # refused at deploy time, with the reason


def test_remove_run_containers_needs_a_run_id_and_an_engine(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a run id"):
        remove_run_containers("")
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    assert remove_run_containers("20260301T123015Z-io-heavy-a1b2c3", environ=env) == []
