"""Routing, parameter bounds, framing and the deterministic work shared by both apps.

Nothing here does I/O or waits: :func:`route` turns a request line into a
:class:`Plan` that says how long to wait and how to build the body (or, for
``/sse``, which events to stream at what pace), and each app carries out the wait
in its own interface's idiom. The SSE and WebSocket-echo framing lives here too,
with its parsers, so both apps emit the same bytes and the locust users read them
with the same code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
EVENT_STREAM = b"text/event-stream"
#: Extra headers of an SSE response, identical in both apps (no Content-Length:
#: the body is chunked or close-delimited, flushed event by event).
SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"cache-control", b"no-cache"),)

# Upper bounds keep a mistyped parameter from hanging a machine: 10 s of waiting,
# about 1 s of CPU per request at the reference rate of ~100 units/ms; streams of
# at most 10,000 events of at most 64 KiB, one every <= 10 s, and never longer
# than MAX_STREAM_MS in all.
PARAM_BOUNDS: dict[str, tuple[int, int]] = {
    "latency_ms": (0, 10_000),
    "work": (0, 100_000),
    "events": (1, 10_000),
    "interval_ms": (0, 10_000),
    "size": (0, 65_536),
    # Real I/O (/db, /queries, /upstream): rows per request, the seed picking them,
    # upstream calls per request.
    "queries": (1, 500),
    "seed": (0, 1_000_000),
    "calls": (1, 100),
}

#: ``/sse`` parameters when the query string leaves them out.
SSE_DEFAULTS: dict[str, int] = {"events": 10, "interval_ms": 200, "size": 64}

#: Longest stream ``/sse`` accepts, (events - 1) x interval_ms: half of gunicorn's
#: 120 s worker timeout (harness.servers.GUNICORN_TIMEOUT_S), since a sync worker
#: busy with one stream does not heartbeat and would be killed mid-stream.
MAX_STREAM_MS = 60_000

CPU_ITERATIONS_PER_UNIT = 100


@dataclass(frozen=True, slots=True)
class Stream:
    """An SSE stream: ``events`` events of ``size`` payload bytes, the first at once,
    then one every ``interval_s`` seconds; (events - 1) x interval_s in all."""

    events: int
    interval_s: float
    size: int

    def event(self, seq: int, sent_ns: int) -> bytes:
        """Event ``seq`` stamped with the server's send time (``time.time_ns()``)."""
        return sse_event(seq, sent_ns, self.size)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to answer: status, content type, seconds to wait first, then the body.

    With ``stream`` set (``/sse``), the app instead sends the events of the stream
    as they are produced, with no Content-Length; ``body()`` is then the whole
    stream with every timestamp zeroed (the reference for :func:`mask_timestamps`).
    """

    status: int
    content_type: bytes
    wait_s: float
    body: Callable[[], bytes]
    stream: Stream | None = None
    #: Real I/O (/db, /queries, /upstream): what the app must read through its driver
    #: (:class:`DbRead`, :class:`UpstreamCall`); the app then answers ``render(results)``
    #: and ``body()`` is the reference, ``render`` of :func:`reference_results`.
    io: DbRead | UpstreamCall | None = None
    render: Callable[[Sequence[Any]], bytes] | None = None


class BadRequest(ValueError):
    """A query parameter is missing, malformed or out of bounds."""


def dumps(obj: object) -> bytes:
    """Canonical JSON: sorted keys, no spaces, so both apps emit identical bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    """Read an integer query parameter and check it against :data:`PARAM_BOUNDS`.

    Raises:
        BadRequest: not an integer, or outside the bounds.
    """
    raw = query.get(name, [str(default)])[-1]
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    lo, hi = PARAM_BOUNDS[name]
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def cpu_work(units: int) -> int:
    """Deterministic pure-Python CPU work: ``units * 100`` LCG steps; returns a checksum.

    The constants are the C standard's example ``rand()`` LCG (ISO C, 7.22.2.2);
    the loop cannot be skipped or cached by the interpreter, and its result
    verifies that the work was done.
    """
    x = units
    for i in range(units * CPU_ITERATIONS_PER_UNIT):
        x = (x * 1103515245 + 12345 + i) & 0xFFFFFFFF
    return x


_SSE_PAYLOAD_BYTE = b"x"
#: ``data: <seq> <sent_ns, 20 digits> <payload>``; see :func:`sse_event`.
_SSE_TIMESTAMP = re.compile(rb"^(data: \d+ )\d{20}( )", re.MULTILINE)
_SSE_ZERO_TS = b"0" * 20


def sse_event(seq: int, sent_ns: int, size: int) -> bytes:
    """One Server-Sent Event (WHATWG HTML, "Server-sent events"): three lines,
    ``id: <seq>``, ``data: <seq> <sent_ns> <payload>`` and an empty one.

    ``sent_ns`` is the server's ``time.time_ns()`` at send, zero-padded to 20 digits,
    so events of a stream differ in length only by their ``seq``
    (``35 + 2 * len(str(seq)) + size`` bytes); the payload is ``size`` bytes of ``x``.
    """
    return b"id: %d\ndata: %d %020d %s\n\n" % (seq, seq, sent_ns, _SSE_PAYLOAD_BYTE * size)


def parse_sse_data(data: bytes) -> tuple[int, int, int]:
    """Parse the value of an event's ``data:`` field (without ``data: ``).

    Returns (seq, sent_ns, payload bytes).

    Raises:
        ValueError: not ``<seq> <sent_ns> <payload>``, or a payload that is not all ``x``.
    """
    seq, sent, payload = data.split(b" ", 2)
    if payload.strip(_SSE_PAYLOAD_BYTE):
        raise ValueError(f"unexpected payload bytes in event {seq!r}")
    return int(seq), int(sent), len(payload)


def mask_timestamps(body: bytes) -> bytes:
    """``body`` with every SSE event's send timestamp replaced by zeros.

    Two apps' answers to the same ``/sse`` request are byte-identical after this,
    and equal to :func:`expected`'s body; other bodies come back unchanged.
    """
    return _SSE_TIMESTAMP.sub(rb"\g<1>" + _SSE_ZERO_TS + rb"\g<2>", body)


def ws_echo(message: str | bytes, recv_ns: int) -> str | bytes:
    """The ``/ws`` echo of ``message``: ``<recv_ns, 20 digits> <message>``, same frame type.

    ``recv_ns`` is the server's ``time.time_ns()`` when the message was received.
    """
    if isinstance(message, bytes):
        return b"%020d %s" % (recv_ns, message)
    return f"{recv_ns:020d} {message}"


def parse_ws_echo(reply: str | bytes) -> tuple[int, str | bytes]:
    """Split a :func:`ws_echo` reply into (recv_ns, the original message).

    Raises:
        ValueError: not ``<20 digits> <message>``.
    """
    if len(reply) < 21 or reply[20:21] not in (" ", b" "):
        raise ValueError(f"not an echo: {reply[:40]!r}")
    return int(reply[:20]), reply[21:]


# ------------------------------------------------------------------ real I/O (harness.realio)

#: Rows of the seeded table ``world(id, randomnumber)`` (TechEmpower's World table).
WORLD_ROWS = 10_000
#: The upstream service's answer to ``GET /wait`` (harness.apps.upstream): fixed bytes.
UPSTREAM_BODY = b'{"service":"upstream","status":"ok"}'


def _lcg(x: int) -> int:
    """One step of the ISO C example ``rand()`` LCG (7.22.2.2), 31 bits."""
    return (x * 1103515245 + 12345) & 0x7FFFFFFF


def world_randomnumber(row_id: int) -> int:
    """The ``randomnumber`` (1..10,000) the harness seeds for row ``row_id``: two LCG
    steps from the id, so the table, and every body read from it, is the same on every
    run and the reference body needs no database."""
    return 1 + (_lcg(_lcg(row_id)) >> 16) % 10_000


def row_ids(seed: int, n: int) -> tuple[int, ...]:
    """``n`` row ids in 1..:data:`WORLD_ROWS` drawn from ``seed`` (LCG steps): the rows a
    request reads, the same for every request of a path, so bodies compare."""
    out, x = [], seed
    for _ in range(n):
        x = _lcg(x)
        out.append(1 + (x >> 8) % WORLD_ROWS)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class DbRead:
    """Read rows ``ids`` of ``world``, one query each, in order, on one pooled
    connection. ``sleep_s`` not None: one query that also waits that long in the
    database (``pg_sleep``), the db-io shape."""

    ids: tuple[int, ...]
    sleep_s: float | None = None


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """``calls`` sequential ``GET /wait?latency_ms=...`` to the upstream service."""

    calls: int
    latency_ms: int

    @property
    def path(self) -> str:
        return f"/wait?latency_ms={self.latency_ms}"


def reference_results(io: DbRead | UpstreamCall) -> list[Any]:
    """What a correct driver returns for ``io``: ``(id, randomnumber)`` per row, or the
    upstream's body per call."""
    if isinstance(io, DbRead):
        return [(i, world_randomnumber(i)) for i in io.ids]
    return [UPSTREAM_BODY] * io.calls


def _row(r: Sequence[Any]) -> dict[str, int]:
    return {"id": int(r[0]), "randomNumber": int(r[1])}


def _io_plan(io: DbRead | UpstreamCall, render: Callable[[Sequence[Any]], bytes]) -> Plan:
    return Plan(200, JSON, 0.0, lambda: render(reference_results(io)), io=io, render=render)


def _upstream_body(bodies: Sequence[Any]) -> bytes:
    return dumps({"calls": len(bodies), "route": "upstream",
                  "upstream": [bytes(b).decode("utf-8", "replace") for b in bodies]})


def route(method: str, path: str, query_string: str) -> Plan:
    """Map a request to a :class:`Plan`. Unknown paths give 404, bad parameters 400."""
    if method not in ("GET", "HEAD"):
        return Plan(405, JSON, 0.0, lambda: dumps({"error": "method not allowed"}))
    query = parse_qs(query_string, keep_blank_values=True)
    try:
        if path == "/health":
            return Plan(200, TEXT, 0.0, lambda: b"ok")
        if path == "/io":
            latency_ms = int_param(query, "latency_ms", 50)
            body = dumps({"latency_ms": latency_ms, "route": "io"})
            return Plan(200, JSON, latency_ms / 1000.0, lambda: body)
        if path == "/cpu":
            work = int_param(query, "work", 1000)
            return Plan(
                200,
                JSON,
                0.0,
                lambda: dumps({"checksum": cpu_work(work), "route": "cpu", "work": work}),
            )
        if path == "/sse":
            stream = _stream(query)
            return Plan(200, EVENT_STREAM, 0.0,
                        lambda: b"".join(stream.event(i, 0) for i in range(stream.events)),
                        stream)
        if path == "/db":  # TechEmpower's single query, waiting in the database
            latency_ms = int_param(query, "latency_ms", 50)
            ids = row_ids(int_param(query, "seed", 1), 1)
            return _io_plan(DbRead(ids, latency_ms / 1000.0), lambda rows: dumps(_row(rows[0])))
        if path == "/queries":  # TechEmpower's multiple queries
            ids = row_ids(int_param(query, "seed", 1), int_param(query, "queries", 20))
            return _io_plan(DbRead(ids), lambda rows: dumps([_row(r) for r in rows]))
        if path == "/upstream":
            call = UpstreamCall(int_param(query, "calls", 1), int_param(query, "latency_ms", 50))
            return _io_plan(call, _upstream_body)
        # "/ws" is a WebSocket route (ASGI only): as plain HTTP it does not exist,
        # so both apps answer 404 here, and so does every WSGI handshake.
    except BadRequest as exc:
        message = str(exc)
        return Plan(400, JSON, 0.0, lambda: dumps({"error": message}))
    return Plan(404, JSON, 0.0, lambda: dumps({"error": "not found"}))


def _stream(query: dict[str, list[str]]) -> Stream:
    events, interval_ms, size = (int_param(query, k, SSE_DEFAULTS[k])
                                 for k in ("events", "interval_ms", "size"))
    if (events - 1) * interval_ms > MAX_STREAM_MS:
        raise BadRequest(f"stream of (events - 1) x interval_ms = {(events - 1) * interval_ms} ms "
                         f"exceeds {MAX_STREAM_MS} ms")
    return Stream(events, interval_ms / 1000.0, size)


def expected(path_and_query: str) -> tuple[int, bytes, bytes]:
    """The (status, content type, body) every app must return for ``path_and_query``.

    Used by the harness to verify a server before loading it. For ``/sse`` the body
    has every timestamp zeroed: compare it with :func:`mask_timestamps` of the answer.
    """
    path, _, qs = path_and_query.partition("?")
    plan = route("GET", path, qs)
    return plan.status, plan.content_type, plan.body()
