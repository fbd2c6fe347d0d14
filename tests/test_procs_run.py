"""harness.procs.run: run-to-completion commands through the one subprocess boundary."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.procs import CommandError, ProcessError, poll_until, run, wait_ready


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
