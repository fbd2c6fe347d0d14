"""What every flavour shares besides :mod:`harness.apps.work`: header values as text."""

from __future__ import annotations

from harness.apps.work import SSE_HEADERS, Plan

#: The SSE response's extra headers (``Cache-Control: no-cache``) as ``str`` pairs.
SSE_HEADER_TEXT: dict[str, str] = {k.decode(): v.decode() for k, v in SSE_HEADERS}


def content_type(plan: Plan) -> str:
    """The plan's Content-Type as text, exactly as the raw app sends it (frameworks that
    would append ``; charset=utf-8`` to a ``text/`` type are given the header itself)."""
    return plan.content_type.decode()
