"""The model of stream runs (SSE, WebSocket): memory per held connection and the matrix
of every server config at every level.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.report.fmt import _int, _num
from harness.report.model import _STATUS_ORDER, Analysis, as_analysis, once
from harness.results import RunData


def per_connection_fits(run: RunData | Analysis) -> dict[str, tuple[float, float, int]]:
    """Per config with ok trials: (PSS per held connection in KiB, the line's intercept
    in MiB, repeats) as the PSS-per-connection chart draws it.

    The slope is the median over repeats of the trials' ``pss_kib_per_connection``
    (the runner's least-squares slope of PSS against ``concurrent_connections_peak``
    across one repeat's ok levels, :func:`harness.streams.pss_kib_per_connection`);
    the intercept puts the line through the mean of the ok points (where a
    least-squares line passes). NaN slope and intercept when no repeat has a slope
    (fewer than two distinct connection counts).
    """
    return dict(_per_connection_fits(as_analysis(run)))


@once
def _per_connection_fits(a: Analysis) -> dict[str, tuple[float, float, int]]:
    fits: dict[str, tuple[float, float, int]] = {}
    if "pss_kib_per_connection" not in a.trials:
        return fits
    for server in a.configs:
        ok = a.trials[(a.trials["server"] == server) & (a.trials["status"] == "ok")]
        points = ok.dropna(subset=["concurrent_connections_peak", "pss_mib_peak"])
        if points.empty:
            continue
        slopes = ok.dropna(subset=["pss_kib_per_connection"]).groupby(
            "repeat", dropna=False)["pss_kib_per_connection"].median()
        if slopes.empty:
            fits[server] = (math.nan, math.nan, 0)
            continue
        slope = float(slopes.median())
        intercept = float(points["pss_mib_peak"].mean()
                          - slope / 1024.0 * points["concurrent_connections_peak"].mean())
        fits[server] = (slope, intercept, len(slopes))
    return fits


def _no_slope(ok: pd.DataFrame) -> str:
    """Why a config's ok trials give no PSS-per-connection slope."""
    held = sorted({_int(v) for v in ok["concurrent_connections_peak"].dropna()}, key=float)
    if ok.dropna(subset=["concurrent_connections_peak", "pss_mib_peak"])[
            ["users", "offered_rps"]].drop_duplicates().shape[0] < 2:
        return "fewer than two ok levels with PSS and connections"
    return f"held {', '.join(held) or 'no'} connection(s) at every ok level"


def stream_matrix(run: RunData | Analysis) -> pd.DataFrame:
    """Every server config at every level of a stream run, as the report's matrix shows.

    One row per (config, level); columns ``server``, ``interface``, the level column
    (``users``, or ``offered_rps`` under open loop), ``state`` (``ok``, ``mixed``: some
    repeats not ok, ``unsupported``, ``failed``, ``invalid``, ``none``: not measured),
    ``p99_ms`` (median over ok repeats of the headline p99: time to first event for SSE,
    echo round trip for WebSocket; ms), ``rate`` (median events/s or messages/s) and
    ``text``: the cell, e.g. ``"TTFE p99 6.7 ms · 445 events/s"`` or ``"unsupported
    (WebSocket handshake answered 404 Not Found)"``. Empty for runs that are not streams.
    """
    return _matrix(as_analysis(run)).copy()


@once
def _matrix(a: Analysis) -> pd.DataFrame:
    columns = ["server", "interface", a.level, "state", "p99_ms", "rate", "text"]
    if not a.stream or a.trials.empty:
        return pd.DataFrame(columns=columns)
    p99, rate, what, unit = (("ttfe_ms_p99", "events_per_s", "TTFE", "events/s")
                             if a.protocol == "sse" else
                             ("rtt_ms_p99", "messages_per_s", "RTT", "msg/s"))
    levels = sorted(a.trials[a.level].dropna().unique())
    rows = []
    for server in a.configs:
        mine = a.trials[a.trials["server"] == server]
        for level in levels:
            group = mine[mine[a.level] == level]
            ok = group[group["status"] == "ok"]
            bad = group[group["status"] != "ok"]
            figure, per_s = (float(ok[c].median()) if len(ok) else math.nan
                             for c in (p99, rate))
            if group.empty:
                state, text = "none", "not measured"
            elif len(ok):
                state = "ok" if bad.empty else "mixed"
                text = f"{what} p99 {_num(figure, 1)} ms · {_num(per_s, 0)} {unit}"
                if len(bad):
                    text += " (" + ", ".join(
                        f"{n} of {len(group)} {status}" for status, n
                        in bad["status"].value_counts().sort_index().items()) + ")"
            else:
                state = min(set(bad["status"]), key=lambda x: (_STATUS_ORDER.get(x, 9), x))
                reasons = sorted({r for r in bad.loc[bad["status"] == state, "reason"] if r})
                text = f"{state or 'no status'} ({'; '.join(reasons)})" if reasons \
                    else state or "no status"
            rows.append({"server": server, "interface": a.configs[server], a.level: level,
                         "state": state, "p99_ms": figure, "rate": per_s, "text": text})
    return pd.DataFrame(rows, columns=columns)

