"""The stack axis of the report: each (server config, app) stack's state and capacity, the
framework overhead against the raw app on the same server (at max sustainable levels, else
at peaks, else why not), the apps-by-servers matrix with its heat scale, and the verdict's
sentences about them; a run of the raw apps alone has none of it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from harness.report import model, stacks
from harness.results import SCHEMA_VERSION, atomic_write_json, load_run
from tests import synth

INVALID = ("generator-saturated: load CPUs 96% busy", "not-steady: latency drift 12 %")


def _stack(trial_id: str, server: str, interface: str, app: str, rps: float, cpu_ms: float,
           pss: float, *, status: str = "ok", reason: str = "", latency: float = 51.0,
           users: int = 10, repeat: int = 1) -> dict[str, Any]:
    row = synth.trial(trial_id, server, interface, users, status, reason, 7.0 * len(trial_id),
                      rps, latency=latency, pss=pss, repeat=repeat)
    row.update(app=app, framework_version="" if app == "raw" else "1.0",
               cpu_ms_per_request=cpu_ms)
    return row


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> model.Analysis:
    """Within the 150 ms SLO (p99 56 ms): gunicorn-sync raw 400 req/s at 1.0 ms CPU per
    request, flask 300 at 1.5; uvicorn raw 1000 at 0.5, starlette 800 at 0.6. fastapi on
    uvicorn: 700 req/s at p99 405 ms, outside. django: invalid twice on gunicorn-sync,
    unsupported on uvicorn."""
    trials = [
        _stack("s-raw", "gunicorn-sync", "wsgi", "raw", 400.0, 1.0, 40.0),
        _stack("s-raw-50", "gunicorn-sync", "wsgi", "raw", 450.0, 1.1, 41.0, users=50,
               latency=300.0),
        _stack("s-flask", "gunicorn-sync", "wsgi", "flask", 300.0, 1.5, 50.0),
        _stack("s-django-1", "gunicorn-sync", "wsgi", "django", 200.0, 2.0, 60.0,
               status="invalid", reason=INVALID[0]),
        _stack("s-django-2", "gunicorn-sync", "wsgi", "django", 200.0, 2.0, 60.0,
               status="invalid", reason=INVALID[1], repeat=2),
        _stack("u-raw", "uvicorn", "asgi", "raw", 1000.0, 0.5, 30.0),
        _stack("u-starlette", "uvicorn", "asgi", "starlette", 800.0, 0.6, 35.0),
        _stack("u-fastapi", "uvicorn", "asgi", "fastapi", 700.0, 0.7, 36.0, latency=400.0),
        _stack("u-django", "uvicorn", "asgi", "django", 5.0, 0.0, 20.0, status="unsupported",
               reason="Django has no WebSocket without Channels"),
    ]
    folder = synth.write_report_run(tmp_path_factory.mktemp("stacks"), "stacks", trials,
                                    synth.samples(), records=False)
    # synth writes schema 1, whose migration reads every app as raw: this run is current
    meta = json.loads((folder / "run.json").read_text())
    atomic_write_json(folder / "run.json", {**meta, "schema_version": SCHEMA_VERSION})
    return model.analyse(load_run(folder))


def test_every_stack_has_a_state(analysis: model.Analysis) -> None:
    assert stacks.stacked(analysis)
    cells = stacks.stack_cells(analysis).set_index("stack")
    assert list(stacks.stack_cells(analysis).columns) == list(stacks.CELL_COLUMNS)
    assert cells["state"].to_dict() == {
        "gunicorn-sync": "ok", "gunicorn-sync+django": "invalid", "gunicorn-sync+flask": "ok",
        "uvicorn": "ok", "uvicorn+django": "unsupported", "uvicorn+fastapi": "no-slo",
        "uvicorn+starlette": "ok"}
    raw = cells.loc["gunicorn-sync"]
    assert (raw["server"], raw["app"], raw["sustainable_rps"], raw["at_level"]) == (
        "gunicorn-sync", "raw", 400.0, 10.0)
    assert (raw["peak_rps"], raw["peak_level"], raw["peak_cpu_ms_per_request"]) == (
        450.0, 50.0, 1.1)  # the peak, outside the SLO
    assert cells.loc["gunicorn-sync+django", "reason"] == "; ".join(sorted(INVALID))
    assert math.isnan(cells.loc["uvicorn+fastapi", "sustainable_rps"])
    assert cells.loc["uvicorn+fastapi", "peak_rps"] == 700.0


def test_overhead_against_raw_on_the_same_server(analysis: model.Analysis) -> None:
    frame = stacks.overhead(analysis)
    rows = {(r["server"], r["app"]): r for r in frame.to_dict("records")}
    assert list(rows) == [("gunicorn-sync", "flask"), ("gunicorn-sync", "django"),
                          ("uvicorn", "django"), ("uvicorn", "fastapi"),
                          ("uvicorn", "starlette")]  # the registry's order of apps
    flask = rows[("gunicorn-sync", "flask")]
    assert flask["basis"] == "sustainable"
    assert flask["capacity_ratio"] == pytest.approx(300.0 / 400.0)
    assert flask["cpu_ms_extra"] == pytest.approx(1.5 - 1.0)
    assert flask["cpu_ratio"] == pytest.approx(1.5 / 1.0)
    assert (flask["pss_mib"], flask["raw_pss_mib"]) == (50.0, 40.0)
    fastapi = rows[("uvicorn", "fastapi")]  # no level within the SLO: both at their peaks
    assert fastapi["basis"] == "peak"
    assert fastapi["capacity_ratio"] == pytest.approx(700.0 / 1000.0)
    assert fastapi["note"] == "at peak, outside the SLO: fastapi has no level within the SLO"
    django = rows[("gunicorn-sync", "django")]
    assert django["basis"] == "" and math.isnan(django["capacity_ratio"])
    assert django["note"] == "invalid: generator-saturated, not-steady"
    assert rows[("uvicorn", "django")]["note"] == (
        "unsupported: Django has no WebSocket without Channels")


def test_matrix_cells_and_heat_scale(analysis: model.Analysis) -> None:
    table = stacks.matrix_table(analysis, 0)
    assert table is not None and table.id == "stacks-run0"
    assert [h for h, _ in table.head] == ["app", "framework", "gunicorn-sync (WSGI)",
                                          "uvicorn (ASGI)"]
    cells = {row[0].text: [(c.text, c.css.removeprefix("num ")) for c in row[2:]]
             for _, row in table.rows}  # server columns are numeric: "num" leads their class
    assert list(cells) == ["raw", "flask", "django", "fastapi", "starlette"]
    low, high = 300.0, 1000.0  # the matrix's lowest and highest max sustainable req/s

    def heat(rps: float) -> str:
        return f"cell heat-{min(stacks.HEAT_STEPS - 1, int(10 * (rps - low) / (high - low)))}"

    assert cells["raw"] == [("400.0 at 10u", heat(400.0)), ("1,000.0 at 10u", "cell heat-9")]
    assert cells["flask"] == [("300.0 at 10u", "cell heat-0"),
                              ("– (not ASGI)", "cell cell-none")]
    assert cells["starlette"][1] == ("800.0 at 10u", heat(800.0))
    assert cells["fastapi"] == [("– (not WSGI)", "cell cell-none"),
                                ("none within SLO (peak 700.0)", "cell cell-mixed")]
    assert cells["django"] == [
        ("invalid: generator-saturated, not-steady", "cell cell-invalid"),
        ("unsupported: Django has no WebSocket without Channels", "cell cell-unsupported")]


def test_stack_sentences_carry_their_numbers(analysis: model.Analysis) -> None:
    sentences = stacks.stack_sentences(analysis)
    assert sentences[0] == ("Stacks: 7 (server config, app) pairs of matching interface from 5 "
                            "apps and 2 server configs, 1 of them unsupported for this "
                            "workload.")
    assert sentences[1] == ("Best server config for each app, by max sustainable throughput: "
                            "raw → uvicorn (1,000.0 req/s); flask → gunicorn-sync (300.0 "
                            "req/s); starlette → uvicorn (800.0 req/s).")
    assert sentences[2] == ("Framework overhead on gunicorn-sync, throughput against raw's "
                            "(400.0 req/s at 1.000 ms CPU per request): flask 0.75×, +0.500 ms "
                            "CPU per request.")
    assert sentences[3] == ("Framework overhead on uvicorn, throughput against raw's (1,000.0 "
                            "req/s at 0.500 ms CPU per request): starlette 0.80×, +0.100 ms "
                            "CPU per request; fastapi 0.70× at peak (outside the SLO), "
                            "+0.200 ms CPU per request.")
    fig = stacks.overhead_figure(analysis)
    ratios = {t.name: list(t.y) for t in fig.data if t.xaxis == "x"}
    assert ratios["flask"][0] == 0.75 and ratios["starlette"][1] == 0.8


def test_a_raw_only_run_has_no_stack_axis(tmp_path_factory: pytest.TempPathFactory) -> None:
    trials = [synth.trial("u10", "uvicorn", "asgi", 10, "ok", "", 2.0, 197.3)]
    a = model.analyse(load_run(synth.write_report_run(
        tmp_path_factory.mktemp("raw"), "raw", trials, synth.samples(), records=False)))
    assert not stacks.stacked(a)
    assert stacks.overhead(a).empty and stacks.overhead_table(a, 0) is None
    assert not stacks.overhead_figure(a).data
