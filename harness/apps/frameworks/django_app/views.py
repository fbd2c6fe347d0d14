"""Sync Django views: ``HttpResponse``; SSE as a ``StreamingHttpResponse`` of a generator."""

from __future__ import annotations

import time
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

from harness.apps.frameworks.common import SSE_HEADER_TEXT, content_type
from harness.apps.work import Plan, Stream, route


def _plan(request: HttpRequest, path: str) -> Plan:
    return route(request.method or "GET", path, request.META.get("QUERY_STRING", ""))


def _reply(plan: Plan) -> HttpResponse:
    return HttpResponse(plan.body(), status=plan.status, content_type=content_type(plan))


def health(request: HttpRequest) -> HttpResponse:
    return _reply(_plan(request, "/health"))


def io(request: HttpRequest) -> HttpResponse:
    plan = _plan(request, "/io")
    if plan.wait_s:
        time.sleep(plan.wait_s)
    return _reply(plan)


def cpu(request: HttpRequest) -> HttpResponse:
    return _reply(_plan(request, "/cpu"))


def sse(request: HttpRequest) -> HttpResponseBase:
    plan = _plan(request, "/sse")
    if plan.stream is None:
        return _reply(plan)
    return StreamingHttpResponse(_events(plan.stream), content_type=content_type(plan),
                                 headers=SSE_HEADER_TEXT)


def _events(stream: Stream) -> Iterator[bytes]:
    for seq in range(stream.events):
        if seq:
            time.sleep(stream.interval_s)
        yield stream.event(seq, time.time_ns())
