"""harness/loadgen/agents.py over locust's real master/worker channel (ZeroMQ on loopback):
the master's registry measures an agent's clock within the stated uncertainty, sends each
level without the harness's local paths, writes the records the agent ships (in batches,
periodically and at close) byte for byte, drops a late batch of an earlier level, writes
the agent's meta at the level's end, and names an agent that quit during a level.

locust monkey-patches the process with gevent at import, so a master runner, a worker
runner (the agent, answering as the locustfile's agent side does) and the registry run in
one child Python, as locust imports the module (top-level ``agents``), and hand back JSON.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest

from harness import PACKAGE_DIR, PROJECT_ROOT
from harness.procs import free_port

#: argv: loadgen folder, master port, work folder. Prints JSON.
CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import gevent
from locust import User, constant, task
from locust.env import Environment
import agents

class Idle(User):
    wait_time = constant(1)
    @task
    def nothing(self):
        pass

port, folder = int(sys.argv[2]), sys.argv[3]
listing = os.path.join(folder, "agents.json")
out = {"pid": os.getpid(), "cpus": sorted(os.sched_getaffinity(0))}
master = Environment(user_classes=[Idle]).create_master_runner("127.0.0.1", port)
registry = agents.Registry(master, listing)
out["listed_at_start"] = json.load(open(listing))
worker = Environment(user_classes=[Idle]).create_worker_runner("127.0.0.1", port)
seen = {"levels": [], "clock": None}

def on_ping(msg, **_kw):  # as the locustfile's agent side answers
    t1 = time.time()
    worker.send_message("bench_pong", {"t0": msg.data["t0"], "t1": t1, "t2": time.time()})
def on_clock(msg, **_kw):
    seen["clock"] = msg.data
def on_level(msg, **_kw):
    seen["levels"].append(msg.data)
def on_end(msg, **_kw):
    worker.send_message("bench_meta", {"seq": msg.data["seq"], "meta": {"cpu_warning": True}})
for kind, fn in (("ping", on_ping), ("clock", on_clock), ("level", on_level), ("end", on_end)):
    worker.register_message("bench_" + kind, fn)
worker.send_message("bench_hello", agents.hello(worker))

def wait_for(pred):
    end = time.time() + 10
    while not pred() and time.time() < end:
        gevent.sleep(0.01)
    assert pred()

wait_for(lambda: registry.ready() and seen["clock"] is not None)
out["clock"] = seen["clock"]
out["listed"] = json.load(open(listing))

spec = {"path": "/io", "users": 4, "options": {"processes": 1}, "control_path": "c",
        "records_dir": "r", "agents_path": "a", "expected_body_bytes": b"x"}
level1 = os.path.join(folder, "level1")
registry.begin({"records_dir": level1}, spec)
wait_for(lambda: seen["levels"])
out["level"] = seen["levels"][0]
shipper = agents.Shipper(worker, out["level"]["seq"])
shipper.write("1.000000,2.0000,1,200,3,request\n")
shipper.write("1.100000,2.5000,1,200,3,request\n")
gevent.sleep(0.35)  # one periodic flush (every SHIP_EVERY_S, 0.25 s)
out["after_one_period"] = [shipper.batches, shipper.shipped_bytes]
shipper.write("1.200000,3.0000,0,500,0,request\n")
shipper.close()
out["after_close"] = [shipper.batches, shipper.shipped_bytes, shipper.closed]
worker.send_message("bench_records", {"seq": out["level"]["seq"] - 1, "data": b"late\n"})
gevent.sleep(0.05)
registry.end()
out["summary1"] = registry.summary()
out["files1"] = {f: open(os.path.join(level1, f), "rb").read().decode()
                 for f in sorted(os.listdir(level1))}

level2 = os.path.join(folder, "level2")
registry.begin({"records_dir": level2}, spec)
wait_for(lambda: len(seen["levels"]) == 2)
worker.send_message("bench_bye", {})  # Ctrl-C on the agent's host
wait_for(lambda: registry.gone)
registry.watch()
registry.end()
out["summary2"] = registry.summary()
out["ready_after_bye"] = registry.ready()
json.dump(out, sys.stdout)
sys.stdout.flush()
os._exit(0)  # locust's quit waits on heartbeats: nothing to keep here
"""


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("agents")
    r = subprocess.run([sys.executable, "-c", CHILD, str(PACKAGE_DIR / "loadgen"),
                        str(free_port()), str(folder)],
                       capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_the_agents_clock_is_measured_within_its_stated_uncertainty(
        channel: dict[str, Any]) -> None:
    assert channel["listed_at_start"] == []  # the listing exists before anyone connects
    (agent,) = channel["listed"]
    assert (agent["index"], agent["pid"], agent["cpus"]) == (1, channel["pid"], channel["cpus"])
    assert agent["address"] == "127.0.0.1"  # the route to a master on loopback
    assert agent["pings"] == 8
    # One host, one clock: the true offset is 0, and NTP's bound is +- half the round trip.
    assert abs(agent["offset_ms"]) <= agent["uncertainty_ms"] + 1e-6
    assert math.isclose(agent["uncertainty_ms"], agent["rtt_ms"] / 2)
    assert 0 <= agent["rtt_ms"] < 1000
    clock = channel["clock"]  # what the agent was told: the same figures, in seconds
    assert clock["index"] == 1
    assert math.isclose(clock["offset_s"] * 1e3, agent["offset_ms"])
    assert math.isclose(clock["uncertainty_s"] * 1e3, agent["uncertainty_ms"])


def test_a_level_reaches_the_agent_without_the_harnesss_local_paths(
        channel: dict[str, Any]) -> None:
    assert channel["level"] == {"path": "/io", "users": 4, "options": {"processes": 1},
                                "seq": 0}


def test_shipped_records_are_written_by_the_master_byte_for_byte(
        channel: dict[str, Any]) -> None:
    lines = ["1.000000,2.0000,1,200,3,request\n", "1.100000,2.5000,1,200,3,request\n",
             "1.200000,3.0000,0,500,0,request\n"]
    assert channel["after_one_period"] == [1, len("".join(lines[:2]))]  # shipped meanwhile
    assert channel["after_close"] == [2, len("".join(lines)), True]  # the rest at close
    # In order, and not the late batch of an earlier level.
    assert channel["files1"]["agent-1.csv"] == "".join(lines)


def test_the_agents_meta_is_written_at_the_levels_end(channel: dict[str, Any]) -> None:
    meta = json.loads(channel["files1"]["agent-1.meta.json"])
    assert meta["cpu_warning"] is True and meta["role"] == "worker"
    assert meta["agent"] == channel["listed"][0]
    assert set(channel["files1"]) == {"agent-1.csv", "agent-1.meta.json"}
    summary = channel["summary1"]
    assert summary["agents"] == [1] and summary["agents_lost"] == []
    assert 0 <= summary["agents_end_s"] < 8  # within META_WAIT_S


def test_an_agent_that_quits_during_a_level_is_named_lost(channel: dict[str, Any]) -> None:
    summary = channel["summary2"]
    assert summary["agents"] == [1]
    assert summary["agents_lost"] == [
        f"agent 1 (127.0.0.1 pid {channel['pid']}) quit during the level"]
    assert channel["ready_after_bye"] == []  # not offered the next level
