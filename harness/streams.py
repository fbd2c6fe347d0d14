"""Stream figures (SSE and WebSocket) from per-request records: pure functions of data.

The records are those the locust users of ``harness/loadgen/streams.py`` write (columns
``harness.results.REQUEST_COLUMNS``), one row per thing timed, told apart by
``name``: ``connect``, ``ttfe``, ``event``, ``stream`` (SSE), ``connect``, ``rtt``,
``session``, ``handshake`` (WebSocket). A row *ends* at ``start_unix_s + latency_ms / 1000``;
for an ``event`` row the start is the server's send time and the latency the lag
to the client's receipt, so its end is the receipt.

Percentiles use linear interpolation between order statistics (numpy's default,
Hyndman & Fan 1996 type 7), unrounded, like :mod:`harness.analysis`.
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from harness.trial import STREAM_COLUMNS, STREAM_METRIC_COLUMNS  # noqa: F401 - re-exported

StreamProtocol = Literal["sse", "websocket"]

#: The keys of :func:`stream_metrics`, in order (all appended to trials.csv), and the
#: stream columns of trials.csv: :data:`METRIC_COLUMNS`, then two the runner fills:
#: ``concurrent_connections_peak`` (max of the sampler's ``connections`` in the window:
#: established TCP connections held by the server's processes, ~1 Hz) and
#: ``pss_kib_per_connection`` (:func:`pss_kib_per_connection` over the levels of one
#: server config and repeat, the same value on each row). Defined with the trial record.
METRIC_COLUMNS = STREAM_METRIC_COLUMNS

_SSE_NAMES = frozenset({"ttfe", "event", "stream"})
_WS_NAMES = frozenset({"rtt", "session", "handshake"})
#: The row that closes what an ok ``connect`` opened, per protocol.
_CLOSE = {"sse": "stream", "websocket": "session"}


def _infer_protocol(records: pd.DataFrame) -> StreamProtocol | None:
    names = set(records["name"].astype(str))
    if names & _SSE_NAMES:
        return "sse"
    if names & _WS_NAMES:
        return "websocket"
    return None


def _pcts(values: pd.Series) -> tuple[float, float]:
    v = values.to_numpy(dtype=float)
    if not len(v):
        return math.nan, math.nan
    p50, p99 = np.percentile(v, [50.0, 99.0])
    return float(p50), float(p99)


def stream_metrics(records: pd.DataFrame, window_start_unix: float, window_end_unix: float,
                   *, protocol: StreamProtocol | None = None) -> dict[str, float]:
    """Stream figures over the window [start, end) (unix seconds) of one trial.

    Rows count when they *end* inside the window (as in
    :func:`harness.analysis.request_metrics`). Returns :data:`METRIC_COLUMNS`:

    * ``connect_ms_p50/p99``: successful connects (SSE: response headers; WebSocket:
      the 101), ms;
    * ``ttfe_ms_p50/p99``: SSE, attempt start to first event, ms;
    * ``event_lag_ms_p50/p99``: SSE, server send to client receipt per event, ms;
    * ``events_per_s``: SSE events received intact in the window / window seconds;
    * ``messages_per_s``: WebSocket echoes received intact / window seconds;
    * ``rtt_ms_p50/p99``: WebSocket round trips, ms;
    * ``streams_completed`` / ``streams_failed``: SSE streams (WebSocket sessions:
      connect to close) that ended in the window whole / early, short or broken;
    * ``connects_waiting_at_end``: connection attempts begun before the window's end
      that had no response headers (SSE) or handshake answer (WebSocket) by then:
      clients queued by a server that serves fewer streams than it is offered;
    * ``concurrent_served_mean``: streams (SSE: headers received, stream not ended;
      WebSocket: 101 received, not closed) in progress, averaged over the window.
      Unlike the sampler's count of TCP connections the server holds, it leaves
      out connections accepted but not yet answered (gthread queues them).

    Figures of the other protocol are NaN; so is a percentile with no rows. The
    protocol is inferred from the row names unless given (give it: a trial whose
    every attempt failed has only ``connect`` rows, which both protocols write).

    Raises:
        ValueError: the window is empty or reversed.
    """
    window_s = window_end_unix - window_start_unix
    if not window_s > 0:
        raise ValueError(f"empty window [{window_start_unix}, {window_end_unix})")
    protocol = protocol or _infer_protocol(records)
    end = records["start_unix_s"] + records["latency_ms"] / 1000.0
    inside = records[(end >= window_start_unix) & (end < window_end_unix)]
    ok = inside[inside["ok"] == 1]
    by_name = {name: group for name, group in ok.groupby("name")}
    empty = pd.Series(dtype=float)

    def lat(name: str) -> pd.Series:
        return by_name[name]["latency_ms"] if name in by_name else empty

    out: dict[str, float] = dict.fromkeys(METRIC_COLUMNS, math.nan)
    if protocol is None:
        return out
    attempts = records["name"].isin(("connect", "handshake"))
    out["connects_waiting_at_end"] = float(
        (attempts & (records["start_unix_s"] < window_end_unix) & (end >= window_end_unix)).sum())
    out["connect_ms_p50"], out["connect_ms_p99"] = _pcts(lat("connect"))
    streams = inside[inside["name"] == _CLOSE[protocol]]
    out["streams_completed"] = float((streams["ok"] == 1).sum())
    out["streams_failed"] = float((streams["ok"] == 0).sum())
    out["concurrent_served_mean"] = _served_mean(records, end, _CLOSE[protocol],
                                                 window_start_unix, window_end_unix)
    if protocol == "sse":
        out["ttfe_ms_p50"], out["ttfe_ms_p99"] = _pcts(lat("ttfe"))
        out["event_lag_ms_p50"], out["event_lag_ms_p99"] = _pcts(lat("event"))
        out["events_per_s"] = len(lat("event")) / window_s
    else:
        out["rtt_ms_p50"], out["rtt_ms_p99"] = _pcts(lat("rtt"))
        out["messages_per_s"] = len(lat("rtt")) / window_s
    return out


def _served_mean(records: pd.DataFrame, end: pd.Series, close_name: str, t0: float,
                 t1: float) -> float:
    """Time-average over [t0, t1) of (ok connects ended) - (closing rows ended).

    Every closing row follows an ok connect of the same client; one cut by the
    test's stop has none, so it counts as open through the window's end.
    """
    opens = end[(records["name"] == "connect") & (records["ok"] == 1)].to_numpy(dtype=float)
    closes = end[records["name"] == close_name].to_numpy(dtype=float)
    times = np.concatenate([opens, closes])
    if not len(times):
        return 0.0
    steps = np.concatenate([np.ones(len(opens)), -np.ones(len(closes))])
    order = np.argsort(times, kind="stable")
    t = np.clip(times[order], t0, t1)
    level = np.cumsum(steps[order])
    widths = np.diff(np.append(t, t1))
    return float((level * widths).sum() / (t1 - t0))


def pss_kib_per_connection(levels: pd.DataFrame, *,
                           connections: str = "concurrent_connections_peak",
                           pss_mib: str = "pss_mib_peak") -> float:
    """Memory per held connection: the least-squares slope of PSS (KiB) against
    concurrent connections across the levels of one server config and repeat
    (``scipy.stats.linregress``).

    ``levels`` has one row per level with the columns named by ``connections`` and
    ``pss_mib`` (MiB; converted at 1024 KiB per MiB). Rows with a NaN in either are
    left out. NaN when fewer than two distinct connection counts remain (no slope).
    """
    pts = levels[[connections, pss_mib]].astype(float).dropna()
    if pts[connections].nunique() < 2:
        return math.nan
    fit = stats.linregress(pts[connections].to_numpy(), pts[pss_mib].to_numpy() * 1024.0)
    return float(fit.slope)


def websocket_unsupported(records: pd.DataFrame) -> str | None:
    """Why a server config cannot serve WebSocket, or None if it can (or if unknown).

    Returns a reason such as ``"WebSocket handshake answered 404 Not Found"`` when
    there was at least one ``handshake`` row (a handshake answered with a status
    other than 101) and no successful ``connect`` at all; with several statuses,
    each with its count. A trial with no handshake answer at all (refused
    connections, timeouts) is not called unsupported: nothing answered.
    """
    if records.empty:
        return None
    names = records["name"].astype(str)
    if ((names == "connect") & (records["ok"] == 1)).any():
        return None
    refused = records[(names == "handshake") & (records["status"] != 101)]
    if refused.empty:
        return None
    counts = refused["status"].astype(int).value_counts().sort_index()

    def phrase(status: int) -> str:
        try:
            return f"{status} {HTTPStatus(status).phrase}"
        except ValueError:
            return str(status)

    if len(counts) == 1:
        return f"WebSocket handshake answered {phrase(int(counts.index[0]))}"
    return "WebSocket handshake answered " + ", ".join(
        f"{phrase(int(s))} ({n}x)" for s, n in counts.items())
