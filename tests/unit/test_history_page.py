"""harness.history_page on a planted history (12 runs; at run 6 throughput drops 100 ->
80 req/s and p99 falls 204 -> 153 ms): change points drawn in the colour of their
direction, x ticks thinned to at most ``MAX_TICKS``, the overview's rows and cells (a
metric a configuration never measured is an empty cell), and the page's links."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.io as pio
import pytest

from harness import history, history_page
from harness.history_page import MAX_TICKS
from harness.results import atomic_write_csv
from tests.report_extract import plots
from tests.synth import write_run

RUNS, STEP = 12, 6
METRICS = ["throughput_rps", "latency_p99_ms"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> history.History:
    """gunicorn-sync at 4 users in every run: throughput 100/101/99 then 80/81/79 req/s,
    p99 200 then 150 ms (x 1.01, 1.02, 1.03 over the repeats: medians 204 and 153). The
    last run also measured 8 users, without a p99."""
    results = tmp_path_factory.mktemp("history") / "results"
    for i in range(RUNS):
        run_dir = write_run(results, i, [100.0, 101.0, 99.0] if i < STEP else [80.0, 81.0, 79.0],
                            p99=200.0 if i < STEP else 150.0)
        if i == RUNS - 1:
            trials = pd.read_csv(run_dir / "trials.csv")
            extra = trials.assign(users=8, latency_p99_ms=float("nan"),
                                  trial_id=trials["trial_id"].str.replace("u4", "u8"))
            atomic_write_csv(run_dir / "trials.csv", pd.concat([trials, extra]))
    return history.collect(results, METRICS)


def rgb(colour: str) -> tuple[int, int, int]:
    """``#rrggbb`` as numbers."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def label(index: int) -> str:
    """A run's x label: its commit (tests.synth.write_run) cut to 7 characters."""
    return f"{index:02d}{'c0ffee' * 6}"[:7]


def test_change_points_are_drawn_in_the_colour_of_their_direction(
        planted: history.History) -> None:
    drawn = {}
    for g in history_page.groups(planted):
        fig = history_page.group_figure(g, planted.runs)
        (line,) = fig.layout.shapes
        (text,) = [a.text for a in fig.layout.annotations if " at " in str(a.text)]
        drawn[g.metric] = (line.x0, rgb(line.line.color), line.line.dash, text)
    # the step sits between runs 5 and 6; throughput fell (worse), p99 fell (better)
    x, (r, g_, b), dash, text = drawn["throughput"]
    assert (x, dash, text) == (STEP - 0.5, "dash", f"-20% at {label(STEP)}")
    assert r > max(g_, b)  # red: a regression
    x, (r, g_, b), dash, text = drawn["p99 latency"]
    assert (x, dash, text) == (STEP - 0.5, "dash", f"-25% at {label(STEP)}")
    assert g_ > max(r, b)  # green: an improvement


def test_x_ticks_are_thinned_to_at_most_max_ticks(planted: history.History) -> None:
    (g, *_) = history_page.groups(planted)
    fig = history_page.group_figure(g, planted.runs)
    step = -(-RUNS // MAX_TICKS)  # ceil: every 2nd run of 12
    assert list(fig.layout.xaxis.tickvals) == list(range(0, RUNS, step))
    assert list(fig.layout.xaxis.ticktext) == [label(i) for i in range(0, RUNS, step)]
    assert list(fig.layout.xaxis.range) == [-0.5, RUNS - 0.5]
    assert len(fig.layout.xaxis.tickvals) <= MAX_TICKS


def test_overview_rows_hold_one_cell_per_metric(planted: history.History) -> None:
    heads, table = history_page.overview_rows(planted)
    assert heads == ["throughput (req/s)", "p99 latency (ms)"]
    ((title, rows),) = table
    assert title == "io-heavy latency_ms=50"
    assert [r["config"] for r in rows] == ["gunicorn-sync · workers=1 · users=4",
                                           "gunicorn-sync · workers=1 · users=8"]
    thr, p99 = rows[0]["cells"]
    assert (thr["value"], thr["n"], thr["previous"]) == ("80 req/s", 3, "+0.0%")
    assert thr["since"] == f"-20.0% since {label(STEP)}" and thr["css"] == "regression"
    assert (p99["value"], p99["since"], p99["css"]) == \
        ("153 ms", f"-25.0% since {label(STEP)}", "improvement")
    lone_thr, lone_p99 = rows[1]["cells"]
    assert lone_thr["value"] == "80 req/s" and lone_thr["previous"] == "–"  # one point
    assert lone_thr["css"] == "" and lone_p99 is None  # never measured: no cell


def test_the_page_carries_its_links_escaped(planted: history.History, tmp_path: Path) -> None:
    out = tmp_path / "site" / "history.html"
    assert history_page.render(planted, out, links=[("index.html", "<all runs>")]) == out
    page = out.read_text()
    assert '<a href="index.html">&lt;all runs&gt;</a>' in page
    assert page.count('class="plotly-graph-div"') == len(METRICS)
    assert not list(out.parent.glob("*.tmp*"))  # written atomically, nothing left beside


def test_every_small_multiple_is_white_and_the_template_is_set_once(
        planted: history.History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page holds the report's template once for all its figures: plotly validates a
    deep copy of the template each time its default is set (18 ms), so it is set twice
    (held, put back), not twice a figure; and plotly's default is left as it was."""
    templates = type(pio.templates)
    sets = []
    real_validate = templates._validate
    monkeypatch.setattr(templates, "_validate",
                        lambda self, value: sets.append(value) or real_validate(self, value))
    before = pio.templates.default
    page = history_page.render(planted, tmp_path / "history.html").read_text("utf-8")
    drawn = [layout["template"]["layout"]["plot_bgcolor"] for _, _, layout in plots(page)]
    assert drawn == ["white"] * len(METRICS)
    assert sets == ["plotly_white", before] and pio.templates.default == before
