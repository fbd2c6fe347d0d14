"""``--json``: one JSON document on stdout (parsed with json.loads, nothing else there),
the human output on stderr. ``list``, a real ``run`` from a project with a bench.toml
(its scenario folder, servers, results and reports folders), and ``check`` and
``compare`` of the session's io-heavy sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import SHIPPED, bench, own_scenario, wait_for_quiet_cpus


def document(stdout: str, command: str) -> dict[str, Any]:
    """The one JSON document of ``stdout`` (json.loads refuses anything around it)."""
    doc = json.loads(stdout)
    assert doc["bench_json"] == 1 and doc["command"] == command
    return doc


def test_list_json(tmp_path: Path) -> None:
    r = bench("list", "scenarios", "--json", cwd=tmp_path)
    doc = document(r.stdout, "list scenarios")
    assert [s["name"] for s in doc["scenarios"]] == SHIPPED and doc["config"] is None
    io = next(s for s in doc["scenarios"] if s["name"] == "io-heavy")
    assert io["params"]["latency_ms"]["default"] == 50 and io["slo"]["p99_ms"] == 150
    assert io["request_path"] == "/io?latency_ms=50" and io["warmup"]["mode"] == "steady"
    r = bench("list", "servers", "--json", cwd=tmp_path)
    servers = {s["name"]: s for s in document(r.stdout, "list servers")["servers"]}
    assert servers["uvicorn"]["interface"] == "asgi"
    assert "websocket" in servers["uvicorn"]["protocols"]
    assert servers["gunicorn-sync"]["command"][:3] == ["python", "-m", "gunicorn"]
    assert r.stderr == ""


@pytest.mark.alone
@pytest.mark.slow
def test_run_json_in_a_project(tmp_path: Path) -> None:
    """A real short run of the project's own scenario (by name, from its bench.toml),
    with --fail-on-slo at the run's level: exit 0, the document names the run folder and
    report in the project's folders, counts the trials and carries the SLO check."""
    project = tmp_path / "project"
    own_scenario(project / "perf", "quick-io", users="[2]")
    (project / "bench.toml").write_text(
        'scenarios = ["perf"]\nservers = ["uvicorn"]\nresults_dir = "perf/results"\n'
        'reports_dir = "perf/reports"\n')
    for attempt in range(3):  # a trial a busy machine made invalid: exit 3, retried
        if attempt:
            wait_for_quiet_cpus()
        r = bench("run", "--scenario", "quick-io", "--param", "latency_ms=5", "--warmup",
                  "0.5", "--duration", "1", "--fail-on-slo", "--at-users", "2", "--json",
                  cwd=project, timeout=280)  # plus any wait for the CPU locks
        if r.returncode != 3:
            break
    assert r.returncode == 0, r.stdout + r.stderr
    doc = document(r.stdout, "run")
    run_dir = Path(doc["run_dir"])
    assert run_dir.parent == project / "perf" / "results" and (run_dir / "run.json").is_file()
    assert doc["report"] == str(project / "perf" / "reports" / f"{run_dir.name}.html")
    assert Path(doc["report"]).is_file()
    assert doc["status"] == "complete" and doc["exit_code"] == 0
    assert doc["scenario"]["name"] == "quick-io" and doc["scenario"]["params"] == {"latency_ms": 5}
    assert doc["counts"]["trials"] == len(doc["trials"]) == doc["counts"]["ok"] + \
        doc["counts"]["invalid"] + doc["counts"]["unsupported"] + doc["counts"]["failed"]
    (trial,) = doc["trials"]
    assert trial["server"] == "uvicorn" and trial["users"] == 2 and trial["status"] == "ok"
    assert trial["latency_p99_ms"] >= 5 and trial["offered_rps"] is None  # NaN -> null
    check = doc["slo_check"]
    assert check["verdict"] == "pass" and check["slo"]["source"] == "scenario"
    assert check["counts"] == {"judged": 1, "passed": 1, "missed": 0, "skipped": 0}
    # the human output went to stderr: the header, the summary table, the check
    assert "quick-io" in r.stderr and "PASS: all 1 ok trials meet the SLO" in r.stderr


def test_check_json(io_sweep: Path) -> None:
    r = bench("check", str(io_sweep), "--json")
    assert r.returncode == 1
    doc = document(r.stdout, "check")
    assert doc["verdict"] == "fail" and doc["exit_code"] == 1
    assert doc["slo"]["text"] == "p99<=150ms,errors<=1%"
    assert doc["counts"]["judged"] == 16 and doc["counts"]["skipped"] == 0
    assert {(m["server"], m["users"], m["metric"]) for m in doc["misses"]} == {
        ("gunicorn-sync", 8, "p99"), ("gunicorn-sync", 16, "p99")}
    assert all(m["value"] > m["bound"] == 150 and not m["met"] for m in doc["misses"])
    assert "missed: gunicorn-sync · users=16" in r.stderr  # the human lines


@pytest.mark.parametrize("args", [("check", "{run}", "--slo", "p99<<1", "--json"),
                                  ("check", "{run}", "--at-users", "5", "--json")])
def test_json_bad_input_writes_no_document(io_sweep: Path, args: tuple[str, ...]) -> None:
    r = bench(*(a.format(run=io_sweep) for a in args))
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_compare_json(io_sweep: Path, tmp_path: Path) -> None:
    """The sweep against itself: 2 repeats per side cannot decide anything, so with
    --no-fail-on-regression the gate passes (exit 0) and says so in the document."""
    r = bench("compare", str(io_sweep), str(io_sweep), "--no-fail-on-regression", "--json",
              "--json-out", str(tmp_path / "c.json"), "--markdown", str(tmp_path / "c.md"))
    assert r.returncode == 0, r.stderr
    doc = document(r.stdout, "compare")
    assert doc["verdict"] == "no regression" and doc["exit_code"] == 0
    assert doc["compare_json"] == str(tmp_path / "c.json")
    assert doc["markdown"] == str(tmp_path / "c.md") and (tmp_path / "c.md").is_file()
    stored = json.loads((tmp_path / "c.json").read_text())
    assert {k: v for k, v in doc.items() if k in stored} == stored  # the same document
    assert len(doc["results"]) == 8 * 3  # 2 servers x 4 levels, 3 gated metrics
    assert {v["decision"] for v in doc["results"]} == {"insufficient repeats"}
    assert "bench compare · baseline" in r.stderr  # the table went to stderr
