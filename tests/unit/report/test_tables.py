"""The report package renders what the single-module report rendered: same sections,
tables, verdict sentences and figure data for stored real runs.

tests/data/report_same/ holds two short real ``bench run`` folders (io-heavy with an
invalid trial; websocket-echo with an unsupported WSGI config: run.json, trials.csv,
samples.csv and the per-request records the latency CDF reads) and ``golden.json``: what
:func:`tests.report_extract.extract` read from their reports as rendered by
``harness/report.py`` before it became a package (commit 16e7b80), for the render
options of :data:`tests.report_extract.CASES`. Text is compared exactly, numbers in the
figures to 1e-9 relative.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.report_extract import CASES, GOLDEN, differences, render_case


@pytest.fixture(scope="module")
def golden() -> dict[str, dict[str, object]]:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("name", "runs", "options"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.slow
def test_report_content_is_unchanged(name: str, runs: tuple[str, ...],
                                     options: dict[str, object], golden: dict[str, object],
                                     tmp_path: Path) -> None:
    expected = golden[name]
    got = render_case(runs, options, tmp_path / f"{name}.html")
    assert differences(expected, got) == []
    # the comparison has something to compare, and can fail
    assert got["tables"] and got["verdict"] and got["figures"]
    assert differences(expected, {**got, "verdict": got["verdict"][:-1]})


def test_golden_files_are_small() -> None:
    total = sum(p.stat().st_size for p in GOLDEN.parent.rglob("*") if p.is_file())
    assert total < 300_000
