"""The report's real-I/O part: absent for a run without components or drivers; otherwise
notes on drivers, placement and components, a row per trial with its efficiency in percent,
a sentence per blocking-driver trial (with the starvation caveat when its p99 exceeds twice
the queue cycle), medians of ok trials vs users with the ceiling, and throughput vs
pool_size across runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import plotly.io as pio
import pytest

from harness.report import model, realio, render
from harness.results import atomic_write_json, load_run
from tests import synth
from tests.report_extract import plots

COMPONENTS = {
    "names": ["postgres"], "drivers": {"wsgi": "psycopg", "asgi": "asyncpg"}, "pool_size": 4,
    "cpus": [3], "cpus_shared_with_server": True, "placement": "beside the server",
    "upstream": {"url": "http://127.0.0.1:9001"},
}


def _trial(trial_id: str, server: str, interface: str, driver: str, pool: int, rps: float,
           *, users: int = 10, status: str = "ok", reason: str = "", repeat: int = 1,
           **figures: Any) -> dict[str, Any]:
    row = synth.trial(trial_id, server, interface, users, status, reason, 7.0 * len(trial_id),
                      rps, repeat=repeat)
    row.update(scenario="db-io", driver=driver, pool_size=pool, **figures)
    return row


def _run(root: Path, run_id: str, trials: list[dict[str, Any]],
         components: dict[str, Any] | None) -> model.Analysis:
    folder = synth.write_report_run(root, run_id, trials, synth.samples(), records=False,
                                    name="db-io")
    meta = json.loads((folder / "run.json").read_text())
    if components is not None:
        meta["components"] = components
    atomic_write_json(folder / "run.json", meta)
    return model.analyse(load_run(folder))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[model.Analysis, model.Analysis]:
    """pool_size 4: gunicorn-sync + psycopg, uvicorn + asyncpg (two repeats, 170 and 190
    req/s), uvicorn + blocking (not steady, p99 1,505 ms, queue cycle 0.5 s). pool_size 8:
    uvicorn + asyncpg at 196 req/s."""
    root = tmp_path_factory.mktemp("realio")
    four = [
        _trial("s", "gunicorn-sync", "wsgi", "psycopg", 4, 38.0, efficiency=0.95,
               bound_by="workers", db_active_peak=2, db_connections_peak=2,
               cpu_ms_per_request=1.2, db_cpu_ms_per_request=0.8),
        _trial("u1", "uvicorn", "asgi", "asyncpg", 4, 170.0, efficiency=0.85, bound_by="pool",
               db_active_peak=4, cpu_ms_per_request=0.4, db_cpu_ms_per_request=0.3),
        _trial("u2", "uvicorn", "asgi", "asyncpg", 4, 190.0, repeat=2, db_active_peak=4,
               cpu_ms_per_request=0.4),
        _trial("b", "uvicorn", "asgi", "blocking", 4, 19.6, status="invalid",
               reason="not-steady: latency drift 30 %", ceiling_rps=20.0, queue_cycle_s=0.5,
               latency_p99_ms=1505.0, db_active_peak=1),
    ]
    eight = [_trial("u8", "uvicorn", "asgi", "asyncpg", 8, 196.0, db_active_peak=8,
                    cpu_ms_per_request=0.4)]
    return (_run(root, "pool4", four, COMPONENTS),
            _run(root, "pool8", eight, {**COMPONENTS, "pool_size": 8}))


def test_a_run_without_components_has_no_part(tmp_path: Path) -> None:
    plain = _run(tmp_path, "plain", [synth.trial("u", "uvicorn", "asgi", 10, "ok", "", 2.0,
                                                 197.3)], None)
    assert realio.realio_part(plain, 0, include_js=True) == (None, True)
    assert realio.pool_part([plain], include_js=True) == (None, True)


def test_notes_table_and_blocking_sentence(
        runs: tuple[model.Analysis, model.Analysis]) -> None:
    part, include_js = realio.realio_part(runs[0], 0, include_js=False)
    assert part is not None and include_js is False
    notes = part["notes"]
    assert notes[0].startswith("Drivers: WSGI apps psycopg, ASGI apps asyncpg; pool_size 4 "
                               "connections per worker process.")
    assert notes[1] == ("Components (postgres) ran on CPUs 3: beside the server. Their CPU "
                        "competes with the server's, so the server's figures include that "
                        "contention.")
    assert notes[2].startswith("Upstream service: uvicorn on http://127.0.0.1:9001")
    table = part["table"]
    heads = [h for h, _ in table.head]
    rows = {row[0].text + " " + row[1].text: (css, dict(zip(heads, row, strict=True)))
            for css, row in table.rows}
    css, sync = rows["gunicorn-sync psycopg"]
    assert css == "wsgi ok"
    assert (sync["efficiency %"].text, sync["efficiency %"].value) == ("95.0", "95")
    assert sync["bound by"].text == "workers" and sync["server CPU ms/req"].text == "1.200"
    css, blocking = rows["uvicorn blocking"]
    assert css == "asgi not-valid invalid" and blocking["efficiency %"].text == "–"
    assert "status-invalid" in blocking["status"].css
    (sentence,) = part["blocking"]
    assert sentence.startswith(
        "uvicorn with the blocking driver (sync driver inside async def): 19.6 req/s at 10 "
        "users against a ceiling of 20.0 req/s = workers ÷ wait, one call at a time per event "
        "loop (invalid: not-steady: latency drift 30 %).")
    # 1,505 ms > 2 x 0.5 s: the starvation caveat
    assert "Its p99 (1,505 ms) is more than twice the queue cycle (0.50 s)" in sentence


def test_lines_are_medians_of_ok_trials_with_the_ceiling(
        runs: tuple[model.Analysis, model.Analysis]) -> None:
    fig = realio._lines(runs[0], "throughput_rps", "Throughput", "req/s",
                        reference="ceiling_rps")
    assert fig is not None
    traces = {t.name: t for t in fig.data}
    asyncpg = traces["uvicorn · asyncpg"]
    assert list(asyncpg.x) == [10] and list(asyncpg.y) == [np.median([170.0, 190.0])]
    assert list(traces["uvicorn · asyncpg ceiling"].y) == [10 / 0.05]  # Little's law: 200
    bad = traces["uvicorn · blocking (not valid)"]
    assert list(bad.y) == [19.6] and bad.marker.symbol == "x"
    connections = realio._lines(runs[0], "db_active_peak", "Connections", "active",
                                reference="y=x")
    assert connections is not None
    (diagonal,) = [t for t in connections.data if t.name == "y = users"]
    assert list(diagonal.x) == list(diagonal.y) == [10]


def test_throughput_against_pool_size_across_runs(
        runs: tuple[model.Analysis, model.Analysis]) -> None:
    part, include_js = realio.pool_part(list(runs), include_js=False)
    assert part is not None and include_js is False
    chart = str(part["chart"])
    assert 'id="realio-pool"' in chart and "plotly.js v" not in chart
    start = chart.index("[", chart.index('Plotly.newPlot('))
    traces, _ = json.JSONDecoder().raw_decode(chart, start)  # the figure's data, as drawn
    line, ceiling = traces
    assert line["name"] == "db-io · uvicorn · asyncpg · 10 users"
    assert line["x"] == [4, 8] and line["y"] == [np.median([170.0, 190.0]), 196.0]
    assert ceiling["name"].endswith("ceiling") and ceiling["y"] == [200.0, 200.0]
    # one pool size alone draws no line
    assert realio.pool_part([runs[0]], include_js=True) == (None, True)


def test_the_pages_real_io_charts_are_white_like_every_other(
        runs: tuple[model.Analysis, model.Analysis], tmp_path: Path) -> None:
    """The real-I/O charts, built with plain ``go.Figure()``, get the report's template
    from the page's one hold (:func:`harness.report.traces.template_held`): before it,
    they came out in plotly's grey default beside white charts."""
    before = pio.templates.default
    page = render(list(runs), tmp_path / "report.html").read_text("utf-8")
    drawn = {div_id: layout["template"]["layout"]["plot_bgcolor"]
             for div_id, _, layout in plots(page)}
    assert "realio-pool" in drawn and "run0-realio-connections" in drawn, sorted(drawn)
    assert set(drawn.values()) == {"white"}, drawn
    assert pio.templates.default == before
