"""Quart flavour (ASGI): Flask's API on asyncio. Its router, ``request`` and
``Response``; SSE as a response of an async generator (``timeout = None``, as Quart's
documentation does for server-sent events); its ``websocket`` for the echo."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from quart import Quart, Response, request, websocket

from harness.apps.frameworks.common import SSE_HEADER_TEXT, content_type
from harness.apps.work import Plan, Stream, route, ws_echo

app = Quart(__name__)


def _plan(path: str) -> Plan:
    return route(request.method, path, request.query_string.decode("latin-1"))


def _reply(plan: Plan) -> Response:
    return Response(plan.body(), status=plan.status, content_type=content_type(plan))


@app.get("/health")
async def health() -> Response:
    return _reply(_plan("/health"))


@app.get("/io")
async def io() -> Response:
    plan = _plan("/io")
    if plan.wait_s:
        await asyncio.sleep(plan.wait_s)
    return _reply(plan)


@app.get("/cpu")
async def cpu() -> Response:
    return _reply(_plan("/cpu"))


@app.get("/sse")
async def sse() -> Response:
    plan = _plan("/sse")
    if plan.stream is None:
        return _reply(plan)
    response = Response(_events(plan.stream), status=200, content_type=content_type(plan),
                        headers=SSE_HEADER_TEXT)
    response.timeout = None  # type: ignore[assignment]
    return response


async def _events(stream: Stream) -> AsyncIterator[bytes]:
    for seq in range(stream.events):
        if seq:
            await asyncio.sleep(stream.interval_s)
        yield stream.event(seq, time.time_ns())


@app.websocket("/ws")
async def echo() -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        await websocket.send(ws_echo(message, time.time_ns()))
