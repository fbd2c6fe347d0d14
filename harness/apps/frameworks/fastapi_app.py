"""FastAPI flavour (ASGI): path operations (``@app.get``, ``@app.websocket``) returning
``Response`` / ``StreamingResponse`` directly (FastAPI's way to send exact bytes), and
FastAPI's ``WebSocket`` for the echo. No OpenAPI routes (``openapi_url=None``).

The Content-Type goes in as a header: given as ``media_type``, the response class would
append ``; charset=utf-8`` to ``text/event-stream``, which the raw app does not send."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import StreamingResponse

from harness.apps.frameworks.common import SSE_HEADER_TEXT, content_type
from harness.apps.work import Plan, Stream, route, ws_echo

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


def _plan(request: Request, path: str) -> Plan:
    return route(request.method, path, request.url.query)


def _reply(plan: Plan) -> Response:
    return Response(plan.body(), status_code=plan.status,
                    headers={"content-type": content_type(plan)})


@app.get("/health")
async def health(request: Request) -> Response:
    return _reply(_plan(request, "/health"))


@app.get("/io")
async def io(request: Request) -> Response:
    plan = _plan(request, "/io")
    if plan.wait_s:
        await asyncio.sleep(plan.wait_s)
    return _reply(plan)


@app.get("/cpu")
async def cpu(request: Request) -> Response:
    return _reply(_plan(request, "/cpu"))


@app.get("/sse")
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


@app.websocket("/ws")
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
