"""harness.backends.docker_stats without a docker engine: connections are counted from a
process's own namespace table (a connection still in the listen queue only when asked,
IPv6 too), the container sampler puts that count on its samples, an engine reading
missing figures gives NaN rather than a wrong number, and the stats thread hands each
reading back once, stops when told, and ends with a note when the engine is gone."""

from __future__ import annotations

import http.server
import json
import math
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from harness.backends.docker_stats import (
    ContainerTreeSampler,
    EngineStats,
    engine_row,
    netns_connections,
)
from harness.results import SAMPLE_COLUMNS

MIB = 2**20


def test_a_connection_in_the_listen_queue_counts_only_when_asked() -> None:
    pid = os.getpid()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            # The handshake is done (ESTABLISHED) but nobody accepted it (inode 0).
            assert netns_connections(pid, port, accepted_only=False) == 1
            assert netns_connections(pid, port, accepted_only=True) == 0
            conn, _ = server.accept()
            with conn:
                assert netns_connections(pid, port, accepted_only=True) == 1
    assert netns_connections(2**22 + 1, port, accepted_only=False) == 0  # no such process


def test_ipv6_connections_are_counted_too() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    with server:
        port = server.getsockname()[1]
        with socket.create_connection(("::1", port)):
            conn, _ = server.accept()
            with conn:
                assert netns_connections(os.getpid(), port, accepted_only=True) == 1


def test_the_container_sampler_counts_the_connections_the_server_holds() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)), \
                socket.create_connection(("127.0.0.1", port)):
            conn, _ = server.accept()  # one held, one left in the queue
            with conn:
                sampler = ContainerTreeSampler(os.getpid(), port=port, clock=time.monotonic,
                                               cpus=[0])
                sampler.count_connections = True
                with sampler:
                    deadline = time.monotonic() + 5
                    while not sampler.samples and time.monotonic() < deadline:
                        time.sleep(0.02)
                first = sampler.samples[0]  # the first reading is a full one
                assert first.connections == 1.0


def test_an_engine_reading_without_figures_gives_nan() -> None:
    # cgroup v1 names the page cache total_inactive_file; a stopped container's read time
    # is the zero time, and its CPU counter then tells nothing.
    v1 = {"read": "0001-01-01T00:00:00Z", "cpu_stats": {"cpu_usage": {"total_usage": 5}},
          "memory_stats": {"usage": 64 * MIB, "stats": {"total_inactive_file": 16 * MIB}}}
    last = (1.0, 0.0)
    row, kept = engine_row(v1, last, t_s=3.0, server="hypercorn", repeat=1.0)
    assert row["rss_mib"] == 48 and math.isnan(row["cpu_percent"]) and kept == last
    assert math.isnan(row["threads"])  # no pids controller reading
    empty, none = engine_row({}, None, t_s=4.0, server="hypercorn", repeat=1.0)
    assert none is None and set(empty) == set(SAMPLE_COLUMNS)
    figures = [c for c in SAMPLE_COLUMNS if c not in ("t_s", "source", "server", "repeat")]
    assert all(math.isnan(empty[c]) for c in figures)
    assert (empty["t_s"], empty["source"], empty["server"]) == (4.0, "engine", "hypercorn")


def _reading(second: int, cpu_s: float) -> dict[str, Any]:
    return {"read": f"2026-03-01T12:30:{second:02d}.000000000Z",
            "cpu_stats": {"cpu_usage": {"total_usage": int(cpu_s * 1e9)}},
            "memory_stats": {"usage": 100 * MIB, "stats": {"inactive_file": 20 * MIB}},
            "pids_stats": {"current": 7}}


class _StatsStream(http.server.BaseHTTPRequestHandler):
    """An engine's ``GET /containers/<id>/stats?stream=1`` on a unix socket: one reading
    per second of engine time, 0.25 s of CPU in each, sent every 20 ms, ``limit`` of
    them (then the stream ends), or until the client goes."""

    protocol_version = "HTTP/1.1"
    limit = 3

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i in range(self.limit):
                data = json.dumps(_reading(10 + i, 0.25 * i)).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(0.02)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went

    def log_message(self, *_args: Any) -> None:
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        request, _ = super().get_request()
        return request, ("local", 0)  # http.server wants a (host, port) client address


def _engine_at(tmp_path: Path, limit: int) -> Iterator[docker.DockerClient]:
    path = tmp_path / "engine.sock"
    handler = type("Stream", (_StatsStream,), {"limit": limit})
    with _UnixServer(str(path), handler) as server:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        # An API version given: the SDK does not ask the engine for one first.
        yield docker.DockerClient(base_url=f"unix://{path}", version="1.41", timeout=5)
        server.shutdown()


@pytest.fixture
def short_stream(tmp_path: Path) -> Iterator[docker.DockerClient]:
    yield from _engine_at(tmp_path, 3)


@pytest.fixture
def endless_stream(tmp_path: Path) -> Iterator[docker.DockerClient]:
    yield from _engine_at(tmp_path, 10_000)


def test_engine_readings_are_handed_back_once(short_stream: docker.DockerClient) -> None:
    stats = EngineStats(short_stream, "c0ffee", server="uvicorn", repeat=2.0,
                        clock=time.monotonic).start()
    stats._thread.join(5)
    assert not stats._thread.is_alive() and stats.error == ""  # the stream ended
    assert len(stats.peek()) == 3 and len(stats.peek()) == 3  # peek consumes nothing
    rows = stats.drain()
    assert stats.drain() == []
    # 0.25 s of CPU per second of engine time: 25% of a core from the second reading on
    assert math.isnan(rows[0]["cpu_percent"])
    assert [r["cpu_percent"] for r in rows[1:]] == pytest.approx([25.0, 25.0])
    assert all(r["rss_mib"] == 80 and r["repeat"] == 2.0 for r in rows)
    assert rows[0]["t_s"] <= rows[1]["t_s"] <= rows[2]["t_s"]


def test_a_stopped_reader_ends_and_a_gone_engine_is_a_note(
        endless_stream: docker.DockerClient, tmp_path: Path) -> None:
    stats = EngineStats(endless_stream, "c0ffee", server="uvicorn", repeat=1.0,
                        clock=time.monotonic).start()
    deadline = time.monotonic() + 5
    while len(stats.peek()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stats.stop(wait_s=5)
    assert not stats._thread.is_alive()
    got = len(stats.drain())
    assert got >= 2 and stats.error == ""
    gone = docker.DockerClient(base_url=f"unix://{tmp_path}/gone.sock", version="1.41",
                               timeout=5)
    lost = EngineStats(gone, "c0ffee", server="uvicorn", repeat=1.0,
                       clock=time.monotonic).start()
    lost._thread.join(5)
    assert lost.drain() == [] and "No such file or directory" in lost.error
    assert "\n" not in lost.error
