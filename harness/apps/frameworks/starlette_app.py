"""Starlette flavour (ASGI): ``Route``/``WebSocketRoute``, ``Request``, ``Response``,
``StreamingResponse`` for SSE and Starlette's ``WebSocket`` for the echo.

The Content-Type goes in as a header: given as ``media_type``, Starlette would append
``; charset=utf-8`` to ``text/event-stream``, which the raw app does not send."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from harness.apps.frameworks.common import SSE_HEADER_TEXT, content_type
from harness.apps.work import Plan, Stream, route, ws_echo


def _plan(request: Request, path: str) -> Plan:
    return route(request.method, path, request.url.query)


def _reply(plan: Plan) -> Response:
    return Response(plan.body(), status_code=plan.status,
                    headers={"content-type": content_type(plan)})


async def health(request: Request) -> Response:
    return _reply(_plan(request, "/health"))


async def io(request: Request) -> Response:
    plan = _plan(request, "/io")
    if plan.wait_s:
        await asyncio.sleep(plan.wait_s)
    return _reply(plan)


async def cpu(request: Request) -> Response:
    return _reply(_plan(request, "/cpu"))


async def sse(request: Request) -> Response:
    plan = _plan(request, "/sse")
    if plan.stream is None:
        return _reply(plan)
    return StreamingResponse(_events(plan.stream), status_code=200,
                             headers={"content-type": content_type(plan), **SSE_HEADER_TEXT})


async def _events(stream: Stream) -> AsyncIterator[bytes]:
    for seq in range(stream.events):
        if seq:
            await asyncio.sleep(stream.interval_s)
        yield stream.event(seq, time.time_ns())


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        recv_ns = time.time_ns()
        if message.get("text") is not None:
            await websocket.send_text(ws_echo(message["text"], recv_ns))  # type: ignore[arg-type]
        else:
            await websocket.send_bytes(ws_echo(message["bytes"], recv_ns))  # type: ignore[arg-type]


app = Starlette(routes=[
    Route("/health", health), Route("/io", io), Route("/cpu", cpu), Route("/sse", sse),
    WebSocketRoute("/ws", echo),
])
