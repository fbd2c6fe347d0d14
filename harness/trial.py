"""The trial record: one row of ``trials.csv``, typed, in exactly one place.

The runner fills a plain dict while it measures (figures arrive from several
places: the load result, the samplers, the analysis), then freezes it into a
:class:`Trial`, which checks it: no unknown column, a known status, a non-empty id.
``TRIAL_COLUMNS`` (the CSV's column order) is the field order of :class:`Trial`.

Units are in the names: ``_ms``, ``_rps`` (successful responses per second; stream
scenarios count streams/s or msg/s, see ``harness.scenarios.RATE_UNITS``), ``_mib``,
``_kib``, ``_percent`` (of one core), ``_s``. NaN means "not measured" (a stream
figure on an HTTP trial, an open-loop figure on a closed loop, a trial that failed
before its window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

Status = Literal["ok", "invalid", "unsupported", "failed"]
TRIAL_STATUSES: tuple[Status, ...] = ("ok", "invalid", "unsupported", "failed")

NAN = math.nan

#: The stream figures (harness.streams.stream_metrics), in order.
STREAM_METRIC_COLUMNS = (
    "connect_ms_p50", "connect_ms_p99", "ttfe_ms_p50", "ttfe_ms_p99",
    "event_lag_ms_p50", "event_lag_ms_p99", "events_per_s", "messages_per_s",
    "rtt_ms_p50", "rtt_ms_p99", "streams_completed", "streams_failed",
    "connects_waiting_at_end", "concurrent_served_mean",
)


@dataclass(frozen=True, slots=True)
class Trial:
    """One (scenario, stack, level, repeat) measurement; a stack is a server config and
    an app (``server``, ``app``). results/README.md describes every column."""

    # identity and outcome
    trial_id: str
    scenario: str
    server: str
    interface: str
    backend: str
    workers: int
    threads: int
    users: int
    offered_rps: float
    repeat: int
    status: str
    reason: str = ""
    flags: str = ""
    load_mode: str = "closed-loop"
    # the measurement window (run-clock s)
    t_start_s: float = NAN
    t_end_s: float = NAN
    window_s: float = NAN
    # requests in the window
    requests: float = NAN
    failures: float = NAN
    throughput_rps: float = NAN
    error_rate: float = NAN
    latency_mean_ms: float = NAN
    latency_p50_ms: float = NAN
    latency_p90_ms: float = NAN
    latency_p95_ms: float = NAN
    latency_p99_ms: float = NAN
    latency_p999_ms: float = NAN
    latency_max_ms: float = NAN
    # the server's process tree
    cpu_percent_mean: float = NAN
    cpu_percent_peak: float = NAN
    pss_mib_mean: float = NAN
    pss_mib_peak: float = NAN
    rss_mib_peak: float = NAN
    uss_mib_peak: float = NAN
    server_processes: float = NAN
    # the container engine's view of the server (docker backend: cgroup figures)
    engine_cpu_percent_mean: float = NAN
    engine_mib_mean: float = NAN
    engine_mib_peak: float = NAN
    # the load generator
    generator_cpu_percent: float = NAN
    generator_cpu_percent_peak: float = NAN
    generator_cpu_percent_top: float = NAN
    load_cpus_busy_percent: float = NAN
    server_cpus_busy_percent: float = NAN
    # checks
    latency_trend_ms_per_s: float = NAN
    incomplete: float = NAN
    littles_law_ratio: float = NAN
    ceiling_rps: float = NAN
    efficiency: float = NAN
    # stream scenarios (harness.streams)
    connect_ms_p50: float = NAN
    connect_ms_p99: float = NAN
    ttfe_ms_p50: float = NAN
    ttfe_ms_p99: float = NAN
    event_lag_ms_p50: float = NAN
    event_lag_ms_p99: float = NAN
    events_per_s: float = NAN
    messages_per_s: float = NAN
    rtt_ms_p50: float = NAN
    rtt_ms_p99: float = NAN
    streams_completed: float = NAN
    streams_failed: float = NAN
    connects_waiting_at_end: float = NAN
    concurrent_served_mean: float = NAN
    concurrent_connections_peak: float = NAN
    pss_kib_per_connection: float = NAN
    # schema 3: steady-state warm-up, generator self-measurement, cost per request
    warmup_s: float = NAN
    warmup_mode: str = ""
    queue_cycle_s: float = NAN
    generator_lag_ms_mean: float = NAN
    generator_lag_ms_max: float = NAN
    generator_lag_share: float = NAN
    sends_due: float = NAN
    sends_late: float = NAN
    sends_capped: float = NAN
    sends_unsent: float = NAN
    cpu_ms_per_request: float = NAN
    pss_kib_per_inflight: float = NAN
    # bench run --cross-check (harness.oracle)
    oracle_throughput_rps: float = NAN
    oracle_latency_p50_ms: float = NAN
    oracle_latency_p99_ms: float = NAN
    oracle_agreement: float = NAN
    # real I/O (harness.realio): the driver and pool, the database's connections
    # (pg_stat_activity), the components' CPU and memory, and what bounded the trial
    driver: str = ""
    pool_size: float = NAN
    db_connections_peak: float = NAN
    db_active_peak: float = NAN
    db_active_mean: float = NAN
    db_cpu_percent_mean: float = NAN
    db_pss_mib_peak: float = NAN
    db_cpu_ms_per_request: float = NAN
    upstream_cpu_percent_mean: float = NAN
    upstream_pss_mib_peak: float = NAN
    upstream_cpu_ms_per_request: float = NAN
    bound_by: str = ""
    # schema 4: the app under test (harness.stacks): ``raw`` or a framework flavour, and
    # the installed version of its framework ("" for the raw callables)
    app: str = "raw"
    framework_version: str = ""

    def __post_init__(self) -> None:
        if not self.trial_id:
            raise ValueError("a trial needs a trial_id")
        if self.status not in TRIAL_STATUSES:
            raise ValueError(f"trial {self.trial_id}: status {self.status!r} is not one of "
                             f"{', '.join(TRIAL_STATUSES)}")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Trial:
        """Build from a column -> value dict (missing figures NaN).

        Raises:
            ValueError: a key that is not a column, an unknown status, no trial_id.
        """
        unknown = set(row) - _NAMES
        if unknown:
            raise ValueError(f"not trials.csv columns: {', '.join(sorted(unknown))}")
        return cls(**row)

    def to_row(self) -> dict[str, Any]:
        """Column -> value, in :data:`TRIAL_COLUMNS` order."""
        return {name: getattr(self, name) for name in TRIAL_COLUMNS}


TRIAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Trial))
#: The columns that hold text (every other column holds numbers; NaN = not measured).
TEXT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Trial) if f.type == "str")
_NAMES = frozenset(TRIAL_COLUMNS)
#: The stream columns in trials.csv: the metrics, then two the runner fills.
STREAM_COLUMNS = (*STREAM_METRIC_COLUMNS, "concurrent_connections_peak",
                  "pss_kib_per_connection")
