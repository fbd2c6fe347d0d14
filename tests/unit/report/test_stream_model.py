"""The report of stream runs (SSE, WebSocket): their charts, the matrix of every config at
every level with ``unsupported`` as a result, the verdict, and the page in Chromium.

Two real short runs, shared by the session (conftest.sse_run, conftest.websocket_run):
SSE on gunicorn-sync (2 sync workers: one stream each at a time) and uvicorn; WebSocket on
gunicorn-sync (unsupported: the WSGI app answers the handshake 404) and uvicorn. Every figure checked here is compared with
trials.csv as the run wrote it. A synthetic run covers what a short real run cannot
produce on demand: several unsupported configs, invalid and failed cells.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest

from harness import report
from harness.results import RunData, load_run
from tests.conftest import SSE_WORKERS, STREAM_LEVELS
from tests.support import chart_problems, needs_chromium, open_in_chromium, tables
from tests.synth import samples as _samples
from tests.synth import trial as _trial
from tests.synth import write_report_run as _write_run

SSE_KEYS = ["throughput", "latency", "ttfe", "event_lag", "events_rate", "connections",
            "pss_per_connection", "latency_cdf", "error_rate", "pss", "cpu"]
WEBSOCKET_KEYS = ["throughput", "latency", "rtt", "messages_rate", "connections",
                  "pss_per_connection", "latency_cdf", "error_rate", "pss", "cpu"]
UNSUPPORTED = "WebSocket handshake answered 404 Not Found"
LEVELS = STREAM_LEVELS


@pytest.fixture(scope="module")
def sse(sse_run: Path) -> RunData:
    return load_run(sse_run)


@pytest.fixture(scope="module")
def websocket(websocket_run: Path) -> RunData:
    return load_run(websocket_run)


def _reference(trace: Any) -> bool:
    return bool((trace.meta or {}).get("reference"))


def lines(fig: go.Figure, axis: str = "x") -> dict[str, tuple[list[float], list[float]]]:
    """The measured lines of one panel (``x``, ``x2``, ...): name -> (x, y); reference
    lines and "(not valid)" markers left out."""
    return {t.name: (list(t.x), list(t.y)) for t in fig.data
            if not _reference(t) and not t.name.endswith("(not valid)")
            and (t.xaxis or "x") == axis}


def expected(run: RunData, metric: str) -> dict[str, tuple[list[float], list[float]]]:
    """Per config, its ok trials' ``metric`` vs users from trials.csv (one repeat: the
    median is the value), rounded as the chart rounds them."""
    ok = run.trials[run.trials["status"] == "ok"].dropna(subset=[metric]).sort_values("users")
    return {str(server): ([float(u) for u in part["users"]],
                          [round(float(v), 4) for v in part[metric]])
            for server, part in ok.groupby("server")}


def _ok(run: RunData) -> pd.DataFrame:
    ok = run.trials[run.trials["status"] == "ok"]
    assert not ok.empty, run.trials[["trial_id", "status", "reason"]]
    return ok


# --- SSE ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sse_charts_draw_the_stream_figures_of_trials_csv(sse: RunData) -> None:
    figs = report.figures(sse)
    assert list(figs) == SSE_KEYS
    _ok(sse)
    for key, metrics in (("ttfe", ("ttfe_ms_p50", "ttfe_ms_p99")),
                         ("event_lag", ("event_lag_ms_p50", "event_lag_ms_p99")),
                         ("connections", ("concurrent_connections_peak",
                                          "concurrent_served_mean"))):
        for axis, metric in zip(("x", "x2"), metrics, strict=True):
            want = expected(sse, metric)
            assert want and lines(figs[key], axis) == want, (key, metric)
    assert lines(figs["events_rate"]) == expected(sse, "events_per_s")
    assert figs["ttfe"].layout.yaxis.type == "log"
    # A sync worker holds one stream; uvicorn holds every client: the figures say so.
    held = expected(sse, "concurrent_connections_peak")
    if "gunicorn-sync" in held and "uvicorn" in held:
        assert max(held["gunicorn-sync"][1]) <= SSE_WORKERS < LEVELS[-1] - 2 <= held["uvicorn"][1][-1]
    # y = x on both panels of the connections chart, up to the highest level
    diagonal = [t for t in figs["connections"].data if t.name.startswith("y = x")]
    assert len(diagonal) == 2 and all(list(t.y) == [0, LEVELS[-1]] for t in diagonal)
    # The SLO (time to first event p99) on the p99 panel of the ttfe chart
    (slo,) = [t for t in figs["ttfe"].data if t.name.startswith("SLO p99")]
    assert slo.xaxis == "x2" and list(slo.y) == [500.0, 500.0]


@pytest.mark.slow
def test_pss_per_connection_states_the_runs_slope(sse: RunData) -> None:
    """Each config's ok trials as points; its slope from trials.csv in the legend, and a
    line that rises by exactly that slope; or, without a slope, the reason why."""
    fig = report.figures(sse)["pss_per_connection"]
    ok = _ok(sse)
    points = {t.name.split(" ")[0]: t for t in fig.data
              if not _reference(t) and t.mode == "markers" and "not valid" not in t.name}
    assert set(points) == set(ok.dropna(subset=["concurrent_connections_peak",
                                                "pss_mib_peak"])["server"])
    fits = report.per_connection_fits(sse)
    for server, mine in ok.groupby("server"):
        mine = mine.sort_values("concurrent_connections_peak")
        assert list(points[server].x) == [round(v, 1)
                                          for v in mine["concurrent_connections_peak"]]
        assert list(points[server].y) == [round(v, 3) for v in mine["pss_mib_peak"]]
        drawn = [t for t in fig.data if _reference(t) and t.name.startswith(f"{server} fit")]
        slopes = mine["pss_kib_per_connection"].dropna()
        if slopes.empty:  # e.g. the sync workers hold as many streams at every level
            assert drawn == [] and "(no slope: " in points[server].name, points[server].name
            assert math.isnan(fits[server][0])
            continue
        slope = float(slopes.iloc[0])
        (fit,) = drawn
        assert fit.name == f"{server} fit: {slope:.1f} KiB PSS per connection"
        x0, x1 = fit.x
        assert (fit.y[1] - fit.y[0]) * 1024 / (x1 - x0) == pytest.approx(slope, rel=1e-4)
        assert fits[server][0] == pytest.approx(slope)
    # Each config keeps its colour and its interface's marker, as in the other charts
    throughput = {t.name: (t.marker.color, t.marker.symbol)
                  for t in report.figures(sse)["throughput"].data if t.name in points}
    interface = dict(zip(sse.trials["server"], sse.trials["interface"], strict=True))
    for name, trace in points.items():
        assert (trace.marker.color, trace.marker.symbol) == throughput[name]
        assert trace.marker.symbol == {"wsgi": "circle", "asgi": "diamond"}[interface[name]]


@pytest.mark.slow
def test_sse_matrix_cells_hold_the_key_figures(sse: RunData, tmp_path: Path) -> None:
    text = report.render([sse], tmp_path / "s.html").read_text("utf-8")
    rows = {r["server config"][0]: r for r in tables(text)["matrix-run0"]}
    assert sorted(rows) == sorted(set(sse.trials["server"]))  # every config, none missing
    for t in sse.trials.itertuples(index=False):
        cell_text, cell_value = rows[t.server][f"{t.users} users"]
        if t.status == "ok":
            assert cell_text.startswith(f"TTFE p99 {t.ttfe_ms_p99:,.1f} ms · ")
            assert float(cell_value or "nan") == pytest.approx(t.ttfe_ms_p99, rel=1e-5)
            assert f"{t.events_per_s:,.0f} events/s" in cell_text
        else:
            assert cell_text.startswith(t.status), cell_text
    assert "events delivered per second" in text
    # The trials table carries the stream figures of every trial, as trials.csv has them.
    shown = {r["trial"][0]: r for r in tables(text)["trials-run0"]}
    for t in sse.trials.itertuples(index=False):
        row = shown[t.trial_id]
        for header, value in (("waiting at end", t.connects_waiting_at_end),
                              ("TTFE p99 ms", t.ttfe_ms_p99), ("held peak",
                                                                t.concurrent_connections_peak)):
            assert float(row[header][1] or "nan") == pytest.approx(value, rel=1e-5, nan_ok=True)


# --- WebSocket ------------------------------------------------------------------------


@pytest.mark.slow
def test_websocket_charts_draw_the_stream_figures_of_trials_csv(websocket: RunData) -> None:
    figs = report.figures(websocket)
    assert list(figs) == WEBSOCKET_KEYS
    for axis, metric in (("x", "rtt_ms_p50"), ("x2", "rtt_ms_p99")):
        want = expected(websocket, metric)
        assert set(want) == {"uvicorn"} and lines(figs["rtt"], axis) == want
    assert lines(figs["messages_rate"]) == expected(websocket, "messages_per_s")
    assert lines(figs["connections"], "x2") == expected(websocket, "concurrent_served_mean")
    # The unsupported config has no line, no marker, in any level chart: it is named.
    for key, fig in figs.items():
        if key in ("pss", "cpu"):
            continue
        assert not [t.name for t in fig.data if t.name.startswith("gunicorn-sync")], key
        assert f"unsupported (no line): gunicorn-sync ({UNSUPPORTED})" in \
            html.unescape(fig.layout.title.text), key


@pytest.mark.slow
def test_websocket_unsupported_is_a_cell_a_row_and_a_sentence(websocket: RunData,
                                                              tmp_path: Path) -> None:
    wsgi = websocket.trials[websocket.trials["server"] == "gunicorn-sync"]
    assert list(wsgi["status"]) == ["unsupported"] * len(LEVELS)
    text = report.render([websocket], tmp_path / "w.html").read_text("utf-8")
    page = tables(text)
    (sync,) = [r for r in page["matrix-run0"] if r["server config"][0] == "gunicorn-sync"]
    for users in LEVELS:
        assert sync[f"{users} users"][0] == f"unsupported ({UNSUPPORTED})"
    assert text.count('class="cell cell-unsupported"') == len(LEVELS)
    assert '<tr class="wsgi not-valid unsupported"><td>gunicorn-sync</td>' in text
    (cap,) = [r for r in page["capacity-run0"] if r["server config"][0] == "gunicorn-sync"]
    assert cap["max sustainable msg/s"][0] == "unsupported"
    assert "peak msg/s" in cap and not [k for k in cap if "req/s" in k]
    assert cap["note"][0] == f"unsupported at every level: {UNSUPPORTED}; left out of the ranking"

    sentences = report.verdict(websocket)
    joined = " ".join(sentences)
    assert ("WebSocket: 1 WSGI config unsupported (handshake answered 404 Not Found): "
            "gunicorn-sync; shown as unsupported") in joined
    assert "WSGI vs ASGI: no WSGI config can serve WebSocket" in joined
    assert "Without a sustainable level" not in joined  # unsupported is not "no level met"
    ranking = [s for s in sentences if s.startswith("Most throughput")]
    assert ranking and all("gunicorn-sync" not in s for s in ranking)
    (memory,) = [s for s in sentences if s.startswith("Memory per held connection")]
    slopes = websocket.trials.loc[websocket.trials["server"] == "uvicorn",
                                  "pss_kib_per_connection"].dropna()
    if len(slopes):
        assert f"ASGI: uvicorn {slopes.iloc[0]:,.1f} KiB" in memory
    else:  # a level not ok (a busy machine): one point, no slope, and the sentence says so
        assert "no slope for uvicorn: fewer than two ok levels" in memory


# --- the page in Chromium -------------------------------------------------------------


@pytest.mark.slow
@needs_chromium
def test_stream_report_draws_every_chart_without_errors(sse: RunData, websocket: RunData,
                                                        tmp_path: Path) -> None:
    page = report.render([sse, websocket], tmp_path / "streams.html")
    dom, console = open_in_chromium(page, tmp_path / "profile", "--dump-dom")
    assert console == [], "\n".join(console)
    charts = re.findall(r'<div id="(run\d-[a-z_]+)" class="plotly-graph-div', dom)
    assert charts == [f"run0-{k}" for k in SSE_KEYS] + [f"run1-{k}" for k in WEBSOCKET_KEYS]
    assert chart_problems(dom) == {}
    assert {"matrix-run0", "matrix-run1"} <= set(tables(dom))


# --- synthetic: several unsupported configs, invalid and failed cells ---------------------


def _ws_trial(trial_id: str, server: str, interface: str, users: int, status: str,
              reason: str, t0: float, *, connections: float = math.nan) -> dict[str, Any]:
    """A WebSocket trial whose PSS grows 32 KiB per held connection over 20 MiB."""
    measured = status in ("ok", "invalid")
    row = _trial(trial_id, server, interface, users, status if measured else "failed", reason,
                 t0, 10.0 * users if measured else math.nan, latency=2.0)
    row.update(scenario="websocket-echo", status=status, ceiling_rps=math.nan)
    if measured:
        held = users if math.isnan(connections) else connections
        row.update(rtt_ms_p50=2.0, rtt_ms_p99=7.0, messages_per_s=10.0 * users,
                   concurrent_connections_peak=held, concurrent_served_mean=held - 0.5,
                   pss_mib_peak=20.0 + held * 32 / 1024,
                   pss_kib_per_connection=32.0 if status == "ok" else math.nan)
    return row


@pytest.fixture
def synthetic(tmp_path: Path) -> RunData:
    trials = [
        _ws_trial("s10", "gunicorn-sync", "wsgi", 10, "unsupported", UNSUPPORTED, 0.0),
        _ws_trial("s40", "gunicorn-sync", "wsgi", 40, "unsupported", UNSUPPORTED, 6.0),
        _ws_trial("g10", "gunicorn-gthread", "wsgi", 10, "unsupported", UNSUPPORTED, 12.0),
        _ws_trial("g40", "gunicorn-gthread", "wsgi", 40, "unsupported", UNSUPPORTED, 18.0),
        _ws_trial("u10", "uvicorn", "asgi", 10, "ok", "", 24.0),
        _ws_trial("u40", "uvicorn", "asgi", 40, "ok", "", 30.0),
        _ws_trial("h10", "hypercorn", "asgi", 10, "invalid",
                  "generator-saturated: load CPUs 96% busy", 36.0, connections=9),
        _ws_trial("h40", "hypercorn", "asgi", 40, "failed", "server exited with code 3", 42.0),
    ]
    return load_run(_write_run(
        tmp_path, "ws", trials, _samples((("uvicorn", 24.0),)), records=False,
        name="websocket-echo", protocol="websocket", request_path="/ws",
        slo={"p99_ms": 50, "max_error_rate": 0.01}))


def test_matrix_states_every_cell(synthetic: RunData) -> None:
    cells = report.stream_matrix(synthetic).set_index(["server", "users"])
    assert cells.loc[("gunicorn-sync", 40), "text"] == f"unsupported ({UNSUPPORTED})"
    assert cells.loc[("gunicorn-gthread", 10), "state"] == "unsupported"
    assert cells.loc[("hypercorn", 10), "text"] == \
        "invalid (generator-saturated: load CPUs 96% busy)"
    assert cells.loc[("hypercorn", 40), "text"] == "failed (server exited with code 3)"
    assert cells.loc[("uvicorn", 40), "text"] == "RTT p99 7.0 ms · 400 msg/s"
    assert cells.loc[("uvicorn", 40), "p99_ms"] == 7.0
    assert len(cells) == 8  # every config at every level, none missing


def test_verdict_counts_unsupported_configs_per_interface(synthetic: RunData) -> None:
    sentences = report.verdict(synthetic)
    assert ("WebSocket: 2 WSGI configs unsupported (handshake answered 404 Not Found): "
            "gunicorn-gthread, gunicorn-sync; shown as unsupported at every level and left "
            "out of the ranking.") in sentences
    assert "WSGI vs ASGI: no WSGI config can serve WebSocket (2 measured, every one " \
           "unsupported), so ASGI is the only choice here" in " ".join(sentences)
    (memory,) = [s for s in sentences if s.startswith("Memory per held connection")]
    assert memory.endswith("ASGI: uvicorn 32.0 KiB.")
    assert sentences[0].startswith("Most throughput within the SLO (p99 ≤ 50 ms and errors ≤ "
                                   "1 %): uvicorn (ASGI), 400.0 msg/s")


def test_invalid_trials_are_marked_unsupported_ones_named(synthetic: RunData) -> None:
    figs = report.figures(synthetic)
    assert list(figs)[:6] == ["throughput", "latency", "rtt", "messages_rate", "connections",
                              "pss_per_connection"]
    # A WebSocket run's throughput is echoes received per second, and says so.
    assert figs["throughput"].layout.yaxis.title.text == "throughput (msg/s)"
    assert figs["latency"].layout.xaxis.title.text == "throughput (msg/s)"
    rate = figs["messages_rate"]
    (bad,) = [t for t in rate.data if t.name.endswith("(not valid)")]
    assert bad.name == "hypercorn (not valid)" and bad.marker.symbol == "x"
    assert list(bad.y) == [100.0]
    assert list(bad.hovertext) == ["invalid: generator-saturated: load CPUs 96% busy"]
    assert lines(rate) == {"uvicorn": ([10.0, 40.0], [100.0, 400.0])}
    title = html.unescape(rate.layout.title.text)
    assert (f"unsupported (no line): gunicorn-gthread ({UNSUPPORTED}); gunicorn-sync "
            f"({UNSUPPORTED})") in title
    # PSS = 20 MiB + 32 KiB x connections: the fitted line runs through the points
    pss = figs["pss_per_connection"]
    (fit,) = [t for t in pss.data if _reference(t)]
    assert fit.name == "uvicorn fit: 32.0 KiB PSS per connection"
    assert list(fit.x) == [10.0, 40.0]
    assert list(fit.y) == [20 + 10 * 32 / 1024, 20 + 40 * 32 / 1024]  # 20.3125, 21.25 MiB
    assert [t.name for t in pss.data if t.name.endswith("(not valid)")] == \
        ["hypercorn (not valid)"]
