"""A project's configuration (bench.toml or [tool.bench]) and scenarios of its own:
found from the current directory, parsed strictly, overridden by options; ``--scenario``
tells a path from a name. Quick: nothing is run here (the real runs that use a project
configuration are in tests/e2e/test_json.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import config, scenarios
from harness.errors import UserError
from tests.support import SHIPPED, bench, own_scenario


def test_no_configuration_gives_the_defaults(tmp_path: Path) -> None:
    cfg = config.load(tmp_path)
    assert cfg == config.Config()
    assert cfg.results() == Path("results") and cfg.reports() == Path("reports")


def test_bench_toml_is_found_from_a_subfolder_paths_relative_to_it(tmp_path: Path) -> None:
    own_scenario(tmp_path / "perf", "mine")
    (tmp_path / "bench.toml").write_text(
        'scenarios = ["perf"]\nservers = ["uvicorn"]\nresults_dir = "out/results"\n'
        'reports_dir = "/abs/reports"\n')
    (tmp_path / "a" / "b").mkdir(parents=True)
    cfg = config.load(tmp_path / "a" / "b")
    assert cfg.source == tmp_path / "bench.toml"
    assert cfg.scenarios == (tmp_path / "perf",)
    assert cfg.servers == ("uvicorn",)
    assert cfg.results() == tmp_path / "out" / "results"
    assert cfg.reports() == Path("/abs/reports")
    assert scenarios.available(paths=cfg.scenarios) == sorted([*SHIPPED, "mine"])


def test_pyproject_tool_bench_and_a_pyproject_without_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.bench]\nservers = ["hypercorn"]\n')
    inner = tmp_path / "pkg"
    inner.mkdir()
    # a pyproject.toml without [tool.bench] is passed over, as ruff and pytest do
    (inner / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.ruff]\n')
    cfg = config.load(inner)
    assert cfg.source == tmp_path / "pyproject.toml" and cfg.servers == ("hypercorn",)
    assert cfg.where == f"{tmp_path / 'pyproject.toml'} [tool.bench]"


@pytest.mark.parametrize(("files", "message"), [
    ({"bench.toml": 'servers = ["uvicorn"]\nresult_dir = "x"\n'},
     "bench.toml: unknown key 'result_dir'; did you mean results_dir"),
    ({"pyproject.toml": '[tool.bench]\nscenario = ["x"]\n'},
     "pyproject.toml [tool.bench]: unknown key 'scenario'; did you mean scenarios?"),
    ({"bench.toml": 'servers = "uvicorn"\n'},
     "bench.toml: servers must be a non-empty list of strings"),
    ({"bench.toml": 'servers = ["uvicorm"]\n'},
     "bench.toml: servers: unknown server 'uvicorm'; did you mean uvicorn"),
    ({"bench.toml": 'servers = ["uvicorn", "uvicorn"]\n'}, "named twice"),
    ({"bench.toml": 'scenarios = ["nope"]\n'}, "bench.toml: scenarios: 'nope': no such file"),
    ({"bench.toml": 'scenarios = ["bench.toml"]\n', "notes.txt": ""}, None),
    ({"bench.toml": 'scenarios = ["notes.txt"]\n', "notes.txt": ""},
     "scenarios: 'notes.txt': not a .toml file"),
    ({"bench.toml": 'results_dir = 3\n'}, "bench.toml: results_dir must be a folder path"),
    ({"bench.toml": 'results_dir = "notes.txt"\n', "notes.txt": ""}, "is not a folder"),
    ({"bench.toml": "servers = [\n"}, "bench.toml: invalid TOML: "),
    ({"bench.toml": "", "pyproject.toml": "[tool.bench]\n"}, "both configure bench; keep one"),
])
def test_a_bad_configuration_is_refused_in_one_line(tmp_path: Path, files: dict[str, str],
                                                   message: str | None) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    if message is None:  # bench.toml names itself as a scenario file: not a scenario
        with pytest.raises(UserError, match="bench.toml"):
            scenarios.catalogue(config.load(tmp_path).scenarios)
        return
    with pytest.raises(UserError) as caught:
        config.load(tmp_path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_project_scenario_may_not_shadow_a_shipped_one(tmp_path: Path) -> None:
    own_scenario(tmp_path / "perf", "io-heavy")
    with pytest.raises(UserError, match=r"scenario 'io-heavy' is defined twice: .* rename one"):
        scenarios.catalogue([tmp_path / "perf"])
    # a folder holding the project's configuration files skips them
    (tmp_path / "perf" / "io-heavy.toml").unlink()
    (tmp_path / "perf" / "bench.toml").write_text("")
    assert scenarios.available(paths=[tmp_path / "perf"]) == SHIPPED


@pytest.mark.parametrize(("name", "message"), [
    ("io-heavy.toml", ("scenario file io-heavy.toml: no such file; the scenario named "
                       "'io-heavy' is --scenario io-heavy")),
    ("perf", "unknown scenario 'perf'"),            # a bare word is a name, never a file
    ("./perf", "scenario file ./perf: a folder"),   # with a separator it is a path
    ("perf/mine.txt", "scenario file perf/mine.txt: not a .toml file"),
    ("perf/other.toml", "scenario file perf/other.toml: no such file"),
])
def test_scenario_path_or_name(name: str, message: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    own_scenario(tmp_path / "perf", "mine")
    (tmp_path / "perf" / "mine.txt").write_text("")
    monkeypatch.chdir(tmp_path)
    assert scenarios.load("perf/mine.toml").users == (3,)  # relative to the current dir
    assert scenarios.load(str(tmp_path / "perf" / "mine.toml")).name == "mine"
    with pytest.raises(UserError) as caught:
        scenarios.load(name)
    assert message in str(caught.value)


@pytest.mark.slow
def test_the_cli_takes_the_configuration_and_options_override_it(tmp_path: Path) -> None:
    """``bench run --dry-run --json`` from a subfolder of a project: the project's
    scenario by name, its servers (those serving the protocol) and results folder;
    then --servers and --results-dir win. ``bench list scenarios`` shows the project's
    scenario with its file."""
    own_scenario(tmp_path / "perf", "mine")
    (tmp_path / "bench.toml").write_text(
        'scenarios = ["perf/mine.toml"]\nservers = ["gunicorn-sync", "uvicorn"]\n'
        'results_dir = "perf/results"\n')
    sub = tmp_path / "src"
    sub.mkdir()
    r = bench("run", "--scenario", "mine", "--dry-run", "--json", cwd=sub)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["scenario"] == "mine" and plan["servers"] == ["gunicorn-sync", "uvicorn"]
    assert plan["levels"] == [{"users": 3, "rate_rps": None}]
    assert plan["results_dir"] == str(tmp_path / "perf" / "results")
    assert "dry run: nothing started" in r.stderr  # the human lines went to stderr
    r = bench("run", "--scenario", "mine", "--dry-run", "--json", "--servers", "hypercorn",
              "--results-dir", "here", cwd=sub)
    plan = json.loads(r.stdout)
    assert plan["servers"] == ["hypercorn"] and plan["results_dir"] == str(sub / "here")
    # websocket-echo takes WSGI configs too (they are probed and recorded unsupported)
    r = bench("run", "--scenario", "websocket-echo", "--dry-run", "--json", cwd=sub)
    assert json.loads(r.stdout)["servers"] == ["gunicorn-sync", "uvicorn"]
    listed = json.loads(bench("list", "scenarios", "--json", cwd=sub).stdout)
    assert listed["config"] == str(tmp_path / "bench.toml")
    mine = next(s for s in listed["scenarios"] if s["name"] == "mine")
    assert mine["file"] == str(tmp_path / "perf" / "mine.toml") and mine["users"] == [3]
    assert list(sub.iterdir()) == []  # a dry run writes nothing


def test_a_bad_configuration_stops_the_cli_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bench.toml").write_text('servers = ["uvicorn"]\nreport_dir = "r"\n')
    for args in (("run", "--scenario", "io-heavy", "--dry-run"), ("list", "scenarios")):
        r = bench(*args, cwd=tmp_path)
        assert r.returncode == 2
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"bench: error: {tmp_path / 'bench.toml'}: unknown key "
                               "'report_dir'; did you mean reports_dir")
        assert line.endswith("(known: scenarios, servers, results_dir, reports_dir)")
        assert r.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.toml"]
