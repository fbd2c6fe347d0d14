"""The trace helpers every chart is built from: a config's line is the median over its ok
repeats at each level (scaled, levels without the metric left out), its invalid and failed
trials are ``x`` markers, unsupported ones get none but a note under the title, and
reference lines never count as data."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from harness.report import model, traces
from harness.results import load_run
from tests import synth

UNSUPPORTED = "WebSocket handshake answered 404 <Not Found>"


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> model.Analysis:
    """uvicorn: 10 users x 3 ok repeats (errors 1 %, 3 %, 2 %) and an invalid 4th, 50 users
    x 2 ok repeats (4 %, 6 %) and one without an error rate; gunicorn-sync: every trial
    unsupported."""
    trials = []
    for repeat, (rps, errors) in enumerate(((100.0, 0.01), (300.0, 0.03), (200.0, 0.02)),
                                           start=1):
        trials.append(synth.trial(f"u10-{repeat}", "uvicorn", "asgi", 10, "ok", "",
                                  10.0 * repeat, rps, repeat=repeat, error_rate=errors))
    trials.append(synth.trial("u10-4", "uvicorn", "asgi", 10, "invalid", "generator-saturated",
                              40.0, 987.0, repeat=4, error_rate=0.5))
    for repeat, (rps, errors) in enumerate(((400.0, 0.04), (500.0, 0.06)), start=1):
        trials.append(synth.trial(f"u50-{repeat}", "uvicorn", "asgi", 50, "ok", "",
                                  50.0 + 10 * repeat, rps, repeat=repeat, error_rate=errors))
    trials.append(synth.trial("u80", "uvicorn", "asgi", 80, "ok", "", 80.0, 450.0))
    trials[-1]["error_rate"] = synth.NAN
    for users in (10, 50):
        trials.append(synth.trial(f"s{users}", "gunicorn-sync", "wsgi", users, "unsupported",
                                  UNSUPPORTED, 90.0 + users, 5.0))
    run = load_run(synth.write_report_run(tmp_path_factory.mktemp("traces"), "tr", trials, synth.samples(),
                                          records=False, repeats=3))
    return model.analyse(run)


def test_a_line_is_the_median_of_ok_repeats_per_level(analysis: model.Analysis) -> None:
    found = traces._level_traces(analysis, "error_rate", "errors", "%", scale=100.0)
    assert [t.name for t in found] == ["uvicorn", "uvicorn (not valid)"]
    line, bad = found
    # 80 users has no error rate: no point there; the invalid repeat counts nowhere
    assert list(line.x) == [10.0, 50.0]
    expected = [100 * np.median([0.01, 0.03, 0.02]), 100 * np.median([0.04, 0.06])]
    assert list(line.y) == pytest.approx(expected)  # 2 % and 5 %
    assert line.line.dash == "dash" and line.marker.symbol == "diamond"
    assert list(bad.x) == [10.0] and list(bad.y) == [50.0]
    assert bad.marker.symbol == "x" and bad.marker.color == line.line.color
    assert list(bad.hovertext) == ["invalid: generator-saturated"]


def test_unsupported_trials_get_no_marker(analysis: model.Analysis) -> None:
    style = analysis.styles["gunicorn-sync"]
    assert traces._not_valid_trace(analysis, "gunicorn-sync", style, "users",
                                   "throughput_rps", "throughput", "req/s") is None
    assert traces._ok_levels(analysis, "gunicorn-sync").empty
    assert list(traces._ok_levels(analysis, "uvicorn")["users"]) == [10, 50, 80]


def test_reference_lines_are_not_data() -> None:
    slo = traces._reference_line([0, 500], [150, 150], "SLO p99 150 ms", "#c00", "dash")
    assert slo.meta == {"reference": True} and list(slo.y) == [150, 150]
    assert not traces._has_data(go.Figure([slo]))
    assert not traces._has_data(go.Figure([slo, go.Scatter(x=[], y=[], name="uvicorn")]))
    assert traces._has_data(go.Figure([slo, go.Scatter(x=[10], y=[197.3], name="uvicorn")]))


def test_each_name_shows_once_in_the_legend() -> None:
    fig = go.Figure([go.Scatter(x=[1], y=[2], name=n)
                     for n in ("uvicorn", "gunicorn-sync", "uvicorn", "uvicorn")])
    traces._dedupe_legend(fig)
    assert [t.showlegend for t in fig.data] == [True, True, False, False]


def test_unsupported_configs_are_named_under_a_title_with_data(
        analysis: model.Analysis) -> None:
    fig = go.Figure(traces._level_traces(analysis, "throughput_rps", "throughput", "req/s"))
    fig.update_layout(title_text="Throughput vs load")
    traces._note_unsupported(analysis, fig)
    assert fig.layout.title.text == (
        "Throughput vs load<br><sup>unsupported (no line): gunicorn-sync (WebSocket "
        "handshake answered 404 &lt;Not Found&gt;)</sup>")
    empty = go.Figure(layout={"title": {"text": "Nothing"}})
    traces._note_unsupported(analysis, empty)  # nothing drawn: nothing to explain
    assert empty.layout.title.text == "Nothing"
