"""Process safety: a hard kill of `bench` leaves nothing, SIGHUP, `bench clean`, CPU
locks, locust's master on loopback, children that cannot pick up stray configs.

Real `bench run`s (short windows, one module-scoped run that is killed with SIGKILL),
real servers and locust, real flocks held by another process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness import cpulock, procs
from harness.results import atomic_write_json, load_run
from harness.servers import SERVERS
from harness.watchdog import clean_run
from tests.conftest import project_processes, stop_bench
from tests.support import BENCH, bench, dead_identity


def cmd(p: psutil.Process) -> str:
    """``p``'s command line, "" once it has exited (processes come and go while we look)."""
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def run_dir_of(results: Path, deadline_s: float = 60) -> Path:
    found: list[Path] = []
    assert procs.poll_until(lambda: bool(found.extend(results.glob("*/run.json")) or found),
                            deadline_s), "no run folder appeared"
    return found[0].parent


def wait_for_trial(run_dir: Path, locust_processes: int, deadline_s: float = 90) -> int:
    """Wait until a trial is under way: locust's processes up and its users connected to
    the server (established connections on the port the server listens on). Returns
    that port."""
    port: list[int] = []

    def under_way() -> bool:
        running = [(p, cmd(p)) for p in project_processes(run_dir.name)]
        locusts = [p for p, c in running if "-m locust" in c]
        ports = set()
        for p, c in running:
            if c and "-m locust" not in c and "-m harness." not in c:
                with contextlib.suppress(psutil.Error):
                    ports |= {conn.laddr.port for conn in p.net_connections(kind="tcp")
                              if conn.status == psutil.CONN_LISTEN}
        port[:] = sorted(ports)
        return (len(locusts) >= locust_processes and len(ports) == 1
                and procs.client_connections(port[0]) >= 4)
    assert procs.poll_until(under_way, deadline_s, every_s=0.2), "no trial got under way"
    return port[0]


def describe(p: psutil.Process) -> dict[str, Any]:
    """What a process of the run is, where it runs and what it listens on ({} if gone)."""
    try:
        argv = p.cmdline()
        return {"pid": p.pid, "pgid": os.getpgid(p.pid), "cmdline": " ".join(argv),
                "module": argv[argv.index("-m") + 1] if "-m" in argv else argv[0],
                "cwd": p.cwd(),
                "listen": [(c.laddr.ip, c.laddr.port) for c in p.net_connections(kind="inet")
                           if c.status == psutil.CONN_LISTEN]}
    except (psutil.Error, OSError):
        return {}


@dataclass
class KilledRun:
    base: Path
    run_dir: Path
    before: list[dict[str, Any]]
    lock_text: str
    servers_gone_s: float
    all_gone_s: float
    left: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilledRun]:
    """`bench run` (gunicorn-sync, 2 workers, locust --processes 2) started from a folder
    holding a gunicorn.conf.py, a locust.conf and a pyproject.toml [tool.locust], with a
    HOME holding ~/.locust.conf; once a trial is under way: a snapshot, then kill -9."""
    base = tmp_path_factory.mktemp("kill9")
    start, home = base / "start", base / "home"
    start.mkdir()
    home.mkdir()
    (start / "gunicorn.conf.py").write_text(
        f"workers = 7\nopen({str(base / 'gunicorn-conf-was-read')!r}, 'w').write('yes')\n")
    (start / "locust.conf").write_text(f"csv = {base / 'leak-locust-conf'}\n")
    (start / "pyproject.toml").write_text(f'[tool.locust]\ncsv = "{base / "leak-pyproject"}"\n')
    (home / ".locust.conf").write_text(f"csv = {base / 'leak-home'}\n")
    env = {**os.environ, "HOME": str(home), "BENCH_LOCK_DIR": str(base / "locks"),
           "COLUMNS": "200"}
    proc = subprocess.Popen(
        [*BENCH, "run", "--scenario", "io-heavy", "--servers", "gunicorn-sync",
         "--param", "latency_ms=20", "--users", "8", "--workers", "2", "--load-processes", "2",
         "--duration", "20", "--warmup", "1", "--server-cpus", "0", "--load-cpus", "1",
         "--results-dir", str(base / "results"), "--no-report"],
        cwd=start, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        run_dir = run_dir_of(base / "results")
        wait_for_trial(run_dir, locust_processes=3)
        before = [d for d in map(describe, project_processes(run_dir.name)) if d]
        lock_text = (base / "locks" / "cpu-0.lock").read_text()
        started = time.monotonic()
        proc.kill()
        proc.wait()

        def left(include_watchdog: bool) -> list[str]:
            return [c for c in map(cmd, project_processes(run_dir.name))
                    if c and (include_watchdog or "harness.watchdog" not in c)]
        procs.poll_until(lambda: not left(False), 15, every_s=0.05)
        servers_gone = time.monotonic() - started
        procs.poll_until(lambda: not left(True), 20, every_s=0.05)
        all_gone = time.monotonic() - started
        yield KilledRun(base, run_dir, before, lock_text, servers_gone, all_gone, left(True))
    finally:
        stop_bench(proc)


@pytest.mark.slow
def test_kill_9_leaves_no_server_or_locust_behind_within_5_s(killed_run: KilledRun) -> None:
    modules = sorted(p["module"] for p in killed_run.before)
    assert modules == ["gunicorn"] * 3 + ["harness.watchdog"] + ["locust"] * 3
    print(f"servers and locust gone {killed_run.servers_gone_s:.2f} s after kill -9; "
          f"watchdog done and gone after {killed_run.all_gone_s:.2f} s")
    assert killed_run.servers_gone_s < 5, "server or locust processes outlived bench by 5 s"
    assert killed_run.left == [], "the watchdog did not exit by itself"


@pytest.mark.slow
def test_killed_run_reads_crashed_and_its_report_renders(killed_run: KilledRun) -> None:
    run = load_run(killed_run.run_dir)
    assert run.meta.status == "crashed"
    # The watchdog wrote it into run.json too, with what it stopped.
    on_disk = json.loads((killed_run.run_dir / "run.json").read_text())
    assert on_disk["status"] == "crashed", on_disk["status"]
    assert on_disk["crash"]["detected_by"] == "watchdog"
    leaders = {p["pgid"] for p in killed_run.before if "harness.watchdog" not in p["cmdline"]}
    assert set(on_disk["crash"]["stopped_groups"]) <= leaders
    r = bench("report", str(killed_run.run_dir), "-o", str(killed_run.base / "crashed.html"))
    assert r.returncode == 0, r.stderr
    assert "crashed" in (killed_run.base / "crashed.html").read_text()


def test_locust_master_listens_on_loopback_only(killed_run: KilledRun) -> None:
    listening = [(p["module"], ip, port) for p in killed_run.before for ip, port in p["listen"]]
    locust = [x for x in listening if x[0] == "locust"]
    assert locust, "the locust master should listen (ZeroMQ, for its 2 workers)"
    assert {ip for _, ip, _ in listening} == {"127.0.0.1"}, listening
    assert 5557 not in {port for _, _, port in locust}  # a free port, not the fixed default


def test_stray_configs_where_bench_starts_have_no_effect(killed_run: KilledRun) -> None:
    base = killed_run.base
    assert not (base / "gunicorn-conf-was-read").exists()
    gunicorn = [p for p in killed_run.before if p["module"] == "gunicorn"]
    assert len(gunicorn) == 3  # master + --workers 2, not the 7 of ./gunicorn.conf.py
    assert not list(base.glob("leak-*")), "a locust config file was read"
    meta = json.loads((killed_run.run_dir / "run.json").read_text())
    children = meta["children"]
    assert {p["cwd"] for p in killed_run.before} == {children["cwd"]}
    assert not os.path.exists(children["dir"])  # the watchdog removed the dead run's folder
    assert meta["servers"][0]["argv"][-2:] == ["--config", children["gunicorn_config"]]
    locust_cmd = next(p["cmdline"] for p in killed_run.before if p["module"] == "locust")
    assert f"--config {children['locust_config']}" in locust_cmd


def test_cpu_locks_name_the_run_and_die_with_it(killed_run: KilledRun) -> None:
    holder = json.loads(killed_run.lock_text)
    assert holder["run_id"] == killed_run.run_dir.name
    with cpulock.acquire([0, 1], folder=killed_run.base / "locks") as locks:
        assert locks.waited_s < 1  # the kernel dropped them with the killed process


def fake_run(run_dir: Path, harness: dict[str, Any], groups: list[dict[str, Any]]) -> None:
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / "run.json", {
        "schema_version": 2, "run_id": run_dir.name, "status": "running",
        "scenario": {"name": "io-heavy"}, "backend": "local",
        "harness": {**harness, "host": socket.gethostname()}, "trials": []})
    atomic_write_json(run_dir / "groups.json", {"harness": harness, "groups": groups})


@pytest.mark.slow
def test_bench_clean_stops_what_a_dead_run_left_and_nothing_else(tmp_path: Path) -> None:
    port = procs.free_port()
    log = tmp_path / "server.log"
    server = procs.spawn(SERVERS["gunicorn-sync"].argv(port=port, workers=2), cpus=[0],
                         log_path=log)
    bystander = procs.spawn([sys.executable, "-c", "import time; time.sleep(60)"], cpus=[0],
                            log_path=tmp_path / "bystander.log")
    try:
        procs.wait_ready(server, port, log)
        assert procs.poll_until(lambda: len(procs.live_members([server.pid])) == 3, 30)
        left = {"pgid": server.pid, "leader": procs.identity(server.pid), "argv": []}
        leader = procs.identity(bystander.pid)
        assert leader is not None
        # the bystander's pid with another start time: a recycled pid, never to be touched
        recycled = {"pgid": bystander.pid, "argv": [],
                    "leader": {**leader, "start_ticks": leader["start_ticks"] - 1}}
        results = tmp_path / "results"
        run_dir = results / "20260101T000000Z-io-heavy-abc123"
        fake_run(run_dir, dead_identity(), [left, recycled])
        alive_run = results / "20260101T000000Z-io-heavy-def456"  # its harness is alive
        fake_run(alive_run, procs.identity(os.getpid()) or {}, [left])

        dry = subprocess.run([*BENCH, "clean", str(results), "--dry-run"], capture_output=True,
                             text=True, timeout=60, check=False)
        assert dry.returncode == 0, dry.stderr
        assert f"{run_dir.name}: would stop 1 process group(s) [{server.pid}]" in dry.stdout
        assert alive_run.name not in dry.stdout
        assert len(procs.live_members([server.pid])) == 3
        assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

        r = subprocess.run([*BENCH, "clean", str(results)], capture_output=True, text=True,
                           timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        assert f"stopped 1 process group(s) [{server.pid}]" in r.stdout
        assert "marked crashed" in r.stdout
        assert procs.live_members([server.pid]) == []
        assert bystander.poll() is None, "a group whose leader's start time differs was killed"
        assert json.loads((run_dir / "run.json").read_text())["status"] == "crashed"
        assert json.loads((alive_run / "run.json").read_text())["status"] == "running"
        again = subprocess.run([*BENCH, "clean", str(results)], capture_output=True, text=True,
                               timeout=60, check=False)
        assert again.returncode == 0 and "nothing to clean" in again.stdout
    finally:
        procs.stop_group(server, grace_s=2)
        procs.stop_group(bystander, grace_s=2)


def test_load_run_reads_running_with_a_dead_harness_as_crashed(tmp_path: Path) -> None:
    dead, alive = tmp_path / "dead", tmp_path / "alive"
    fake_run(dead, dead_identity(), [])
    fake_run(alive, procs.identity(os.getpid()) or {}, [])
    assert load_run(dead).meta.status == "crashed"
    assert "is gone" in load_run(dead).meta.crash_reason
    assert load_run(alive).meta.status == "running"
    elsewhere = tmp_path / "elsewhere"
    fake_run(elsewhere, dead_identity(), [])
    meta = json.loads((elsewhere / "run.json").read_text())
    meta["harness"]["host"] = "another-host"
    atomic_write_json(elsewhere / "run.json", meta)
    assert load_run(elsewhere).meta.status == "running"  # this machine cannot tell


HOLDER = """
import sys, time
from pathlib import Path
from harness import cpulock
locks = cpulock.acquire([0], folder=Path(sys.argv[1]), run_id="R-holder")
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.alone
@pytest.mark.slow
def test_a_second_run_on_an_overlapping_cpu_is_refused_or_waits(tmp_path: Path) -> None:
    folder = tmp_path / "locks"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(cpulock.CpuBusy, match=rf"CPU 0 is in use by run R-holder \(pid {holder.pid}\)"):
            cpulock.acquire([1, 0], folder=folder)
        with cpulock.acquire([1], folder=folder):  # no overlap: fine
            pass
        r = subprocess.run(
            [*BENCH, "run", "--scenario", "io-heavy", "--servers", "uvicorn", "--users", "2",
             "--duration", "1", "--server-cpus", "0", "--load-cpus", "1",
             "--results-dir", str(tmp_path / "results")],
            capture_output=True, text=True, timeout=60, check=False,
            # Without BENCH_WAIT_CPUS (a developer's shell may set it): refuse at once.
            env={**{k: v for k, v in os.environ.items() if k != "BENCH_WAIT_CPUS"},
                 "BENCH_LOCK_DIR": str(folder), "COLUMNS": "300"})
        assert r.returncode == 2, r.stdout + r.stderr
        assert r.stderr.startswith(f"bench: error: CPU 0 is in use by run R-holder (pid {holder.pid})")
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert not list((tmp_path / "results").glob("*/run.json"))  # nothing started
        threading.Timer(1.0, holder.kill).start()
        with cpulock.acquire([0, 1], folder=folder, wait_s=20) as locks:
            assert 0.5 < locks.waited_s < 20
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.alone
@pytest.mark.slow
def test_sighup_is_handled_like_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*BENCH, "run", "--scenario", "io-heavy", "--servers", "uvicorn", "--users", "8",
         "--param", "latency_ms=20", "--duration", "20", "--warmup", "0.5",
         "--results-dir", str(tmp_path / "results"), "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "BENCH_LOCK_DIR": str(tmp_path / "locks")})
    try:
        run_dir = run_dir_of(tmp_path / "results")
        wait_for_trial(run_dir, locust_processes=1)
        proc.send_signal(signal.SIGHUP)
        _, stderr = proc.communicate(timeout=60)
    finally:
        stop_bench(proc)
    assert proc.returncode == 129, stderr
    assert "Traceback" not in stderr
    assert load_run(run_dir).meta.status == "interrupted"
    assert project_processes(run_dir.name) == []


def test_watchdog_sweep_removes_only_the_runs_compose_networks(tmp_path: Path) -> None:
    """Containers and networks are found by their compose project label, which names the
    run's suffix; another run's are left. Networks stand in for both (no image needed)."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - no engine here: nothing to test
        pytest.skip(f"no docker engine: {exc}")
    label = "com.docker.compose.project"
    ours_net = client.networks.create(f"bench-abc123-t-{os.getpid()}",
                                      labels={label: f"bench-abc123-uvicorn-{os.getpid():x}"})
    other = client.networks.create(f"bench-def456-t-{os.getpid()}",
                                   labels={label: f"bench-def456-uvicorn-{os.getpid():x}"})
    try:
        run_dir = tmp_path / "20260101T000000Z-io-heavy-abc123"
        fake_run(run_dir, dead_identity(), [])
        report = clean_run(run_dir)
        assert report.networks == [ours_net.name]
        names = [n.name for n in client.networks.list()]
        assert ours_net.name not in names and other.name in names
        assert report.marked_crashed
    finally:
        for net in (ours_net, other):
            try:
                net.remove()
            except docker.errors.NotFound:
                pass
