"""Verification: a deployed stack answers the scenario's request exactly as the reference.

Run before any load, on every deployment (and by the oracle before wrk drives it): a
stack that answers differently is ``failed`` with the difference, never measured.
"""

from __future__ import annotations

from harness.apps.work import expected, mask_timestamps
from harness.procs import http_get


def verify(port: int, request_path: str) -> str:
    """Compare the server's answer to ``request_path`` with the reference; "" if identical.

    SSE events carry the server's send time: those digits are zeroed before comparing
    (harness.apps.work.mask_timestamps), everything else must match byte for byte.
    """
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
