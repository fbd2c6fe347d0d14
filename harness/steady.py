"""Steady state: when a level's measurement window may open, and whether it was steady.

A closed loop of N users against a server starts with an empty queue: the first
requests are served at once, later ones wait behind them, and latency climbs for one
full *cycle* of the queue (the time every user needs to get one request through,
``N / throughput``; for one sync worker at 50 ms and 100 users, 5 s) before it levels
off. A window opened after a fixed warm-up shorter than that cycle measures the
climb, not the server. So the window opens when the data says the stack is steady:

1. a full cycle done: at least ``cycle_s = users / throughput`` since every user had
   started (closed loop), or since the first request was due (open loop: ``cycle_s``
   is then the mean latency, the time a request spends in the system);
2. a flat latency trend: over the last evaluation span (the last :data:`EVAL_MIN_S`,
   widened back to hold :data:`EVAL_MIN_REQUESTS` completions, but never from before
   every user had started: right after the start it is what there is), the least-squares
   slope of latency against completion time, times the span, moves latency by at
   most :data:`DRIFT_BOUND` of its mean (or :data:`DRIFT_FLOOR_MS`, whichever is larger,
   so microsecond noise on a 1 ms request is not a trend);
3. Little's law holding (Little 1961, L = lambda W): closed loop, throughput x mean
   latency / users within :data:`LITTLES_LAW_TOLERANCE` of 1; open loop, the
   completion rate within the same tolerance of the arrival rate.

The same drift bound and Little's-law tolerance are applied to the measurement
window itself once it is over (:func:`window_problem`): a window that drifted, or
in which Little's law does not hold, is not steady state whatever the warm-up was.

Everything here is a pure function of record arrays, except :class:`RecordTail`,
which reads the per-request files locust appends to while it runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Largest latency drift over a window, as a fraction of its mean latency.
DRIFT_BOUND = 0.10
#: ... but never below this many ms (scheduling jitter on a ~1 ms request is not a trend).
DRIFT_FLOOR_MS = 1.0
#: |throughput x mean latency / users - 1| at most this (closed loop); open loop:
#: |completion rate / arrival rate - 1|.
LITTLES_LAW_TOLERANCE = 0.10
#: The trailing evaluation span: at least this long (s) ...
EVAL_MIN_S = 1.0
#: ... and holding at least this many completions.
EVAL_MIN_REQUESTS = 30
#: How often the detector re-evaluates while the warm-up runs (s).
CHECK_EVERY_S = 0.1
#: The detector forgets completions older than this (s): the trailing span never needs
#: more, and each check then costs the same however long the warm-up.
KEEP_S = 30.0


@dataclass(frozen=True, slots=True)
class Steadiness:
    """One evaluation of the steady-state rules over a span of completions.

    ``cycle_s``: users / throughput (closed loop) or mean latency (open loop), s;
    ``drift_ms``: latency slope (ms/s) x span (s); ``drift_limit_ms``: the bound it is
    held to; ``littles_law_ratio``: throughput x mean latency / users (closed) or
    completion rate / arrival rate (open); ``since_start_s``: time from all users
    started (or the first due request) to the end of the span.
    """

    steady: bool
    cycle_s: float
    drift_ms: float
    drift_limit_ms: float
    trend_ms_per_s: float
    littles_law_ratio: float
    since_start_s: float
    requests: int

    def reason(self) -> str:
        """Why the span is not steady ("" when it is), with the figures."""
        out = []
        if not self.requests:
            return "no request completed"
        if self.since_start_s < self.cycle_s:
            out.append(f"{self.since_start_s:.1f} s since start < one queue cycle "
                       f"({self.cycle_s:.2f} s)")
        if not abs(self.drift_ms) <= self.drift_limit_ms:
            out.append(f"latency trend {self.trend_ms_per_s:+.1f} ms/s "
                       f"(drift {self.drift_ms:+.1f} ms > {self.drift_limit_ms:.1f} ms)")
        if not abs(self.littles_law_ratio - 1.0) <= LITTLES_LAW_TOLERANCE:
            out.append(f"Little's law ratio {self.littles_law_ratio:.2f}")
        return "; ".join(out)


def evaluate(ends: Sequence[float] | np.ndarray, latencies_ms: Sequence[float] | np.ndarray,
             *, span_start: float, span_end: float, started_at: float, users: int,
             arrival_rate: float | None = None) -> Steadiness:
    """Apply the three rules to the completions that ended in [span_start, span_end).

    ``ends`` are completion times (unix s), ``latencies_ms`` the matching latencies;
    ``started_at`` is when every user had started (closed loop) or the first request
    was due (open loop, ``arrival_rate`` in req/s given). The slope is ordinary least
    squares (``numpy.polyfit`` degree 1).
    """
    e = np.asarray(ends, dtype=float)
    lat = np.asarray(latencies_ms, dtype=float)
    mask = (e >= span_start) & (e < span_end)
    e, lat = e[mask], lat[mask]
    n = len(e)
    slope = 0.0
    if n >= 3 and float(np.ptp(e)) > 0:
        slope = float(np.polyfit(e - span_start, lat, 1)[0])
    return judge(requests=n, span_s=span_end - span_start,
                 mean_ms=float(lat.mean()) if n else math.nan, slope_ms_per_s=slope,
                 since_start_s=span_end - started_at, users=users, arrival_rate=arrival_rate)


def judge(*, requests: int, span_s: float, mean_ms: float, slope_ms_per_s: float,
          since_start_s: float, users: int, arrival_rate: float | None = None) -> Steadiness:
    """The three rules on a span's figures (shared by :func:`evaluate`, which has the
    completions, and ``harness.latency.WindowStats``, which has their streamed sums):
    ``requests`` completed in ``span_s`` seconds, their mean latency (ms) and its
    least-squares slope against completion time (ms/s; NaN counts as 0)."""
    n, span = requests, span_s
    if not n or span <= 0:
        return Steadiness(False, math.inf, math.nan, math.nan, math.nan, math.nan,
                          since_start_s, n)
    rate = n / span
    slope = 0.0 if math.isnan(slope_ms_per_s) else slope_ms_per_s
    drift = slope * span
    limit = max(DRIFT_BOUND * mean_ms, DRIFT_FLOOR_MS)
    if arrival_rate:
        cycle = mean_ms / 1000.0
        ratio = rate / arrival_rate
    else:
        cycle = users / rate
        ratio = rate * (mean_ms / 1000.0) / users
    steady = (since_start_s >= cycle and abs(drift) <= limit
              and abs(ratio - 1.0) <= LITTLES_LAW_TOLERANCE)
    return Steadiness(steady, cycle, drift, limit, slope, ratio, since_start_s, n)


@dataclass
class Detector:
    """Decides, as completions arrive, when the measurement window may open.

    Feed it completions with :meth:`add`; :meth:`check` at time ``now`` returns the
    :class:`Steadiness` of the trailing span (its ``steady`` says the window may open
    at ``now``), or None while there is not enough data to judge.
    """

    users: int
    started_at: float
    arrival_rate: float | None = None
    ends: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, end: float, latency_ms: float) -> None:
        self.ends.append(end)
        self.latencies_ms.append(latency_ms)

    def check(self, now: float) -> Steadiness | None:
        if now <= self.started_at:
            return None
        if self.ends and self.ends[0] < now - KEEP_S and len(self.ends) > EVAL_MIN_REQUESTS:
            keep = [i for i, e in enumerate(self.ends) if e >= now - KEEP_S]
            if len(keep) >= EVAL_MIN_REQUESTS:
                self.ends = [self.ends[i] for i in keep]
                self.latencies_ms = [self.latencies_ms[i] for i in keep]
        ends = np.asarray(self.ends, dtype=float)
        recent = np.sort(ends[(ends >= self.started_at) & (ends < now)])
        if len(recent) < EVAL_MIN_REQUESTS:
            return None
        # The trailing span: EVAL_MIN_S, widened back until it holds EVAL_MIN_REQUESTS.
        start = now - EVAL_MIN_S
        if int((recent >= start).sum()) < EVAL_MIN_REQUESTS:
            start = float(recent[max(0, len(recent) - EVAL_MIN_REQUESTS)])
        start = max(start, self.started_at)
        if now - start <= 0:
            return None
        return evaluate(ends, self.latencies_ms, span_start=start, span_end=now,
                        started_at=self.started_at, users=self.users,
                        arrival_rate=self.arrival_rate)


def window_problem(state: Steadiness, *, closed_loop: bool) -> str:
    """The ``not-steady`` reason for a finished measurement window, or "".

    Only the trend and, for a closed loop, Little's law are judged here (the cycle
    rule is about when the window opened, recorded separately).
    """
    if not state.requests:
        return ""
    out = []
    if not abs(state.drift_ms) <= state.drift_limit_ms:
        out.append(f"latency trend {state.trend_ms_per_s:+.1f} ms/s over the window "
                   f"(drift {state.drift_ms:+.1f} ms > {state.drift_limit_ms:.1f} ms)")
    if closed_loop and not abs(state.littles_law_ratio - 1.0) <= LITTLES_LAW_TOLERANCE:
        out.append(f"Little's law ratio {state.littles_law_ratio:.2f} "
                   f"(throughput x mean latency / users)")
    if not out:
        return ""
    return f"not-steady: {'; '.join(out)}; queue cycle {state.cycle_s:.2f} s"


class RecordTail:
    """Reads, as locust appends them, the ``<pid>.csv`` request files of one trial.

    Only complete lines are parsed; only rows named ``name`` are returned, as
    (completion time unix s, latency ms) pairs. Costs one ``read`` per file per call.
    """

    def __init__(self, records_dir: Path, name: str = "request") -> None:
        self.dir = records_dir
        self.name = name
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}

    def read(self) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        try:
            names = [n for n in os.listdir(self.dir) if n.endswith(".csv")]
        except OSError:
            return out
        want = self.name.encode()
        for fname in names:
            path = self.dir / fname
            try:
                with open(path, "rb") as f:
                    f.seek(self._offsets.get(fname, 0))
                    chunk = f.read()
            except OSError:
                continue
            if not chunk:
                continue
            self._offsets[fname] = self._offsets.get(fname, 0) + len(chunk)
            data = self._partial.pop(fname, b"") + chunk
            lines = data.split(b"\n")
            if lines[-1]:
                self._partial[fname] = lines[-1]
            for line in lines[:-1]:
                parts = line.split(b",")
                if len(parts) < 6 or parts[5] != want:
                    continue
                try:
                    start, lat = float(parts[0]), float(parts[1])
                except ValueError:
                    continue
                out.append((start + lat / 1000.0, lat))
        return out
