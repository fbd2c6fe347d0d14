"""A run's metrics in the Prometheus text exposition formats, for Grafana dashboards.

One custom collector (:class:`RunCollector`) turns a stored run into metric families
(``prometheus_client.core``: gauge, counter, summary, info); ``prometheus_client`` renders
them as OpenMetrics 1.0.0 (:func:`render` with ``"openmetrics"``,
``prometheus_client.openmetrics.exposition.generate_latest``) or as the classic text
format 0.0.4 (``"prometheus"``, ``prometheus_client.exposition.generate_latest``), which
is what node-exporter's textfile collector and the Pushgateway read.

Naming follows the Prometheus conventions (prometheus.io, "Metric and label naming"):
a ``bench_`` prefix, base units in the name (seconds, bytes, ratios 0..1; CPU in cores
= CPU-seconds per second), ``_total`` on counters. Every trial is one sample per metric
it measured (NaN figures are left out, not written as NaN), labelled by

    run_id, scenario, params (the scenario parameters, ``latency_ms=20``), server,
    interface, workers, backend, users (the level), offered_rps (open-loop rate; empty
    for closed loop), repeat, status (ok / invalid / unsupported / failed)

so a board can chart any metric by configuration, and an ``invalid`` trial's numbers are
there but marked: select ``status="ok"`` to chart valid trials only. ``bench_trials``
counts every configuration's trials per status, including those without numbers
(unsupported, failed). No sample carries a timestamp: the Pushgateway rejects them and
the textfile collector skips such files; the run's start is ``bench_run_start_time_seconds``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from harness.results import RunData
from harness.runmeta import RunMeta

Flavour = Literal["openmetrics", "prometheus"]

#: Labels of every per-trial sample, in order.
TRIAL_LABELS = ("run_id", "scenario", "params", "server", "app", "interface", "workers",
                "backend", "users", "offered_rps", "repeat", "status")
#: Labels of ``bench_trials`` (a configuration and a status).
CONFIG_LABELS = tuple(x for x in TRIAL_LABELS if x != "repeat")

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family from trials.csv columns.

    ``columns`` maps a trials.csv column to its quantile (summary) or to None (gauge,
    counter: one column); values are multiplied by ``scale`` into the base unit.
    """

    name: str
    kind: Literal["gauge", "counter", "summary"]
    help: str
    columns: tuple[tuple[str, float | None], ...]
    scale: float = 1.0


def _gauge(name: str, column: str, help: str, scale: float = 1.0) -> Family:
    return Family(name, "gauge", help, ((column, None),), scale)


def _quantiles(name: str, prefix: str, suffixes: tuple[tuple[str, float], ...],
               help: str) -> Family:
    return Family(name, "summary", help, tuple((f"{prefix}{s}", q) for s, q in suffixes),
                  0.001)


_LATENCY = (("p50_ms", 0.5), ("p90_ms", 0.9), ("p95_ms", 0.95), ("p99_ms", 0.99),
            ("p999_ms", 0.999))
_STREAM = (("_ms_p50", 0.5), ("_ms_p99", 0.99))

#: Every family exported per trial (the throughput family is named by the protocol's
#: unit, see :func:`throughput_name`).
FAMILIES: tuple[Family, ...] = (
    _quantiles("bench_latency_seconds", "latency_", _LATENCY,
               "Latency percentiles of the successful requests in the measurement window."),
    _gauge("bench_latency_mean_seconds", "latency_mean_ms", "Mean latency in the window.", 0.001),
    _gauge("bench_latency_max_seconds", "latency_max_ms", "Largest latency in the window.", 0.001),
    _gauge("bench_error_ratio", "error_rate", "Failed requests / requests in the window (0..1)."),
    Family("bench_requests", "counter", "Requests completed in the measurement window.",
           (("requests", None),)),
    Family("bench_request_failures", "counter", "Failed requests in the measurement window.",
           (("failures", None),)),
    _gauge("bench_memory_pss_peak_bytes", "pss_mib_peak",
           "Peak PSS of the server's process tree in the window.", _MIB),
    _gauge("bench_memory_pss_mean_bytes", "pss_mib_mean",
           "Mean PSS of the server's process tree in the window.", _MIB),
    _gauge("bench_memory_rss_peak_bytes", "rss_mib_peak",
           "Peak RSS summed over the server's processes (double-counts shared pages).", _MIB),
    _gauge("bench_memory_uss_peak_bytes", "uss_mib_peak",
           "Peak USS of the server's process tree in the window.", _MIB),
    _gauge("bench_cpu_mean_cores", "cpu_percent_mean",
           "Mean CPU use of the server's process tree (cores: CPU-seconds per second).", 0.01),
    _gauge("bench_cpu_peak_cores", "cpu_percent_peak",
           "Peak CPU use of the server's process tree (cores).", 0.01),
    _gauge("bench_cpu_per_request_seconds", "cpu_ms_per_request",
           "Server CPU time per successful request.", 0.001),
    _gauge("bench_server_processes", "server_processes", "Processes in the server's tree."),
    _gauge("bench_generator_cpu_mean_cores", "generator_cpu_percent",
           "Mean CPU use of the load generator (cores); a saturated one invalidates a trial.",
           0.01),
    _gauge("bench_littles_law_ratio", "littles_law_ratio",
           "Throughput x mean latency / concurrency (1 = Little's law holds)."),
    _gauge("bench_window_seconds", "window_s", "Length of the measurement window."),
    _quantiles("bench_connect_seconds", "connect", _STREAM, "Stream connect time percentiles."),
    _quantiles("bench_time_to_first_event_seconds", "ttfe", _STREAM,
               "SSE time to first event percentiles."),
    _quantiles("bench_event_lag_seconds", "event_lag", _STREAM,
               "SSE event lag (server send to receipt) percentiles."),
    _quantiles("bench_round_trip_seconds", "rtt", _STREAM,
               "WebSocket echo round-trip percentiles."),
    _gauge("bench_events_per_second", "events_per_s", "SSE events received per second."),
    _gauge("bench_messages_per_second", "messages_per_s", "WebSocket messages per second."),
    _gauge("bench_connections_peak", "concurrent_connections_peak",
           "Most connections the server held at once in the window."),
)

_RATE_NAMES = {"http": "requests", "sse": "streams", "websocket": "messages"}


def throughput_name(protocol: str) -> str:
    """``bench_throughput_requests_per_second`` (HTTP), ``..._streams_...`` (SSE) or
    ``..._messages_...`` (WebSocket): trials.csv's ``throughput_rps`` in its unit."""
    return f"bench_throughput_{_RATE_NAMES.get(protocol, 'requests')}_per_second"


def _text(value: Any) -> str:
    """A label value: '' for missing, integers without '.0'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _float(value: Any) -> float:
    """A figure as a float; NaN when missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _protocol(meta: RunMeta, trials: pd.DataFrame) -> str:
    recorded = (meta.scenario.protocol or "").lower()
    if recorded:
        return recorded
    for protocol, column in (("sse", "ttfe_ms_p50"), ("websocket", "rtt_ms_p50")):
        if column in trials and pd.to_numeric(trials[column], errors="coerce").notna().any():
            return protocol
    return "http"


class RunCollector(Collector):
    """The metric families of one run (module docstring); register it on a
    ``CollectorRegistry`` and render with either of prometheus_client's exposition
    modules."""

    def __init__(self, run: RunData) -> None:
        self.run = run

    def _labels(self, row: dict[str, Any]) -> list[str]:
        meta = self.run.meta
        values = {"run_id": meta.run_id or self.run.path.name,
                  "params": meta.scenario.params_text()}
        return [_text(values[k] if k in values else row.get(k)) for k in TRIAL_LABELS]

    def collect(self) -> Iterator[Metric]:
        meta, trials = self.run.meta, self.run.trials
        rows = trials.to_dict("records")
        labels = [self._labels(r) for r in rows]
        yield from self._run_families()
        yield self._trial_counts(labels)
        protocol = _protocol(meta, trials)
        throughput = _gauge(throughput_name(protocol), "throughput_rps",
                            f"Successful {_RATE_NAMES.get(protocol, 'requests')} per second "
                            "in the measurement window.")
        for spec in (throughput, *FAMILIES):
            family = self._family(spec, rows, labels)
            if family.samples:
                yield family

    def _family(self, spec: Family, rows: list[dict[str, Any]],
                labels: list[list[str]]) -> Metric:
        family: Metric
        if spec.kind == "gauge":
            family = GaugeMetricFamily(spec.name, spec.help, labels=TRIAL_LABELS)
        elif spec.kind == "counter":
            family = CounterMetricFamily(spec.name, spec.help, labels=TRIAL_LABELS)
        else:
            family = SummaryMetricFamily(spec.name, spec.help, labels=TRIAL_LABELS)
        for row, values in zip(rows, labels, strict=True):
            for column, quantile in spec.columns:
                value = _float(row.get(column))
                if not math.isfinite(value):
                    continue  # not measured: no sample rather than NaN
                value *= spec.scale
                if quantile is None:
                    family.add_metric(values, value)  # type: ignore[attr-defined]
                else:  # a quantile-only summary: SummaryMetricFamily adds _count/_sum only
                    family.samples.append(Sample(
                        spec.name, {**dict(zip(TRIAL_LABELS, values, strict=True)),
                                    "quantile": repr(quantile)}, value))
        return family

    def _trial_counts(self, labels: list[list[str]]) -> Metric:
        family = GaugeMetricFamily("bench_trials", "Trials of a configuration by status "
                                   "(ok / invalid / unsupported / failed).",
                                   labels=CONFIG_LABELS)
        keep = [TRIAL_LABELS.index(k) for k in CONFIG_LABELS]
        counts: dict[tuple[str, ...], int] = {}
        for values in labels:
            key = tuple(values[i] for i in keep)
            counts[key] = counts.get(key, 0) + 1
        for key, n in counts.items():
            family.add_metric(list(key), n)
        return family

    def _run_families(self) -> Iterator[Metric]:
        meta = self.run.meta
        run_id = _text(meta.run_id or self.run.path.name)
        scenario, params = meta.scenario, meta.scenario.params_text()
        info = InfoMetricFamily("bench_run", "The run: its scenario, commit, status, machine.",
                                labels=("run_id",))
        info.add_metric([run_id], {
            "scenario": _text(scenario.name), "params": params,
            "status": _text(meta.status), "commit": _text(meta.git.commit),
            "backend": _text(meta.backend), "machine": meta.machine.label(times="x"),
        })
        yield info
        started = pd.to_datetime(meta.started_at, utc=True, errors="coerce")
        if started is not None and not pd.isna(started):
            start = GaugeMetricFamily("bench_run_start_time_seconds",
                                      "Start of the run, seconds since the Unix epoch.",
                                      labels=("run_id",))
            start.add_metric([run_id], started.value / 1e9)
            yield start
        for name, bound, scale, help in (
                ("bench_slo_latency_p99_seconds", scenario.slo.p99_ms, 0.001,
                 "The scenario's SLO on p99."),
                ("bench_slo_error_ratio", scenario.slo.max_error_rate, 1.0,
                 "The scenario's SLO on the error ratio.")):
            value = _float(bound)
            if math.isfinite(value) and value > 0:
                g = GaugeMetricFamily(name, help, labels=("run_id", "scenario", "params"))
                g.add_metric([run_id, _text(scenario.name), params],
                             value * scale)
                yield g


def registry(run: RunData) -> CollectorRegistry:
    """A registry holding only :class:`RunCollector` of ``run`` (no process metrics)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(RunCollector(run))
    return reg


def render(run: RunData, flavour: Flavour = "openmetrics") -> bytes:
    """The exposition of ``run``: OpenMetrics 1.0.0 text (ends with ``# EOF``) or the
    classic Prometheus text format 0.0.4 (UTF-8 bytes)."""
    if flavour == "openmetrics":
        from prometheus_client.openmetrics.exposition import generate_latest
    else:
        from prometheus_client.exposition import generate_latest
    return generate_latest(registry(run))  # type: ignore[no-any-return]
