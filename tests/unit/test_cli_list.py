"""``bench list servers`` / ``bench list scenarios`` in-process: every server config once
with its default flag, the project's own scenarios (bench.toml, found from a subfolder)
listed beside the shipped ones with the file they came from, and a bad bench.toml refused
in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import servers
from tests.support import SHIPPED, bench_here, own_scenario


def test_servers_json_has_every_config_once_and_marks_the_defaults(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = bench_here(capsys, monkeypatch, "list", "servers", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["command"] == "list servers"
    listed = doc["servers"]
    assert [s["name"] for s in listed] == list(servers.SERVERS)
    assert {s["name"] for s in listed if s["default"]} == set(servers.DEFAULT_SERVERS)
    for s in listed:
        assert s["interface"] in ("wsgi", "asgi") and "http" in s["protocols"]
        assert isinstance(s["unsupported"], str)
        assert not any("{python}" in part for part in s["command"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose bench.toml names a folder holding one scenario of its own."""
    own_scenario(tmp_path / "perf", "quick-io", users="[2, 4]")
    (tmp_path / "bench.toml").write_text('scenarios = ["perf"]\n')
    (tmp_path / "src" / "deep").mkdir(parents=True)
    return tmp_path


def test_scenarios_of_the_project_are_listed_with_their_file(
        project: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "src" / "deep")  # found from a subfolder, upwards
    code, out, err = bench_here(capsys, monkeypatch, "list", "scenarios", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["config"] == str(project / "bench.toml")
    listed = {s["name"]: s for s in doc["scenarios"]}
    assert list(listed) == sorted([*SHIPPED, "quick-io"])
    assert listed["quick-io"]["file"] == str(project / "perf" / "quick-io.toml")
    assert listed["quick-io"]["users"] == [2, 4]
    assert all(Path(listed[name]["file"]).name == f"{name}.toml" for name in SHIPPED)
    code, out, err = bench_here(capsys, monkeypatch, "list", "scenarios")
    assert code == 0 and err == ""
    assert f"project: {project / 'bench.toml'}" in out
    header = next(line for line in out.splitlines() if "scenario" in line and "protocol" in line)
    assert header.split("┃")[-2].strip() == "file"  # a column only a project's listing has


def test_without_a_project_there_is_no_file_column(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = bench_here(capsys, monkeypatch, "list", "scenarios")
    assert code == 0 and err == "" and "project:" not in out
    header = next(line for line in out.splitlines() if "scenario" in line and "protocol" in line)
    assert header.split("┃")[-2].strip() == "SLO"


def test_a_bad_bench_toml_is_one_line(project: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "bench.toml").write_text('scenario = ["perf"]\n')
    monkeypatch.chdir(project)
    code, out, err = bench_here(capsys, monkeypatch, "list", "scenarios", "--json")
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, (code, out, err)
    assert lines[0].startswith(f"bench: error: {project / 'bench.toml'}: ")
    assert "did you mean scenarios" in lines[0]
