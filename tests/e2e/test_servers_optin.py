"""The opt-in server configs (waitress, uwsgi, daphne, mod-wsgi): real runs under each,
mod_wsgi-express's Apache tree torn down whole, and a config that cannot run here
reported ``unsupported`` with its reason, in ``bench list servers`` and in a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from harness.backends.local import LocalServer
from harness.procs import http_get
from harness.servers import DEFAULT_SERVERS, NAMESPACE_UID, SERVERS, select
from tests.conftest import project_processes
from tests.support import bench, run_bench, wait_for_quiet_cpus

OPT_IN = ("waitress", "uwsgi", "daphne", "mod-wsgi")
LATENCY_MS = 20
USERS = 10


def test_the_default_set_is_unchanged_and_the_new_configs_are_opt_in() -> None:
    nine = ["gunicorn-sync", "gunicorn-gthread", "gunicorn-gevent", "granian-wsgi",
            "gunicorn-asgi", "gunicorn-uvicorn", "uvicorn", "hypercorn", "granian-asgi"]
    assert list(DEFAULT_SERVERS) == nine
    assert [c.name for c in select(None, "http")] == nine
    assert [c.name for c in select(None, "websocket")] == nine  # WSGI ones probed too
    assert [c.name for c in select(None, "sse")] == nine
    assert set(SERVERS) == {*nine, *OPT_IN}
    assert [c.name for c in select(list(OPT_IN), "http")] == list(OPT_IN)


def _io_runs(base: Path, servers: list[str], attempts: int = 3) -> pd.DataFrame:
    """One io-heavy run over ``servers``; a server whose trial a busy machine made
    invalid (others' tests share these CPUs) is run again, alone, up to ``attempts``."""
    kept: list[pd.DataFrame] = []
    todo = list(servers)
    for attempt in range(attempts):
        if attempt:
            wait_for_quiet_cpus()
        run_dir = run_bench(base / f"attempt{attempt}", "--scenario", "io-heavy",
                            "--servers", ",".join(todo), "--users", str(USERS),
                            "--duration", "1", "--param", f"latency_ms={LATENCY_MS}",
                            timeout=240, report=False)
        trials = pd.read_csv(run_dir / "trials.csv", dtype={"reason": str})
        run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
        assert not project_processes(run_id), "a server of the run outlived it"
        ok = trials[trials["status"] == "ok"]
        kept.append(ok)
        todo = [s for s in todo if s not in set(ok["server"])]
        if not todo:
            break
    assert not todo, f"not ok in {attempts} runs: {todo}: {trials[['server', 'status', 'reason']]}"
    return pd.concat(kept).set_index("server")


@pytest.mark.alone
@pytest.mark.slow  # four servers, a steady-state warm-up and a 1 s window (~500 requests) each
def test_each_opt_in_config_serves_io_heavy_by_littles_law(tmp_path: Path) -> None:
    """10 users, 20 ms a request, 1 worker: each config has at least 10 requests in
    progress at once (32 threads, or an event loop), so by Little's law it serves
    10 / 20 ms = 500 req/s; none can pass that (a request takes >= 20 ms). A config
    serialising requests would serve 50 req/s; a window rate counted wrong 1.33x or
    more. Wide margins: the machine is shared."""
    runnable = [name for name in OPT_IN if not SERVERS[name].unsupported()]
    trials = _io_runs(tmp_path, runnable)
    assert sorted(trials.index) == sorted(runnable)
    ceiling = USERS / (LATENCY_MS / 1000)
    assert (trials["ceiling_rps"] == ceiling).all(), trials["ceiling_rps"]
    assert trials["throughput_rps"].between(0.6 * ceiling, 1.05 * ceiling).all(), \
        trials["throughput_rps"]
    assert trials["littles_law_ratio"].between(0.9, 1.1).all(), trials["littles_law_ratio"]
    assert trials["latency_p50_ms"].between(LATENCY_MS, 2 * LATENCY_MS).all()
    assert (trials["failures"] == 0).all()
    threaded = [name for name in runnable if name != "daphne"]
    assert (trials.loc[threaded, "threads"] == 32).all()
    assert (trials["workers"] == 1).all()
    left_out = {n: SERVERS[n].unsupported() for n in OPT_IN if n not in runnable}
    if left_out:  # e.g. mod-wsgi without Apache httpd: the others passed; say what was not run
        pytest.skip(f"not run here: {left_out}")


@pytest.mark.alone
@pytest.mark.slow
def test_websocket_echo_under_daphne(tmp_path: Path) -> None:
    run_dir = run_bench(tmp_path, "--scenario", "websocket-echo", "--servers", "daphne",
                        "--users", "4", "--workers", "1", "--param", "hold_s=1",
                        "--warmup", "1.5", "--duration", "2", timeout=120,
                        report=False)
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"reason": str})
    if trials.loc[0, "status"] == "invalid":  # a busy machine; once more
        wait_for_quiet_cpus()
        run_dir = run_bench(tmp_path / "again", "--scenario", "websocket-echo",
                            "--servers", "daphne", "--users", "4", "--workers", "1",
                            "--param", "hold_s=1", "--warmup", "1.5", "--duration", "2",
                            timeout=120, report=False)
        trials = pd.read_csv(run_dir / "trials.csv", dtype={"reason": str})
    (trial,) = trials.to_dict("records")
    assert trial["status"] == "ok", trial["reason"]
    assert trial["failures"] == 0 and trial["throughput_rps"] > 0


def test_mod_wsgi_apache_tree_and_server_root_go_on_stop(tmp_path: Path) -> None:
    """mod_wsgi-express execs Apache httpd, which forks its children and the mod_wsgi
    daemons: all of them are in the deployment's group (seen by the leftover check) and
    gone after stop, with the server root the deployment made. As root, the tree runs
    in a user namespace of its own (Apache will not serve as root)."""
    config = SERVERS["mod-wsgi"]
    if config.unsupported():
        pytest.skip(f"mod-wsgi here: {config.unsupported()}")
    server = LocalServer(config, workers=2, cpus=[0], log_path=tmp_path / "mod-wsgi.log",
                         clock=time.monotonic)
    try:
        assert server.proc is not None and server.state_dir is not None
        root = server.state_dir
        assert (root / "httpd.conf").is_file()
        assert http_get(server.port, "/io?latency_ms=1")[0] == 200
        leader = psutil.Process(server.proc.pid)
        tree = [leader, *leader.children(recursive=True)]
        daemons = [p for p in tree if p.cmdline()[0].startswith("(wsgi:")]
        assert len(daemons) == 2  # --processes 2
        assert {os.getpgid(p.pid) for p in tree} == {leader.pid}
        assert {p.pid for p in tree} <= {p.pid for p in project_processes()}
        if os.geteuid() == 0:
            uid_map = Path(f"/proc/{leader.pid}/uid_map").read_text().split()
            assert uid_map == [str(NAMESPACE_UID), "0", "1"]
            assert server.info()["user_namespace"].startswith("unshare --user")
        pids = [p.pid for p in tree]
    finally:
        server.stop()
    assert not [p for p in pids if psutil.pid_exists(p)
                and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not root.exists()


MISSING = """
import dataclasses, sys
from types import MappingProxyType
from harness import servers
# waitress's real config, as if its package were not installed here.
servers.SERVERS = MappingProxyType({**servers.SERVERS, "waitress-missing": dataclasses.replace(
    servers.SERVERS["waitress"], name="waitress-missing", requires=("bench_no_such_server",),
    install="pip install bench-no-such-server")})
from harness.cli import main
sys.argv = ["bench", *sys.argv[1:]]
main()
"""
REASON = "bench_no_such_server not installed: pip install bench-no-such-server"


def _missing(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", MISSING, *args], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "COLUMNS": "400"})


@pytest.mark.alone
@pytest.mark.slow
def test_a_config_that_cannot_run_here_is_unsupported_in_list_and_in_a_run(
        tmp_path: Path) -> None:
    listed = _missing("list", "servers", "--json")
    assert listed.returncode == 0, listed.stderr
    reasons = {c["name"]: c["unsupported"] for c in json.loads(listed.stdout)["servers"]}
    assert reasons["waitress-missing"] == REASON
    assert reasons["waitress"] == ""
    table = _missing("list", "servers")
    assert table.returncode == 0, table.stderr
    assert "unsupported: bench_no_such_server" in table.stdout  # the reason, maybe wrapped

    results = tmp_path / "results"
    r = _missing("run", "--scenario", "io-heavy", "--servers", "waitress-missing",
                 "--users", "2,4", "--duration", "1", "--warmup", "0",
                 "--results-dir", str(results), "--report", str(tmp_path / "r.html"))
    # Like a run whose every config is unsupported for WebSocket: a result, exit 0.
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    (run_dir,) = results.iterdir()
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"reason": str})
    assert list(trials["status"]) == ["unsupported", "unsupported"]
    assert set(trials["reason"]) == {REASON}
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and not meta.get("deployments")
    assert not list((run_dir / "logs").glob("server-*.log"))  # nothing was started
    assert (tmp_path / "r.html").is_file()


@pytest.mark.slow
def test_workers_a_single_process_server_cannot_have_are_named_in_the_plan() -> None:
    r = bench("run", "--scenario", "io-heavy", "--servers", "waitress,uwsgi,daphne",
              "--workers", "2", "--dry-run", timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(ln.startswith("unsupported: waitress: waitress serves from one process")
               for ln in lines), r.stdout
    assert any(ln.startswith("unsupported: daphne: daphne serves from one process")
               for ln in lines), r.stdout
    assert not any(ln.startswith("unsupported: uwsgi") for ln in lines)
