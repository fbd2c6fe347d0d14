"""`bench run` input: repeated levels, upper bounds, nan/inf, rich markup in user text,
`--dry-run`, nothing created on bad input, exit 3 when every trial failed.

Most cases call the CLI in-process (``harness.cli.main`` with a patched ``sys.argv``):
validation is pre-flight, so nothing is started; each checks it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from rich.console import Console
from rich.progress import Progress

from harness import cli, procs
from harness.machine import parse_cpus
from harness.runner import trial_id
from tests.support import SCENARIO
from tests.support import bench_here as bench


def scenario_file(folder: Path, name: str = "mine", *, users: str = "[4]", warmup: str = "0.5",
                  duration: str = "1", text: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text if text is not None else SCENARIO.format(
        name=name, users=users, warmup=warmup, duration=duration))
    return path


def refused(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
            tmp_path: Path, *args: str) -> str:
    """Run ``bench run ARGS --dry-run``; assert exit 2, one line, nothing started or
    created; return the message."""
    results = tmp_path / "never" / "results"
    code, out, err = bench(capsys, monkeypatch, "run", "--results-dir", str(results),
                           *args, "--dry-run")
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), err
    assert "Traceback" not in err and out == ""
    assert not results.parent.exists()
    assert not procs._started and not psutil.Process().children(recursive=True)
    return lines[0]


# --- 1. repeated levels -------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (("--users", "10,10"), "--users '10,10': level 10 is given twice"),
    (("--users", "5,10,5"), "level 5 is given twice"),
    (("--arrival-rate", "5,5"), "--arrival-rate '5,5': level 5 is given twice"),
    (("--arrival-rate", "5,5.0"), "level 5 is given twice"),
])
def test_repeated_levels_are_refused(args: tuple[str, ...], message: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    line = refused(capsys, monkeypatch, tmp_path, "--scenario", "io-heavy", *args)
    assert message in line


@pytest.mark.parametrize(("args", "message"), [
    (("--master-bind", "127.0.0.1:5557"), "--master-bind applies to --load-agents only"),
    (("--load-agents", "2", "--load-processes", "2"), "exclude each other"),
    (("--load-agents", "2", "--master-bind", "5557"), "expected HOST:PORT"),
    (("--load-agents", "2", "--master-bind", "127.0.0.1:70000"), "expected HOST:PORT"),
    (("--load-agents", "2", "--agent-timeout", "0"), "--agent-timeout 0.0: must be > 0"),
    (("--load-agents", "-1",), "--load-agents -1: must be >= 0"),
])
def test_bad_agent_options_are_refused(args: tuple[str, ...], message: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    line = refused(capsys, monkeypatch, tmp_path, "--scenario", "io-heavy", *args)
    assert message in line


@pytest.mark.parametrize(("args", "message"), [
    (("--master", "nowhere"), "--master 'nowhere': expected HOST:PORT"),
    (("--master", "127.0.0.1:5557", "--processes", "0"), "--processes 0: must be > 0"),
    (("--master", "127.0.0.1:5557", "--timeout", "nan"), "--timeout nan: must be"),
])
def test_bad_bench_agent_input_is_one_line(args: tuple[str, ...], message: str,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = bench(capsys, monkeypatch, "agent", *args)
    assert code == 2 and err.count("\n") == 1 and message in err, (code, out, err)
    assert not procs._started


def test_repeated_levels_in_a_scenario_file_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = scenario_file(tmp_path / "sc", users="[10, 20, 10]")
    line = refused(capsys, monkeypatch, tmp_path, "--scenario", str(path))
    assert f"{path}: [load].users: level 10 is given twice" in line


def test_trial_ids_hold_the_level_index() -> None:
    ids = {trial_id("uvicorn", i, 10, float("nan"), 1) for i in (1, 2)}
    assert ids == {"uvicorn-l1-u10-r1", "uvicorn-l2-u10-r1"}
    assert trial_id("uvicorn", 3, 1000, 5.0, 2) == "uvicorn-l3-a5-r2"


# --- 2. upper bounds ----------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (("--workers", "100000"), "--workers 100000: about "),
    (("--users", "999999999"), "--users 999999999: more users than one process can hold"),
    (("--load-processes", "5000"), "--load-processes 5000: about "),
    (("--repeats", "1000000000"), "a run records at most 100000"),
    (("--server-cpus", "0-100000000"), "--server-cpus '0-100000000': CPU "),
    (("--load-cpus", "0-99999999999999999999"), "not available here"),
    (("--duration", "1e12"), "--duration 1e+12: longer than"),
    (("--users", "999999999", "--exceed-limits"), "more users than one process can hold"),
    (("--workers", "100000", "--exceed-limits"), "--workers 100000: about "),
])
def test_counts_past_what_this_machine_can_do_are_refused(
        args: tuple[str, ...], message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    line = refused(capsys, monkeypatch, tmp_path, "--scenario", "io-heavy", *args)
    assert message in line


def test_a_scenario_with_50000_levels_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = scenario_file(tmp_path / "sc", users=str(list(range(1, 50_001))))
    line = refused(capsys, monkeypatch, tmp_path, "--scenario", str(path))
    assert "[load].users: 50000 levels; at most 1000 per run" in line


def test_a_soft_bound_passes_only_with_exceed_limits(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    server = str(cpus[0])
    args = ("--scenario", "io-heavy", "--servers", "uvicorn", "--server-cpus", server,
            "--load-cpus", str(cpus[-1]), "--workers", "5")
    line = refused(capsys, monkeypatch, tmp_path, *args)
    assert "--workers 5: more than 4 per server CPU" in line and "--exceed-limits" in line
    results = tmp_path / "results"
    code, out, err = bench(capsys, monkeypatch, "run", *args, "--exceed-limits", "--dry-run",
                           "--results-dir", str(results))
    assert code == 0, err
    assert "warning: --workers 5: more than 4 per server CPU" in err
    assert "workers=5" in out and "dry run: nothing started" in out
    assert not results.exists() and not procs._started


def test_parse_cpus_never_expands_a_range() -> None:
    # Expanding 0-10**18 would take forever; checked as an interval it is instant.
    with pytest.raises(Exception, match="not available here"):
        parse_cpus(f"0-{10**18}", "--server-cpus")


# --- 3. nan / inf -------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (("--duration", "nan"), "--duration nan: must be a finite number"),
    (("--duration", "inf"), "--duration inf: must be a finite number"),
    (("--warmup", "inf"), "--warmup inf: must be a finite number"),
    (("--warmup", "nan"), "--warmup nan: must be a finite number"),
    (("--arrival-rate", "inf"), "--arrival-rate 'inf': expected positive numbers"),
    (("--arrival-rate", "nan"), "--arrival-rate 'nan': expected positive numbers"),
])
def test_non_finite_numbers_are_refused(args: tuple[str, ...], message: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert message in refused(capsys, monkeypatch, tmp_path, "--scenario", "io-heavy", *args)


@pytest.mark.parametrize(("field", "message"), [
    ({"duration": "nan"}, "[load].duration_s must be a finite number, got nan"),
    ({"duration": "inf"}, "[load].duration_s must be a finite number, got inf"),
    ({"warmup": "inf"}, "[load].warmup_s must be a finite number, got inf"),
    ({"warmup": "-nan"}, "[load].warmup_s must be a finite number"),
])
def test_non_finite_numbers_in_a_scenario_file_are_refused(
        field: dict[str, str], message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = scenario_file(tmp_path / "sc", **field)
    assert message in refused(capsys, monkeypatch, tmp_path, "--scenario", str(path))


def test_non_finite_params_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    text = SCENARIO.format(name="mine", users="[4]", warmup="0", duration="1").replace(
        'type = "int"\ndefault = 5\nmin = 0\nmax = 100', 'type = "float"\ndefault = 5.0\n'
        'min = 0.0\nmax = inf')
    path = scenario_file(tmp_path / "sc", text=text)
    line = refused(capsys, monkeypatch, tmp_path, "--scenario", str(path))
    assert "[params.latency_ms].max must be a finite number, got inf" in line
    # A float parameter of a shipped scenario: nan is not "in range".
    line = refused(capsys, monkeypatch, tmp_path, "--scenario", "websocket-echo",
                   "--param", "hold_s=nan")
    assert "--param hold_s=nan: expected a finite number" in line


# --- 4. rich markup in user text ----------------------------------------------------------


@pytest.mark.parametrize(("args", "shown"), [
    (("--scenario", "io-heavy", "--param", "[/]=5"), "--param [/]: scenario io-heavy"),
    (("--scenario", "io-heavy", "--users", "[red]x"), "--users '[red]x': expected positive"),
    (("--scenario", "/no/[/such]/[bold]x.toml"), "scenario file /no/[/such]/[bold]x.toml: "),
    (("--scenario", ":thumbs_up:"), "unknown scenario ':thumbs_up:'"),
])
def test_user_text_is_shown_as_typed(args: tuple[str, ...], shown: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert shown in refused(capsys, monkeypatch, tmp_path, *args)


def test_scenario_messages_keep_their_brackets(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = scenario_file(tmp_path / "[red]sc", users='"ten"')
    line = refused(capsys, monkeypatch, tmp_path, "--scenario", str(path))
    assert line == (f"bench: error: {path}: [load].users must be a non-empty list of "
                    "positive integers")


def test_trial_reasons_are_printed_as_typed() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=300, color_system=None)
    with Progress(console=console, transient=True) as progress:
        reporter = cli.RichReporter(progress, 10.0)
        reporter.trial_started("[bold]srv", 4, 1, 1.0)
        reporter.trial_finished({"status": "failed", "server": "[red]srv", "users": 4,
                                 "reason": "server said [/] and [bold]no[/bold] :thumbs_up:"})
    text = buffer.getvalue()
    assert "[red]srv" in text
    assert "server said [/] and [bold]no[/bold] :thumbs_up:" in text


# --- 6. nothing created on bad input; exit 3 when every trial failed ----------------------


def test_a_refused_run_creates_no_results_dir(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    refused(capsys, monkeypatch, tmp_path, "--scenario", "io-heavy", "--duration", "-1")
    refused(capsys, monkeypatch, tmp_path, "--scenario", "io-heavy", "--workers", "0")
    # A --results-dir under a file: refused without creating anything.
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = bench(capsys, monkeypatch, "run", "--scenario", "io-heavy", "--dry-run",
                         "--results-dir", str(blocker / "sub"))
    assert code == 2 and f"--results-dir {blocker / 'sub'}: cannot write there" in err


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    results, report = tmp_path / "r" / "results", tmp_path / "rep" / "x.html"
    affinity = os.sched_getaffinity(0)
    code, out, err = bench(capsys, monkeypatch, "run", "--scenario", "io-heavy", "--servers",
                           "uvicorn,gunicorn-sync", "--users", "2,4,8", "--repeats", "3",
                           "--results-dir", str(results), "--report", str(report), "--dry-run")
    assert code == 0, err
    assert "2 server configs × 3 levels × 3 repeats" in out
    assert "trials:   18 (2 configs × 3 levels × 3 repeats)" in out
    assert "levels:   2, 4, 8" in out and "servers:  uvicorn, gunicorn-sync" in out
    assert "dry run: nothing started, nothing written" in out
    assert not results.parent.exists() and not report.parent.exists()
    assert not procs._started and not psutil.Process().children(recursive=True)
    assert os.sched_getaffinity(0) == affinity  # not pinned: no run began


ALL_FAIL = """
import sys
from types import MappingProxyType
from harness import servers
from harness.servers import ServerConfig
# A real server command that cannot start (as in tests/e2e/test_faults.py's BROKEN).
servers.SERVERS = MappingProxyType({**servers.SERVERS, "broken": ServerConfig(
    "broken", "wsgi", frozenset({"http"}),
    ("{python}", "-c", "import sys; print('cannot import apps: boom'); sys.exit(3)"))})
from harness.cli import main
sys.argv = ["bench", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_exit_3_when_every_trial_failed(tmp_path: Path) -> None:
    """A real run whose only server cannot start: report written, exit 3, one line why."""
    cpus = sorted(os.sched_getaffinity(0))
    r = subprocess.run([sys.executable, "-c", ALL_FAIL, "run", "--scenario", "io-heavy",
                        "--servers", "broken", "--users", "2,4", "--duration", "1",
                        "--warmup", "0", "--results-dir", str(tmp_path / "results"),
                        "--report", str(tmp_path / "report.html"),
                        "--server-cpus", str(cpus[0]), "--load-cpus", str(cpus[-1])],
                       capture_output=True, text=True, timeout=120, check=False,
                       env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 3, r.stderr
    assert "bench: every trial failed (2): nothing was measured" in r.stderr
    assert "Traceback" not in r.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert [t["status"] for t in meta["trials"]] == ["failed", "failed"]
    assert (tmp_path / "report.html").is_file()


def test_a_scenario_file_that_is_not_utf8_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sc" / "mine.toml"
    path.parent.mkdir()
    path.write_bytes(b'name = "mine"\ndescription = "caf\xe9"\n')
    line = refused(capsys, monkeypatch, tmp_path, "--scenario", str(path))
    assert f"{path}: not UTF-8 text (byte 32); TOML files are UTF-8" in line


@pytest.mark.alone
@pytest.mark.slow
def test_equal_levels_of_a_plan_are_two_trials_with_their_own_records(tmp_path: Path) -> None:
    """A RunPlan built in code may repeat a level (the CLI refuses it): the two trials
    get distinct ids and requests/ folders, each trial's figures from its own records
    (before, the second trial read the first one's folder). One short real run."""
    from harness.runner import Runner, RunPlan
    from harness.scenarios import load
    from harness.servers import SERVERS

    cpus = sorted(os.sched_getaffinity(0))
    plan = RunPlan(scenario=load("io-heavy").with_params({"latency_ms": "20"}),
                   servers=[SERVERS["uvicorn"]], users=(2, 2), warmup_s=0.5, duration_s=1.0,
                   repeats=1, workers=1, server_cpus=cpus[:1], load_cpus=cpus[-1:],
                   results_dir=tmp_path, keep_requests=True)
    state = Runner(plan).execute()
    first, second = state.trials
    assert first["trial_id"] == "uvicorn-l1-u2-r1" and second["trial_id"] == "uvicorn-l2-u2-r1"
    for t in (first, second):
        folder = state.run_dir / "requests" / t["trial_id"]
        assert any(folder.glob("*.csv")), folder
        assert (state.run_dir / "latency" / f"{t['trial_id']}.json").is_file()
        assert t["requests"] > 0
    # Sharing a folder, the second trial took its window from the first one's meta files.
    assert second["t_start_s"] > first["t_end_s"]
