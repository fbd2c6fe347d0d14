"""Locust users for the stream scenarios: ``SSEUser`` (``sse-stream``) and
``WebSocketUser`` (``websocket-echo``). Imported by ``locustfile.py``, which runs
in locust's gevent-patched process: every socket here is a gevent socket.

Each user reports into locust's statistics (and so into the per-trial records,
``name`` column) through request events, one per thing timed:

==============  ===============================================================
name            response_time (ms, unrounded)
==============  ===============================================================
``connect``     TCP connect + request until the response headers (SSE) or the
                101 (WebSocket) arrived; start_time = when the attempt began
``ttfe``        SSE: from the attempt's start to the first event's arrival
``event``       SSE: lag from the server's send time (``time.time_ns()`` in the
                event) to the client's receipt; start_time = the send time, so
                start + lag is the receipt (same host, one clock)
``stream``      SSE: the whole stream; failed when it ended early or short
``rtt``         WebSocket: one message's round trip; start_time = when sent
``session``     WebSocket: connect to close; failed when a round trip failed
``handshake``   WebSocket: answered with anything but 101; exception
                :class:`WebSocketUnsupported`, status = the status received
==============  ===============================================================

A connection attempt still waiting for its headers when the test stops is
recorded as a failed ``connect`` whose response_time is how long it had waited
(a lower bound), so queued clients are not silently dropped. A stream cut by the
test's stop is not recorded as a ``stream`` (nor a session as a ``session``).

Options come from the spec's ``options`` dict (``harness.load.LoadSpec.options``),
falling back to the request path's query string, then to the defaults below:

* SSE: ``events``, ``interval_ms``, ``size`` are read from the path (what the
  server is asked to send); ``connect_timeout_s`` from the options.
* WebSocket: ``messages``, ``message_bytes``, ``hold_s``, ``connect_timeout_s``.
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import gevent.event
import h11
import websocket  # websocket-client: blocking, so it runs on gevent's patched sockets
from locust import User, constant, events, task

from harness.apps.work import SSE_DEFAULTS, parse_sse_data, parse_ws_echo

_spec: dict[str, Any] = {}
#: Set when locust starts stopping the test: loops end, waits return at once.
_stopping = gevent.event.Event()

#: Client-side option defaults and bounds (the app's own live in harness.apps.work.PARAM_BOUNDS).
OPTIONS: dict[str, tuple[float, float, float]] = {  # name: (default, min, max)
    "messages": (10, 0, 10_000),
    "message_bytes": (64, 1, 65_536),
    "hold_s": (2.0, 0.0, 60.0),
    "connect_timeout_s": (60.0, 0.1, 110.0),
}
#: How often a wait on a socket wakes to notice that the test is stopping.
POLL_S = 0.5
#: Extra seconds past the stream's own pace before a silent stream is a failure.
READ_SLACK_S = 10.0


@events.init.add_listener
def _load_spec(environment: Any, **_kw: Any) -> None:
    # The locustfile reads the same file for its listener; reading it here too keeps
    # this module free of an import cycle with the locustfile.
    path = getattr(environment.parsed_options, "bench_spec", "") if environment.parsed_options else ""
    if path:
        with open(path, encoding="utf-8") as f:
            _spec.update(json.load(f))


@events.test_start.add_listener
def _on_start(**_kw: Any) -> None:
    _stopping.clear()


@events.test_stopping.add_listener
def _on_stopping(**_kw: Any) -> None:
    _stopping.set()


class WebSocketUnsupported(Exception):
    """The server answered a WebSocket handshake with ``status`` instead of 101."""

    def __init__(self, status: int) -> None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "unknown status"
        super().__init__(f"WebSocket handshake answered {status} {phrase}")
        self.status = status


class StreamError(Exception):
    """An SSE stream misbehaved: bad status, early end, malformed or missing events."""


class StillWaiting(Exception):
    """The test stopped while this attempt was still waiting for its response headers."""


class _Stopped(Exception):
    pass


class _Status:
    """What the records listener reads a status from (``response.status_code``)."""

    __slots__ = ("status_code",)

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def _fire(user: User, request_type: str, name: str, start_unix_s: float, ms: float, *,
          length: int = 0, exception: BaseException | None = None, status: int = 0) -> None:
    user.environment.events.request.fire(
        request_type=request_type, name=name, response_time=ms, response_length=length,
        exception=exception, context={}, start_time=start_unix_s, response=_Status(status))


def _query_of(path: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(path).query, keep_blank_values=True)


def _option(name: str, bounds: dict[str, tuple[float, float, float]]) -> float:
    """An option from the spec's options, else the path's query, else its default.

    Raises:
        ValueError: not a number, or outside its bounds (locust logs it; no load runs).
    """
    default, lo, hi = bounds[name]
    raw = _spec.get("options", {}).get(name)
    if raw is None:
        raw = _query_of(_spec.get("path", "")).get(name, [default])[-1]
    value = float(raw)
    if not lo <= value <= hi:
        raise ValueError(f"option {name}={raw} is outside [{lo:g}, {hi:g}]")
    return value


def get_request(host: str, port: int, path: str) -> tuple[h11.Connection, bytes]:
    """A client-side ``h11`` connection that has sent ``GET path`` (``Host``, ``Accept:
    text/event-stream``, no body), and the request's bytes to write to the socket.

    Raises:
        ValueError: ``h11`` refuses to send the request (e.g. a space in ``path``).
    """
    http = h11.Connection(h11.CLIENT)
    try:
        head = http.send(h11.Request(method="GET", target=path, headers=[
            ("Host", f"{host}:{port}"), ("Accept", "text/event-stream")]))
        end = http.send(h11.EndOfMessage())  # b"": no body
    except h11.LocalProtocolError as exc:
        raise ValueError(f"cannot send GET {path!r}: {exc}") from None
    return http, (head or b"") + (end or b"")


def _next_event(http: h11.Connection, recv: Callable[[], bytes]) -> Any:
    """The next response event ``h11`` frames, feeding it ``recv()`` while it needs data.

    ``recv`` returns the bytes that arrived (b"" at EOF) and may raise (a timeout, the
    test's stop): that goes through unchanged.

    Raises:
        ConnectionError: the server closed the connection before the response's end.
        ValueError: the response is malformed (status line, headers, chunk framing).
    """
    closed = False
    while True:
        try:
            event = http.next_event()
        except h11.RemoteProtocolError as exc:
            if closed:
                raise ConnectionError("server closed the connection mid-response") from None
            raise ValueError(f"malformed HTTP response: {exc}") from None
        if event is not h11.NEED_DATA:
            return event
        data = recv()
        closed = not data
        http.receive_data(data)


def read_head(http: h11.Connection, recv: Callable[[], bytes]) -> tuple[int, dict[str, str]]:
    """Read the final response's head (1xx interim responses are skipped).

    Returns (status, headers with lower-cased names; the last of a repeated name).

    Raises:
        ConnectionError, ValueError: as :func:`_next_event`.
    """
    while True:
        event = _next_event(http, recv)
        if isinstance(event, h11.Response):
            return event.status_code, {k.decode("latin-1"): v.decode("latin-1")
                                       for k, v in event.headers}
        if not isinstance(event, h11.InformationalResponse):
            # Not reached with h11's client state machine; a ValueError, not a TypeError,
            # so that it is recorded like any other malformed response.
            raise ValueError(  # noqa: TRY004
                f"malformed HTTP response: {type(event).__name__} before the head")


def read_body(http: h11.Connection, recv: Callable[[], bytes]) -> Iterator[bytes]:
    """Yield the body's bytes (chunked, Content-Length or close-delimited, as ``h11``
    frames them) as they arrive: each piece before ``recv`` is called again, so a piece
    arrived when the last ``recv`` returned.

    Raises:
        ConnectionError, ValueError: as :func:`_next_event`.
    """
    while True:
        event = _next_event(http, recv)
        if isinstance(event, h11.Data):
            if event.data:
                yield bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return  # trailers, if any, are ignored: the connection is closed next
        else:
            raise ValueError(  # noqa: TRY004 (as in read_head)
                f"malformed HTTP response: {type(event).__name__} in the body")


class _HTTPStream:
    """One GET on a fresh connection whose body is handed over as it arrives.

    Reads with ``recv`` (which returns whatever has arrived, never waiting to fill a
    buffer), and remembers when each ``recv`` returned, so an event's arrival time
    is the time its last byte was read. ``h11`` does the HTTP/1.1 framing (status
    line, headers; chunked, Content-Length and close-delimited bodies).
    """

    def __init__(self, host: str, port: int, path: str, connect_timeout_s: float) -> None:
        self.http, request = get_request(host, port, path)
        self.sock = socket.create_connection((host, port), timeout=connect_timeout_s)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.sendall(request)
            self.sock.settimeout(POLL_S)
        except BaseException:
            self.sock.close()
            raise
        self.recv_ns = 0  # time.time_ns() when the last recv returned
        self.recv_perf = 0.0  # time.perf_counter() then

    def close(self) -> None:
        self.sock.close()

    def _recv(self, deadline: float) -> bytes:
        """The next bytes that arrived (b"" at EOF); raises TimeoutError or _Stopped."""
        while True:
            if _stopping.is_set():
                raise _Stopped
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError("no data from the server in time") from None
                continue
            self.recv_perf = time.perf_counter()
            self.recv_ns = time.time_ns()
            return data

    def head(self, timeout_s: float) -> tuple[int, dict[str, str]]:
        """Read the status line and headers; returns (status, lower-cased headers)."""
        deadline = time.monotonic() + timeout_s
        return read_head(self.http, lambda: self._recv(deadline))

    def body(self, gap_s: float) -> Iterator[bytes]:
        """Yield the body's bytes as they arrive; at most ``gap_s`` between arrivals."""
        return read_body(self.http, lambda: self._recv(time.monotonic() + gap_s))


class SSEUser(User):
    """Open ``_spec["path"]`` (an ``/sse?events=N&interval_ms=T&size=B`` URL) as an
    event stream on a fresh connection, read every event as it arrives, close, repeat
    (closed loop: the next stream opens as soon as one ends).

    Each user first waits a random time in [0, (N - 1) x T]: after that long (make
    the warm-up at least as long) the users' streams are spread evenly in phase.
    """

    wait_time = constant(0)

    def on_start(self) -> None:
        url = urlsplit(self.host or "http://127.0.0.1")
        self._addr = (url.hostname or "127.0.0.1", url.port or 80)
        self._path = _spec.get("path", "/sse")
        query = _query_of(self._path)
        self._events = int(query.get("events", [SSE_DEFAULTS["events"]])[-1])
        self._interval_s = int(query.get("interval_ms", [SSE_DEFAULTS["interval_ms"]])[-1]) / 1000
        self._size = int(query.get("size", [SSE_DEFAULTS["size"]])[-1])
        self._connect_timeout_s = _option("connect_timeout_s", OPTIONS)
        # Users spawn all at once; a random phase over one stream keeps their
        # connects and events from arriving in lockstep (closed loops keep it).
        _stopping.wait(random.uniform(0.0, (self._events - 1) * self._interval_s))

    @task
    def stream(self) -> None:
        if _stopping.is_set():
            return
        start_unix = time.time()
        t0 = time.perf_counter()
        conn: _HTTPStream | None = None
        try:
            conn = _HTTPStream(*self._addr, self._path, self._connect_timeout_s)
            status, headers = conn.head(self._connect_timeout_s)
        except _Stopped:
            waited = (time.perf_counter() - t0) * 1000
            _fire(self, "SSE", "connect", start_unix, waited, exception=StillWaiting(
                f"no response headers after {waited:.0f} ms when the test stopped"))
            if conn is not None:
                conn.close()
            return
        except (OSError, ValueError, IndexError) as exc:
            _fire(self, "SSE", "connect", start_unix, (time.perf_counter() - t0) * 1000,
                  exception=exc)
            if conn is not None:
                conn.close()
            _stopping.wait(1.0)  # a refused or broken server is not hammered in a tight loop
            return
        try:
            self._read(conn, status, headers, start_unix, t0)
        finally:
            conn.close()

    def _read(self, conn: _HTTPStream, status: int, headers: dict[str, str],
              start_unix: float, t0: float) -> None:
        connect_ms = (conn.recv_perf - t0) * 1000
        ctype = headers.get("content-type", "")
        if status != 200 or not ctype.startswith("text/event-stream"):
            _fire(self, "SSE", "connect", start_unix, connect_ms, status=status,
                  exception=StreamError(f"status {status} {ctype!r}, not an event stream"))
            _stopping.wait(1.0)
            return
        _fire(self, "SSE", "connect", start_unix, connect_ms, status=status)
        received = 0
        total_bytes = 0
        problem = ""
        pending = b""
        try:
            for piece in conn.body(self._interval_s + READ_SLACK_S):
                total_bytes += len(piece)
                pending += piece
                while b"\n\n" in pending:
                    frame, _, pending = pending.partition(b"\n\n")
                    problem = problem or self._event(frame, received, conn, start_unix, t0)
                    received += 1
            if pending:
                problem = problem or f"{len(pending)} bytes after the last event"
        except _Stopped:
            return  # cut by the test's stop, not by the server: no stream record
        except (OSError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if not problem and received != self._events:
            problem = f"{received} of {self._events} events"
        _fire(self, "SSE", "stream", start_unix, (time.perf_counter() - t0) * 1000,
              length=total_bytes, status=status,
              exception=StreamError(f"stream ended early: {problem} "
                                    f"({received} of {self._events} events)") if problem else None)

    def _event(self, frame: bytes, index: int, conn: _HTTPStream, start_unix: float,
               t0: float) -> str:
        """Record one event; return what was wrong with it ("" if nothing)."""
        data = next((ln[6:] for ln in frame.split(b"\n") if ln.startswith(b"data: ")), None)
        try:
            if data is None:
                raise ValueError("no data line")
            seq, sent_ns, size = parse_sse_data(data)
        except ValueError as exc:
            _fire(self, "SSE", "event", time.time(), 0.0, length=len(frame) + 2, status=200,
                  exception=StreamError(f"malformed event {index}: {exc}"))
            return f"malformed event {index}"
        if index == 0:
            _fire(self, "SSE", "ttfe", start_unix, (conn.recv_perf - t0) * 1000, status=200)
        wrong = ""
        if seq != index or size != self._size:
            wrong = f"event {index} had seq {seq} and {size} payload bytes (expected {self._size})"
        _fire(self, "SSE", "event", sent_ns / 1e9, (conn.recv_ns - sent_ns) / 1e6,
              length=len(frame) + 2, status=200,
              exception=StreamError(wrong) if wrong else None)
        return wrong


class WebSocketUser(User):
    """Open a WebSocket to ``_spec["path"]``, send ``messages`` text messages of
    ``message_bytes`` bytes one at a time, timing each echo, hold the connection
    idle for ``hold_s``, close, repeat (closed loop).

    A handshake answered with anything but 101 is recorded as ``handshake`` with
    :class:`WebSocketUnsupported` and the status; the user then waits ``hold_s``
    (at least 1 s) before it tries again, so an unsupporting server is probed, not
    flooded. Each user first waits a random time in [0, hold_s] so that sessions
    are spread in phase (make the warm-up at least as long).
    """

    wait_time = constant(0)

    def on_start(self) -> None:
        url = urlsplit(self.host or "http://127.0.0.1")
        scheme = "wss" if url.scheme == "https" else "ws"
        self._url = f"{scheme}://{url.netloc}{_spec.get('path', '/ws')}"
        self._messages = int(_option("messages", OPTIONS))
        self._message_bytes = int(_option("message_bytes", OPTIONS))
        self._hold_s = _option("hold_s", OPTIONS)
        self._timeout_s = _option("connect_timeout_s", OPTIONS)
        # A random phase over one hold keeps the users' sessions out of lockstep.
        _stopping.wait(random.uniform(0.0, self._hold_s))

    @task
    def session(self) -> None:
        if _stopping.is_set():
            return
        start_unix = time.time()
        t0 = time.perf_counter()
        try:
            ws = websocket.create_connection(self._url, timeout=self._timeout_s,
                                             skip_utf8_validation=True)
        except websocket.WebSocketBadStatusException as exc:
            _fire(self, "WS", "handshake", start_unix, (time.perf_counter() - t0) * 1000,
                  exception=WebSocketUnsupported(exc.status_code), status=exc.status_code)
            _stopping.wait(max(self._hold_s, 1.0))
            return
        except (OSError, websocket.WebSocketException) as exc:
            _fire(self, "WS", "connect", start_unix, (time.perf_counter() - t0) * 1000,
                  exception=exc)
            _stopping.wait(1.0)
            return
        _fire(self, "WS", "connect", start_unix, (time.perf_counter() - t0) * 1000, status=101)
        problem: Exception | None = None
        try:
            ws.settimeout(self._timeout_s)
            for i in range(self._messages):
                if _stopping.is_set():
                    return  # cut by the test's stop: no session record
                if not self._round_trip(ws, i):
                    problem = ConnectionError(f"connection failed after {i} of "
                                              f"{self._messages} messages")
                    break
            else:
                if _stopping.wait(self._hold_s):
                    return
        finally:
            ws.close(timeout=1.0)
        _fire(self, "WS", "session", start_unix, (time.perf_counter() - t0) * 1000,
              exception=problem, status=101)

    def _round_trip(self, ws: websocket.WebSocket, i: int) -> bool:
        """Send message ``i`` and time its echo; False if the connection is unusable."""
        payload = f"{i:08d}".ljust(self._message_bytes, "m")[: self._message_bytes]
        start_unix = time.time()
        t = time.perf_counter()
        try:
            ws.send(payload)
            reply = ws.recv()
        except (OSError, websocket.WebSocketException) as exc:
            _fire(self, "WS", "rtt", start_unix, (time.perf_counter() - t) * 1000, exception=exc)
            return False
        ms = (time.perf_counter() - t) * 1000
        problem: Exception | None = None
        try:
            _, echoed = parse_ws_echo(reply)
            if echoed != payload:
                problem = ValueError(f"echo of message {i} differs from what was sent")
        except ValueError as exc:
            problem = exc
        _fire(self, "WS", "rtt", start_unix, ms, length=len(reply), exception=problem, status=101)
        return True
