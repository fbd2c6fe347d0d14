"""Litestar flavour (ASGI): route handlers (``@get``, ``@websocket``) returning
``Response`` and ``Stream``, and Litestar's ``WebSocket`` for the echo. No OpenAPI
schema (``openapi_config=None``).

The Content-Type goes in as a header: given as ``media_type``, Litestar would append
``; charset=utf-8`` to every ``text/`` type, which the raw app does not send."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from litestar import Litestar, Request, Response, WebSocket, get, websocket
from litestar.response import Stream

from harness.apps.frameworks.common import SSE_HEADER_TEXT, content_type
from harness.apps.work import Plan, route, ws_echo
from harness.apps.work import Stream as EventStream


def _plan(request: Request, path: str) -> Plan:  # type: ignore[type-arg]
    return route(request.method, path, request.url.query)


def _reply(plan: Plan) -> Response[bytes]:
    return Response(plan.body(), status_code=plan.status,
                    headers={"content-type": content_type(plan)})


@get("/health")
async def health(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    return _reply(_plan(request, "/health"))


@get("/io")
async def io(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    plan = _plan(request, "/io")
    if plan.wait_s:
        await asyncio.sleep(plan.wait_s)
    return _reply(plan)


@get("/cpu")
async def cpu(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    return _reply(_plan(request, "/cpu"))


@get("/sse")
async def sse(request: Request) -> Response[bytes] | Stream:  # type: ignore[type-arg]
    plan = _plan(request, "/sse")
    if plan.stream is None:
        return _reply(plan)
    return Stream(_events(plan.stream), status_code=200,
                  headers={"content-type": content_type(plan), **SSE_HEADER_TEXT})


async def _events(stream: EventStream) -> AsyncIterator[bytes]:
    for seq in range(stream.events):
        if seq:
            await asyncio.sleep(stream.interval_s)
        yield stream.event(seq, time.time_ns())


@websocket("/ws")
async def echo(socket: WebSocket) -> None:  # type: ignore[type-arg]
    await socket.accept()
    while True:
        message = await socket.receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        recv_ns = time.time_ns()
        if message.get("text") is not None:
            await socket.send_text(ws_echo(message["text"], recv_ns))  # type: ignore[arg-type, typeddict-item]
        else:
            await socket.send_bytes(ws_echo(message["bytes"], recv_ns))  # type: ignore[arg-type, typeddict-item]


app = Litestar(route_handlers=[health, io, cpu, sse, echo], openapi_config=None)
