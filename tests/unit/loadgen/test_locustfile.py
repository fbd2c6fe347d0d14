"""harness/loadgen/locustfile.py driven as the harness drives it: a control file switches
levels (each with its records folder and target host) in one locust session of closed-loop
users against real WSGI servers. Each request is one record line (unrounded latency, the
status, the bytes), a response is a success only when byte-exact (or as the level's check
says), each failure kind is counted in the level's meta, the meta and the ``.spawned``
marker say when the level ran, and locust's own per-request statistics are not kept.

locust monkey-patches the process with gevent at import, so the session runs in one child
Python (a local runner and the servers on gevent's WSGI server, the raw app of
harness.apps.wsgi for the right answers), and the test reads the files it wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness import PACKAGE_DIR, PROJECT_ROOT
from harness.apps.work import expected
from harness.results import REQUEST_COLUMNS

PATH = "/io?latency_ms=1"
USERS = 2

#: argv: loadgen folder, work folder, request path, users. Prints JSON {pid, locust_requests}.
CHILD = r"""
import argparse, itertools, json, os, sys, time
sys.path.insert(0, sys.argv[1])  # as locust loads a locustfile: its folder on the path
folder, path, users = sys.argv[2], sys.argv[3], int(sys.argv[4])
import gevent
from gevent.pywsgi import WSGIServer
from locust import events
from locust.env import Environment
import locustfile
from harness.apps.wsgi import app
from harness.apps.work import expected

count = itertools.count()
def wrong(environ, start_response):  # every other answer 503, the others the wrong bytes
    if next(count) % 2:
        start_response("503 Service Unavailable", [("Content-Length", "0")])
        return [b""]
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]

servers = [WSGIServer(("127.0.0.1", 0), a, log=None) for a in (app, wrong)]
for s in servers:
    s.start()
right, bad = (f"http://127.0.0.1:{s.server_port}" for s in servers)
status, _, body = expected(path)
control = os.path.join(folder, "control.json")
spec = {"name": "io-heavy", "method": "GET", "path": path, "expected_status": status,
        "expected_body": body.decode("latin-1"), "control_path": control,
        "records_dir": os.path.join(folder, "idle"), "start_spread_s": 0.0, "options": {}}
with open(os.path.join(folder, "spec.json"), "w") as f:
    json.dump(spec, f)

def order(seq, action, level=None):
    with open(control + ".tmp", "w") as f:
        json.dump({"seq": seq, "action": action, "level": level or {}}, f)
    os.replace(control + ".tmp", control)

def wait_for(pred):
    end = time.time() + 10
    while not pred() and time.time() < end:
        gevent.sleep(0.01)
    assert pred()

order(0, "none")
options = argparse.Namespace(bench_spec=os.path.join(folder, "spec.json"), bench_agent_dir="")
env = Environment(user_classes=[locustfile.BenchUser], events=events, parsed_options=options)
runner = env.create_local_runner()
events.init.fire(environment=env, runner=runner, web_ui=None)
seq = 0
for name, host, opts in (("right", right, {}), ("wrong", bad, {}),
                         ("contains", bad, {"check": "contains", "expected_contains": "{"})):
    records = os.path.join(folder, name)
    seq += 1
    order(seq, "run", {"users": users, "records_dir": records, "start_spread_s": 0.0,
                       "options": opts, "live": False, "host": host})
    wait_for(lambda: os.path.exists(os.path.join(records, f"{os.getpid()}.spawned")))
    gevent.sleep(0.15)
    seq += 1
    order(seq, "idle")
    wait_for(lambda: os.path.exists(os.path.join(records, f"{os.getpid()}.meta.json")))
json.dump({"pid": os.getpid(), "locust_requests": runner.stats.total.num_requests}, sys.stdout)
sys.stdout.flush()
os._exit(0)
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("locust")
    r = subprocess.run([sys.executable, "-c", CHILD, str(PACKAGE_DIR / "loadgen"), str(folder),
                        PATH, str(USERS)],
                       capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return folder, json.loads(r.stdout)


def level(session: tuple[Path, dict[str, Any]], name: str
          ) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """(records, meta, .spawned) of one level."""
    folder, out = session
    pid = out["pid"]
    records = pd.read_csv(folder / name / f"{pid}.csv", names=list(REQUEST_COLUMNS),
                          header=None)
    meta = json.loads((folder / name / f"{pid}.meta.json").read_text())
    spawned = json.loads((folder / name / f"{pid}.spawned").read_text())
    return records, meta, spawned


def test_each_level_writes_one_record_per_request_into_its_own_folder(
        session: tuple[Path, dict[str, Any]]) -> None:
    records, meta, _ = level(session, "right")
    assert len(records) >= USERS
    _, _, body = expected(PATH)
    assert (records["ok"] == 1).all() and (records["status"] == 200).all()
    assert (records["bytes"] == len(body)).all() and (records["name"] == "request").all()
    # Ended before the level stopped; the next level's requests all came after that. The
    # server waits 1 ms: no latency is below it, and latencies are not rounded to whole ms.
    ends = records["start_unix_s"] + records["latency_ms"] / 1000
    assert (ends <= meta["test_stop_unix_s"] + 0.01).all()
    after, _, _ = level(session, "wrong")
    assert (after["start_unix_s"] >= meta["test_stop_unix_s"]).all()
    assert (records["latency_ms"] >= 1.0).all()
    assert (records["latency_ms"] != records["latency_ms"].round()).any()
    folder, _ = session
    assert not (folder / "idle").exists()  # nothing recorded between levels


def test_a_response_is_a_success_only_when_byte_exact(
        session: tuple[Path, dict[str, Any]]) -> None:
    records, meta, _ = level(session, "wrong")
    assert len(records) >= USERS and (records["ok"] == 0).all()
    by_status = records["status"].value_counts().to_dict()
    assert meta["errors"] == {
        "CatchResponseError: body differs from the reference": by_status[200],
        "CatchResponseError: status 503": by_status[503]}
    assert (records.loc[records["status"] == 200, "bytes"] == 2).all()


def test_a_contains_check_passes_any_body_holding_the_text(
        session: tuple[Path, dict[str, Any]]) -> None:
    records, meta, _ = level(session, "contains")
    ok = records.loc[records["ok"] == 1, "status"]
    failed = records.loc[records["ok"] == 0, "status"]
    assert len(ok) and (ok == 200).all() and (failed == 503).all()
    assert meta["errors"] == {"CatchResponseError: status 503": len(failed)}


def test_the_meta_says_who_ran_the_level_and_when(
        session: tuple[Path, dict[str, Any]]) -> None:
    _, out = session
    for name in ("right", "wrong", "contains"):
        records, meta, spawned = level(session, name)
        assert (meta["role"], meta["pid"], meta["user_count"]) == ("local", out["pid"], USERS)
        assert spawned == {"spawn_complete_unix_s": meta["spawn_complete_unix_s"],
                           "role": "local", "user_count": USERS}
        assert meta["spawn_complete_unix_s"] < meta["test_stop_unix_s"]
        assert meta["cpu_warning"] is False and meta["open_loop_slices"] == {}
    # Closed-loop lag: one per request after each user's first (a user stopped in the
    # middle of a request has its lag noted and no record), each level its own: a later
    # level's meta does not carry an earlier level's seconds.
    for name in ("right", "wrong", "contains"):
        records, meta, _ = level(session, name)
        lagged = sum(n for n, _, _ in meta["lag_slices"].values())
        assert len(records) - USERS <= lagged <= len(records), name
        first = min(int(k) for k in meta["lag_slices"])
        assert first >= int(records["start_unix_s"].min()) - 1, name


def test_locusts_own_request_statistics_are_not_kept(
        session: tuple[Path, dict[str, Any]]) -> None:
    records, _, _ = level(session, "right")
    assert len(records) > 0 and session[1]["locust_requests"] == 0
