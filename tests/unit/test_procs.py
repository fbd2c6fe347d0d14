"""harness.procs, the one subprocess boundary: run-to-completion commands (output, exit
code, allow-listed environment, timeouts); teardown that an interrupt cannot cut short,
children that die with the harness, the record of live groups, identities that survive
pid recycling."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness import PROJECT_ROOT, procs
from harness.procs import (
    CommandError,
    ProcessError,
    identity,
    ours,
    poll_until,
    run,
    spawn,
    stop_group,
    wait_ready,
)
from harness.runner import Interrupted, _signals_as_interrupt

STUBBORN = ("import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "os.fork(); time.sleep(60)")


def alive(pids: list[int]) -> list[int]:
    return [p for p in pids if psutil.pid_exists(p)
            and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def stubborn_group(tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    """A real group of two processes that ignore SIGTERM."""
    proc = spawn([sys.executable, "-c", STUBBORN], cpus=[0], log_path=tmp_path / "s.log")
    assert procs.poll_until(lambda: len(psutil.Process(proc.pid).children()) == 1, 10)
    time.sleep(0.2)  # the handler is set before the fork; give the child time to exist
    return proc, [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children())]


@pytest.mark.parametrize("target", ["process", "main-thread"])
@pytest.mark.slow
def test_interrupt_inside_stop_group_still_kills_and_reaps_the_group(
        tmp_path: Path, target: str) -> None:
    """A signal in the grace period used to unregister a live group and leave it.

    ``process``: SIGTERM to the whole process; another thread takes it, so the runner's
    handler raises inside stop_group, which goes straight to SIGKILL and re-raises.
    ``main-thread``: SIGTERM to the main thread, blocked there until the group is gone.
    """
    proc, members = stubborn_group(tmp_path)
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        if target == "process":
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            signal.pthread_kill(main, signal.SIGTERM)

    timer = threading.Timer(0.3, interrupt)
    start = time.monotonic()
    with pytest.raises(Interrupted), _signals_as_interrupt():
        timer.start()
        stop_group(proc, grace_s=3.0)
        # nothing may run between the stop and the interrupt's arrival but the stop
        time.sleep(5)
        pytest.fail("the interrupt never arrived")
    elapsed = time.monotonic() - start
    timer.join()
    assert alive(members) == [], "an interrupted stop left the group running"
    assert proc.returncode == -signal.SIGKILL  # reaped, by SIGKILL (it ignores SIGTERM)
    assert proc.pid not in procs._started
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    if target == "process":
        assert elapsed < 2.5, "interrupted mid-grace: no more waiting for the grace period"
    else:
        assert elapsed >= 3.0, "blocked: the grace period was served in full"


HELPER = """
import json, sys, time
from pathlib import Path
from harness import procs
from harness.load import LoadSpec, locust_argv
from harness.servers import SERVERS
tmp = Path(sys.argv[1])
port = procs.free_port()
server = procs.spawn(SERVERS["gunicorn-sync"].argv(port=port, workers=2), cpus=[0],
                     log_path=tmp / "server.log")
procs.wait_ready(server, port, tmp / "server.log")
spec = LoadSpec(users=4, warmup_s=0, duration_s=60, method="GET", path="/health",
                expected_status=200, expected_body=b"ok", name="x", processes=2)
(tmp / "records").mkdir()
(tmp / "spec.json").write_text(json.dumps({
    "name": "x", "method": "GET", "path": "/health", "expected_status": 200,
    "expected_body": "ok", "records_dir": str(tmp / "records"), "start_spread_s": 0,
    "options": {"processes": 2}}))
locust = procs.spawn(locust_argv(spec, port=port, spec_path=tmp / "spec.json",
                                 ),
                     cpus=[1], log_path=tmp / "locust.log")
print(json.dumps({"server": server.pid, "locust": locust.pid, "port": port,
                  "child_dir": str(procs.child_dir())}), flush=True)
time.sleep(120)
"""


def group_members(pgid: int) -> list[int]:
    return procs.live_members([pgid])


def assert_loopback_listeners(pids: list[int]) -> None:
    """``ss -ltnp``: every TCP listener of ``pids`` (locust's master with --processes 2:
    its ZeroMQ port) is on 127.0.0.x, and there is one (locust's default is *:5557)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10,
                         check=True).stdout
    ours = [line.split()[3] for line in out.splitlines()
            if any(f"pid={pid}," in line for pid in pids)]
    assert ours, f"no listener of {pids} in:\n{out}"
    assert all(addr.startswith("127.0.0.") for addr in ours), ours


@pytest.mark.slow
def test_children_die_with_the_harness_by_parent_death_signal_alone(tmp_path: Path) -> None:
    """``kill -9`` of the process that spawned them, no watchdog, no finally: the kernel's
    parent-death signal reaches each group leader (gunicorn's arbiter, locust's master
    with --processes 2), and each stops its own workers."""
    helper = subprocess.Popen([sys.executable, "-c", HELPER, str(tmp_path)], cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert helper.stdout is not None
        pgids = json.loads(helper.stdout.readline())
        # Wait until the load runs (its users connected): a master killed while it is
        # still starting up dies before it can stop its workers; the watchdog is there
        # for that case (tests/e2e/test_safety.py), not the parent-death signal.
        assert procs.poll_until(lambda: len(group_members(pgids["locust"])) == 3
                                and len(group_members(pgids["server"])) == 3
                                and procs.client_connections(pgids["port"]) >= 4, 30), \
            (tmp_path / "locust.log").read_text()
        assert_loopback_listeners(group_members(pgids["locust"]))
        members = [*group_members(pgids["server"]), *group_members(pgids["locust"])]
        start = time.monotonic()
        helper.kill()
        helper.wait()
        gone = procs.poll_until(lambda: not alive(members), 15, every_s=0.05)
        took = time.monotonic() - start
    finally:
        if helper.poll() is None:
            helper.kill()
            helper.wait()
        shutil.rmtree(pgids["child_dir"], ignore_errors=True)  # its exit handler never ran
        for pgid in ("server", "locust"):  # a failed test must still leave nothing
            procs.kill_recorded([{"pgid": pgids[pgid], "leader": {"boot_id": procs._boot_id(),
                                                                   "start_ticks": -1}}])
    assert gone, f"left after kill -9 of their parent: {alive(members)}"
    print(f"all {len(members)} processes gone {took:.2f} s after kill -9")
    assert took < 10


def test_spawn_asks_for_the_parent_death_signal_from_the_main_thread_only(
        tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    from_main = spawn(argv, cpus=[0], log_path=tmp_path / "a.log")
    box: list[subprocess.Popen[bytes]] = []
    t = threading.Thread(target=lambda: box.append(spawn(argv, cpus=[0],
                                                         log_path=tmp_path / "b.log")))
    t.start()
    t.join()
    try:
        assert "--die-with" in from_main.args  # type: ignore[operator]
        # A thread's exit would fire it: from a thread, the watchdog is the only net.
        assert "--die-with" not in box[0].args  # type: ignore[operator]
        assert psutil.Process(from_main.pid).cwd() == str(procs.child_dir() / "cwd")
    finally:
        stop_group(from_main)
        stop_group(box[0])


def test_record_groups_lists_live_groups_and_identity_rejects_a_recycled_pid(
        tmp_path: Path) -> None:
    record = tmp_path / "groups.json"
    procs.record_groups(record)
    try:
        proc = spawn([sys.executable, "-c", "import time; time.sleep(30)"], cpus=[0],
                     log_path=tmp_path / "c.log")
        try:
            (group,) = [g for g in procs.read_groups(record) if g["pgid"] == proc.pid]
            assert group["leader"]["start_ticks"] == identity(proc.pid)["start_ticks"]  # type: ignore[index]
            assert json.loads(record.read_text())["harness"]["pid"] == os.getpid()
            assert ours(group)
            recycled = {**group, "leader": {**group["leader"],
                                            "start_ticks": group["leader"]["start_ticks"] + 1}}
            assert not ours(recycled)  # same pid, another start time: never ours
            assert procs.kill_recorded([recycled]) == [] and proc.poll() is None
        finally:
            stop_group(proc)
        assert proc.pid not in [g["pgid"] for g in procs.read_groups(record)]
        assert not ours(group)  # gone
    finally:
        procs.record_groups(None)


def test_same_process_tells_alive_gone_and_unknown() -> None:
    me = identity(os.getpid())
    assert procs.same_process(me) is True
    assert procs.same_process({**me, "start_ticks": me["start_ticks"] + 1}) is False  # type: ignore[index]
    assert procs.same_process({**me, "boot_id": "an-earlier-boot"}) is False  # type: ignore[dict-item]
    assert procs.same_process({"pid": 1}) is None
    dead = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    rec = identity(dead.pid)
    dead.kill()
    dead.wait()
    assert procs.same_process(rec) is False


# --- procs.run ---------------------------------------------------------------------------


def test_output_exit_code_and_an_allow_listed_environment(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv("BENCH_SECRET_TOKEN", "leak")
    monkeypatch.setenv("BENCH_RUN_ID", "run-1")
    code = ("import os, sys; print(os.environ.get('BENCH_SECRET_TOKEN'),"
            " os.environ.get('BENCH_RUN_ID')); sys.stderr.write('warn'); sys.exit(3)")
    done = run([sys.executable, "-c", code], timeout_s=30)
    assert done.returncode == 3
    assert done.stdout.split() == ["None", "run-1"]  # only the allow-list reaches it
    assert done.stderr == "warn" and done.duration_s > 0
    explicit = run([sys.executable, "-c", "import os; print(sorted(os.environ))"],
                   timeout_s=30, env={"PATH": os.defpath, "ONLY": "1"})
    assert "'ONLY'" in explicit.stdout and "BENCH_RUN_ID" not in explicit.stdout


def test_check_keeps_stderr_and_a_missing_program_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="exited with code 1") as info:
        run([sys.executable, "-c", "import sys; sys.exit('no such thing here')"], timeout_s=30,
            check=True)
    assert info.value.returncode == 1 and "no such thing here" in info.value.stderr
    assert isinstance(info.value, ProcessError) and "no such thing" in info.value.log_tail
    with pytest.raises(CommandError, match="could not start") as missing:
        run([str(tmp_path / "not-a-program")], timeout_s=5)
    assert missing.value.returncode is None and not missing.value.timed_out


@pytest.mark.slow
def test_a_timeout_kills_the_whole_group_and_log_path_keeps_the_output(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "cmd.log"
    pidfile = tmp_path / "grandchild.pid"
    start = time.monotonic()
    with pytest.raises(CommandError, match="no result after 1 s") as info:
        run(["sh", "-c", f"echo started; sleep 60 & echo $! > {pidfile}; wait"], timeout_s=1,
            log_path=log, cwd=tmp_path)
    assert info.value.timed_out and time.monotonic() - start < 10
    grandchild = int(pidfile.read_text())

    def gone() -> bool:
        try:
            return psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    assert poll_until(gone, 5), "the command's own child outlived the timeout"
    text = log.read_text()
    assert text.startswith("$ sh -c echo started") and "started" in text.splitlines()[1]
    done = run(["sh", "-c", "echo again"], timeout_s=10, log_path=log)
    assert done.stdout == "" and log.read_text().endswith("again\n")  # appended


def test_wait_ready_takes_an_exit_code_callable_and_a_log_callable() -> None:
    with pytest.raises(ProcessError, match="exited with code 3 before it was ready") as info:
        wait_ready(lambda: 3, 1, lambda: "container said: boom", deadline_s=5)
    assert info.value.log_tail == "container said: boom"
    with pytest.raises(ProcessError, match="not ready after 0 s"):
        wait_ready(lambda: None, 1, lambda: "", deadline_s=0.2)
