"""``bench check RUN`` on synthetic run folders: what it prints per miss (at most
``MAX_LINES`` lines, the rest counted), the trials it skips for not being ok, ``--json``
keeping stdout for the one document, and bad input refused before the run is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli_check import MAX_LINES
from tests.support import bench_here
from tests.synth import SLO_P99_MS, samples, trial, write_report_run

#: A latency whose p99 (latency + 5 ms in tests.synth.trial) misses the 150 ms SLO.
SLOW_MS = 200.0


def run_with(tmp_path: Path, trials: list[dict[str, Any]]) -> Path:
    return write_report_run(tmp_path, "check-run", trials, samples(), records=False)


def slow_levels(n: int) -> list[dict[str, Any]]:
    """``n`` ok gunicorn-sync trials at users 1..n, each with p99 205 ms > 150 ms."""
    return [trial(f"gunicorn-sync-u{u}-r1", "gunicorn-sync", "wsgi", u, "ok", "", 10.0 * u, 20.0,
                  latency=SLOW_MS) for u in range(1, n + 1)]


def test_more_misses_than_max_lines_are_counted_not_listed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    n = MAX_LINES + 5
    run_dir = run_with(tmp_path, slow_levels(n))
    code, out, err = bench_here(capsys, monkeypatch, "check", str(run_dir))
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[0] == ("bench check · check-run · io-heavy · SLO p99<=150ms, errors<=1% "
                        "(scenario)")
    missed = [line for line in lines if line.startswith("  missed: ")]
    assert len(missed) == MAX_LINES
    assert missed[0] == (f"  missed: gunicorn-sync · users=1 · repeat 1: p99 {SLOW_MS + 5:g} "
                         f"ms, bound <= {SLO_P99_MS} ms")
    assert "  ... and 5 more misses (--json lists them all)" in lines
    assert lines[-1] == f"FAIL: {n} of {n} ok trials missed the SLO (exit 1)"


def test_json_puts_every_miss_on_stdout_and_the_lines_on_stderr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    n = MAX_LINES + 2
    run_dir = run_with(tmp_path, slow_levels(n))
    code, out, err = bench_here(capsys, monkeypatch, "check", str(run_dir), "--json")
    assert code == 1
    doc = json.loads(out)  # the document alone: json.loads refuses anything around it
    assert doc["bench_json"] == 1 and doc["command"] == "check"
    assert doc["verdict"] == "fail" and doc["exit_code"] == 1
    assert doc["counts"] == {"judged": n, "passed": 0, "missed": n, "skipped": 0}
    assert [m["users"] for m in doc["misses"]] == list(range(1, n + 1))
    assert all(m["metric"] == "p99" and m["value"] == SLOW_MS + 5 and m["met"] is False
               for m in doc["misses"])
    assert err.count("  missed: ") == MAX_LINES and "and 2 more misses" in err


def test_trials_not_ok_are_skipped_never_passes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One ok trial within the SLO (p99 55 ms), one invalid and one failed: exit 0, the two
    not judged are counted by status."""
    run_dir = run_with(tmp_path, [
        trial("uvicorn-u10-r1", "uvicorn", "asgi", 10, "ok", "", 0.0, 200.0, latency=50.0),
        trial("gunicorn-sync-u10-r1", "gunicorn-sync", "wsgi", 10, "invalid",
              "generator saturated", 10.0, 40.0),
        trial("gunicorn-sync-u50-r1", "gunicorn-sync", "wsgi", 50, "failed", "crashed", 20.0, 0.0),
    ])
    code, out, err = bench_here(capsys, monkeypatch, "check", str(run_dir))
    assert code == 0 and err == ""
    assert "skipped 2 trials that are not ok (failed 1, invalid 1): not judged, not passes" in out
    assert out.splitlines()[-1] == "PASS: all 1 ok trials meet the SLO"
    assert "missed" not in out
    code, out, _ = bench_here(capsys, monkeypatch, "check", str(run_dir), "--at-users", "50")
    assert code == 3
    assert "skipped 1 trial that is not ok (failed 1)" in out
    assert out.splitlines()[-1] == "NO VALID TRIAL: no ok trial among the 1 selected; nothing " \
        "to judge (exit 3)"


@pytest.mark.parametrize(("args", "message"), [
    (("--at-users", "0"), "--at-users 0: must be > 0"),
    (("--slo", "p99<<1ms"), "--slo"),
])
def test_bad_options_are_refused_before_the_run_is_read(
        args: tuple[str, ...], message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = bench_here(capsys, monkeypatch, "check", str(tmp_path / "no-run"), *args)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, (code, out, err)
    assert lines[0].startswith(f"bench: error: {message}") and "no run here" not in lines[0]
