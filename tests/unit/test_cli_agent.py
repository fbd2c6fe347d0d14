"""``bench agent``: bad options are refused in one line before any locust worker starts, and
an agent whose master never answers gives up after ``--timeout`` with one line and exit 2,
leaving no worker process and no temporary folder behind."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.support import bench_here


def error_line(code: int, out: str, err: str) -> str:
    """The one ``bench: error:`` line of a refused command (exit 2, nothing on stdout)."""
    lines = err.strip().splitlines()
    assert code == 2 and out == "", (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), err
    return lines[0]


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agent_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("bench-agent-*"))


@pytest.mark.parametrize(("args", "message"), [
    (("--master", "127.0.0.1:0"), "--master '127.0.0.1:0': expected HOST:PORT"),
    (("--master", "127.0.0.1:65536"), "--master '127.0.0.1:65536': expected HOST:PORT"),
    (("--master", "127.0.0.1:5557", "--timeout", "0"), "--timeout 0.0: must be > 0 and <= 86400 s"),
    (("--master", "127.0.0.1:5557", "--timeout", "86401"), "--timeout 86401.0: must be > 0"),
    (("--master", "127.0.0.1:5557", "--cpus", "x"), "--cpus 'x': expected CPU numbers"),
    (("--master", "127.0.0.1:5557", "--cpus", "4096"), "--cpus '4096': CPU 4096 not available"),
])
def test_bad_options_are_one_line_and_start_nothing(
        args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = agent_folders()
    line = error_line(*bench_here(capsys, monkeypatch, "agent", *args))
    assert message in line
    assert psutil.Process().children(recursive=True) == []
    assert agent_folders() == before


@pytest.mark.alone  # starts locust
def test_no_master_within_the_timeout_is_one_line_and_leaves_nothing(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two real locust workers pinned to CPU 0, pointed at a port nobody listens on: after
    the 0.3 s timeout none of them has reached a master; they are stopped, the folder the
    workers report into is removed, and the line says how many of how many connected."""
    port = free_port()
    before = agent_folders()
    line = error_line(*bench_here(capsys, monkeypatch, "agent", "--master", f"127.0.0.1:{port}",
                                  "--processes", "2", "--cpus", "0", "--timeout", "0.3"))
    assert f"0 of 2 worker(s) reached a master at 127.0.0.1:{port} within 0.3 s" in line
    assert f"--master-bind 127.0.0.1:{port}` first" in line
    assert psutil.Process().children(recursive=True) == []
    assert agent_folders() == before
