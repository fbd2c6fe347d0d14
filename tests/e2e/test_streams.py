"""`bench run` on the stream scenarios: what WSGI and ASGI servers do with held connections.

Both runs are the session's (conftest.sse_run, conftest.websocket_run): gunicorn-sync vs
uvicorn at 4 and 16 users, the SSE run with 2 workers per server.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.results import TRIAL_COLUMNS
from harness.streams import STREAM_COLUMNS
from tests.conftest import SSE_WORKERS, STREAM_LEVELS
from tests.support import bench, report_of


def read(run_dir: Path) -> pd.DataFrame:
    trials = pd.read_csv(run_dir / "trials.csv")
    assert tuple(trials.columns) == TRIAL_COLUMNS
    assert set(STREAM_COLUMNS) <= set(trials.columns)
    assert report_of(run_dir).stat().st_size > 100_000
    return trials.set_index("server")


@pytest.mark.slow
def test_sse_sync_workers_hold_one_stream_each_asgi_holds_all(sse_run: Path) -> None:
    trials = read(sse_run)
    users = STREAM_LEVELS[-1]
    t = trials[trials["users"] == users]
    sync, asgi = t.loc["gunicorn-sync"], t.loc["uvicorn"]
    assert sync["status"] == "ok" and asgi["status"] == "ok"
    # 2 sync workers serve 2 streams, one each (so both workers run); the other 14
    # clients wait in the listen queue (connected by the kernel, not accepted by a
    # worker, so not counted as held).
    assert sync["concurrent_connections_peak"] == SSE_WORKERS
    assert sync["connects_waiting_at_end"] >= 10
    assert sync["ttfe_ms_p50"] > 1000  # queueing for a worker
    assert asgi["concurrent_connections_peak"] >= users - 2
    assert asgi["ttfe_ms_p50"] < 100 and asgi["ttfe_ms_p99"] < sync["ttfe_ms_p50"]
    assert asgi["events_per_s"] > 5 * sync["events_per_s"]
    # Events, once a stream is served, arrive on time either way.
    assert sync["event_lag_ms_p50"] < 20 and asgi["event_lag_ms_p50"] < 20


@pytest.mark.slow
def test_websocket_unsupported_on_wsgi_with_the_observed_status(websocket_run: Path) -> None:
    t = read(websocket_run)
    wsgi = t.loc[["gunicorn-sync"]]
    assert list(wsgi["status"]) == ["unsupported"] * len(STREAM_LEVELS)  # a row per level
    assert all(r == "WebSocket handshake answered 404 Not Found" for r in wsgi["reason"])
    asgi = t.loc[["uvicorn"]]
    assert list(asgi["status"]) == ["ok"] * len(STREAM_LEVELS)
    assert (asgi["rtt_ms_p50"] < 5).all()
    assert (asgi["rtt_ms_p50"] % 1 != 0).all()  # sub-millisecond resolution
    # Each client holds its connection but for the handshakes (a few ms a 1 s hold):
    # most of them at once (a server serving one at a time holds 1).
    assert (asgi["concurrent_connections_peak"] >= 0.75 * asgi["users"]).all()
    assert asgi["pss_kib_per_connection"].notna().all()


@pytest.mark.parametrize("name", ["sse-stream", "websocket-echo"])
def test_stream_scenarios_list(name: str) -> None:
    r = bench("list", "scenarios")
    assert name in r.stdout
