"""harness.apps.asgi called in-process as a server calls it (asyncio, real receive and send
callables): every route's status, content type and bytes are the reference
(harness.apps.work.expected), an SSE stream goes out event by event and stops when the
client goes, the WebSocket echo stamps each message, lifespan completes, and a request
for real I/O the process was not given is a 503 naming what is missing."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import pytest

from harness.apps import drivers
from harness.apps.asgi import app
from harness.apps.work import (
    PARAM_BOUNDS,
    expected,
    mask_timestamps,
    parse_sse_data,
    parse_ws_echo,
)

#: Every plain route and its refusals (bad, out-of-bounds, unknown), and /ws as plain HTTP.
PATHS = ["/health", "/io?latency_ms=0", "/io?latency_ms=5", "/cpu?work=0", "/cpu?work=30",
         "/io?latency_ms=abc", f"/io?latency_ms={PARAM_BOUNDS['latency_ms'][1] + 1}",
         "/cpu?work=1e3", "/nope", "/", "/ws", "/sse?events=0", "/sse?size=x",
         "/queries?queries=0", "/upstream?calls=101"]


async def serve(scope: dict[str, Any], incoming: list[dict[str, Any]] | None = None,
                ) -> list[dict[str, Any]]:
    """Run the app on ``scope``; its receive gives ``incoming`` in turn, then waits (a
    client that stays); returns every message it sent."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in incoming or []:
        queue.put_nowait(message)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return await queue.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), 10)
    return sent


def http(path_and_query: str, method: str = "GET") -> dict[str, Any]:
    path, _, query = path_and_query.partition("?")
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "headers": [(b"host", b"127.0.0.1")]}


def answer(sent: list[dict[str, Any]]) -> tuple[int, dict[bytes, bytes], bytes]:
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    assert all(b["type"] == "http.response.body" for b in bodies)
    return start["status"], dict(start["headers"]), b"".join(b["body"] for b in bodies)


@pytest.mark.parametrize("path", PATHS)
def test_every_route_answers_the_reference_bytes(path: str) -> None:
    status, headers, body = answer(asyncio.run(serve(http(path))))
    assert (status, headers[b"content-type"], body) == expected(path)
    assert headers[b"content-length"] == str(len(body)).encode()


def test_an_sse_stream_goes_out_event_by_event_stamped_when_sent() -> None:
    path = "/sse?events=4&interval_ms=20&size=8"
    before = time.time_ns()
    sent = asyncio.run(serve(http(path)))
    after = time.time_ns()
    status, headers, body = answer(sent)
    assert (status, headers[b"content-type"]) == expected(path)[:2]
    assert headers[b"cache-control"] == b"no-cache" and b"content-length" not in headers
    assert mask_timestamps(body) == expected(path)[2]
    events = sent[1:]
    assert [m.get("more_body") for m in events] == [True, True, True, False]  # one each
    stamps = [parse_sse_data(m["body"].split(b"data: ")[1].rstrip(b"\n"))[1] for m in events]
    assert before <= stamps[0] and stamps[-1] <= after
    # one interval apart at least (10% off for the wall clock against the loop's)
    assert all(b - a >= 18_000_000 for a, b in itertools.pairwise(stamps))


def test_a_stream_stops_when_the_client_goes() -> None:
    started = time.monotonic()
    sent = asyncio.run(serve(http("/sse?events=50&interval_ms=20&size=8"),
                             [{"type": "http.disconnect"}]))
    assert len(sent) == 2 and sent[1]["more_body"] is True  # the head and event 0 only
    assert time.monotonic() - started < 0.5  # not the 49 x 20 ms of the whole stream


def test_the_websocket_echo_stamps_each_message_with_its_receipt() -> None:
    scope = {"type": "websocket", "path": "/ws", "query_string": b"", "headers": [],
             "subprotocols": []}
    before = time.time_ns()
    sent = asyncio.run(serve(scope, [{"type": "websocket.connect"},
                                     {"type": "websocket.receive", "text": "hello"},
                                     {"type": "websocket.receive", "bytes": b"\x00\xff"},
                                     {"type": "websocket.disconnect", "code": 1000}]))
    after = time.time_ns()
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.send"]
    text_ns, text = parse_ws_echo(sent[1]["text"])
    bytes_ns, data = parse_ws_echo(sent[2]["bytes"])
    assert (text, data) == ("hello", b"\x00\xff") and "bytes" not in sent[1]
    assert before <= text_ns <= bytes_ns <= after
    other = asyncio.run(serve({**scope, "path": "/nope"}, [{"type": "websocket.connect"}]))
    assert other == [{"type": "websocket.close", "code": 1000}]  # refused before accepting


def test_lifespan_completes_and_other_scopes_get_nothing() -> None:
    sent = asyncio.run(serve({"type": "lifespan", "asgi": {"version": "3.0"}},
                             [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]
    assert asyncio.run(serve({"type": "webtransport", "path": "/"})) == []


def test_real_io_without_its_driver_is_a_503_saying_what_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(drivers.ENV_DRIVER["asgi"], raising=False)
    for path in ("/db?latency_ms=0", "/queries?queries=2", "/upstream?calls=1&latency_ms=0"):
        status, headers, body = answer(asyncio.run(serve(http(path))))
        assert (status, headers[b"content-type"]) == (503, b"application/json"), path
        assert json.loads(body) == {"error": "Unavailable: BENCH_DRIVER_ASGI is not set: this "
                                             "server was started without the component"}
