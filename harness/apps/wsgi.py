"""The WSGI app (PEP 3333): waits with ``time.sleep``, as a blocking DB driver would;
``/db``, ``/queries`` and ``/upstream`` wait on real ones (``psycopg`` with its pool,
``requests``: harness.apps.drivers).

``/sse`` returns a generator that sleeps between events and yields each one as it
is produced; PEP 3333 requires servers to transmit every yielded block without
delay. There is no ``/ws``: WSGI cannot hand a connection over to a WebSocket, so a
handshake gets the same 404 as any unknown path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from harness.apps import drivers
from harness.apps.work import JSON, SSE_HEADERS, Plan, Stream, dumps, route

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}
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
    if plan.io is not None:
        plan = _real_io(plan)
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


def _real_io(plan: Plan) -> Plan:
    """``plan`` answered through the sync driver (harness.apps.drivers), or a 503 saying
    why the driver failed (a failed response, never a number)."""
    assert plan.io is not None and plan.render is not None
    try:
        body = plan.render(drivers.run_sync(plan.io))
    except Exception as exc:  # noqa: BLE001 - the client gets the error, the trial counts it
        message = f"{type(exc).__name__}: {exc}"
        return Plan(503, JSON, 0.0, lambda: dumps({"error": message}))
    return Plan(200, JSON, 0.0, lambda: body)
