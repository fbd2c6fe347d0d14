"""The CI commands in-process on synthetic run folders: ``--min-effect`` parsing, ``bench
compare``'s exit code and where it writes compare.json, and the targets ``bench export``
and ``bench publish`` refuse (each one ``bench: error:`` line, exit 2)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli_ci import parse_min_effects
from harness.errors import UserError
from tests.support import bench_here
from tests.synth import write_run

#: Six repeats a side; current throughput 20% lower with every repeat below the baseline's,
#: p99 and PSS interleaved with the baseline's (no change, and no ties).
BASE_RPS = [100.0, 101.0, 99.0, 102.0, 98.0, 100.5]
SLOW_RPS = [80.0, 81.0, 79.0, 82.0, 78.0, 80.5]


def error_line(code: int, out: str, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("bench: error: "), (code, err)
    return lines[0]


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    """(baseline, current): the current run's throughput regressed by 20%."""
    return (write_run(tmp_path / "base", 1, BASE_RPS),
            write_run(tmp_path / "current", 2, SLOW_RPS, p99=201.0, pss=20.05))


def test_min_effects_are_percentages_or_fractions() -> None:
    assert parse_min_effects(["throughput_rps=5%", " pss_mib_peak = 0.2 ",
                              "latency_p99_ms=150%"]) == \
        {"throughput_rps": 0.05, "pss_mib_peak": 0.2, "latency_p99_ms": 1.5}
    assert parse_min_effects(None) == {}
    for item, message in (("throughput_rps", "expected METRIC=10% or METRIC=0.10"),
                          ("=5%", "expected METRIC=10% or METRIC=0.10"),
                          ("throughput_rps=", "expected METRIC=10% or METRIC=0.10"),
                          ("throughput_rps=fast", "'fast' is not a number"),
                          ("throughput_rps=1", "ambiguous; write 1% or a fraction like 0.10")):
        with pytest.raises(UserError) as info:
            parse_min_effects([item])
        assert str(info.value) == f"--min-effect {item!r}: {message}"


def test_compare_exits_1_on_a_regression_and_writes_beside_the_current_run(
        runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    base, current = runs
    md = tmp_path / "pr.md"
    code, out, err = bench_here(capsys, monkeypatch, "compare", str(base),
                                str(current / "run.json"), "--markdown", str(md))
    assert code == 1, out + err
    written = current / "compare.json"  # CURRENT/run.json given: its folder
    doc = json.loads(written.read_text())
    assert [(r["metric"], r["decision"]) for r in doc["results"]] == [
        ("throughput_rps", "regression"), ("latency_p99_ms", "no change"),
        ("pss_mib_peak", "no change")]
    assert "1 regression, 0 improvements" in " ".join(out.split())
    assert md.read_text().startswith("### bench compare: **1 regression**")
    code, out, err = bench_here(capsys, monkeypatch, "compare", str(base), str(current),
                                "--no-fail-on-regression", "--json",
                                "--json-out", str(tmp_path / "c.json"))
    assert code == 0
    doc = json.loads(out)  # the document alone on stdout; the table went to stderr
    assert doc["command"] == "compare" and doc["exit_code"] == 0
    assert doc["verdict"] == "regression" and doc["compare_json"] == str(tmp_path / "c.json")
    assert "regression" in err and "throughput" in err


@pytest.mark.parametrize(("args", "message"), [
    (("--format", "csv-history", "-o", "-"), "-o -: csv-history writes files, not stdout"),
    (("--format", "github-action-benchmark", "-o", "-"),
     "-o -: github-action-benchmark writes files, not stdout"),
    (("--format", "prometheus", "-o", "{tmp}"), "a folder; prometheus writes one file"),
    (("--format", "junit", "-o", "{tmp}"), "a folder; junit writes one file"),
    (("--format", "prometheus", "-o", "-", "--baseline", "{tmp}"),
     "--baseline: only with --format junit"),
])
def test_export_refuses_targets_its_format_cannot_write(
        args: tuple[str, ...], message: str, runs: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    given = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, out, err = bench_here(capsys, monkeypatch, "export", str(runs[1]), *given)
    assert message in error_line(code, out, err) and out == ""


def test_junit_to_stdout_is_the_document_alone(
        runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``-o -``: the XML goes to stdout as bytes and nothing else does. write_run's runs
    record no SLO and no validity bound: both checks of the one configuration are skipped."""
    code, out, err = bench_here(capsys, monkeypatch, "export", str(runs[1]), "--format", "junit",
                                "-o", "-")
    assert code == 0 and err == ""
    root = ET.fromstring(out.encode())
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("package") == "bench.slo"
    assert (suite.get("tests"), suite.get("skipped"), suite.get("failures")) == ("2", "2", "0")
    skipped = [c.find("skipped") for c in suite.iter("testcase")]
    messages = [s.get("message") for s in skipped if s is not None]
    assert messages == ["the scenario sets no p99 latency SLO",
                        "the scenario sets no error rate SLO"]


def test_publish_into_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site.html"
    site.write_text("not a folder")
    code, out, err = bench_here(capsys, monkeypatch, "publish", str(tmp_path), "-o", str(site))
    assert error_line(code, out, err) == f"bench: error: -o {site}: not a folder"
    assert site.read_text() == "not a folder"
