"""Verification: a deployed stack answers the scenario's request exactly as the reference.

Run before any load, on every deployment (and by the oracle before wrk drives it): a
stack that answers differently is ``failed`` with the difference, never measured. The
reference is the raw apps' answer (:func:`harness.apps.work.expected`); every framework
flavour must give the same status, content type and bytes.

WebSocket scenarios are verified over WebSocket: one echo must come back as the raw app's
(:func:`harness.apps.work.ws_echo`: same frame type, the message after the server's
receive time). A handshake the server refuses is left to the load, which records the
stack ``unsupported`` with the status it answered (harness.streams.websocket_unsupported).

An app of the user's (``bench run --app``) has no reference: :func:`verify_own` checks its
answer against the expectation given, else against the first stack's answer.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

from harness.apps.work import expected, mask_timestamps, parse_ws_echo
from harness.procs import http_get
from harness.scenarios import Expect, Scenario

#: The text message of the WebSocket verification.
WS_PROBE = "bench-verify"


def verify(port: int, request_path: str, *, protocol: str = "http") -> str:
    """Compare the server's answer to ``request_path`` with the reference; "" if identical.

    SSE events carry the server's send time: those digits are zeroed before comparing
    (harness.apps.work.mask_timestamps), everything else must match byte for byte.
    ``protocol`` ``websocket``: :func:`verify_websocket` instead.
    """
    if protocol == "websocket":
        return verify_websocket(port, request_path)
    want_status, want_type, want_body = expected(request_path)
    try:
        status, ctype, body = http_get(port, request_path, timeout_s=30)
    except OSError as exc:
        return f"verification request failed: {exc}"
    body = mask_timestamps(body)
    if (status, ctype.encode(), body) != (want_status, want_type, want_body):
        return (f"verification failed for {request_path}: got {status} {ctype!r} {body[:80]!r}, "
                f"expected {want_status} {want_type.decode()!r} {want_body[:80]!r}")
    return ""


def verify_websocket(port: int, request_path: str, timeout_s: float = 30.0) -> str:
    """Open a WebSocket to ``request_path``, send :data:`WS_PROBE` as text, and check the
    echo: a text frame ``<20-digit receive time> WS_PROBE``. "" when it is, or when the
    handshake was refused (an HTTP status instead of 101: the load records that as
    ``unsupported``); otherwise what went wrong."""
    import websocket  # websocket-client, as the locust WebSocketUser uses

    url = f"ws://127.0.0.1:{port}{request_path}"
    try:
        ws = websocket.create_connection(url, timeout=timeout_s)
    except websocket.WebSocketBadStatusException:
        return ""
    except (OSError, websocket.WebSocketException) as exc:
        return f"verification handshake failed for {request_path}: {exc}"
    try:
        ws.send(WS_PROBE)
        reply = ws.recv()
    except (OSError, websocket.WebSocketException) as exc:
        return f"verification echo failed for {request_path}: {type(exc).__name__}: {exc}"
    finally:
        ws.close()
    try:
        _, echoed = parse_ws_echo(reply)
    except ValueError:
        echoed = None
    if not isinstance(reply, str) or echoed != WS_PROBE:
        return (f"verification failed for {request_path}: sent {WS_PROBE!r}, got "
                f"{reply[:80]!r}, expected a text echo '<receive time> {WS_PROBE}'")
    return ""


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status, Content-Type ("" when none) and body bytes."""

    status: int
    content_type: str
    body: bytes


def request(port: int, method: str, path: str, headers: Mapping[str, str] | None = None,
            body: bytes = b"", timeout_s: float = 30.0) -> Answer:
    """One request to ``127.0.0.1:port`` (a fresh connection), its answer.

    Raises:
        OSError: no answer (refused, reset, timed out).
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body or None, headers=dict(headers or {}))
        resp = conn.getresponse()
        return Answer(resp.status, resp.getheader("content-type", "") or "", resp.read())
    except http.client.HTTPException as exc:
        raise OSError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()


def difference(got: bytes, want: bytes) -> str:
    """Where two bodies part: ``"at byte N: ...got... vs ...want..."`` (40 bytes of each
    from there), or their lengths when one is the other's start."""
    n = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    if n is None:
        return f"{len(got)} bytes vs {len(want)} (one is the start of the other)"
    return f"at byte {n}: {got[n:n + 40]!r} vs {want[n:n + 40]!r}"


def expectation_problem(answer: Answer, expect: Expect) -> str:
    """Why ``answer`` does not meet ``expect`` ("" when it does; checks what is given)."""
    if expect.status is not None and answer.status != expect.status:
        return (f"answered {answer.status} {_phrase(answer.status)}, expected "
                f"{expect.status} {_phrase(expect.status)} (--expect-status)")
    if expect.body is not None and answer.body != expect.body:
        return (f"answered a body other than the expected one (--expect-body-file) "
                f"{difference(answer.body, expect.body)}")
    if expect.contains is not None and expect.contains not in answer.body:
        return (f"answered a body without {expect.contains[:80]!r} (--expect-contains): "
                f"{answer.body[:80]!r}")
    return ""


def verify_own(port: int, sc: Scenario, first: Answer) -> str:
    """An own app's stack (harness.stacks.own_app_spec): "" when its answer to the
    scenario's request meets ``sc.expect``, or, with no expectation, equals ``first`` (the
    first stack's answer: status, content type and body); else what differs."""
    try:
        got = request(port, sc.method, sc.request_path, sc.headers, sc.body)
    except OSError as exc:
        return f"verification request failed: {exc}"
    where = f"verification failed for {sc.method} {sc.request_path}"
    if sc.expect.given:
        problem = expectation_problem(got, sc.expect)
        return f"{where}: it {problem}" if problem else ""
    if (got.status, got.content_type) != (first.status, first.content_type):
        return (f"{where}: got {got.status} {got.content_type!r}, the first stack answered "
                f"{first.status} {first.content_type!r}")
    if got.body != first.body:
        return f"{where}: body differs from the first stack's {difference(got.body, first.body)}"
    return ""


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
