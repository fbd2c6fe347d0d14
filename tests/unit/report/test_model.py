"""The analysis model of one run: its options are checked, its SLO comes from the documented
sources in order, its configs are ordered WSGI, ASGI, others with their interface's style,
the CDF's representative trial and window records are chosen as documented (also from a
stored latency histogram), and a derived figure is computed once per model."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness import latency
from harness.analysis import Window
from harness.report import model
from harness.results import REQUEST_COLUMNS, load_run
from tests import synth

ORIGIN = synth.CLOCK_ORIGIN


def _records(folder: Path, trial_id: str, rows: list[tuple[float, float, int, str]]) -> None:
    """Per-request records of ``trial_id``: (start unix s, latency ms, ok, name) rows."""
    frame = pd.DataFrame(rows, columns=["start_unix_s", "latency_ms", "ok", "name"])
    frame["status"], frame["bytes"] = 200, 30
    out = folder / "requests" / trial_id / "4242.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame[list(REQUEST_COLUMNS)].to_csv(out, header=False, index=False)


def _uvicorn_run(root: Path, name: str, **scenario: Any) -> Path:
    trials = [synth.trial("u10", "uvicorn", "asgi", 10, "ok", "", 2.0, 197.3)]
    return synth.write_report_run(root, name, trials, synth.samples((("uvicorn", 0.0),)),
                                  records=False, **scenario)


def test_options_are_checked_and_a_model_is_not_rebuilt(tmp_path: Path) -> None:
    run = load_run(_uvicorn_run(tmp_path, "opts"))
    for bad in (0.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="headroom"):
            model.analyse(run, headroom=bad)
    for bad in (math.nan, math.inf, -5000.0):
        with pytest.raises(ValueError, match="target_rps"):
            model.analyse(run, target_rps=bad)
    with pytest.raises(ValueError, match="slo_p99_ms"):
        model.analyse(run, slo_p99_ms=math.inf)
    a = model.analyse(run, headroom=1.0, target_rps=5000.0)
    assert (a.headroom, a.target_rps) == (1.0, 5000.0)
    assert model.as_analysis(a) is a
    with pytest.raises(ValueError, match="slo_p99_ms"):
        model.as_analysis(a, slo_p99_ms=100.0)


def test_slo_sources_in_order(tmp_path: Path) -> None:
    own = load_run(_uvicorn_run(tmp_path, "own", slo={"p99_ms": 200, "max_error_rate": 0.02},
                                validity={"max_error_rate": 0.05}))
    validity = load_run(_uvicorn_run(tmp_path, "validity", slo={"p99_ms": 200},
                                     validity={"max_error_rate": 0.05}))
    nothing = load_run(_uvicorn_run(tmp_path, "nothing", slo={}, validity={}))
    assert model.analyse(own).slo == model.Slo(200.0, 0.02, "scenario")
    assert model.analyse(validity).slo == model.Slo(200.0, 0.05, "scenario")
    assert model.analyse(own, slo_p99_ms=80.0).slo == model.Slo(80.0, 0.02, "--slo-p99-ms")
    none = model.analyse(nothing).slo
    assert math.isnan(none.p99_ms) and none.source == "none"
    assert none.max_error_rate == model.DEFAULT_MAX_ERROR_RATE == 0.01
    # without an SLO p99 no level can be sustainable: no capacity rows at all
    assert model.analyse(nothing).capacity.empty


def test_configs_are_ordered_wsgi_asgi_other_and_styled_by_interface(tmp_path: Path) -> None:
    trials = [synth.trial(f"t{i}", server, interface, 10, "ok", "", 6.0 * i, 100.0)
              for i, (server, interface) in enumerate((
                  ("uvicorn", "asgi"), ("granian", "rsgi"), ("hypercorn", "asgi"),
                  ("gunicorn-sync", "wsgi"), ("gunicorn-gthread", "wsgi")))]
    a = model.analyse(load_run(synth.write_report_run(
        tmp_path, "order", trials, synth.samples(), records=False)))
    assert list(a.configs.items()) == [
        ("gunicorn-gthread", "wsgi"), ("gunicorn-sync", "wsgi"), ("hypercorn", "asgi"),
        ("uvicorn", "asgi"), ("granian", "rsgi")]
    drawn = {s: (st.dash, st.symbol) for s, st in a.styles.items()}
    assert drawn == {"gunicorn-gthread": ("solid", "circle"), "gunicorn-sync": ("solid", "circle"),
                     "hypercorn": ("dash", "diamond"), "uvicorn": ("dash", "diamond"),
                     "granian": ("dot", "square")}
    assert len({st.colour for st in a.styles.values()}) == 5  # every config its own colour


def test_two_unknown_interfaces_get_two_colours_of_the_grey_family() -> None:
    styles = model._styles({"granian": "rsgi", "mystery": "", "uvicorn": "asgi"})
    assert styles["granian"].colour != styles["mystery"].colour
    assert {styles[s].dash for s in ("granian", "mystery")} == {"dot"}


def test_representative_trial_is_the_median_repeat_at_the_sustainable_level(
        tmp_path: Path) -> None:
    trials = []
    # uvicorn: 10 users within the 150 ms SLO (p99 56 ms), 50 users outside (p99 205 ms)
    for repeat, rps in enumerate((100.0, 300.0, 200.0), start=1):
        trials.append(synth.trial(f"u10-{repeat}", "uvicorn", "asgi", 10, "ok", "",
                                  10.0 * repeat, rps, repeat=repeat))
        trials.append(synth.trial(f"u50-{repeat}", "uvicorn", "asgi", 50, "ok", "",
                                  10.0 * repeat + 5, 150.0, repeat=repeat, latency=200.0))
    # gunicorn-sync never meets the SLO: its highest ok level (10 users), two repeats
    # equally far from their median: the lower repeat
    for repeat, rps in enumerate((100.0, 300.0), start=1):
        trials.append(synth.trial(f"s10-{repeat}", "gunicorn-sync", "wsgi", 10, "ok", "",
                                  40.0 + repeat, rps, repeat=repeat, latency=400.0))
    trials.append(synth.trial("s50", "gunicorn-sync", "wsgi", 50, "failed", "exit 3", 50.0,
                              synth.NAN))
    trials.append(synth.trial("h10", "hypercorn", "asgi", 10, "invalid", "generator-saturated",
                              60.0, 500.0))
    run = load_run(synth.write_report_run(tmp_path, "rep", trials, synth.samples(),
                                          records=False, repeats=3))
    chosen = model.representative_trials(run)
    assert {s: t["trial_id"] for s, t in chosen.items()} == {"uvicorn": "u10-3",
                                                             "gunicorn-sync": "s10-1"}
    # a tighter SLO moves uvicorn's sustainable level nowhere: then its highest ok level
    assert model.representative_trials(run, slo_p99_ms=10.0)["uvicorn"]["users"] == 50


def test_window_records_by_completion_time_and_kind(tmp_path: Path) -> None:
    folder = _uvicorn_run(tmp_path, "win")  # window [2, 7) s after the clock origin
    _records(folder, "u10", [
        (ORIGIN + 1.5, 500.0, 1, "request"),   # completes at 2.0 s: inside
        (ORIGIN + 6.5, 500.0, 1, "request"),   # completes at 7.0 s: outside
        (ORIGIN + 4.0, 250.0, 0, "request"),   # failed, inside: counted like the p99
        (ORIGIN + 4.0, math.nan, 1, "request"),
        (ORIGIN + 0.0, 100.0, 1, "request"),   # warm-up
    ])
    run = load_run(folder)
    latencies, kind = model.measured_latencies(run, run.trials.iloc[0])
    assert kind == "request" and sorted(latencies) == [250.0, 500.0]
    # stream records: the round trip is preferred over the event lag
    shutil.rmtree(folder / "requests")
    _records(folder, "u10", [(ORIGIN + 3.0, 4.0, 1, "event"), (ORIGIN + 3.0, 2.0, 1, "rtt"),
                             (ORIGIN + 3.5, 3.0, 1, "rtt")])
    latencies, kind = model.measured_latencies(run, run.trials.iloc[0])
    assert kind == "rtt" and sorted(latencies) == [2.0, 3.0]
    # no window: nothing
    assert len(model.measured_latencies(run, {"trial_id": "u10", "t_start_s": 2.0})[0]) == 0


def test_cdf_falls_back_to_the_stored_histogram(tmp_path: Path) -> None:
    folder = _uvicorn_run(tmp_path, "hist")
    values = np.repeat(np.arange(10, 110, 10, dtype=float), 7)  # 10..100 ms, 7 each
    _records(folder, "u10", [(ORIGIN + 3.0 + i / 100, v, 1, "request")
                             for i, v in enumerate(values)])
    run = load_run(folder)
    raw_x, raw_y, raw_n, _ = model.latency_cdf(run, run.trials.iloc[0])
    assert raw_n == 70 and list(raw_x) == sorted(values) and raw_y[-1] == 1.0
    stats = latency.scan_records(folder / "requests" / "u10",
                                 Window(ORIGIN + 2.0, ORIGIN + 7.0))
    (folder / "latency").mkdir()
    (folder / "latency" / "u10.json").write_text(json.dumps(stats.to_json()))
    shutil.rmtree(folder / "requests")
    x, y, n, kind = model.latency_cdf(run, run.trials.iloc[0])
    assert (n, kind) == (70, "request")
    # one point per bucket, at the bucket's top: at most one bucket (1/1024) above the value
    recorded = np.arange(10, 110, 10, dtype=float)
    assert len(x) == 10 and np.all(x >= recorded) and np.all(x <= recorded * (1 + 1 / 1024))
    assert y == pytest.approx(np.arange(1, 11) / 10)  # 7 of 70 records per value
    (folder / "latency" / "u10.json").write_text("{not json")
    assert model.latency_cdf(run, run.trials.iloc[0])[2] == 0  # unreadable: empty


def test_protocol_from_trials_and_derived_figures_computed_once(tmp_path: Path) -> None:
    trial = synth.trial("w10", "uvicorn", "asgi", 10, "ok", "", 2.0, 400.0)
    trial.update(rtt_ms_p50=2.0, rtt_ms_p99=7.0)
    run = load_run(synth.write_report_run(tmp_path, "ws", [trial], synth.samples(),
                                          records=False, protocol=None))
    a = model.analyse(run)
    assert (a.protocol, a.protocol_name, a.rate_unit, a.stream) == ("websocket", "WebSocket",
                                                                    "msg/s", True)
    assert (a.level_text(10.0), a.level_label(10.0)) == ("10 users", "10u")
    calls: list[int] = []

    @model.once
    def configs_seen(m: model.Analysis) -> int:
        calls.append(1)
        return len(m.configs)

    assert configs_seen(a) == configs_seen(a) == 2 and len(calls) == 1
    other = model.analyse(run)
    assert configs_seen(other) == 2 and len(calls) == 2  # one cache per model
