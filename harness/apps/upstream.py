"""The upstream HTTP service the ``upstream-http`` scenario's apps call (ASGI 3.0).

Served by uvicorn as a process group of its own (harness.upstream). ``GET /wait?latency_ms=N``
waits N ms (``await asyncio.sleep``: one process holds any number of waiting calls)
and answers :data:`harness.apps.work.UPSTREAM_BODY`; ``GET /health`` answers ``ok``.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from harness.apps.asgi import Receive, Scope, Send
from harness.apps.work import JSON, TEXT, UPSTREAM_BODY, BadRequest, dumps, int_param


def answer(path: str, query_string: str) -> tuple[int, bytes, float, bytes]:
    """(status, content type, seconds to wait, body) for a GET of ``path``."""
    if path == "/health":
        return 200, TEXT, 0.0, b"ok"
    if path == "/wait":
        try:
            latency_ms = int_param(parse_qs(query_string), "latency_ms", 50)
        except BadRequest as exc:
            return 400, JSON, 0.0, dumps({"error": str(exc)})
        return 200, JSON, latency_ms / 1000.0, UPSTREAM_BODY
    return 404, JSON, 0.0, dumps({"error": "not found"})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message: dict[str, Any] = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    status, ctype, wait_s, body = answer(scope["path"],
                                         scope.get("query_string", b"").decode("latin-1"))
    if wait_s:
        await asyncio.sleep(wait_s)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
