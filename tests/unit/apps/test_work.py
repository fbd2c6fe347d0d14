"""The WSGI and ASGI apps return the same status, content type and bytes for every route."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.apps.work import PARAM_BOUNDS, cpu_work, expected, mask_timestamps, route
from harness.procs import http_get
from tests.conftest import serve

REQUESTS = [
    "/health", "/io?latency_ms=0", "/io?latency_ms=20", "/io", "/cpu?work=0", "/cpu?work=50",
    "/cpu", "/io?latency_ms=abc", "/io?latency_ms=-1", f"/io?latency_ms={PARAM_BOUNDS['latency_ms'][1] + 1}",
    "/cpu?work=1e3", "/nope", "/",
    # Streams: a short SSE stream (compared with its timestamps masked), bad stream
    # parameters, and /ws, which as plain HTTP is no route in either app.
    "/sse?events=3&interval_ms=10&size=8", "/sse?events=0", "/sse?size=x",
    f"/sse?size={PARAM_BOUNDS['size'][1] + 1}", "/sse?events=10&interval_ms=10000", "/ws",
]


def test_cpu_work_is_deterministic_and_scales() -> None:
    assert cpu_work(10) == cpu_work(10)
    assert cpu_work(10) != cpu_work(11)


def test_bad_parameters_are_400_not_a_hang() -> None:
    plan = route("GET", "/io", f"latency_ms={10**9}")
    assert plan.status == 400 and plan.wait_s == 0
    assert b"latency_ms must be in" in plan.body()
    for query in ("events=100000", "interval_ms=100000", "size=100000000",
                  "events=10000&interval_ms=10000"):
        plan = route("GET", "/sse", query)
        assert (plan.status, plan.wait_s, plan.stream) == (400, 0, None), query


@pytest.mark.parametrize(("wsgi", "asgi"), [("gunicorn-sync", "uvicorn"),
                                            ("granian-wsgi", "granian-asgi")])
@pytest.mark.slow
def test_wsgi_and_asgi_apps_answer_byte_identically(tmp_path: Path, wsgi: str, asgi: str) -> None:
    with serve(wsgi, tmp_path) as (wport, _), serve(asgi, tmp_path) as (aport, _):
        for path in REQUESTS:
            w = _masked(http_get(wport, path))
            a = _masked(http_get(aport, path))
            assert w == a, path
            assert w == (expected(path)[0], expected(path)[1].decode(), expected(path)[2]), path


def _masked(answer: tuple[int, str, bytes]) -> tuple[int, str, bytes]:
    """SSE events carry the server's send time: zero it (other bodies are unchanged)."""
    status, ctype, body = answer
    return status, ctype, mask_timestamps(body)
