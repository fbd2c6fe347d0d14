"""The verdict's sentences for the cases the capacity figures cannot settle alone: no SLO
or no trials, CPU so low that req/s per core is an extrapolation, the CPU cost of a target
load, one interface only, noisy repeats, and a WSGI/ASGI ratio whose interval includes 1."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import report
from harness.report.verdict import LOW_CPU_PERCENT, verdict
from harness.results import SAMPLE_COLUMNS, load_run
from tests import synth


def _run(root: Path, name: str, rows: list[dict[str, Any]], **scenario: Any) -> Any:
    return load_run(synth.write_report_run(root, name, rows, synth.samples(), records=False,
                                           **scenario))


def test_without_an_slo_or_trials_nothing_is_called_sustainable(tmp_path: Path) -> None:
    rows = [synth.trial("u10", "uvicorn", "asgi", 10, "ok", "", 2.0, 200.0),
            synth.trial("u50", "uvicorn", "asgi", 50, "invalid", "generator-saturated", 9.0,
                        900.0)]
    run = _run(tmp_path, "no-slo", rows, slo={})
    assert verdict(run) == [
        ("This run records no SLO p99, so no level can be called sustainable: re-render with "
         "--slo-p99-ms."),
        ("1 of 2 trials are not ok (1 invalid) and are excluded from every figure below (see "
         "Validity).")]
    assert verdict(run, slo_p99_ms=150.0)[0].startswith(
        "Most throughput within the SLO (p99 ≤ 150 ms and errors ≤ 1 %): uvicorn (ASGI), "
        "200.0 req/s (one repeat: no confidence interval) at 10 users (p99 56.0 ms).")
    empty = load_run(synth.write_report_run(tmp_path, "empty", [],
                                            pd.DataFrame(columns=list(SAMPLE_COLUMNS))))
    assert verdict(empty) == ["No trials: nothing to judge."]


def test_low_cpu_caveat_and_the_cpu_cost_of_a_target(tmp_path: Path) -> None:
    """200 req/s at 5 % of one core: 0.25 ms of CPU per request, 4,000 req/s per core."""
    row = synth.trial("u10", "uvicorn", "asgi", 10, "ok", "", 2.0, 200.0, cpu=5.0)
    cpu_ms = 5.0 / 100 * 1000 / 200.0  # CPU seconds per second / requests per second, in ms
    row["cpu_ms_per_request"] = cpu_ms
    target = 4000.0
    a = report.analyse(_run(tmp_path, "low", [row]), target_rps=target)
    sentences = verdict(a)
    per_core = 200.0 / 5.0 * 100
    assert (f"Most throughput per core within the SLO: uvicorn, {per_core:,.0f} req/s per "
            "fully used core (200.0 req/s at 5.0 % of one core); the server used only 5.0 % "
            "of a core there, so this extrapolates far") in " ".join(sentences)
    assert LOW_CPU_PERCENT > 5.0
    cores = target * cpu_ms / 1000
    assert (f"Least CPU per request within the SLO: uvicorn, {cpu_ms:.3f} ms of server CPU per "
            f"successful request at 10 users; 4,000 req/s would take {cores:.2f} server cores "
            "at that cost.") in sentences
    assert ("WSGI vs ASGI: only ASGI configs were measured in this run; no comparison."
            in sentences)


def test_noisy_repeats_and_a_ratio_whose_interval_includes_one(tmp_path: Path) -> None:
    wsgi, asgi = [100.0, 200.0, 150.0], [110.0, 190.0, 160.0]
    rows = []
    for repeat, (w, s) in enumerate(zip(wsgi, asgi, strict=True), start=1):
        rows.append(synth.trial(f"g{repeat}", "gunicorn-gthread", "wsgi", 40, "ok", "",
                                20.0 * repeat, w, repeat=repeat))
        rows.append(synth.trial(f"u{repeat}", "uvicorn", "asgi", 40, "ok", "",
                                20.0 * repeat + 8, s, repeat=repeat))
    sentences = verdict(_run(tmp_path, "noisy", rows, repeats=3))
    for values in (wsgi, asgi):  # both far above the 5 % coefficient of variation
        assert np.std(values, ddof=1) / np.mean(values) > 0.05
    assert ("Repeats varied by more than 5 % (coefficient of variation) at the sustainable "
            "level of gunicorn-gthread, uvicorn: differences smaller than that between these "
            "configs are not meaningful.") in sentences
    (ratio,) = [s for s in sentences if s.startswith("WSGI vs ASGI")]
    shown = np.median(asgi) / np.median(wsgi)  # 160 / 150
    assert (f"the best ASGI config (uvicorn, 160.0 req/s at 40 users) sustains {shown:.2f}× "
            "the throughput of the best WSGI config (gunicorn-gthread, 150.0 req/s at 40 "
            "users)") in ratio
    found = re.search(r"ratio of medians ([\d.]+)–([\d.]+), 3 and 3 repeats\)", ratio)
    assert found, ratio
    low, high = float(found[1]), float(found[2])
    assert low <= 1.0 <= high and low <= round(shown, 2) <= high
    assert ratio.endswith(": the interval includes 1, so this run shows no clear difference.")
