"""harness.junit on synthetic runs: each SLO case judged on the median of a configuration's
ok repeats (p99 in ms, errors in %), configurations without an ok trial and checks without
a bound skipped with their reason, the error bound falling back to the validity bound,
counts and properties of the XML, and the regressions suite of a comparison."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.compare import compare, load_side
from harness.junit import Case, build, regression_suite, slo_suite
from harness.results import RunData, atomic_write_csv, load_run
from tests.synth import samples, trial, write_report_run, write_run


def run_of(tmp_path: Path, trials: list[dict[str, Any]], **scenario: Any) -> RunData:
    return load_run(write_report_run(tmp_path, "junit-run", trials, samples(), records=False,
                                     **scenario))


def repeats(server: str, users: int, latencies: list[float], statuses: list[str] | None = None,
            errors: list[float] | None = None) -> list[dict[str, Any]]:
    """Repeats of one configuration; synth's p99 is latency + 5 ms."""
    interface = "asgi" if server == "uvicorn" else "wsgi"
    statuses = statuses or ["ok"] * len(latencies)
    errors = errors or [0.0] * len(latencies)
    return [trial(f"{server}-u{users}-r{r}", server, interface, users, status,
                  "" if status == "ok" else "generator saturated", 100.0 * r, 50.0, repeat=r,
                  latency=lat, error_rate=error)
            for r, (lat, status, error) in enumerate(zip(latencies, statuses, errors,
                                                         strict=True), start=1)]


def by_name(cases: tuple[Case, ...]) -> dict[str, Case]:
    return {c.name: c for c in cases}


def test_each_check_is_judged_on_the_median_of_the_ok_repeats(tmp_path: Path) -> None:
    """SLO p99 <= 150 ms, errors <= 1%. gunicorn-sync: p99 105, 155, 165 -> median 155,
    a miss (one repeat passing does not save it); uvicorn: p99 105, 125, 205 -> 125, met;
    its error rates 0, 0.02, 0.03 -> median 2% > 1%, a miss."""
    data = run_of(tmp_path, [*repeats("gunicorn-sync", 10, [100.0, 150.0, 160.0]),
                             *repeats("uvicorn", 10, [100.0, 120.0, 200.0],
                                      errors=[0.0, 0.02, 0.03])])
    suite = slo_suite(data.meta, data.trials)
    cases = by_name(suite.cases)
    assert list(cases) == ["gunicorn-sync · workers=2 · users=10: p99 latency <= 150 ms",
                           "gunicorn-sync · workers=2 · users=10: error rate <= 1 %",
                           "uvicorn · workers=1 · users=10: p99 latency <= 150 ms",
                           "uvicorn · workers=1 · users=10: error rate <= 1 %"]
    p99 = cases["gunicorn-sync · workers=2 · users=10: p99 latency <= 150 ms"]
    assert (p99.outcome, p99.message) == ("failure", "p99 latency 155 ms > SLO 150 ms")
    assert p99.classname == "io-heavy.gunicorn-sync"
    assert p99.output.startswith("p99 latency 155 ms (median of 3 ok repeats: 105, 155, 165)")
    assert p99.time == 3 * 5.0  # the ok repeats' windows
    assert cases["uvicorn · workers=1 · users=10: p99 latency <= 150 ms"].outcome == "passed"
    errors = cases["uvicorn · workers=1 · users=10: error rate <= 1 %"]
    assert (errors.outcome, errors.message) == ("failure", "error rate 2 % > SLO 1 %")
    assert (suite.count("failure"), suite.count("passed"), suite.count("skipped")) == (2, 2, 0)


def test_what_is_not_ok_is_skipped_never_judged(tmp_path: Path) -> None:
    data = run_of(tmp_path, [*repeats("gunicorn-sync", 10, [300.0], statuses=["invalid"]),
                             *repeats("uvicorn", 10, [100.0, 400.0], statuses=["ok", "invalid"])])
    cases = slo_suite(data.meta, data.trials).cases
    bad = [c for c in cases if c.name.startswith("gunicorn-sync")]
    assert [c.outcome for c in bad] == ["skipped", "skipped"]
    assert bad[0].message == ("no ok trial (invalid): gunicorn-sync-u10-r1: invalid "
                              "(generator saturated)")
    mixed = [c for c in cases if c.name.startswith("uvicorn")]
    assert [c.outcome for c in mixed] == ["passed", "passed"]  # the 400 ms repeat not counted
    assert mixed[0].output.endswith("1 ok of 2 trials; not ok: uvicorn-u10-r2: invalid "
                                    "(generator saturated)")


def test_bounds_come_from_the_slo_else_the_validity(tmp_path: Path) -> None:
    """No [slo]: p99 has no bound (skipped, said so); errors take [validity]'s 5%."""
    data = run_of(tmp_path, repeats("uvicorn", 10, [100.0], errors=[0.04]),
                  slo={}, validity={"max_error_rate": 0.05, "max_generator_cpu_percent": 90})
    p99, errors = slo_suite(data.meta, data.trials).cases
    assert p99.name.endswith(": p99 latency <= SLO")
    assert (p99.outcome, p99.message) == ("skipped", "the scenario sets no p99 latency SLO")
    assert errors.name.endswith(": error rate <= 5 %") and errors.outcome == "passed"


def test_the_xml_counts_what_it_holds(tmp_path: Path) -> None:
    data = run_of(tmp_path, [*repeats("gunicorn-sync", 10, [200.0]),
                             *repeats("uvicorn", 10, [50.0]),
                             *repeats("uvicorn", 50, [60.0], statuses=["failed"])])
    body, (suite,) = build(data.meta, data.trials)
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(body)
    (el,) = root.findall("testsuite")
    assert [root.get(k) for k in ("tests", "failures", "errors", "skipped")] == \
        [el.get(k) for k in ("tests", "failures", "errors", "skipped")] == ["6", "1", "0", "2"]
    assert el.get("timestamp") == "2025-01-01T10:00:00" and el.get("hostname") == "box"
    assert el.get("time") == f"{2 * 5.0 + 2 * 5.0:.3f}"  # two judged configs, two checks each
    props = {p.get("name"): p.get("value") for p in el.iter("property")}
    assert props == {"run_id": "junit-run", "commit": "abc1234", "run_status": "complete"}
    (failed,) = [c for c in el.iter("testcase") if c.find("failure") is not None]
    failure = failed.find("failure")
    assert failure is not None and failure.get("type") == "slo"
    assert failure.get("message") == "p99 latency 205 ms > SLO 150 ms"
    assert failure.text is not None and failure.text.startswith("p99 latency 205 ms")
    assert failed.find("system-out") is None  # the failure carries the figures itself
    assert len(suite.cases) == 6


def test_regressions_suite_fails_on_a_regression_and_skips_the_unmatched(
        tmp_path: Path) -> None:
    base = write_run(tmp_path, 1, [100.0, 101.0, 99.0, 102.0, 98.0, 100.5])
    current = write_run(tmp_path, 2, [80.0, 81.0, 79.0, 82.0, 78.0, 80.5], p99=201.0, pss=20.05)
    trials = pd.read_csv(current / "trials.csv")
    atomic_write_csv(current / "trials.csv", pd.concat([trials, trials.iloc[:1].assign(
        users=8, trial_id="gunicorn-sync-u8-r1")]))
    suite = regression_suite(compare(load_side(base), load_side(current)))
    assert [(c.name, c.outcome) for c in suite.cases] == [
        ("gunicorn-sync · workers=1 · users=4: throughput not regressed", "failure"),
        ("gunicorn-sync · workers=1 · users=4: p99 latency not regressed", "passed"),
        ("gunicorn-sync · workers=1 · users=4: peak PSS not regressed", "passed"),
        ("gunicorn-sync · workers=1 · users=8: throughput not regressed", "skipped"),
        ("gunicorn-sync · workers=1 · users=8: p99 latency not regressed", "skipped"),
        ("gunicorn-sync · workers=1 · users=8: peak PSS not regressed", "skipped")]
    assert suite.cases[0].message.startswith("regression: 1.25x slower, p=")
    assert suite.cases[3].message == "only in the current run: not compared"
    props = dict(suite.properties)
    assert props["alpha"] == "0.01" and props["baseline"] == load_run(base).meta.run_id
    assert props["gates"] == "throughput_rps>=10%, latency_p99_ms>=15%, pss_mib_peak>=10%"


@pytest.mark.parametrize("status", ["unsupported", "failed"])
def test_a_run_of_one_unmeasured_configuration_is_all_skipped(tmp_path: Path,
                                                              status: str) -> None:
    data = run_of(tmp_path, repeats("gunicorn-sync", 10, [50.0], statuses=[status]))
    body, _ = build(data.meta, data.trials)
    root = ET.fromstring(body)
    assert (root.get("tests"), root.get("skipped"), root.get("failures")) == ("2", "2", "0")
    assert root.get("time") == "0.000"
