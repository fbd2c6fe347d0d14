"""Latency of one trial's measurement window in bounded memory: HDR histograms and
streamed sums instead of every per-request record in a DataFrame.

Reading a trial's records into pandas (:func:`harness.analysis.read_records`) costs
about 154 bytes per request at peak: 460 MB for 10 minutes at 5,000 req/s.
:func:`scan_records` reads the same ``<pid>.csv`` files in bounded chunks into a
:class:`WindowStats`, whose memory does not grow with the number of requests (a
histogram of the window, one sparse histogram per second, a few sums), and which gives
the same figures as :func:`harness.analysis.request_metrics` and
:func:`harness.steady.evaluate`:

* counts, failures, throughput, error rate, ``incomplete``, mean and max latency:
  exact (float sums of the same values);
* the latency trend (least-squares slope of latency against completion time): exact up
  to float rounding, from streamed co-moments (Chan, Golub & LeVeque 1979), x relative to
  the window start;
* percentiles: from the histogram, within 0.05% of the exact ones (see below).

Precision. Latencies are recorded as integer nanoseconds in an HdrHistogram (Tene; the
``hdrhistogram`` package, module ``hdrh``) of 3 significant digits over 1 ns .. 1 hour:
every value from 1.024 us up falls in a bucket at most 1/1024 of its value wide
(values below are exact to the nanosecond). A bucket stands for its midpoint, so a
recorded value is off by at most half a bucket: relative error <= 1/2048 (0.049%),
within the stated 0.1% from 1 us to 1 hour. Nanoseconds, not microseconds, because the
records carry 0.1 us and loopback latencies are often below 1 ms, where a 1 us unit
would leave only 2 or 3 significant digits (a 200 us p50 off by up to 0.25%).

Percentiles use the same rank rule as the exact path (linear interpolation between
order statistics, Hyndman & Fan 1996 type 7, numpy's default), each order statistic
taken as the midpoint of its bucket and clamped to the exact min and max: the error is
then the bucket's half-width, whatever the sample size. (hdrh's own
``get_value_at_percentile`` reports the top of the bucket at the nearest rank, which on
a small window's p99.9 can sit one order statistic away from numpy's.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from hdrh.histogram import HdrHistogram

    from harness.analysis import Window
    from harness.steady import Steadiness

#: The histogram's integer unit: 1 ns (a latency in ms times this).
UNITS_PER_MS = 1_000_000
#: Smallest and largest trackable latency, in units (1 ns .. 1 hour).
LOWEST_UNITS = 1
HIGHEST_UNITS = 3_600 * 1_000 * UNITS_PER_MS
SIGNIFICANT_FIGURES = 3
#: Rows per chunk when scanning records. pandas' parser peaks at ~300 bytes a row per
#: chunk: 25,000 rows add ~9 MB to the import floor, and scan 3M rows in ~1.5 s (200,000:
#: +32 MB for no gain in speed; the csv module takes ~4.5 s just to parse 3M rows).
CHUNK_ROWS = 25_000
#: Format of :meth:`WindowStats.to_json`.
FORMAT_VERSION = 1


def new_histogram() -> HdrHistogram:
    """An empty latency histogram: nanoseconds, 1 ns .. 1 hour, 3 significant digits."""
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(LOWEST_UNITS, HIGHEST_UNITS, SIGNIFICANT_FIGURES)


def _counts(hist: HdrHistogram) -> np.ndarray:
    """The histogram's counts array as a writable numpy view (no copy)."""
    view = np.ctypeslib.as_array(hist.counts)
    return view[:hist.counts_len]


def _units(latency_ms: np.ndarray) -> np.ndarray:
    """Latencies (ms) as integer units, clamped to the trackable range."""
    return np.clip(np.rint(np.asarray(latency_ms, dtype=float) * UNITS_PER_MS),
                   0, HIGHEST_UNITS).astype(np.int64)


def counts_indices(hist: HdrHistogram, units: np.ndarray) -> np.ndarray:
    """The counts-array index of each value (integer units, within range): hdrh's
    ``_counts_index_for`` vectorised (bucket from the bit length of ``value |
    sub_bucket_mask``, then the sub-bucket)."""
    v = np.asarray(units, dtype=np.int64)
    # bit length = frexp's exponent; exact while values stay below 2**53 (1 h in ns: 2**42).
    pow2ceiling = np.frexp((v | hist.sub_bucket_mask).astype(float))[1].astype(np.int64)
    bucket = pow2ceiling - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub_bucket = v >> (bucket + hist.unit_magnitude)
    return ((bucket + 1) << hist.sub_bucket_half_count_magnitude) \
        + (sub_bucket - hist.sub_bucket_half_count)


def _set_counts(hist: HdrHistogram, add: np.ndarray) -> None:
    """Add a counts array (same layout) to ``hist`` and fix its total, min and max."""
    counts = _counts(hist)
    counts += add.astype(counts.dtype)
    nz = np.flatnonzero(counts)
    if len(nz):
        hist.set_internal_tacking_values(int(nz[0]), int(nz[-1]), int(counts.sum()))


def _release(hist: HdrHistogram) -> None:
    """Break hdrh's histogram <-> encoder reference cycle, so a histogram used once is
    freed at once (~270 KB each), not at the cyclic collector's next pass."""
    hist.encoder.histogram = None


def _load_sparse(hist: HdrHistogram, idx: np.ndarray, counts: np.ndarray) -> None:
    """Make ``hist`` hold exactly these sparse counts (its previous counts dropped)."""
    dense = _counts(hist)
    dense[:] = 0
    hist.total_count = 0
    if len(idx):
        dense[idx] = counts
        hist.set_internal_tacking_values(int(idx[0]), int(idx[-1]), int(counts.sum()))


def record_ms(hist: HdrHistogram, latency_ms: Sequence[float] | np.ndarray) -> None:
    """Record latencies (ms) into ``hist`` in one vectorised pass (same buckets as
    ``hist.record_value`` per value)."""
    idx = counts_indices(hist, _units(np.asarray(latency_ms, dtype=float)))
    if len(idx):
        _set_counts(hist, np.bincount(idx, minlength=hist.counts_len))


def _bucket_values(hist: HdrHistogram, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) equivalent value, in units, of each counts index: hdrh's
    ``get_value_from_index`` and ``get_highest_equivalent_value`` vectorised."""
    i = np.asarray(idx, dtype=np.int64)
    half = hist.sub_bucket_half_count
    bucket = (i >> hist.sub_bucket_half_count_magnitude) - 1
    sub = (i & (half - 1)) + half
    first = bucket < 0
    sub = np.where(first, sub - half, sub)
    bucket = np.where(first, 0, bucket)
    lo = sub << (bucket + hist.unit_magnitude)
    hi = lo + (np.int64(1) << (bucket + hist.unit_magnitude)) - 1
    return lo.astype(float), hi.astype(float)


def percentiles_ms(hist: HdrHistogram, percentiles: Iterable[float], *,
                   min_ms: float = -math.inf, max_ms: float = math.inf) -> list[float]:
    """Latency percentiles (ms) from a histogram, type 7 like ``numpy.percentile``.

    Each order statistic is its bucket's midpoint, clamped to [``min_ms``, ``max_ms``]
    when the exact extremes are known. NaN for every percentile of an empty histogram.
    Error: at most half a bucket (<= 1/2048 of the value from 1.024 us up).
    """
    counts = _counts(hist)
    nz = np.flatnonzero(counts)
    return _percentiles(hist, nz, counts[nz], percentiles, min_ms=min_ms, max_ms=max_ms)


def _percentiles(layout: HdrHistogram, idx: np.ndarray, counts: np.ndarray,
                 percentiles: Iterable[float], *, min_ms: float = -math.inf,
                 max_ms: float = math.inf) -> list[float]:
    """:func:`percentiles_ms` of sparse counts (ascending indices into ``layout``'s)."""
    ps = [float(p) for p in percentiles]
    n = int(counts.sum()) if len(idx) else 0
    if not n:
        return [math.nan] * len(ps)
    cum = np.cumsum(counts.astype(np.int64))
    lo, hi = _bucket_values(layout, idx)
    mid_ms = np.clip((lo + hi) / 2.0 / UNITS_PER_MS, min_ms, max_ms)

    def order_stat(rank: int) -> float:  # 0-based rank
        return float(mid_ms[int(np.searchsorted(cum, rank, side="right"))])

    out = []
    for p in ps:
        h = (n - 1) * p / 100.0
        below = math.floor(h)
        a = order_stat(below)
        b = order_stat(min(below + 1, n - 1))
        out.append(a + (h - below) * (b - a))
    return out


def cdf_points(hist: HdrHistogram) -> tuple[np.ndarray, np.ndarray]:
    """Points of the latency CDF from a histogram, for a chart: x = latency ms (the top
    of each non-empty bucket), y = fraction of the recorded values <= x (exact at each
    point; values inside one bucket are not told apart). At most one point per
    non-empty bucket (a few thousand for a wide distribution); empty arrays when the
    histogram is empty."""
    counts = _counts(hist)
    nz = np.flatnonzero(counts)
    if not len(nz):
        return np.empty(0), np.empty(0)
    cum = np.cumsum(counts[nz]).astype(float)
    _, hi = _bucket_values(hist, nz)
    return hi / UNITS_PER_MS, cum / cum[-1]


def encode(hist: HdrHistogram) -> str:
    """hdrh's compressed, base64 encoding (HdrHistogram V2 "histoblob")."""
    blob = hist.encode()
    return blob.decode("ascii") if isinstance(blob, bytes) else str(blob)


def decode(blob: str) -> HdrHistogram:
    """A histogram from :func:`encode`'s text. Raises ValueError if it is not one."""
    import zlib

    from hdrh.codec import HdrCookieException, HdrHistogramSettingsException, HdrLengthException
    from hdrh.histogram import HdrHistogram

    try:
        return HdrHistogram.decode(blob)
    except (TypeError, ValueError, zlib.error, HdrCookieException, HdrLengthException,
            HdrHistogramSettingsException) as exc:
        raise ValueError(f"not an encoded HdrHistogram: {type(exc).__name__}: {exc}") from None


class _Slice:
    """One second of the window: its non-empty counts indices (uint16: a histogram has
    33,792) and their counts (uint32), kept zlib-compressed between updates: at 5,000
    req/s ~2.4 KB a second instead of ~14 KB, 10 minutes of slices in 1.4 MiB."""

    __slots__ = ("_blob", "_n", "failures")

    def __init__(self, idx: np.ndarray, counts: np.ndarray, failures: int = 0) -> None:
        self.failures = failures
        self._store(np.asarray(idx, dtype=np.uint16), np.asarray(counts, dtype=np.uint32))

    def _store(self, idx: np.ndarray, counts: np.ndarray) -> None:
        import zlib

        self._n = len(idx)
        # Indices as deltas: runs of small numbers compress well.
        deltas = np.diff(idx, prepend=np.uint16(0)).astype(np.uint16)
        self._blob = zlib.compress(deltas.tobytes() + counts.astype(np.uint32).tobytes(), 1)

    @property
    def idx(self) -> np.ndarray:
        import zlib

        raw = zlib.decompress(self._blob)
        return np.cumsum(np.frombuffer(raw, dtype=np.uint16, count=self._n),
                         dtype=np.uint16)

    @property
    def counts(self) -> np.ndarray:
        import zlib

        raw = zlib.decompress(self._blob)
        return np.frombuffer(raw, dtype=np.uint32, offset=2 * self._n).copy()

    @property
    def nbytes(self) -> int:
        return len(self._blob)

    def merge(self, idx: np.ndarray, counts: np.ndarray) -> None:
        both = np.concatenate([self.idx, idx.astype(np.uint16)])
        keys, inverse = np.unique(both, return_inverse=True)
        weights = np.concatenate([self.counts, counts]).astype(float)
        self._store(keys, np.bincount(inverse, weights=weights, minlength=len(keys)))


@dataclass
class WindowStats:
    """Streaming figures of one trial's measurement window (records named ``name``
    whose completion, start + latency, falls in ``window``: [start, end) unix s).

    Memory is bounded: a ~260 KB histogram plus one compressed sparse histogram per
    second of the window (~2.4 KB each at 5,000 req/s), whatever the request count.
    Feed it with :meth:`add` (arrays) or :func:`scan_records` (files); read it with
    :meth:`metrics`, :meth:`steadiness`, :meth:`slice_series`, :meth:`to_json`.
    """

    window: Window
    name: str = "request"
    requests: int = 0
    failures: int = 0
    #: Open loop: rows named ``incomplete`` that started before the window ended.
    incomplete: int = 0
    latency_sum_ms: float = 0.0
    latency_min_ms: float = math.inf
    latency_max_ms: float = -math.inf
    #: Co-moments of (x = completion - window start, s; y = latency, ms): means,
    #: sum of squared x deviations, sum of x-y deviation products; x extremes.
    mean_x: float = 0.0
    mean_y: float = 0.0
    m2_x: float = 0.0
    c_xy: float = 0.0
    min_x: float = math.inf
    max_x: float = -math.inf
    histogram: Any = field(default=None)
    #: unix second (int) -> that second's sparse histogram and failures.
    slices: dict[int, _Slice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.histogram is None:
            self.histogram = new_histogram()

    # --- feeding --------------------------------------------------------------------

    def add(self, start_unix_s: np.ndarray, latency_ms: np.ndarray, ok: np.ndarray,
            names: np.ndarray | None = None) -> None:
        """Add records (REQUEST_COLUMNS arrays of equal length; ``names`` None: all
        rows are ``self.name``). Rows of other names are ignored, except ``incomplete``
        ones, counted as :func:`harness.analysis.request_metrics` does."""
        if names is None:
            self._add(start_unix_s, latency_ms, ok, None, None)
            return
        names = np.asarray(names, dtype=object)
        self._add(start_unix_s, latency_ms, ok, names == self.name, names == "incomplete")

    def _add(self, start_unix_s: np.ndarray, latency_ms: np.ndarray, ok: np.ndarray,
             keep: np.ndarray | None, incomplete: np.ndarray | None) -> None:
        start = np.asarray(start_unix_s, dtype=float)
        lat = np.asarray(latency_ms, dtype=float)
        okv = np.asarray(ok)
        if incomplete is not None:
            self.incomplete += int((incomplete & (start < self.window.end)).sum())
        if keep is not None:
            start, lat, okv = start[keep], lat[keep], okv[keep]
        end = start + lat / 1000.0  # the very expression request_metrics uses
        inside = (end >= self.window.start) & (end < self.window.end)
        lat, end, okv = lat[inside], end[inside], okv[inside]
        n = len(lat)
        if not n:
            return
        failed = okv == 0
        self.requests += n
        self.failures += int(failed.sum())
        self.latency_sum_ms += float(lat.sum())
        self.latency_min_ms = min(self.latency_min_ms, float(lat.min()))
        self.latency_max_ms = max(self.latency_max_ms, float(lat.max()))
        self._add_moments(end - self.window.start, lat)
        idx = counts_indices(self.histogram, _units(lat))
        _set_counts(self.histogram, np.bincount(idx, minlength=self.histogram.counts_len))
        self._add_slices(np.floor(end).astype(np.int64), idx, failed)

    def _add_moments(self, x: np.ndarray, y: np.ndarray) -> None:
        # Chan, Golub & LeVeque (1979): merge the chunk's centred co-moments.
        nb = len(x)
        na = self.requests - nb
        mx, my = float(x.mean()), float(y.mean())
        dx = x - mx
        # Plain sums, not BLAS dot products (whose threads spin on a busy machine).
        m2, cxy = float(np.sum(dx * dx)), float(np.sum(dx * (y - my)))
        n = na + nb
        ddx, ddy = mx - self.mean_x, my - self.mean_y
        self.m2_x += m2 + ddx * ddx * na * nb / n
        self.c_xy += cxy + ddx * ddy * na * nb / n
        self.mean_x += ddx * nb / n
        self.mean_y += ddy * nb / n
        self.min_x = min(self.min_x, float(x.min()))
        self.max_x = max(self.max_x, float(x.max()))

    def _add_slices(self, secs: np.ndarray, idx: np.ndarray, failed: np.ndarray) -> None:
        width = self.histogram.counts_len
        base = int(secs.min())
        keys, counts = np.unique((secs - base) * width + idx, return_counts=True)
        key_secs = keys // width + base
        bounds = np.flatnonzero(np.diff(key_secs)) + 1
        for part_keys, part_counts in zip(np.split(keys, bounds), np.split(counts, bounds),
                                          strict=True):
            sec = int(part_keys[0] // width + base)
            part_idx = part_keys % width
            got = self.slices.get(sec)
            if got is None:
                self.slices[sec] = _Slice(part_idx, part_counts)
            else:
                got.merge(part_idx, part_counts)
        if failed.any():
            fsecs, fcounts = np.unique(secs[failed], return_counts=True)
            for sec, c in zip(fsecs.tolist(), fcounts.tolist(), strict=True):
                self.slices[sec].failures += c

    def add_frame(self, records: pd.DataFrame) -> None:
        """Add a DataFrame of records (at least start_unix_s, latency_ms, ok; name)."""
        keep = incomplete = None
        if "name" in records:  # compared in pandas: on a categorical column, by code
            keep = (records["name"] == self.name).to_numpy(dtype=bool)
            incomplete = (records["name"] == "incomplete").to_numpy(dtype=bool)
        self._add(records["start_unix_s"].to_numpy(dtype=float),
                  records["latency_ms"].to_numpy(dtype=float),
                  records["ok"].to_numpy(), keep, incomplete)

    # --- reading --------------------------------------------------------------------

    @property
    def latency_mean_ms(self) -> float:
        return self.latency_sum_ms / self.requests if self.requests else math.nan

    @property
    def trend_ms_per_s(self) -> float:
        """Least-squares slope of latency (ms) against completion time (s); NaN with
        fewer than 3 completions or all at one instant."""
        if self.requests < 3 or not self.max_x > self.min_x:
            return math.nan
        return self.c_xy / self.m2_x

    def metrics(self) -> dict[str, float | int]:
        """The keys and meanings of :func:`harness.analysis.request_metrics`: requests,
        failures, throughput_rps (successful requests / window s), error_rate,
        incomplete, latency_trend_ms_per_s, latency_mean_ms, latency_p50/p90/p95/p99/
        p999_ms (from the histogram: see the module docstring), latency_max_ms."""
        from harness.analysis import PERCENTILES

        n, failures = self.requests, self.failures
        out: dict[str, float | int] = {
            "requests": n,
            "failures": failures,
            "throughput_rps": (n - failures) / self.window.seconds,
            "error_rate": failures / n if n else math.nan,
            "incomplete": self.incomplete,
            "latency_trend_ms_per_s": self.trend_ms_per_s,
        }
        if n:
            out["latency_mean_ms"] = self.latency_mean_ms
            qs = percentiles_ms(self.histogram, PERCENTILES.values(),
                                min_ms=self.latency_min_ms, max_ms=self.latency_max_ms)
            out.update(zip(PERCENTILES, qs, strict=True))
            out["latency_max_ms"] = self.latency_max_ms
        else:
            out.update({k: math.nan for k in ("latency_mean_ms", *PERCENTILES,
                                               "latency_max_ms")})
        return out

    def steadiness(self, users: int, arrival_rate: float | None = None,
                   started_at: float = -math.inf) -> Steadiness:
        """:func:`harness.steady.evaluate` over the window (span = the window), from the
        streamed sums: same count, mean, slope (0 with fewer than 3 completions), drift
        = slope x span, drift limit, queue cycle and Little's law ratio."""
        from harness.steady import judge

        return judge(requests=self.requests, span_s=self.window.seconds,
                     mean_ms=self.latency_mean_ms, slope_ms_per_s=self.trend_ms_per_s,
                     since_start_s=self.window.end - started_at, users=users,
                     arrival_rate=arrival_rate)

    def slice_histogram(self, sec: int) -> HdrHistogram:
        """The histogram of the completions in unix second ``sec`` (empty if none)."""
        hist = new_histogram()
        s = self.slices.get(int(sec))
        if s is not None:
            _load_sparse(hist, s.idx, s.counts)
        return hist

    def slice_series(self) -> list[dict[str, float | int]]:
        """Per second of the window, ascending: ``second`` (unix s), ``requests``,
        ``failures``, and latency p50/p99 (ms) from that second's histogram."""
        out: list[dict[str, float | int]] = []
        for sec in sorted(self.slices):
            s = self.slices[sec]
            p50, p99 = _percentiles(self.histogram, s.idx, s.counts, (50.0, 99.0))
            out.append({"second": sec, "requests": int(s.counts.sum()),
                        "failures": s.failures, "latency_p50_ms": p50,
                        "latency_p99_ms": p99})
        return out

    # --- storage --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict: the window, the exact counts and sums, the window histogram
        and one histogram per second (hdrh compressed base64), so a run folder can keep
        ``latency/<trial_id>.json`` instead of its raw records."""
        return {
            "format": FORMAT_VERSION,
            "unit": "ns", "lowest": LOWEST_UNITS, "highest": HIGHEST_UNITS,
            "significant_figures": SIGNIFICANT_FIGURES,
            "window": [self.window.start, self.window.end], "name": self.name,
            "requests": self.requests, "failures": self.failures,
            "incomplete": self.incomplete, "latency_sum_ms": self.latency_sum_ms,
            "latency_min_ms": _finite(self.latency_min_ms),
            "latency_max_ms": _finite(self.latency_max_ms),
            "mean_x": self.mean_x, "mean_y": self.mean_y, "m2_x": self.m2_x,
            "c_xy": self.c_xy, "min_x": _finite(self.min_x), "max_x": _finite(self.max_x),
            "histogram": encode(self.histogram),
            "slices": self._encoded_slices(),
        }

    def _encoded_slices(self) -> dict[str, dict[str, Any]]:
        scratch = new_histogram()  # one histogram reused: 270 KB, not 270 KB a second
        out = {}
        for sec, s in sorted(self.slices.items()):
            _load_sparse(scratch, s.idx, s.counts)
            out[str(sec)] = {"histogram": encode(scratch), "failures": s.failures}
        _release(scratch)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowStats:
        """The inverse of :meth:`to_json`. Raises ValueError on another format version,
        unit or precision, or a histogram that does not decode."""
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"latency file format {data.get('format')!r}, "
                             f"this bench reads {FORMAT_VERSION}")
        if (data.get("unit"), data.get("significant_figures")) != ("ns", SIGNIFICANT_FIGURES):
            raise ValueError(f"latency histograms in {data.get('unit')!r} at "
                             f"{data.get('significant_figures')} digits, expected ns at "
                             f"{SIGNIFICANT_FIGURES}")
        from harness.analysis import Window

        hist = new_histogram()
        window_hist = decode(data["histogram"])
        hist.add(window_hist)
        _release(window_hist)
        out = cls(Window(*data["window"]), name=data["name"], requests=data["requests"],
                  failures=data["failures"], incomplete=data["incomplete"],
                  latency_sum_ms=data["latency_sum_ms"],
                  latency_min_ms=_float(data["latency_min_ms"], math.inf),
                  latency_max_ms=_float(data["latency_max_ms"], -math.inf),
                  mean_x=data["mean_x"], mean_y=data["mean_y"], m2_x=data["m2_x"],
                  c_xy=data["c_xy"], min_x=_float(data["min_x"], math.inf),
                  max_x=_float(data["max_x"], -math.inf), histogram=hist)
        for sec, s in data["slices"].items():
            h = decode(s["histogram"])
            if h.counts_len != hist.counts_len:
                raise ValueError(f"slice {sec}: a histogram of another layout")
            counts = _counts(h)
            nz = np.flatnonzero(counts)
            out.slices[int(sec)] = _Slice(nz, counts[nz], int(s["failures"]))
            _release(h)
        return out


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _float(v: float | None, default: float) -> float:
    return default if v is None else float(v)


_USECOLS = ["start_unix_s", "latency_ms", "ok", "name"]
_DTYPES = {"start_unix_s": "float64", "latency_ms": "float64", "ok": "int8",
           "name": "category"}


def scan_records(records_dir: Path, window: Window, name: str = "request",
                 chunk_rows: int = CHUNK_ROWS, pattern: str = "*.csv") -> WindowStats:
    """Stream every ``pattern`` record file of one trial (REQUEST_COLUMNS, no header) in
    chunks of ``chunk_rows`` rows into a :class:`WindowStats` of ``window`` (one load
    agent's: ``agent-<index>.csv``).

    Parsed with the same reader and dtypes as :func:`harness.analysis.read_records`
    (pandas' C parser), so every value, and so every completion time, is bit-for-bit the
    one the exact path sees. Peak memory: a chunk (~50 bytes a row) plus the stats.
    Empty files are skipped; a missing folder gives empty stats.
    """
    import pandas as pd

    from harness.results import REQUEST_COLUMNS

    stats = WindowStats(window, name=name)
    for f in sorted(Path(records_dir).glob(pattern)):
        try:
            reader = pd.read_csv(f, names=list(REQUEST_COLUMNS), header=None,
                                 usecols=_USECOLS, dtype=_DTYPES, chunksize=chunk_rows)
            with reader:
                for chunk in reader:
                    stats.add_frame(chunk)
        except pd.errors.EmptyDataError:
            continue
    return stats
