"""harness.apps.upstream, the upstream service's ASGI app, called in-process with asyncio:
``/wait`` answers the fixed body after the latency asked (default 50 ms), many waits
overlap on one event loop, bad parameters are a 400 without waiting, and lifespan
completes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from harness.apps.upstream import answer, app
from harness.apps.work import JSON, PARAM_BOUNDS, TEXT, UPSTREAM_BODY


async def get(path: str, query: str = "") -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # a GET has no body to read
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": path,
               "query_string": query.encode()}, receive, send)
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


@pytest.mark.parametrize(("query", "wait_s"), [("", 0.05), ("latency_ms=0", 0.0),
                                              ("latency_ms=250", 0.25)])
def test_wait_plans_the_latency_asked_then_the_fixed_body(query: str, wait_s: float) -> None:
    assert answer("/wait", query) == (200, JSON, wait_s, UPSTREAM_BODY)


def test_wait_answers_after_the_default_50_ms() -> None:
    started = time.monotonic()
    status, headers, body = asyncio.run(get("/wait"))
    assert time.monotonic() - started >= 0.05
    assert (status, body) == (200, UPSTREAM_BODY)
    assert headers == {b"content-type": JSON, b"content-length": str(len(body)).encode()}


def test_waits_overlap_on_one_event_loop() -> None:
    async def twenty() -> list[tuple[int, dict[bytes, bytes], bytes]]:
        return await asyncio.gather(*(get("/wait", "latency_ms=100") for _ in range(20)))

    started = time.monotonic()
    answers = asyncio.run(twenty())
    took = time.monotonic() - started
    assert {(status, body) for status, _, body in answers} == {(200, UPSTREAM_BODY)}
    assert 0.1 <= took < 1.0  # one after another: 20 x 100 ms = 2 s


def test_health_bad_parameters_and_unknown_paths_answer_at_once() -> None:
    assert answer("/health", "") == (200, TEXT, 0.0, b"ok")
    high = PARAM_BOUNDS["latency_ms"][1] + 1
    for query, error in (("latency_ms=x", "latency_ms must be an integer, got 'x'"),
                         (f"latency_ms={high}", f"latency_ms must be in [0, {high - 1}], got {high}")):
        status, ctype, wait_s, body = answer("/wait", query)
        assert (status, ctype, wait_s, json.loads(body)) == (400, JSON, 0.0, {"error": error})
    assert answer("/io", "") == (404, JSON, 0.0, b'{"error":"not found"}')
    status, _, body = asyncio.run(get("/nope"))
    assert (status, body) == (404, b'{"error":"not found"}')


def test_lifespan_completes() -> None:
    async def run() -> list[dict[str, Any]]:
        incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "lifespan"}, receive, send)
        return sent

    assert asyncio.run(run()) == [{"type": "lifespan.startup.complete"},
                                  {"type": "lifespan.shutdown.complete"}]
