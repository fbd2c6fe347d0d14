"""The report's formatting helpers print numbers as the page shows them: a missing or
non-numeric value is a dash (never ``nan``), an infinite one ``∞``, figures with thousands
separators, and chart values rounded to decimals or to significant digits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.report import fmt
from harness.results import atomic_write_json, load_run

DASH = "–"


@pytest.mark.parametrize("missing", [None, math.nan, "", "n/a", np.float64("nan")])
def test_missing_values_print_as_a_dash(missing: object) -> None:
    assert fmt._num(missing) == DASH
    assert fmt._int(missing) == DASH
    assert fmt._percent(missing) == DASH
    assert math.isnan(fmt._float(missing))


def test_numbers_keep_their_digits_separators_and_units() -> None:
    # throughput req/s with one decimal and a thousands separator; a p99 of 1234.5678 ms
    assert fmt._num(1800.0) == "1,800.0"
    assert fmt._num(1234.5678, 2) == "1,234.57"
    assert fmt._num("56.04", 0) == "56"  # a CSV string is a number too
    assert fmt._num(math.inf) == "∞"
    assert fmt._int(79.9) == "79"  # users: truncated, not rounded
    assert fmt._int(math.inf) == DASH
    assert fmt._percent(0.0125) == "1.25"  # error rate fraction -> percent
    assert fmt._status_text("invalid", "generator-saturated") == "invalid: generator-saturated"
    assert fmt._status_text("ok", "") == "ok"


def test_chart_values_are_rounded_and_nan_becomes_none() -> None:
    latencies_ms = [0.000123456, 1.23456, 123456.7, math.nan, None]
    # a log axis needs relative precision: 4 significant digits whatever the magnitude
    assert fmt._significant(latencies_ms) == [0.0001235, 1.235, 123500.0, None, None]
    assert fmt._significant(latencies_ms, 2) == [0.00012, 1.2, 120000.0, None, None]
    # throughput req/s rounded to decimals; numpy floats become plain floats
    rounded = fmt._rounded(np.array([197.349, 39.1, np.nan]), 1)
    assert rounded == [197.3, 39.1, None]
    assert all(type(v) is float for v in rounded[:2])


def test_setup_values_are_listed_or_dashed() -> None:
    assert fmt._pairs({"latency_ms": 50, "bytes": 30}) == "latency_ms=50, bytes=30"
    assert fmt._pairs({}) == DASH and fmt._pairs(["latency_ms=50"]) == DASH
    assert fmt._cpus([0, 1, 3]) == "0,1,3" and fmt._cpus((2,)) == "2"
    assert fmt._cpus([]) == DASH and fmt._cpus(None) == DASH
    assert fmt._e('<td class="x">&') == "&lt;td class=&quot;x&quot;&gt;&amp;"


def test_run_id_falls_back_to_the_folder_name(tmp_path: Path) -> None:
    named, bare = tmp_path / "folder-a", tmp_path / "folder-b"
    atomic_write_json(named / "run.json", {"schema_version": 1, "run_id": "20250101-io-heavy"})
    atomic_write_json(bare / "run.json", {"schema_version": 1, "status": "interrupted"})
    assert fmt._run_id(load_run(named)) == "20250101-io-heavy"
    assert fmt._run_id(load_run(bare)) == "folder-b"
