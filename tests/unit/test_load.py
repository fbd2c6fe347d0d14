"""harness.load without a load run: the start spread and locust's time limit from the
spec, the locust command line (users, spawn rate, stop timeout per user class, a
loopback ZeroMQ port for several processes, the agents' master address), the merge of
the per-process meta files, and why a level's result cannot be trusted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.load import (
    LOCUST_CONFIG,
    LoadResult,
    LoadSpec,
    locust_argv,
    merge_meta,
    start_spread_s,
)
from tests.synth import STORED


def spec(**kw: Any) -> LoadSpec:
    base: dict[str, Any] = {"users": 16, "warmup_s": 0.5, "duration_s": 2.0, "method": "GET",
                            "path": "/io?latency_ms=20", "expected_status": 200,
                            "expected_body": b"{}", "name": "io-heavy"}
    return LoadSpec(**{**base, **kw})


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_start_spread_and_locusts_time_limit() -> None:
    assert [start_spread_s(w) for w in (0.0, 0.2, 0.5, 10.0, -1.0)] == [0.0, 0.1, 0.25, 0.25,
                                                                         0.0]
    assert spec().run_time_s == 4  # ceil(0.5 s warm-up + 2 s window + 1 s slack)
    steady = spec(steady=True, warmup_s=0.5, max_warmup_s=12.0)
    assert steady.longest_warmup_s == 12.0 and steady.run_time_s == 15
    assert spec(max_warmup_s=12.0).run_time_s == 4  # a fixed warm-up ignores the ceiling
    assert spec().users_offered == 16
    open_loop = spec(users=2, arrival_rate=400.0, options={"max_in_flight": 64})
    assert open_loop.users_offered == 64


def test_a_closed_loop_command_line(tmp_path: Path) -> None:
    argv = locust_argv(spec(), port=8123, spec_path=tmp_path / "s.json")
    assert argv[1:3] == ["-m", "locust"] and argv[-1] == "BenchUser"
    assert option(argv, "--users") == "16" and option(argv, "--spawn-rate") == "160"
    assert option(argv, "--run-time") == "4s" and option(argv, "--stop-timeout") == "0"
    assert option(argv, "--host") == "http://127.0.0.1:8123"
    assert option(argv, "--bench-spec") == str(tmp_path / "s.json")
    config = Path(option(argv, "--config"))
    assert config.name == LOCUST_CONFIG and config.read_text() == ""
    assert "--headless" in argv and "--processes" not in argv and "--master" not in argv
    # a session started empty, driven by its control file, with its own time limit
    idle = locust_argv(spec(users=3), port=1, spec_path=tmp_path / "s.json", users=0,
                       run_time_s=3600)
    assert option(idle, "--users") == "0" and option(idle, "--spawn-rate") == "100"
    assert option(idle, "--run-time") == "3600s"


@pytest.mark.parametrize(("user_class", "stop_timeout"), [
    ("BenchUser", "0"), ("OpenLoopUser", "0"), ("SSEUser", "5"), ("WebSocketUser", "5")])
def test_stream_users_get_time_to_record_what_was_open(user_class: str,
                                                        stop_timeout: str) -> None:
    argv = locust_argv(spec(user_class=user_class), port=1, spec_path=Path("s.json"))
    assert option(argv, "--stop-timeout") == stop_timeout and argv[-1] == user_class


def test_several_processes_and_agents_bind_their_master_where_told(tmp_path: Path) -> None:
    many = locust_argv(spec(processes=3), port=1, spec_path=tmp_path / "s.json")
    assert option(many, "--processes") == "3"
    assert option(many, "--master-bind-host") == option(many, "--master-host") == "127.0.0.1"
    port = option(many, "--master-bind-port")
    assert port == option(many, "--master-port") and port.isdigit() and port != "5557"
    agents = locust_argv(spec(agents=2, master_bind="0.0.0.0:5600", target_host="10.0.0.7"),
                         port=8000, spec_path=tmp_path / "s.json")
    assert "--master" in agents and "--processes" not in agents
    assert (option(agents, "--master-bind-host"), option(agents, "--master-bind-port")) == (
        "0.0.0.0", "5600")
    assert option(agents, "--host") == "http://10.0.0.7:8000"
    chosen = locust_argv(spec(agents=1, master_bind="127.0.0.1:0"), port=1,
                         spec_path=tmp_path / "s.json")
    assert option(chosen, "--master-bind-port").isdigit()
    assert int(option(chosen, "--master-bind-port")) > 0


def write_meta(folder: Path, pid: int, meta: dict[str, Any]) -> None:
    (folder / f"{pid}.meta.json").write_text(json.dumps(meta))


def test_the_meta_files_of_a_levels_processes_merge_into_one(tmp_path: Path) -> None:
    assert merge_meta(tmp_path) == {}
    write_meta(tmp_path, 11, {"role": "worker", "spawn_complete_unix_s": 5.0, "cpu_warning": True,
                              "errors": {"ConnectionError": 2},
                              "lag_slices": {"100": [10, 5.0, 1.5], "101": [4, 2.0, 0.5]},
                              "open_loop_slices": {"100": [10, 1, 0, 0]}})
    write_meta(tmp_path, 12, {"role": "worker", "spawn_complete_unix_s": 6.0,
                              "errors": {"ConnectionError": 1, "Timeout": 3},
                              "lag_slices": {"100": [6, 3.0, 2.5]},
                              "open_loop_slices": {"100": [5, 0, 2, 1], "101": [7, 0, 0, 0]}})
    write_meta(tmp_path, 10, {"role": "master", "spawn_complete_unix_s": 7.0,
                              "test_stop_unix_s": 9.0})
    (tmp_path / "13.meta.json").write_text('{"role": "worker", ')  # cut short: skipped
    m = merge_meta(tmp_path)
    assert m["role"] == "master" and m["spawn_complete_unix_s"] == 7.0
    assert m["test_stop_unix_s"] == 9.0 and m["processes"] == 3 and m["cpu_warning"] is True
    assert m["errors"] == {"ConnectionError": 3, "Timeout": 3}
    assert m["lag_slices"] == {"100": [16, 8.0, 2.5], "101": [4, 2.0, 0.5]}
    assert m["open_loop_slices"] == {"100": [15, 1, 2, 1], "101": [7, 0, 0, 0]}
    # one process of a real run: its meta as written, plus the merged fields
    folder = STORED / "io-heavy" / "requests" / "uvicorn-u2-r1"
    (written,) = [json.loads(f.read_text()) for f in folder.glob("*.meta.json")]
    m = merge_meta(folder)
    assert {k: m[k] for k in written} == written
    assert (m["processes"], m["lag_slices"], m["open_loop_slices"]) == (1, {}, {})


def test_why_a_level_cannot_be_trusted(tmp_path: Path) -> None:
    log = tmp_path / "locust.log"
    log.write_text("starting\n\nTraceback (most recent call last):\nOSError: boom\n")
    good = {"spawn_complete_unix_s": 1.0}

    def result(meta: dict[str, Any], code: int | None = None, timed_out: bool = False,
               aborted: str = "") -> str:
        return LoadResult(tmp_path, meta, code, timed_out, aborted, log).problem

    assert result(good) == ""
    assert result(good, aborted="server exited with code 1") == "server exited with code 1"
    assert result(good, timed_out=True) == ("locust did not stop within its time limit: "
                                            "starting | Traceback (most recent call last): | "
                                            "OSError: boom")
    assert result({}, code=1).startswith("locust exited with code 1 without results: starting")
    assert result({}).startswith("locust wrote no meta for the level without results")
    assert result({"errors": {"ConnectionRefusedError": 4}}).startswith(
        "locust reported ConnectionRefusedError without results")
