"""Verification: a deployed stack answers the scenario's request exactly as the reference.

Run before any load, on every deployment (and by the oracle before wrk drives it): a
stack that answers differently is ``failed`` with the difference, never measured. The
reference is the raw apps' answer (:func:`harness.apps.work.expected`); every framework
flavour must give the same status, content type and bytes.

WebSocket scenarios are verified over WebSocket: one echo must come back as the raw app's
(:func:`harness.apps.work.ws_echo`: same frame type, the message after the server's
receive time). A handshake the server refuses is left to the load, which records the
stack ``unsupported`` with the status it answered (harness.streams.websocket_unsupported).
"""

from __future__ import annotations

from harness.apps.work import expected, mask_timestamps, parse_ws_echo
from harness.procs import http_get

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
