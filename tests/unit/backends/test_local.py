"""harness.backends.local with real uvicorn processes: a deployment is ready on its port,
pinned, tells an idle server from one a client holds, records what it started, keeps a
folder of its own (for a config that keeps files) for as long as it runs, and stops with
an exit code; a server that cannot start is one ProcessError with its log, not retried,
leaving nothing."""

from __future__ import annotations

import dataclasses
import socket
import time
from pathlib import Path

import psutil
import pytest

from harness.backends.local import LocalBackend, LocalServer
from harness.procs import ProcessError, child_dir, http_get, live_members
from harness.servers import SERVERS

UVICORN = SERVERS["uvicorn"]
#: uvicorn with a folder of the deployment's own on its command line (``--app-dir``
#: adds it to sys.path: harmless), as mod_wsgi-express's server root is.
WITH_STATE = dataclasses.replace(UVICORN, name="uvicorn-state",
                                 template=(*UVICORN.template, "--app-dir", "{state_dir}"))


def test_a_deployment_is_ready_idle_unless_held_keeps_its_folder_and_stops(
        tmp_path: Path) -> None:
    server = LocalBackend().deploy(WITH_STATE, workers=1, cpus=[0],
                                   log_path=tmp_path / "u.log", clock=time.monotonic,
                                   run_id="r", repeat=0)
    try:
        assert server.proc is not None and server.psutil_view
        assert http_get(server.port, "/health") == (200, "text/plain; charset=utf-8", b"ok")
        info = server.info()
        assert (info["backend"], info["port"], info["pid"]) == ("local", server.port,
                                                                server.proc.pid)
        assert 0 < info["startup_s"] < 30 and "user_namespace" not in info
        leader = psutil.Process(server.proc.pid)
        assert leader.cpu_affinity() == [0]
        # The deployment's own folder, under the children's folder, on its command line.
        state = server.state_dir
        assert state is not None and state.is_dir() and state.parent == child_dir()
        assert info["state_dir"] == str(state) and str(state) in leader.cmdline()
        assert server.exit_code() is None and server.wait_idle(5)
        with socket.create_connection(("127.0.0.1", server.port)) as held:
            held.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert held.recv(1024).startswith(b"HTTP/1.1 200")  # accepted, kept alive
            assert not server.is_idle() and not server.wait_idle(0.1)
        assert server.wait_idle(5)
        assert server.extra_samples() == [] and server.engine_samples() == []
    finally:
        code = server.stop()
    assert code is not None and server.exit_code() == code
    assert live_members([server.proc.pid]) == []  # the whole group is gone
    assert not state.exists() and server.state_dir is None  # and its folder with it


def test_a_server_that_cannot_start_is_one_process_error_and_leaves_nothing(
        tmp_path: Path) -> None:
    log = tmp_path / "bad.log"
    with pytest.raises(ProcessError) as info:
        LocalServer(WITH_STATE, workers=1, cpus=[0], log_path=log, clock=time.monotonic,
                    app="no_such_module:app")
    assert "no_such_module" in info.value.log_tail
    # A real failure, not a port taken: tried once, not START_ATTEMPTS times.
    assert log.read_text().count("Could not import module") == 1
    assert not list(child_dir().glob(f"{WITH_STATE.name}-*"))  # its state folder went too
