"""The ASGI app (ASGI 3.0): waits with ``await asyncio.sleep``, as an async driver would;
``/db``, ``/queries`` and ``/upstream`` wait on real ones (``asyncpg``, psycopg's async
pool, ``httpx``, or the sync driver on purpose: harness.apps.drivers).

CPU work runs on the event loop, blocking it, exactly as sync code inside an async
handler does in production; offloading it would be a different workload.

``/sse`` sends each event as one ``http.response.body`` message with ``more_body``
and stops early when the client disconnects (the WSGI app stops at its first
failed write). ``/ws`` is a WebSocket echo: each message comes back, same frame
type, prefixed with the server's receive time (:func:`harness.apps.work.ws_echo`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from harness.apps import drivers
from harness.apps.work import JSON, SSE_HEADERS, Plan, Stream, dumps, route, ws_echo

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        if scope["path"] == "/ws":
            await _echo(receive, send)
        else:  # closing before accepting makes the server answer the handshake with 403
            await send({"type": "websocket.close", "code": 1000})
        return
    if scope["type"] != "http":
        return
    plan = route(scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1"))
    if plan.stream is not None:
        await _events(plan.stream, plan.content_type, receive, send)
        return
    if plan.wait_s:
        await asyncio.sleep(plan.wait_s)
    if plan.io is not None:
        plan = await _real_io(plan)
    body = plan.body()
    await send(
        {
            "type": "http.response.start",
            "status": plan.status,
            "headers": [(b"content-type", plan.content_type),
                        (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _real_io(plan: Plan) -> Plan:
    """``plan`` answered through the driver the harness chose (``asyncpg``,
    ``psycopg-async``, ``httpx``, or the ``blocking`` sync one: harness.apps.drivers),
    or a 503 saying why it failed."""
    assert plan.io is not None and plan.render is not None
    try:
        body = plan.render(await drivers.run_async(plan.io, drivers.driver("asgi")))
    except Exception as exc:  # noqa: BLE001 - the client gets the error, the trial counts it
        message = f"{type(exc).__name__}: {exc}"
        return Plan(503, JSON, 0.0, lambda: dumps({"error": message}))
    return Plan(200, JSON, 0.0, lambda: body)


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone (the request body of a GET is empty)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _events(stream: Stream, content_type: bytes, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type), *SSE_HEADERS]})
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        for seq in range(stream.events):
            if seq:
                await asyncio.sleep(stream.interval_s)
            if gone.done():
                return
            await send({"type": "http.response.body", "body": stream.event(seq, time.time_ns()),
                        "more_body": seq < stream.events - 1})
    finally:
        gone.cancel()


async def _echo(receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        recv_ns = time.time_ns()
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": ws_echo(message["text"], recv_ns)})
        else:
            await send({"type": "websocket.send", "bytes": ws_echo(message["bytes"], recv_ns)})
