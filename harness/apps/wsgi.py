"""The WSGI app (PEP 3333): waits with ``time.sleep``, as a blocking DB driver would.

``/sse`` returns a generator that sleeps between events and yields each one as it
is produced; PEP 3333 requires servers to transmit every yielded block without
delay. There is no ``/ws``: WSGI cannot hand a connection over to a WebSocket, so a
handshake gets the same 404 as any unknown path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from harness.apps.work import SSE_HEADERS, Stream, route

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_SSE_HEADERS = [(k.decode(), v.decode()) for k, v in SSE_HEADERS]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    plan = route(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"),
                 environ.get("QUERY_STRING", ""))
    if plan.stream is not None:
        # No Content-Length: the server chunks (HTTP/1.1) or closes after the body.
        start_response("200 OK", [("Content-Type", plan.content_type.decode()), *_SSE_HEADERS])
        return _events(plan.stream)
    if plan.wait_s:
        time.sleep(plan.wait_s)
    body = plan.body()
    start_response(
        f"{plan.status} {_REASONS[plan.status]}",
        [("Content-Type", plan.content_type.decode()), ("Content-Length", str(len(body)))],
    )
    return [body]


def _events(stream: Stream) -> Iterator[bytes]:
    for seq in range(stream.events):
        if seq:
            time.sleep(stream.interval_s)
        yield stream.event(seq, time.time_ns())
