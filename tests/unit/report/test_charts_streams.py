"""The charts of an SSE run: time to first event and event lag as p50/p99 panels (the SLO on
the TTFE p99 panel only), events/s, connections held and served against y = x, and PSS per
held connection with the fitted line through the ok points, or the reason there is none."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.report import charts_streams, model
from harness.results import load_run
from tests import synth

SLO_TTFE_P99_MS = 500


def _sse(trial_id: str, server: str, interface: str, users: int, repeat: int, *,
         ttfe_p99: float, held: float, pss: float, slope: float) -> dict[str, Any]:
    row = synth.trial(trial_id, server, interface, users, "ok", "", 10.0 * len(trial_id),
                      users * 2.0, repeat=repeat, latency=ttfe_p99 - 5)
    row.update(scenario="sse-stream", ttfe_ms_p50=ttfe_p99 / 2, ttfe_ms_p99=ttfe_p99,
               event_lag_ms_p50=1.0, event_lag_ms_p99=3.0, events_per_s=users * 10.0,
               concurrent_connections_peak=held, concurrent_served_mean=held - 0.5,
               pss_mib_peak=pss, pss_kib_per_connection=slope, ceiling_rps=synth.NAN)
    return row


# uvicorn holds every client: PSS rises 30 KiB per connection in repeat 1, 34 in repeat 2.
# gunicorn-sync (2 sync workers) holds 2 connections at every level: no slope.
UVICORN = [(4, 1, 10.0, 20 + 4 * 30 / 1024, 30.0), (16, 1, 40.0, 20 + 16 * 30 / 1024, 30.0),
           (4, 2, 30.0, 21 + 4 * 34 / 1024, 34.0), (16, 2, 60.0, 21 + 16 * 34 / 1024, 34.0)]


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> model.Analysis:
    trials = [_sse(f"u{users}r{repeat}", "uvicorn", "asgi", users, repeat, ttfe_p99=p99,
                   held=users, pss=pss, slope=slope)
              for users, repeat, p99, pss, slope in UVICORN]
    trials += [_sse(f"sync{users}r1", "gunicorn-sync", "wsgi", users, 1, ttfe_p99=900.0,
                    held=2, pss=30.0, slope=synth.NAN) for users in (4, 16)]
    run = load_run(synth.write_report_run(
        tmp_path_factory.mktemp("sse"), "sse", trials, synth.samples(), records=False,
        name="sse-stream", protocol="sse", request_path="/sse", repeats=2,
        slo={"p99_ms": SLO_TTFE_P99_MS, "max_error_rate": 0.01}))
    return model.analyse(run)


@pytest.fixture(scope="module")
def figs(analysis: model.Analysis) -> dict[str, Any]:
    return charts_streams._stream_figures(analysis)


def _measured(fig: Any, axis: str) -> dict[str, tuple[list[float], list[float]]]:
    return {t.name: (list(t.x), list(t.y)) for t in fig.data
            if not (t.meta or {}).get("reference") and (t.xaxis or "x") == axis}


def test_sse_charts_in_order_with_the_slo_on_the_ttfe_p99_panel(figs: dict[str, Any]) -> None:
    assert list(figs) == ["ttfe", "event_lag", "events_rate", "connections",
                          "pss_per_connection"]
    assert list(figs) == [k for k in charts_streams.STREAM_CHART_KEYS if k in figs]
    ttfe = figs["ttfe"]
    p99 = np.median([[10.0, 30.0], [40.0, 60.0]], axis=1)  # per level, over the two repeats
    assert _measured(ttfe, "x2")["uvicorn"] == ([4.0, 16.0], list(p99))
    assert _measured(ttfe, "x")["uvicorn"] == ([4.0, 16.0], list(p99 / 2))
    (slo,) = [t for t in ttfe.data if (t.meta or {}).get("reference")]
    assert (slo.name, slo.xaxis, list(slo.y)) == (f"SLO p99 {SLO_TTFE_P99_MS} ms", "x2",
                                                  [SLO_TTFE_P99_MS] * 2)
    assert not [t for t in figs["event_lag"].data if (t.meta or {}).get("reference")]
    assert ttfe.layout.yaxis.type == ttfe.layout.yaxis2.type == "log"
    assert _measured(figs["events_rate"], "x")["gunicorn-sync"] == ([4.0, 16.0], [40.0, 160.0])
    # each name once in the legend, though both panels draw it
    assert [t.name for t in ttfe.data if t.showlegend is not False].count("uvicorn") == 1


def test_connections_held_against_y_equals_x(figs: dict[str, Any]) -> None:
    fig = figs["connections"]
    assert _measured(fig, "x")["gunicorn-sync"] == ([4.0, 16.0], [2.0, 2.0])
    assert _measured(fig, "x2")["uvicorn"] == ([4.0, 16.0], [3.5, 15.5])
    diagonal = [t for t in fig.data if t.name.startswith("y = x")]
    assert sorted(t.xaxis for t in diagonal) == ["x", "x2"]
    assert all(list(t.x) == list(t.y) == [0, 16.0] for t in diagonal)  # up to the top level


def test_pss_per_connection_line_and_the_reason_for_no_slope(figs: dict[str, Any]) -> None:
    fig = figs["pss_per_connection"]
    (fit,) = [t for t in fig.data if (t.meta or {}).get("reference")]
    slope = float(np.median([30.0, 34.0]))  # KiB per connection, median over repeats
    assert fit.name == f"uvicorn fit: {slope:.1f} KiB PSS per connection, median of 2 repeats"
    held = np.array([u for u, *_ in UVICORN], dtype=float)
    pss = np.array([p for *_, p, _ in UVICORN])
    intercept = pss.mean() - slope / 1024 * held.mean()  # through the points' mean
    assert list(fit.x) == [4.0, 16.0]
    assert list(fit.y) == pytest.approx([intercept + slope / 1024 * x for x in (4.0, 16.0)])
    names = {t.name for t in fig.data if not (t.meta or {}).get("reference")}
    assert names == {"uvicorn",
                     "gunicorn-sync (no slope: held 2 connection(s) at every ok level)"}
