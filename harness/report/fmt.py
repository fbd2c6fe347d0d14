"""Formatting helpers of the report: numbers and values as the page prints them.

Pure functions of plain values (no pandas): a missing or non-numeric value prints as a
dash (:data:`_DASH`), never as ``nan``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.results import RunData

_DASH = "–"


def _float(value: Any) -> float:
    """``value`` as a float, NaN when it is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _significant(values: Any, digits: int = 4) -> list[float | None]:
    """Plain floats to ``digits`` significant digits (NaN as None): a latency axis
    on a log scale needs relative, not absolute, precision."""
    return [None if v is None or math.isnan(float(v)) else float(f"{float(v):.{digits}g}")
            for v in values]


def _rounded(values: Any, digits: int) -> list[float | None]:
    """Plain floats rounded to ``digits`` decimals (NaN as None): smaller JSON in the page."""
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), digits)
            for v in values]


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 1) -> str:
    """``value`` with ``digits`` decimals, or a dash when missing."""
    number = _float(value)
    if math.isnan(number):
        return _DASH
    return "∞" if math.isinf(number) else f"{number:,.{digits}f}"


def _int(value: Any) -> str:
    number = _float(value)
    return _DASH if math.isnan(number) or math.isinf(number) else str(int(number))


def _percent(fraction: Any) -> str:
    number = _float(fraction)
    return _DASH if math.isnan(number) else f"{100 * number:.2f}"


def _status_text(status: str, reason: str) -> str:
    return f"{status}: {reason}" if reason else status


def _pairs(mapping: Any) -> str:
    """``{"a": 1, "b": 2}`` as ``"a=1, b=2"``; a dash when empty or not a mapping."""
    if not isinstance(mapping, Mapping) or not mapping:
        return _DASH
    return ", ".join(f"{k}={v}" for k, v in mapping.items())


def _cpus(cpus: Any) -> str:
    return ",".join(str(c) for c in cpus) if isinstance(cpus, list | tuple) and cpus else _DASH


def _run_id(run: RunData) -> str:
    return run.meta.run_id or run.path.name
