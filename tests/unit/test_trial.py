"""harness.trial: one trials.csv row, typed in one place: the columns in field order,
figures not given are NaN (not measured), the row is checked when frozen (no unknown
column, a known status, an id), and the rows real runs wrote read back as trials."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from harness.trial import (
    STREAM_COLUMNS,
    STREAM_METRIC_COLUMNS,
    TEXT_COLUMNS,
    TRIAL_COLUMNS,
    TRIAL_STATUSES,
    Trial,
)
from tests.synth import STORED

IDENTITY = {"trial_id": "uvicorn-l1-u4-r1", "scenario": "io-heavy", "server": "uvicorn",
            "interface": "asgi", "backend": "local", "workers": 1, "threads": 1, "users": 4,
            "offered_rps": math.nan, "repeat": 1, "status": "ok"}


def test_a_row_is_every_column_in_order_with_unmeasured_figures_nan() -> None:
    row = Trial.from_row({**IDENTITY, "throughput_rps": 198.5, "latency_p99_ms": 21.0}).to_row()
    assert tuple(row) == TRIAL_COLUMNS == tuple(f.name for f in dataclasses.fields(Trial))
    assert row["throughput_rps"] == 198.5 and row["latency_p99_ms"] == 21.0
    assert math.isnan(row["latency_p50_ms"]) and math.isnan(row["pss_mib_peak"])
    assert (row["reason"], row["flags"], row["load_mode"], row["app"]) == (
        "", "", "closed-loop", "raw")
    given = {*IDENTITY, "throughput_rps", "latency_p99_ms"}
    assert all(math.isnan(row[c]) for c in TRIAL_COLUMNS
               if c not in TEXT_COLUMNS and c not in given)


@pytest.mark.parametrize(("change", "message"), [
    ({"trhoughput_rps": 1.0, "p99": 2.0}, "not trials.csv columns: p99, trhoughput_rps"),
    ({"status": "passed"}, ("trial uvicorn-l1-u4-r1: status 'passed' is not one of ok, "
                            "invalid, unsupported, failed")),
    ({"trial_id": ""}, "a trial needs a trial_id"),
])
def test_a_bad_row_is_refused_when_frozen(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Trial.from_row({**IDENTITY, **change})
    assert str(caught.value) == message


def test_a_trial_is_frozen() -> None:
    trial = Trial.from_row(IDENTITY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trial.status = "failed"  # type: ignore[misc]


@pytest.mark.parametrize("run", ["io-heavy", "websocket-echo"])
def test_the_rows_of_a_stored_run_are_trials(run: str) -> None:
    """Text columns are the ones pandas does not read as numbers; every row, whatever
    its status, freezes into a trial with its figures unchanged."""
    trials = pd.read_csv(STORED / run / "trials.csv")
    text = {c for c in trials.columns if not pd.api.types.is_numeric_dtype(trials[c])}
    assert text <= set(TEXT_COLUMNS)
    assert set(trials["status"]) <= set(TRIAL_STATUSES)
    for raw in trials.to_dict("records"):
        row = Trial.from_row(raw).to_row()
        for column, value in raw.items():
            assert row[column] == value or (math.isnan(row[column]) and math.isnan(value))


def test_stream_columns_are_the_metrics_then_the_two_the_runner_fills() -> None:
    assert STREAM_COLUMNS[:len(STREAM_METRIC_COLUMNS)] == STREAM_METRIC_COLUMNS
    assert STREAM_COLUMNS[len(STREAM_METRIC_COLUMNS):] == ("concurrent_connections_peak",
                                                           "pss_kib_per_connection")
    start = TRIAL_COLUMNS.index(STREAM_COLUMNS[0])
    assert TRIAL_COLUMNS[start:start + len(STREAM_COLUMNS)] == STREAM_COLUMNS
