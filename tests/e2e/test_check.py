"""SLOs as a gate: the ``--slo`` grammar, ``bench check RUN`` and ``bench run
--fail-on-slo``. Exit 1 when an ok trial misses (naming config, level, metric, value and
bound), 3 when no trial is ok (invalid ones are never passes), 0 otherwise, 2 on a bad
spec. Real short runs, and the session's io-heavy sweep and saturated run (tests/conftest.py)
for the checks that only read."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import IO_SWEEP_LATENCY_MS
from tests.support import bench, only_run, wait_for_quiet_cpus

#: A short real run: uvicorn, 2 users, 5 ms per request (p99 >= 5 ms), fixed warm-up of
#: 1 s (after 0.5 s a fresh server's latency was still falling by 2-3 ms/s: not steady,
#: invalid, and the run made again).
SHORT = ("--servers", "uvicorn", "--users", "2", "--param", "latency_ms=5", "--warmup", "1",
         "--duration", "1")


@pytest.mark.slow
def test_a_bad_spec_on_the_command_line_exits_2_before_anything(tmp_path: Path) -> None:
    for args in (("check", str(tmp_path / "no-run"), "--slo", "p99>>1"),
                 ("run", "--scenario", "io-heavy", "--fail-on-slo", "--slo", "p99>>1"),
                 ("run", "--scenario", "io-heavy", "--slo", "p99<1ms"),
                 ("run", "--scenario", "io-heavy", "--fail-on-slo", "--at-users", "7")):
        r = bench(*args, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith("bench: error: --"), line
    assert list(tmp_path.iterdir()) == []


def gated_run(base: Path, *args: str,
              expected: int) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``bench run ARGS --fail-on-slo`` until it exits ``expected``: a run whose trial a
    busy machine made invalid exits 3 and is retried (after waiting for quiet CPUs)."""
    outputs = ""
    for attempt in range(3):
        if attempt:
            wait_for_quiet_cpus()
        folder = base / f"attempt{attempt}"
        # a few seconds of run, plus any wait for the CPU locks other runs hold
        r = bench("run", *args, "--fail-on-slo", "--results-dir", str(folder / "results"),
                  "--report", str(folder / "r.html"), timeout=280)
        assert "Traceback" not in r.stderr, r.stderr
        if r.returncode == expected or r.returncode != 3:
            return r, only_run(folder / "results")
        outputs += r.stdout[-600:]
    raise AssertionError(f"no run exited {expected} in 3 attempts:\n{outputs}")


@pytest.mark.alone
@pytest.mark.slow
def test_a_run_built_to_miss_its_slo_exits_1_naming_config_level_metric(tmp_path: Path) -> None:
    """5 ms per request against p99 < 1 ms: the ok trial misses; then ``bench check``
    judges the same run: it meets the scenario's own SLO (p99 <= 150 ms) and a loose
    --slo (exit 0), and --at-users must name a level of the run (exit 2)."""
    r, run_dir = gated_run(tmp_path, "--scenario", "io-heavy", *SHORT, "--slo", "p99<1ms",
                           expected=1)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "missed: uvicorn · users=2 · repeat 1: p99 " in r.stdout, r.stdout
    assert ", bound < 1 ms" in r.stdout
    assert "FAIL: 1 of 1 ok trials missed the SLO (exit 1)" in r.stdout
    assert (run_dir / "run.json").is_file() and (run_dir.parent.parent / "r.html").is_file()

    meets = bench("check", str(run_dir))
    assert meets.returncode == 0, meets.stdout + meets.stderr
    assert "SLO p99<=150ms, errors<=1% (scenario)" in meets.stdout
    assert "PASS: all 1 ok trials meet the SLO" in meets.stdout
    assert bench("check", str(run_dir), "--slo", "p99<60s,errors<=0%,rps>1").returncode == 0
    missed = bench("check", str(run_dir), "--slo", "rps>100000", "--at-users", "2")
    assert missed.returncode == 1 and "uvicorn · users=2 · repeat 1: rps " in missed.stdout
    wrong = bench("check", str(run_dir), "--at-users", "3")
    assert wrong.returncode == 2
    assert "--at-users 3: run " in wrong.stderr and "has no trial at users=3 (levels: 2)" \
        in wrong.stderr


@pytest.mark.slow
def test_a_run_whose_every_trial_is_invalid_exits_3(saturated_run: tuple[Path, int, str]
                                                    ) -> None:
    """The session's saturated run (``bench run --fail-on-slo`` of a scenario file given
    by path, tests/conftest.py): its one trial is invalid (the load generator ran out),
    never judged: exit 3, and said how many were skipped; ``bench check`` of the stored
    run says the same."""
    run_dir, code, stdout = saturated_run
    assert code == 3, stdout
    assert "skipped 1 trial that is not ok (invalid 1): not judged, not passes" in stdout
    assert "NO VALID TRIAL" in stdout
    again = bench("check", str(run_dir), "--slo", "p99<60s")
    assert again.returncode == 3 and "skipped 1 trial that is not ok (invalid 1)" in again.stdout


@pytest.mark.slow
def test_a_sweep_past_the_knee_misses_at_its_top_levels(io_sweep: Path) -> None:
    """The session's sweep: one sync worker at 20 ms serves users x 20 ms latency, so
    against the scenario's p99 <= 150 ms it misses at 8 users (160 ms) and 16; uvicorn
    meets it everywhere. --at-users 1 judges the first level only: a pass."""
    r = bench("check", str(io_sweep))
    assert r.returncode == 1, r.stdout + r.stderr
    missed = [line for line in r.stdout.splitlines() if line.strip().startswith("missed:")]
    assert missed and all("gunicorn-sync · users=" in line for line in missed), missed
    assert {line.split("users=")[1].split()[0] for line in missed} == {"8", "16"}
    assert IO_SWEEP_LATENCY_MS * 8 > 150
    ok = bench("check", str(io_sweep), "--at-users", "1")
    assert ok.returncode == 0 and "PASS: all 4 ok trials meet the SLO" in ok.stdout
