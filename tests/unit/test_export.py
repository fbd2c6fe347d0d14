"""`bench export` on real runs: github-action-benchmark's JSON files, the history CSV, the
Prometheus / OpenMetrics text exposition and JUnit XML.

The format check follows benchmark-action/github-action-benchmark: for the tools
``customBiggerIsBetter`` / ``customSmallerIsBetter`` the file is a JSON array of
``BenchmarkResult`` objects, ``{name: string, value: number, unit: string, range?: string,
extra?: string}`` (its README, "custom benchmarks", and ``src/extract.ts``). The text
expositions are read back with prometheus_client's own parsers (OpenMetrics and classic);
the JUnit XML with ElementTree, against the elements and attributes of Jenkins'
``junit-10.xsd``.

The runs exported: the session's shared io-heavy sweep (``conftest.io_sweep``, every trial
ok) and the stored real runs under ``tests/data/report_same`` (an io-heavy run with an
invalid trial, a websocket-echo run with unsupported ones).
"""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from harness.export import BIGGER_FILE, HISTORY_RUN_COLUMNS, SMALLER_FILE
from harness.results import atomic_write_csv, atomic_write_json, load_run
from tests.conftest import IO_SWEEP_LATENCY_MS, IO_SWEEP_LEVELS
from tests.support import bench
from tests.synth import STORED

SERVERS = ("gunicorn-sync", "uvicorn")
REQUIRED = {"name": str, "unit": str, "value": (int, float)}
OPTIONAL = {"range": str, "extra": str}


@pytest.fixture(scope="module")
def run_dir(io_sweep: Path) -> Path:
    """The session's io-heavy sweep (conftest.io_sweep): gunicorn-sync and uvicorn at 20 ms
    per request, 4 levels, 2 repeats, every trial ok."""
    return io_sweep


def check_benchmark_results(entries: object) -> None:
    """github-action-benchmark's custom format: an array of BenchmarkResult objects."""
    assert isinstance(entries, list) and entries, "a non-empty JSON array"
    names = set()
    for e in entries:
        assert isinstance(e, dict)
        assert set(e) <= set(REQUIRED) | set(OPTIONAL), set(e)
        for key, kind in {**REQUIRED, **{k: v for k, v in OPTIONAL.items() if k in e}}.items():
            assert isinstance(e[key], kind) and not isinstance(e[key], bool), (key, e)
        assert math.isfinite(e["value"]) and e["name"].strip() and e["unit"].strip()
        names.add(e["name"])
    assert len(names) == len(entries), "one series per name"


@pytest.mark.slow
def test_github_action_benchmark_files_match_the_format(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "gab"
    r = bench("export", str(run_dir), "--format", "github-action-benchmark", "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    bigger = json.loads((out / BIGGER_FILE).read_text())
    smaller = json.loads((out / SMALLER_FILE).read_text())
    check_benchmark_results(bigger)
    check_benchmark_results(smaller)
    trials = pd.read_csv(run_dir / "trials.csv")
    ok = trials[trials["status"] == "ok"]
    # Throughput is bigger-is-better: one entry per config and level, the median of its
    # ok repeats.
    levels = ok.groupby(["server", "users"])
    assert {e["unit"] for e in bigger} == {"req/s"} and len(bigger) == levels.ngroups
    for (server, users), group in levels:
        (entry,) = [e for e in bigger if f" · {server} · " in e["name"]
                    and f"users={users} " in e["name"]]
        assert entry["value"] == pytest.approx(group["throughput_rps"].median())
        assert entry["name"].startswith(f"io-heavy latency_ms={IO_SWEEP_LATENCY_MS} · {server}")
        lo, hi = (float(x) for x in entry["range"].split(".."))
        assert lo == pytest.approx(group["throughput_rps"].min(), rel=1e-5)
        assert hi == pytest.approx(group["throughput_rps"].max(), rel=1e-5)
        assert f"median of {len(group)} ok repeats" in entry["extra"]
        # Little's law: 1 sync worker at 20 ms serves ~50 req/s whatever the users,
        # uvicorn users / 20 ms. The value is req/s over the window: requests per window
        # (1.25x), per ms (1/1000x) or with the warm-up's requests (1.4x) are far outside
        # these bounds, which a loaded machine's slower servers stay inside.
        ceiling = 1000 / IO_SWEEP_LATENCY_MS * (1 if server == "gunicorn-sync" else users)
        assert 0.6 * ceiling <= entry["value"] <= 1.05 * ceiling, (entry, ceiling)
    # Latency and memory are smaller-is-better.
    assert {e["unit"] for e in smaller} == {"ms", "MiB"}
    p99 = [e for e in smaller if e["name"].endswith("p99 latency")]
    assert len(p99) == levels.ngroups


@pytest.mark.slow
def test_github_action_benchmark_leaves_out_not_ok_trials(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    trials = pd.read_csv(copy / "trials.csv")
    trials["status"] = "invalid"
    atomic_write_csv(copy / "trials.csv", trials)
    r = bench("export", str(copy), "--format", "github-action-benchmark", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "no ok trial to export (statuses: invalid)" in r.stderr
    assert not (tmp_path / "o").exists()


def _as_new_run(src: Path, dst: Path, run_id: str, status: str = "complete") -> Path:
    shutil.copytree(src, dst)
    meta = json.loads((dst / "run.json").read_text())
    meta.update(run_id=run_id, status=status)
    atomic_write_json(dst / "run.json", meta)
    return dst


@pytest.mark.slow
def test_csv_history_appends_one_row_per_run(run_dir: Path, tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    r = bench("export", str(run_dir), "--format", "csv-history", "-o", str(history))
    assert r.returncode == 0, r.stderr
    assert "appended" in r.stdout
    again = bench("export", str(run_dir), "--format", "csv-history", "-o", str(history))
    assert again.returncode == 0 and "already in" in again.stdout
    second = _as_new_run(run_dir, tmp_path / "second", "second-run")
    r = bench("export", str(second), "--format", "csv-history", "-o", str(history))
    assert r.returncode == 0, r.stderr

    frame = pd.read_csv(history, dtype={"commit": str})
    meta = load_run(run_dir).meta
    assert list(frame["run_id"]) == [meta.run_id, "second-run"]
    assert tuple(frame.columns[:len(HISTORY_RUN_COLUMNS)]) == HISTORY_RUN_COLUMNS
    assert frame.loc[0, "timestamp"] == meta.started_at
    assert frame.loc[0, "commit"] == (meta.git.commit or "") or pd.isna(frame.loc[0, "commit"])
    assert frame.loc[0, "params"] == f"latency_ms={IO_SWEEP_LATENCY_MS}"
    metric_columns = list(frame.columns[len(HISTORY_RUN_COLUMNS):])
    # one column per config, level and metric (throughput, p50, p99, PSS)
    assert metric_columns == sorted(metric_columns)
    assert len(metric_columns) == len(SERVERS) * len(IO_SWEEP_LEVELS) * 4
    trials = pd.read_csv(run_dir / "trials.csv")
    for server in SERVERS:
        for users in IO_SWEEP_LEVELS:
            col = f"io-heavy/{server}/users={users}/throughput_rps"
            assert frame.loc[0, col] == pytest.approx(trials.query(
                "server == @server and users == @users and status == 'ok'")["throughput_rps"].median())
    assert not list(tmp_path.glob(".history.csv.*"))  # no temp file left behind


@pytest.mark.slow
def test_csv_history_refuses_other_columns(run_dir: Path, tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text("timestamp,commit,run_id,other/metric\n2026-01-01,abc,r1,1.0\n")
    before = history.read_bytes()
    r = bench("export", str(run_dir), "--format", "csv-history", "-o", str(history))
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"bench: error: {history}: its columns differ from this run's")
    assert "the file has 1 columns (other/metric) that this run lacks" in line
    assert history.read_bytes() == before


@pytest.mark.slow
def test_csv_history_takes_an_interrupted_run_with_fewer_levels(run_dir: Path,
                                                                tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    assert bench("export", str(run_dir), "--format", "csv-history", "-o", str(history)).returncode == 0
    cut = _as_new_run(run_dir, tmp_path / "cut", "cut-run", status="interrupted")
    trials = pd.read_csv(cut / "trials.csv")
    first, last = IO_SWEEP_LEVELS[0], IO_SWEEP_LEVELS[-1]
    atomic_write_csv(cut / "trials.csv", trials[trials["users"] == first])
    r = bench("export", str(cut), "--format", "csv-history", "-o", str(history))
    assert r.returncode == 0, r.stderr
    frame = pd.read_csv(history).set_index("run_id")
    assert frame.loc["cut-run", "run_status"] == "interrupted"
    assert pd.isna(frame.loc["cut-run", f"io-heavy/gunicorn-sync/users={last}/throughput_rps"])
    assert frame.loc["cut-run", f"io-heavy/gunicorn-sync/users={first}/throughput_rps"] > 0
    # A complete run with fewer levels is a different configuration: refused.
    fewer = _as_new_run(cut, tmp_path / "fewer", "fewer-run", status="complete")
    r = bench("export", str(fewer), "--format", "csv-history", "-o", str(history))
    assert r.returncode == 2 and "columns differ" in r.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "bogus", "-o", "x"], "'bogus' is not one of"),
    (["--format", "csv-history"], "Missing option '-o'"),
])
def test_bad_export_options(run_dir: Path, args: list[str], message: str) -> None:
    r = bench("export", str(run_dir), *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("bench: error: ") and message in line


@pytest.mark.slow
def test_export_targets_are_checked(run_dir: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "file.json"
    a_file.write_text("{}")
    r = bench("export", str(run_dir), "--format", "github-action-benchmark", "-o", str(a_file))
    assert r.returncode == 2 and "not a folder" in r.stderr
    r = bench("export", str(run_dir), "--format", "csv-history", "-o", str(tmp_path))
    assert r.returncode == 2 and "csv-history appends to a CSV file" in r.stderr
    r = bench("export", str(tmp_path / "none"), "--format", "csv-history", "-o", str(a_file))
    assert r.returncode == 2 and "no run here" in r.stderr


# --- openmetrics / prometheus -----------------------------------------------------------

#: (family, trials.csv column, factor to the family's base unit) of the 1:1 gauges checked.
GAUGES = (("bench_throughput_requests_per_second", "throughput_rps", 1.0),
          ("bench_memory_pss_peak_bytes", "pss_mib_peak", 1024 * 1024),
          ("bench_error_ratio", "error_rate", 1.0),
          ("bench_cpu_mean_cores", "cpu_percent_mean", 0.01))
QUANTILES = {"0.5": "latency_p50_ms", "0.9": "latency_p90_ms", "0.95": "latency_p95_ms",
             "0.99": "latency_p99_ms", "0.999": "latency_p999_ms"}


def parse_exposition(text: str, flavour: str) -> dict[str, object]:
    """Families by name, read with prometheus_client's parser of ``flavour``."""
    if flavour == "openmetrics":
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    return {f.name: f for f in text_string_to_metric_families(text)}


def check_exposition(families: dict[str, object], run_dir: Path) -> None:
    """Every trial's figures are samples labelled with its configuration and status."""
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"reason": str})
    meta = load_run(run_dir).meta
    by_id = {(r["server"], str(r["users"]), str(r["repeat"])): r for r in trials.to_dict("records")}
    for family in families.values():
        for sample in family.samples:  # type: ignore[attr-defined]
            assert sample.timestamp is None, sample  # Pushgateway and textfile refuse them
    for name, column, factor in GAUGES:
        family = families[name]
        assert family.type == "gauge"  # type: ignore[attr-defined]
        samples = family.samples  # type: ignore[attr-defined]
        assert len(samples) == trials[column].notna().sum(), name
        for s in samples:
            row = by_id[(s.labels["server"], s.labels["users"], s.labels["repeat"])]
            assert s.labels["status"] == row["status"] and s.labels["run_id"] == meta.run_id
            assert s.labels["scenario"] == row["scenario"]
            assert s.labels["interface"] == row["interface"]
            assert s.value == pytest.approx(row[column] * factor, rel=1e-9), (name, s)
    latency = families["bench_latency_seconds"]
    assert latency.type == "summary"  # type: ignore[attr-defined]
    samples = latency.samples  # type: ignore[attr-defined]
    assert len(samples) == sum(trials[c].notna().sum() for c in QUANTILES.values())
    for s in samples:
        row = by_id[(s.labels["server"], s.labels["users"], s.labels["repeat"])]
        assert s.value == pytest.approx(row[QUANTILES[s.labels["quantile"]]] / 1000, rel=1e-9)
    counted = families["bench_trials"].samples  # type: ignore[attr-defined]
    assert sum(s.value for s in counted) == len(trials)
    for status, n in trials["status"].value_counts().items():
        assert sum(s.value for s in counted if s.labels["status"] == status) == n
    (info,) = families["bench_run"].samples if "bench_run" in families else \
        families["bench_run_info"].samples  # type: ignore[attr-defined]
    assert info.labels["run_id"] == meta.run_id and info.value == 1


@pytest.mark.slow
def test_openmetrics_has_every_trial_by_configuration(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.om.txt"
    r = bench("export", str(run_dir), "--format", "openmetrics", "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    text = out.read_text()
    assert text.endswith("# EOF\n")
    families = parse_exposition(text, "openmetrics")
    check_exposition(families, run_dir)
    requests = families["bench_requests"]
    assert requests.type == "counter"  # type: ignore[attr-defined]
    assert {s.name for s in requests.samples} == {"bench_requests_total"}  # type: ignore[attr-defined]
    # Units really are base units: at 20 ms a request, one user sees a p50 of ~20 ms, i.e.
    # 0.02 s (ms written as s would be 20, a double conversion 2e-5).
    (p50,) = [s for s in families["bench_latency_seconds"].samples  # type: ignore[attr-defined]
              if s.labels == {**s.labels, "server": "gunicorn-sync", "users": "1",
                              "repeat": "1", "quantile": "0.5"}]
    assert 0.019 <= p50.value <= 0.2, p50


@pytest.mark.slow
def test_prometheus_text_to_stdout_for_the_textfile_collector(run_dir: Path) -> None:
    r = bench("export", str(run_dir), "--format", "prometheus", "-o", "-")
    assert r.returncode == 0, r.stderr
    assert "# EOF" not in r.stdout and "# TYPE bench_requests_total counter" in r.stdout
    check_exposition(parse_exposition(r.stdout, "prometheus"), run_dir)


@pytest.mark.parametrize("stored", ["io-heavy", "websocket-echo"])
@pytest.mark.slow
def test_not_ok_trials_are_marked_by_status(stored: str, tmp_path: Path) -> None:
    """Stored real runs: io-heavy has an invalid trial (generator-saturated), whose numbers
    are exported with status="invalid"; websocket-echo has unsupported trials, which have no
    numbers and are counted in bench_trials only."""
    out = tmp_path / "m.txt"
    r = bench("export", str(STORED / stored), "--format", "openmetrics", "-o", str(out))
    assert r.returncode == 0, r.stderr
    families = parse_exposition(out.read_text(), "openmetrics")
    trials = pd.read_csv(STORED / stored / "trials.csv")
    bad = trials[trials["status"] != "ok"]
    assert len(bad)
    rate = ("bench_throughput_requests_per_second" if stored == "io-heavy"
            else "bench_throughput_messages_per_second")
    gauges = ((rate, "throughput_rps", 1.0), *GAUGES[1:])
    for name, column, _ in gauges:
        samples = families[name].samples  # type: ignore[attr-defined]
        assert len(samples) == trials[column].notna().sum()
        for status in set(trials["status"]):
            expected = trials.loc[trials["status"] == status, column].notna().sum()
            assert sum(s.labels["status"] == status for s in samples) == expected
    counted = families["bench_trials"].samples  # type: ignore[attr-defined]
    for row in bad.to_dict("records"):
        (sample,) = [s for s in counted if s.labels["server"] == row["server"]
                     and s.labels["users"] == str(row["users"])]
        assert sample.labels["status"] == row["status"] and sample.value == 1


# --- junit ------------------------------------------------------------------------------

#: Jenkins' junit-10.xsd: the attributes and children each element may have.
JUNIT_ATTRIBUTES = {
    "testsuites": {"name", "time", "tests", "failures", "disabled", "errors", "skipped"},
    "testsuite": {"name", "tests", "failures", "errors", "time", "disabled", "skipped",
                  "timestamp", "hostname", "id", "package"},
    "testcase": {"name", "assertions", "time", "classname", "status"},
    "properties": set(), "property": {"name", "value"}, "skipped": {"message"},
    "failure": {"message", "type"}, "error": {"message", "type"},
    "system-out": set(), "system-err": set(),
}
JUNIT_CHILDREN = {
    "testsuites": ["testsuite"],
    "testsuite": ["properties", "testcase", "system-out", "system-err"],
    "testcase": ["skipped", "error", "failure", "system-out", "system-err"],
    "properties": ["property"],
}


def check_junit(root: ET.Element) -> list[ET.Element]:
    """The document follows junit-10.xsd's structure and its counts are its cases';
    returns the suites."""
    for el in root.iter():
        assert el.tag in JUNIT_ATTRIBUTES, el.tag
        assert set(el.attrib) <= JUNIT_ATTRIBUTES[el.tag], (el.tag, el.attrib)
        order = [JUNIT_CHILDREN[el.tag].index(c.tag) for c in el] if len(el) else []
        assert order == sorted(order), (el.tag, [c.tag for c in el])
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    for suite in [*suites, root]:
        cases = list(suite.iter("testcase"))
        assert int(suite.get("tests", "-1")) == len(cases)
        assert int(suite.get("failures", "-1")) == sum(c.find("failure") is not None for c in cases)
        assert int(suite.get("skipped", "-1")) == sum(c.find("skipped") is not None for c in cases)
        assert int(suite.get("errors", "-1")) == 0
        assert float(suite.get("time", "nan")) >= 0
    for case in root.iter("testcase"):
        assert case.get("name") and case.get("classname")
        assert len(case.findall("failure")) + len(case.findall("skipped")) <= 1
    return suites


def expected_slo(trials: pd.DataFrame, p99_ms: float, max_error: float) -> tuple[int, int, int]:
    """(tests, failures, skipped) of the slo suite, worked out from trials.csv here: two
    checks per configuration, on the median of its ok repeats; none ok: both skipped."""
    tests = failures = skipped = 0
    for _, group in trials.groupby(["server", "workers", "users"]):
        tests += 2
        ok = group[group["status"] == "ok"]
        if not len(ok):
            skipped += 2
            continue
        failures += int(ok["latency_p99_ms"].median() > p99_ms)
        failures += int(ok["error_rate"].median() > max_error)
    return tests, failures, skipped


@pytest.mark.slow
def test_junit_slo_cases_match_the_trials(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "junit.xml"
    r = bench("export", str(run_dir), "--format", "junit", "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    (suite,) = check_junit(ET.parse(out).getroot())
    trials = pd.read_csv(run_dir / "trials.csv")
    slo = load_run(run_dir).meta.scenario.slo
    tests, failures, skipped = expected_slo(trials, slo.p99_ms, slo.max_error_rate)
    assert (int(suite.get("tests")), int(suite.get("failures")), int(suite.get("skipped"))) \
        == (tests, failures, skipped)
    assert tests == len(SERVERS) * len(IO_SWEEP_LEVELS) * 2
    # Little's law: 1 sync worker at 20 ms queues 16 users for ~320 ms, over the 150 ms SLO.
    (case,) = [c for c in suite.iter("testcase")
               if c.get("name").startswith("gunicorn-sync · workers=1 · users=16: p99")]
    assert case.find("failure") is not None, ET.tostring(case)
    assert f"{suite.get('tests')} tests, {suite.get('failures')} failures" in r.stdout


@pytest.mark.parametrize("stored", ["io-heavy", "websocket-echo"])
@pytest.mark.slow
def test_junit_skips_what_is_not_ok(stored: str, tmp_path: Path) -> None:
    out = tmp_path / "junit.xml"
    r = bench("export", str(STORED / stored), "--format", "junit", "-o", str(out))
    assert r.returncode == 0, r.stderr
    (suite,) = check_junit(ET.parse(out).getroot())
    trials = pd.read_csv(STORED / stored / "trials.csv")
    slo = load_run(STORED / stored).meta.scenario.slo
    expected = expected_slo(trials, slo.p99_ms, slo.max_error_rate)
    assert (int(suite.get("tests")), int(suite.get("failures")), int(suite.get("skipped"))) \
        == expected
    assert expected[2] > 0
    for case in suite.iter("testcase"):
        skipped = case.find("skipped")
        if skipped is not None:  # the reason is the trial's status and reason
            assert "no ok trial" in skipped.get("message")
            assert ("invalid" if stored == "io-heavy" else "unsupported") in skipped.get("message")


def _repeated(src: Path, dst: Path, times: int, run_id: str, scale: float = 1.0) -> Path:
    """A copy of run ``src`` whose trials are repeated ``times`` times (repeats renumbered),
    throughput scaled by ``scale``: real figures, enough repeats for the gate to decide."""
    _as_new_run(src, dst, run_id)
    trials = pd.read_csv(dst / "trials.csv")
    copies = []
    for k in range(times):
        c = trials.copy()
        c["repeat"] = c["repeat"] + k * int(trials["repeat"].max())
        c["trial_id"] = c["trial_id"] + f"-x{k}"
        c["throughput_rps"] = c["throughput_rps"] * scale
        copies.append(c)
    atomic_write_csv(dst / "trials.csv", pd.concat(copies, ignore_index=True))
    return dst


@pytest.mark.slow
def test_junit_with_a_baseline_fails_on_the_regressions(run_dir: Path, tmp_path: Path) -> None:
    """Baseline: the sweep 1.5x faster; current: the sweep; 6 repeats a side. Throughput
    regressed in every configuration, p99 and PSS are unchanged: the regressions suite
    has the decisions of `bench compare` on the same runs, one failure per regression."""
    base = _repeated(run_dir, tmp_path / "base", 3, "base-run", scale=1.5)
    current = _repeated(run_dir, tmp_path / "current", 3, "current-run")
    out = tmp_path / "junit.xml"
    r = bench("export", str(current), "--format", "junit", "-o", str(out), "--baseline", str(base))
    assert r.returncode == 0, r.stdout + r.stderr
    slo, regressions = check_junit(ET.parse(out).getroot())
    assert slo.get("name").startswith("slo") and regressions.get("name").startswith("regressions")
    c = bench("compare", str(base), str(current), "--json-out", str(tmp_path / "c.json"),
              "--no-fail-on-regression")
    assert c.returncode == 0, c.stdout + c.stderr
    counts = json.loads((tmp_path / "c.json").read_text())["counts"]
    configs = len(SERVERS) * len(IO_SWEEP_LEVELS)
    assert counts["regression"] == configs and int(regressions.get("tests")) == configs * 3
    assert int(regressions.get("failures")) == counts["regression"]
    assert int(regressions.get("skipped")) == counts["insufficient repeats"] + counts["no data"]
    for case in regressions.iter("testcase"):
        failed = case.find("failure") is not None
        assert failed == case.get("name").endswith("throughput not regressed"), ET.tostring(case)


@pytest.mark.slow
def test_export_text_formats_refuse_bad_targets(run_dir: Path, tmp_path: Path) -> None:
    r = bench("export", str(run_dir), "--format", "openmetrics", "-o", str(tmp_path))
    assert r.returncode == 2 and "writes one file" in r.stderr
    r = bench("export", str(run_dir), "--format", "openmetrics", "-o", "x", "--baseline", "y")
    assert r.returncode == 2 and "--baseline: only with --format junit" in r.stderr
    r = bench("export", str(run_dir), "--format", "junit", "-o", str(tmp_path / "j.xml"),
              "--baseline", str(tmp_path / "none"))
    assert r.returncode == 2 and "no run here" in r.stderr and "Traceback" not in r.stderr
