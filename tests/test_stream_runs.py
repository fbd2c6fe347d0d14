"""`bench run` on the stream scenarios: what WSGI and ASGI servers do with held connections."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.results import TRIAL_COLUMNS
from harness.streams import STREAM_COLUMNS
from tests.test_end_to_end import bench, only_run


def run(tmp_path: Path, *args: str) -> pd.DataFrame:
    r = bench("run", *args, "--results-dir", str(tmp_path / "results"),
              "--report", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stdout + r.stderr
    trials = pd.read_csv(only_run(tmp_path / "results") / "trials.csv")
    assert tuple(trials.columns) == TRIAL_COLUMNS
    assert set(STREAM_COLUMNS) <= set(trials.columns)
    assert (tmp_path / "r.html").stat().st_size > 100_000
    return trials.set_index("server")


def test_sse_sync_workers_hold_one_stream_each_asgi_holds_all(tmp_path: Path) -> None:
    t = run(tmp_path, "--scenario", "sse-stream", "--servers", "gunicorn-sync,uvicorn",
            "--workers", "2", "--users", "20", "--duration", "4", "--warmup", "2")
    sync, asgi = t.loc["gunicorn-sync"], t.loc["uvicorn"]
    assert sync["status"] == "ok" and asgi["status"] == "ok"
    # 2 sync workers serve 2 streams; the other 18 clients wait in the listen queue
    # (connected by the kernel, not accepted by a worker, so not counted as held).
    assert sync["concurrent_connections_peak"] <= 2
    assert sync["connects_waiting_at_end"] >= 10
    assert sync["ttfe_ms_p50"] > 1000  # queueing for a worker
    assert asgi["concurrent_connections_peak"] >= 18
    assert asgi["ttfe_ms_p50"] < 100 and asgi["ttfe_ms_p99"] < sync["ttfe_ms_p50"]
    assert asgi["events_per_s"] > 5 * sync["events_per_s"]
    # Events, once a stream is served, arrive on time either way.
    assert sync["event_lag_ms_p50"] < 20 and asgi["event_lag_ms_p50"] < 20


def test_websocket_unsupported_on_wsgi_with_the_observed_status(tmp_path: Path) -> None:
    t = run(tmp_path, "--scenario", "websocket-echo", "--servers", "gunicorn-gthread,uvicorn",
            "--users", "10,20", "--duration", "3", "--warmup", "2")
    wsgi = t.loc[["gunicorn-gthread"]]
    assert list(wsgi["status"]) == ["unsupported", "unsupported"]  # a row per level, not missing
    assert all(r == "WebSocket handshake answered 404 Not Found" for r in wsgi["reason"])
    asgi = t.loc[["uvicorn"]]
    assert list(asgi["status"]) == ["ok", "ok"]
    assert (asgi["rtt_ms_p50"] < 5).all()
    assert (asgi["rtt_ms_p50"] % 1 != 0).all()  # sub-millisecond resolution
    assert (asgi["concurrent_connections_peak"] >= 9).all()
    assert asgi["pss_kib_per_connection"].notna().all()


@pytest.mark.parametrize("name", ["sse-stream", "websocket-echo"])
def test_stream_scenarios_list(name: str) -> None:
    r = bench("list", "scenarios")
    assert name in r.stdout
