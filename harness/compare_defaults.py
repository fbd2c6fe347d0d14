"""The regression gate's defaults (:mod:`harness.compare`), in a module without scipy or
pandas so that the CLI can show them in ``--help`` without importing them."""

from __future__ import annotations

#: Family-wise significance level of ``bench compare`` (Holm across the gated metrics).
DEFAULT_ALPHA = 0.01

#: Gated by default: throughput (higher is better), p99 latency and peak PSS (lower is better).
DEFAULT_METRICS = ("throughput_rps", "latency_p99_ms", "pss_mib_peak")
