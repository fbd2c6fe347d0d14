"""Flask flavour (WSGI): Flask's router, ``request`` and ``Response``; SSE as a streamed
generator response (``stream_with_context``). Flask has no WebSocket (WSGI cannot hand a
connection over), so ``websocket-echo`` is unsupported; ``/ws`` is no route here."""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Flask, Response, request, stream_with_context

from harness.apps.frameworks.common import SSE_HEADER_TEXT, content_type
from harness.apps.work import Plan, Stream, route

app = Flask(__name__)


def _plan(path: str) -> Plan:
    return route(request.method, path, request.query_string.decode("latin-1"))


def _reply(plan: Plan) -> Response:
    return Response(plan.body(), status=plan.status, content_type=content_type(plan))


@app.get("/health")
def health() -> Response:
    return _reply(_plan("/health"))


@app.get("/io")
def io() -> Response:
    plan = _plan("/io")
    if plan.wait_s:
        time.sleep(plan.wait_s)
    return _reply(plan)


@app.get("/cpu")
def cpu() -> Response:
    return _reply(_plan("/cpu"))


@app.get("/sse")
def sse() -> Response:
    plan = _plan("/sse")
    if plan.stream is None:
        return _reply(plan)
    return Response(stream_with_context(_events(plan.stream)), status=200,
                    content_type=content_type(plan), headers=SSE_HEADER_TEXT)


def _events(stream: Stream) -> Iterator[bytes]:
    for seq in range(stream.events):
        if seq:
            time.sleep(stream.interval_s)
        yield stream.event(seq, time.time_ns())
