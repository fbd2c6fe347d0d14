"""harness.openmetrics on synthetic runs, read back with prometheus_client's own parsers:
figures in base units (seconds, bytes, cores, ratios) worked out from the trial rows, no
sample for a figure not measured, every trial counted in ``bench_trials``, the run's own
families (info, start time, SLO), the throughput family named by the protocol, and the
two text formats."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families as prom_parse

from harness.openmetrics import render, throughput_name
from harness.results import RunData, load_run
from tests.synth import meta, samples, trial, write_report_run

MIB = 1024 * 1024
TRIALS = [
    trial("gunicorn-sync-u10-r1", "gunicorn-sync", "wsgi", 10, "ok", "", 0.0, 40.0,
          latency=50.0, cpu=40.0, pss=64.0, error_rate=0.025),
    trial("uvicorn-u10-r1", "uvicorn", "asgi", 10, "invalid", "generator saturated", 10.0,
          190.0, latency=20.0, cpu=150.0, pss=32.0),
    trial("gunicorn-sync-u50-r1", "gunicorn-sync", "wsgi", 50, "failed", "crashed", 20.0, 0.0),
]


def run_of(tmp_path: Path, trials: list[dict[str, Any]] = TRIALS, **scenario: Any) -> RunData:
    return load_run(write_report_run(tmp_path, "om-run", trials, samples(), records=False,
                                     **scenario))


def families(data: RunData) -> dict[str, Any]:
    text = render(data, "openmetrics").decode()
    assert text.endswith("# EOF\n")
    return {f.name: f for f in om_parse(text)}


def sample(family: Any, server: str, users: int, **labels: str) -> float:
    (s,) = [s for s in family.samples if s.labels["server"] == server
            and s.labels["users"] == str(users)
            and all(s.labels.get(k) == v for k, v in labels.items())]
    return float(s.value)


def test_figures_are_in_base_units(tmp_path: Path) -> None:
    found = families(run_of(tmp_path))
    g = "gunicorn-sync"
    # synth.trial: p50 = latency, p99 = latency + 5 ms, max = latency + 20 ms
    assert sample(found["bench_latency_seconds"], g, 10, quantile="0.5") == pytest.approx(0.050)
    assert sample(found["bench_latency_seconds"], g, 10, quantile="0.99") == \
        pytest.approx(0.055)
    assert sample(found["bench_latency_max_seconds"], g, 10) == pytest.approx(0.070)
    assert sample(found["bench_memory_pss_peak_bytes"], g, 10) == 64 * MIB
    assert sample(found["bench_cpu_mean_cores"], g, 10) == pytest.approx(0.40)
    assert sample(found["bench_cpu_mean_cores"], "uvicorn", 10) == pytest.approx(1.50)
    assert sample(found["bench_error_ratio"], g, 10) == 0.025
    assert sample(found["bench_throughput_requests_per_second"], g, 10) == 40.0
    # requests in the 5 s window: 40 req/s x 5 s, of which 2.5% failed
    assert sample(found["bench_requests"], g, 10) == 200.0
    assert sample(found["bench_request_failures"], g, 10) == 5.0
    for family in found.values():
        assert all(s.timestamp is None for s in family.samples), family.name


def test_not_measured_is_no_sample_but_every_trial_is_counted(tmp_path: Path) -> None:
    found = families(run_of(tmp_path))
    for name in ("bench_latency_seconds", "bench_throughput_requests_per_second",
                 "bench_memory_pss_peak_bytes", "bench_cpu_mean_cores"):
        servers = {(s.labels["server"], s.labels["users"], s.labels["status"])
                   for s in found[name].samples}
        assert servers == {("gunicorn-sync", "10", "ok"), ("uvicorn", "10", "invalid")}, name
    assert "bench_round_trip_seconds" not in found  # an HTTP run measures no stream figure
    counted = {(s.labels["server"], s.labels["users"], s.labels["status"]): s.value
               for s in found["bench_trials"].samples}
    assert counted == {("gunicorn-sync", "10", "ok"): 1, ("uvicorn", "10", "invalid"): 1,
                       ("gunicorn-sync", "50", "failed"): 1}
    assert all("repeat" not in s.labels for s in found["bench_trials"].samples)


def test_the_run_is_described_by_its_own_families(tmp_path: Path) -> None:
    found = families(run_of(tmp_path))
    (info,) = found["bench_run"].samples
    assert info.labels == {"run_id": "om-run", "scenario": "io-heavy",
                           "params": "latency_ms=50", "status": "complete",
                           "commit": "abc1234", "backend": "", "machine": "Test CPU x4"}
    (start,) = found["bench_run_start_time_seconds"].samples
    started = datetime.fromisoformat(meta("om-run")["started_at"])
    assert start.value == started.timestamp()
    (p99,) = found["bench_slo_latency_p99_seconds"].samples
    (errors,) = found["bench_slo_error_ratio"].samples
    assert p99.value == pytest.approx(0.150) and errors.value == 0.01
    bare = families(run_of(tmp_path / "bare", slo={}))
    assert "bench_slo_latency_p99_seconds" not in bare and "bench_slo_error_ratio" not in bare


@pytest.mark.parametrize(("protocol", "unit"), [
    ("http", "requests"), ("sse", "streams"), ("websocket", "messages"), ("grpc", "requests")])
def test_throughput_is_named_in_the_protocols_unit(protocol: str, unit: str) -> None:
    assert throughput_name(protocol) == f"bench_throughput_{unit}_per_second"


def test_a_run_without_a_recorded_protocol_is_told_by_its_columns(tmp_path: Path) -> None:
    row = {**TRIALS[0], "rtt_ms_p50": 0.4, "rtt_ms_p99": 1.2}
    found = families(run_of(tmp_path, [row], protocol=""))
    assert "bench_throughput_messages_per_second" in found
    assert sample(found["bench_round_trip_seconds"], "gunicorn-sync", 10, quantile="0.99") \
        == pytest.approx(0.0012)


def test_the_classic_format_has_the_same_samples(tmp_path: Path) -> None:
    data = run_of(tmp_path)
    text = render(data, "prometheus").decode()
    assert "# EOF" not in text and "# TYPE bench_requests_total counter" in text
    classic = {f.name: f for f in prom_parse(text)}
    (thr,) = [s for s in classic["bench_throughput_requests_per_second"].samples
              if s.labels["status"] == "ok"]
    assert thr.value == 40.0 and thr.labels["run_id"] == "om-run"
    om = families(data)
    for name in ("bench_throughput_requests_per_second", "bench_memory_pss_peak_bytes"):
        assert sorted(s.value for s in classic[name].samples) == \
            sorted(s.value for s in om[name].samples)
