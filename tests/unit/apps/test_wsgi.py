"""harness.apps.wsgi called in-process as a server calls it (PEP 3333: a real environ,
``start_response``, the returned iterable): every route's status line, headers and bytes
are the reference (harness.apps.work.expected), an SSE stream is produced lazily, event by
event, a WebSocket handshake is the 404 of any unknown path, and a failed real-I/O call is
a 503 saying why."""

from __future__ import annotations

import io
import json
import time
import wsgiref.util
from typing import Any

import pytest

from harness.apps import drivers
from harness.apps.work import PARAM_BOUNDS, expected, mask_timestamps, parse_sse_data
from harness.apps.wsgi import app
from harness.procs import free_port

PATHS = ["/health", "/io?latency_ms=0", "/io?latency_ms=5", "/cpu?work=0", "/cpu?work=30",
         "/io?latency_ms=abc", f"/io?latency_ms={PARAM_BOUNDS['latency_ms'][1] + 1}",
         "/cpu?work=1e3", "/nope", "/", "/ws", "/sse?events=0", "/sse?size=x",
         "/queries?queries=0", "/upstream?calls=101"]


def environ(path_and_query: str, method: str = "GET", **headers: str) -> dict[str, Any]:
    path, _, query = path_and_query.partition("?")
    env: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
                           "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": io.BytesIO(b""),
                           **{f"HTTP_{k.upper()}": v for k, v in headers.items()}}
    wsgiref.util.setup_testing_defaults(env)
    return env


def call(env: dict[str, Any]) -> tuple[str, list[tuple[str, str]], Any]:
    """(status line, headers, the returned iterable, not consumed)."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None
                       ) -> Any:
        started.append((status, headers))
        return lambda _data: None

    body = app(env, start_response)
    (status, headers), = started
    return status, headers, body


@pytest.mark.parametrize("path", PATHS)
def test_every_route_answers_the_reference_bytes(path: str) -> None:
    status, headers, body = call(environ(path))
    code, ctype, reference = expected(path)
    payload = b"".join(body)
    assert (int(status.split()[0]), payload) == (code, reference)
    assert dict(headers) == {"Content-Type": ctype.decode(),
                             "Content-Length": str(len(reference))}
    assert status == {200: "200 OK", 400: "400 Bad Request", 404: "404 Not Found"}[code]


def test_head_is_answered_like_get_and_other_methods_are_405() -> None:
    get = call(environ("/io?latency_ms=0"))
    head = call(environ("/io?latency_ms=0", method="HEAD"))
    assert head[:2] == get[:2]  # the server drops a HEAD's body
    status, _, body = call(environ("/io", method="POST"))
    assert status == "405 Method Not Allowed"
    assert json.loads(b"".join(body)) == {"error": "method not allowed"}


def test_a_websocket_handshake_is_the_404_of_an_unknown_path() -> None:
    handshake = call(environ("/ws", HOST="127.0.0.1", UPGRADE="websocket",
                             CONNECTION="Upgrade", SEC_WEBSOCKET_VERSION="13",
                             SEC_WEBSOCKET_KEY="dGhlIHNhbXBsZSBub25jZQ=="))
    unknown = call(environ("/nope"))
    assert handshake[0] == unknown[0] == "404 Not Found"
    assert b"".join(handshake[2]) == b"".join(unknown[2])


def test_an_sse_stream_is_made_lazily_event_by_event() -> None:
    path = "/sse?events=3&interval_ms=100&size=8"
    started = time.monotonic()
    status, headers, stream = call(environ(path))
    assert time.monotonic() - started < 0.09  # nothing produced (made: 0.2 s of sleeps)
    assert status == "200 OK"
    # no Content-Length: the server chunks it or closes after it (names: any case)
    assert {k.lower(): v for k, v in headers} == {"content-type": "text/event-stream",
                                                  "cache-control": "no-cache"}
    events, arrived = [], []
    for event in stream:  # each block as it is yielded, for the server to send at once
        events.append(event)
        arrived.append(time.monotonic() - started)
    assert mask_timestamps(b"".join(events)) == expected(path)[2]
    # the first at once, then one every 100 ms
    assert arrived[0] < 0.09 and arrived[2] - arrived[0] >= 0.19
    stamps = [parse_sse_data(e.split(b"data: ")[1].rstrip(b"\n"))[1] for e in events]
    assert stamps == sorted(stamps)


def test_a_failed_real_io_call_is_a_503_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(drivers.ENV_PG_URL, raising=False)
    status, headers, body = call(environ("/queries?queries=2"))
    assert (status, dict(headers)["Content-Type"]) == ("503 Service Unavailable",
                                                      "application/json")
    assert json.loads(b"".join(body))["error"].startswith(
        "Unavailable: BENCH_PG_URL is not set")
    # An upstream where nothing listens: the driver's own error, not a number.
    monkeypatch.setenv(drivers.ENV_UPSTREAM_URL, f"http://127.0.0.1:{free_port()}")
    status, _, body = call(environ("/upstream?calls=1&latency_ms=0"))
    assert status == "503 Service Unavailable"
    assert json.loads(b"".join(body))["error"].startswith("ConnectionError: ")
