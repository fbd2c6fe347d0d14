"""The app axis: every framework flavour answers every workload it supports with the raw
reference's bytes (served by a real server, checked by harness.verify), the stacks a run
pairs, ``bench list apps``, bad ``--apps`` input, and runs stored before the app axis."""

from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path

import pytest
import websocket

from harness import scenarios
from harness.apps.work import parse_ws_echo
from harness.procs import free_port, running, wait_ready
from harness.results import load_run
from harness.servers import SERVERS
from harness.stacks import APPS, RAW, pairs, select_apps, stack_name
from harness.verify import verify
from tests.report_extract import DATA
from tests.support import bench

#: The server each interface's flavours are served by here: any config of the interface.
SERVER_OF = {"wsgi": "gunicorn-gthread", "asgi": "uvicorn"}
#: Short versions of the shipped scenarios' requests (the same routes and parameters).
SHORT = {"io-heavy": {"latency_ms": "5"}, "cpu-heavy": {"work": "20"},
         "sse-stream": {"events": "3", "interval_ms": "20", "size": "16"}}
FLAVOURS = [(a.name, i) for a in APPS.values() if not a.is_raw for i in a.interfaces]


@pytest.mark.parametrize(("app", "interface"), FLAVOURS, ids=[f"{a}-{i}" for a, i in FLAVOURS])
@pytest.mark.slow
def test_every_flavour_answers_the_reference_bytes(app: str, interface: str,
                                                   tmp_path: Path) -> None:
    spec = APPS[app]
    config = SERVERS[SERVER_OF[interface]]
    port = free_port()
    log = tmp_path / "server.log"
    checked = []
    with running(config.argv(port=port, workers=1, app=spec.targets[interface]), cpus=[0],
                 log_path=log) as proc:
        wait_ready(proc, port, log)
        for name in scenarios.available():
            sc = scenarios.load(name)
            if spec.unsupported(sc.path) or (sc.protocol == "websocket"
                                              and interface != "asgi"):
                continue
            sc = sc.with_params(SHORT.get(name, {}))
            problem = verify(port, sc.request_path, protocol=sc.protocol)
            assert problem == "", (name, problem, log.read_text()[-2000:])
            checked.append(name)
        if "websocket-echo" in checked:  # binary frames come back binary, stamped on receipt
            ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=10)
            try:
                before = time.time_ns()
                ws.send_binary(b"\x00bytes")
                recv_ns, data = parse_ws_echo(ws.recv())
            finally:
                ws.close()
            assert data == b"\x00bytes" and before <= recv_ns <= time.time_ns()
        # the check can fail: an unknown path gets the framework's own 404 page, not the
        # reference's JSON, and verification says so
        assert "verification failed for /nope" in verify(port, "/nope")
    assert {"io-heavy", "cpu-heavy", "sse-stream"} <= set(checked)
    assert ("websocket-echo" in checked) == (not spec.unsupported("/ws")
                                             and interface == "asgi")


def test_stacks_pair_matching_interfaces_and_raw_keeps_the_server_names() -> None:
    servers = [SERVERS["gunicorn-sync"], SERVERS["uvicorn"]]
    raw = pairs(servers, select_apps(None))
    assert [s.name for s in raw] == ["gunicorn-sync", "uvicorn"]
    every = pairs(servers, select_apps("all"))
    names = [s.name for s in every]
    assert names[:3] == ["gunicorn-sync", "gunicorn-sync+flask", "gunicorn-sync+django"]
    assert "uvicorn+flask" not in names and "gunicorn-sync+fastapi" not in names
    assert {"uvicorn+django", "uvicorn+django-sync-asgi", "uvicorn+quart"} <= set(names)
    assert stack_name("uvicorn", RAW) == "uvicorn" == stack_name("uvicorn", "")
    django = next(s for s in every if s.name == "gunicorn-sync+django")
    assert django.target.endswith("django_app.wsgi:application")
    assert APPS["flask"].unsupported("/ws") and not APPS["fastapi"].unsupported("/ws")
    assert "Channels" in APPS["django"].unsupported("/ws")
    assert "no /db endpoint" in APPS["starlette"].unsupported("/db")
    assert APPS[RAW].unsupported("/db") == ""  # the reference serves what it routes


def test_list_apps_names_frameworks_versions_and_workloads() -> None:
    r = bench("list", "apps", columns=250)
    assert r.returncode == 0, r.stderr
    rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines()
            if line.startswith("│") and line.split("│")[1].strip()}
    assert set(APPS) <= set(rows)
    assert metadata.version("django") in rows["django"] and "wsgi,asgi" in rows["django"]
    assert metadata.version("flask") in rows["flask"]
    assert "websocket-echo" not in rows["flask"] and "websocket-echo" in rows["starlette"]
    assert "io-heavy" in rows["quart"] and "sse-stream" in rows["litestar"]
    r = bench("list", "apps", "--json")
    apps = {a["name"]: a for a in json.loads(r.stdout)["apps"]}
    assert apps["flask"]["version"] == metadata.version("flask")
    assert apps["django"]["interfaces"] == ["wsgi", "asgi"]
    assert "websocket-echo" in apps["quart"]["workloads"]
    assert "WSGI cannot hand a connection over" in apps["flask"]["unsupported"]["websocket-echo"]


@pytest.mark.parametrize(("args", "message"), [
    (("--apps", "flsk"), "unknown app 'flsk'; did you mean flask?"),
    (("--apps", "flask,flask"), "app 'flask' is named twice in --apps"),
    (("--apps", "flask", "--servers", "uvicorn"), "app flask (wsgi) has no server to run under"),
    (("--apps", "fastapi", "--servers", "gunicorn-sync,uvicorn"),
     "server gunicorn-sync (wsgi) serves none of the apps"),
    (("--apps", ","), "name at least one app"),
])
@pytest.mark.slow
def test_bad_apps_get_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    r = bench("run", "--scenario", "io-heavy", *args, "--dry-run")
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), r.stderr
    assert message in lines[0]


@pytest.mark.slow
def test_dry_run_lists_the_stacks_and_unsupported_ones() -> None:
    r = bench("run", "--scenario", "websocket-echo", "--apps", "raw,flask,starlette",
              "--servers", "gunicorn-sync,uvicorn", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert ("stacks:   4: gunicorn-sync, gunicorn-sync+flask (unsupported), uvicorn, "
            "uvicorn+starlette") in r.stdout
    assert "trials:   12 (4 stacks × 3 levels × 1 repeats)" in r.stdout
    raw = bench("run", "--scenario", "io-heavy", "--dry-run")
    assert "stacks:" not in raw.stdout and " configs × 3 levels" in raw.stdout


def test_runs_before_the_app_axis_read_as_raw() -> None:
    run = load_run(DATA / "io-heavy")
    assert run.meta.migrated_from < 4  # stored before schema 4
    assert set(run.trials["app"]) == {RAW} and set(run.trials["framework_version"]) == {""}
    assert set(run.samples["app"]) == {RAW}
    assert list(run.trials.columns[-2:]) == ["app", "framework_version"]
