"""The worked example of a user's own service in CI (``examples/ci/own-service/``): its
workflow's ``bench`` commands, run as the workflow runs them.

- Every ``bench`` command line of ``.github/workflows/performance.yml`` is taken from the
  YAML (shell continuations joined, tokenised with :mod:`shlex`, ``$VARIABLES`` mapped
  onto a copy of the example in a temp folder) and given to the real CLI: each
  ``bench run`` line with ``--dry-run`` from the folder it runs in, which checks its
  options, the scenario file, the ``[tool.bench]`` configuration and the servers; the
  others with ``--help`` appended (an unknown subcommand or option is exit 2). A renamed
  flag or a broken scenario fails here, not in someone's CI.
- Then, with ``bench`` installed from a wheel built from this checkout into a venv
  outside it (:func:`tests.support.install_wheel`), the workflow's pull-request steps
  run on a copy of the example: its two ``bench run`` lines (base from a second copy,
  standing for the base branch's worktree; head from the first) with a short load, its
  ``bench check``, ``bench compare`` and ``bench export --format junit`` lines, and the
  main branch's ``bench publish`` on a history kept as the workflow keeps it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from harness import PROJECT_ROOT
from tests.support import bench, tool, wait_for_quiet_cpus

EXAMPLE = PROJECT_ROOT / "examples" / "ci" / "own-service"
WORKFLOW = EXAMPLE / ".github" / "workflows" / "performance.yml"
#: The short load the tests put on the workflow's ``bench run`` lines (the last value of
#: an option given twice wins): one level, one repeat, a 2 s window after 1 s of warm-up
#: (a shorter one is often not steady yet: its latency still drifts, the trial is invalid
#: and the run is made again).
SHORT = ("--users", "4", "--duration", "2", "--warmup", "1", "--repeats", "1")
#: Values of the workflow's ``${{ ... }}`` expressions where its env uses them.
EXPRESSIONS = {"github.base_ref": "main", "steps.base.outputs.present": "true"}
_SEPARATORS = {"&&", "||", ";", "(", ")", "|", "&"}
_REDIRECTS = {">", ">>", "<", "2>"}
_KEYWORDS = {"do", "then", "else", "if", "while", "!", "{"}
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_SUBST = re.compile(r"\$\((\w+) ([^)]*)\)")
_EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


@dataclass(frozen=True)
class Command:
    """One ``bench`` command of the workflow: its job and step, the folder a ``cd`` before
    it in the same line moved to (unexpanded; None: the checkout), its words (quotes
    removed, variables not yet expanded) and the environment the step sees."""

    job: str
    step: str
    cwd: str | None
    words: tuple[str, ...]
    env: Mapping[str, str]

    @property
    def sub(self) -> str:
        return self.words[1]


def _commands_of(script: str) -> Iterator[tuple[str | None, list[str]]]:
    """Each simple command of a shell script with the ``cd`` folder in force before it;
    redirections dropped, leading ``do``/``then``/... stripped, ``(cd X && ...)``
    followed."""
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        cwd: str | None = None
        words: list[str] = []
        tokens = iter([*lexer, ";"])
        for token in tokens:
            if token in _REDIRECTS:
                next(tokens, None)
            elif token in _SEPARATORS:
                while words and words[0] in _KEYWORDS:
                    words.pop(0)
                if words[:1] == ["cd"] and len(words) == 2:
                    cwd = words[1]
                elif words:
                    yield cwd, words
                if token == ")":
                    cwd = None
                words = []
            else:
                words.append(token)


def workflow_commands(doc: Mapping[str, Any]) -> list[Command]:
    """Every ``bench`` command in the ``run:`` steps of the workflow ``doc``, in order."""
    found = []
    for job_name, job in doc["jobs"].items():
        for step in job["steps"]:
            if "run" not in step:
                continue
            env = {**doc.get("env", {}), **job.get("env", {}), **step.get("env", {})}
            env = {k: _EXPR.sub(lambda m: EXPRESSIONS.get(m.group(1), m.group(0)), str(v))
                   for k, v in env.items()}
            for cwd, words in _commands_of(step["run"]):
                if words[0] == "bench":
                    found.append(Command(job_name, step.get("name", step["run"][:40]), cwd,
                                         tuple(words), env))
    return found


def expand(word: str, variables: Mapping[str, str]) -> str:
    """``word`` with ``$VAR``, ``${VAR}`` and ``$(basename X)`` replaced; a variable the
    mapping lacks fails the test (name it in the test's mapping)."""
    def var(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in variables, f"the workflow uses ${name}: give it a value in the test"
        return variables[name]

    def subst(m: re.Match[str]) -> str:
        assert m.group(1) == "basename", f"$({m.group(1)} ...) in a bench command"
        return Path(_VAR.sub(var, m.group(2))).name

    return _VAR.sub(var, _SUBST.sub(subst, word))


def argv(command: Command, variables: Mapping[str, str]) -> list[str]:
    """The command's arguments after ``bench``, expanded with the step's env and
    ``variables`` (the runner's and the script's own)."""
    both = {**command.env, **variables}
    return [expand(w, both) for w in command.words[1:]]


def folder(command: Command, variables: Mapping[str, str], checkout: Path) -> Path:
    return Path(expand(command.cwd, variables)) if command.cwd else checkout


def copy_example(to: Path) -> Path:
    """A copy of the example repository (never its local results), like a checkout."""
    shutil.copytree(EXAMPLE, to, ignore=shutil.ignore_patterns(
        "results", "reports", "ci-results", "site", "__pycache__"))
    return to


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def commands(doc: dict[str, Any]) -> list[Command]:
    return workflow_commands(doc)


def test_the_workflow_uses_the_gates_and_the_files_it_names(
        doc: dict[str, Any], commands: list[Command]) -> None:
    """The workflow runs, checks, compares, exports JUnit and publishes; the files its
    env and install step name are in the example; bench is installed as a tool."""
    assert {c.sub for c in commands} >= {"run", "check", "compare", "export", "publish"}
    flat = [" ".join(c.words) for c in commands]
    assert any("--fail-on-slo" in c for c in flat) and any("--format junit" in c for c in flat)
    assert (EXAMPLE / doc["env"]["SCENARIO"]).is_file()
    installs = [step["run"] for job in doc["jobs"].values() for step in job["steps"]
                if "uv tool install" in step.get("run", "")]
    assert installs and all("--with-requirements requirements.txt" in s for s in installs)
    assert (EXAMPLE / "requirements.txt").is_file()
    assert re.fullmatch(r"bench @ git\+https://\S+@\S+", doc["env"]["BENCH_SPEC"])  # pinned
    assert doc["jobs"]["pages"]["needs"] == "main"


@pytest.mark.slow
def test_every_bench_command_of_the_workflow_parses(commands: list[Command],
                                                    tmp_path: Path) -> None:
    """Each ``bench run`` line with ``--dry-run``, from the folder it runs in, exits 0:
    its options parse, and the scenario file, the configuration and the servers check
    out. Every other line with ``--help`` appended exits 0: click refuses an unknown
    subcommand or option with exit 2 before it shows the help (the values of those lines
    are checked by the slow tests below, which run them)."""
    checkout = copy_example(tmp_path / "work")
    runner = tmp_path / "runner"
    copy_example(runner / "base")
    variables = {"GITHUB_WORKSPACE": str(checkout), "RUNNER_TEMP": str(runner), "round": "1",
                 "run_dir": str(checkout / "ci-results" / "head" / "x"),
                 "history": str(runner / "history")}
    dry_runs = 0
    for command in commands:
        args = argv(command, variables)
        where = folder(command, variables, checkout)
        if command.sub == "run":  # parses every option and checks every value
            r = bench(*args, "--dry-run", cwd=where, timeout=60)
            assert r.returncode == 0, (command, r.stdout + r.stderr)
            assert "dry run: nothing started" in r.stdout + r.stderr
            assert "shop-api /items/42 · 2 server configs" in r.stdout + r.stderr
            dry_runs += 1
        else:
            helped = bench(*args, "--help", cwd=where, timeout=60)
            assert helped.returncode == 0, (command, helped.stdout + helped.stderr)
            assert re.search(rf"Usage: .* {command.sub} \[OPTIONS\]", helped.stdout), command
    assert dry_runs == 4  # the check step, base and head in the rounds, main's run
    assert not (checkout / "ci-results").exists() and not (runner / "base" / "perf" /
                                                          "results").exists()


# --- the workflow's steps, with bench installed from a wheel ------------------------------


@dataclass(frozen=True)
class Example:
    bin: Path
    checkout: Path  # the pull request's checkout (GITHUB_WORKSPACE)
    runner: Path  # RUNNER_TEMP: the base branch's worktree in base/
    base: Path  # the base run folder
    head: Path  # the pull request's run folder

    def variables(self, **more: str) -> dict[str, str]:
        return {"GITHUB_WORKSPACE": str(self.checkout), "RUNNER_TEMP": str(self.runner),
                "round": "1", **more}


def _short_run(installed: Path, command: Command, variables: Mapping[str, str],
               checkout: Path, results: Path, attempts: int = 3) -> Path:
    """Run the workflow's ``bench run`` line with :data:`SHORT` load until every trial is
    ok (a busy shared machine can make one invalid, rightly: that run folder is deleted,
    the CPUs waited for and the line run again); the run folder."""
    problems = ""
    for attempt in range(attempts):
        if attempt:
            wait_for_quiet_cpus(timeout_s=10)
        r = tool(installed, folder(command, variables, checkout),
                 *argv(command, variables), *SHORT)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
        trials = pd.read_csv(run_dir / "trials.csv", dtype={"reason": str})
        assert len(trials) == 2 and set(trials["app"]) == {"shop"}, trials
        if (trials["status"] == "ok").all():
            return run_dir
        problems += trials[["trial_id", "status", "reason"]].to_string() + "\n"
        shutil.rmtree(run_dir)
    raise AssertionError(f"no run with every trial ok in {attempts} attempts:\n{problems}")


@pytest.fixture(scope="module")
def example(commands: list[Command], installed_wheel: tuple[Path, Path],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    """The example copied twice (the pull request's checkout; the base branch's
    worktree under RUNNER_TEMP), bench installed from a wheel of this checkout, and the
    pull-request job's base and head ``bench run`` lines run once each."""
    started = time.monotonic()
    tmp = tmp_path_factory.mktemp("example")
    installed = installed_wheel[1]
    checkout = copy_example(tmp / "work")
    runner = tmp / "runner"
    copy_example(runner / "base")
    variables = {"GITHUB_WORKSPACE": str(checkout), "RUNNER_TEMP": str(runner), "round": "1"}
    base_line, head_line = [c for c in commands
                            if c.job == "gate" and c.sub == "run" and "--dry-run" not in c.words]
    assert base_line.cwd is not None and head_line.cwd is None
    runs = [_short_run(installed, line, variables, checkout, checkout / "ci-results" / side)
            for line, side in ((base_line, "base"), (head_line, "head"))]
    print(f"wheel, install and two short runs: {time.monotonic() - started:.1f} s")
    yield Example(installed, checkout, runner, *runs)


def _line(commands: list[Command], job: str, sub: str) -> Command:
    (command,) = [c for c in commands if c.job == job and c.sub == sub]
    return command


@pytest.mark.slow
def test_the_runs_serve_the_checked_out_app(example: Example) -> None:
    """The base run served the base worktree's app, the head run the checkout's, both
    from the scenario file with its [app] table, under the [tool.bench] servers; the
    reports went where the workflow's --report put them."""
    for run_dir, served, report in (
            (example.base, example.runner / "base", "base-round1.html"),
            (example.head, example.checkout, "head-round1.html")):
        meta = json.loads((run_dir / "run.json").read_text())
        assert meta["scenario"]["name"] == "shop-api"
        assert meta["scenario"]["app"]["target"] == "shop.api:app"
        assert meta["scenario"]["app"]["app_dir"] == str(served)
        assert meta["scenario"]["expect"]["contains"] == '"id":42'
        trials = pd.read_csv(run_dir / "trials.csv")
        assert list(trials["server"]) == ["uvicorn", "granian-asgi"]
        assert (trials["failures"] == 0).all() and (trials["throughput_rps"] > 0).all()
        assert (example.checkout / "ci-results" / report).is_file()


@pytest.mark.slow
def test_check_passes_a_loose_slo_and_names_the_miss_of_an_impossible_one(
        example: Example) -> None:
    loose = tool(example.bin, example.checkout, "check", str(example.head),
                 "--slo", "p99<5s,errors<50%")
    assert loose.returncode == 0, loose.stdout + loose.stderr
    assert "PASS: all 2 ok trials meet the SLO" in loose.stdout
    strict = tool(example.bin, example.checkout, "check", str(example.head),
                  "--slo", "p99<1us", "--json")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    missed = [line for line in strict.stderr.splitlines() if "missed:" in line]
    assert len(missed) == 2, strict.stderr
    for server, line in zip(("uvicorn", "granian-asgi"), sorted(missed, reverse=True),
                            strict=True):
        assert re.search(rf"missed: {server}\S* · users=4 · repeat 1: p99 [\d.]+ ms, "
                         r"bound < 0.001 ms", line), line
    verdict = json.loads(strict.stdout)
    assert verdict["command"] == "check" and verdict["exit_code"] == 1


@pytest.mark.slow
def test_compare_names_both_sides_and_refuses_to_pass_on_one_repeat(
        example: Example, commands: list[Command]) -> None:
    """The workflow's compare line on one repeat per side: nothing can be decided, so
    the gate does not pass (exit 2, the reason said) yet compare.json names both runs;
    with --no-fail-on-regression --json the verdict is a JSON document, exit 0."""
    line = _line(commands, "gate", "compare")
    r = tool(example.bin, example.checkout, *argv(line, example.variables()))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "nothing could be decided (insufficient repeats: 1 vs 1" in r.stderr
    written = json.loads((example.checkout / "ci-results" / "compare.json").read_text())
    assert [s["run_id"] for s in written["baseline"]] == [example.base.name]
    assert [s["run_id"] for s in written["current"]] == [example.head.name]
    assert written["counts"]["insufficient repeats"] == 6  # 2 servers x 3 metrics
    assert example.head.name in (example.checkout / "ci-results" / "compare.md").read_text()

    r = tool(example.bin, example.checkout, "compare", "ci-results/base", "ci-results/head",
             "--no-fail-on-regression", "--json-out", "ci-results/compare-loose.json", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    document = json.loads(r.stdout)
    assert document["command"] == "compare" and document["exit_code"] == 0
    assert document["verdict"] == "no regression"
    assert {s["run_id"] for s in document["baseline"] + document["current"]} == {
        example.base.name, example.head.name}


@pytest.mark.slow
def test_the_workflow_check_and_junit_lines_on_the_pull_requests_run(
        example: Example, commands: list[Command]) -> None:
    """The check step's line judges the run (0 or 1: the scenario's 100 ms bound is
    data; never bad input, never 'nothing ok'); the JUnit step's line writes a file
    an XML parser reads: one slo suite, two cases per configuration, counts matching."""
    variables = example.variables(run_dir=f"{example.head}/")
    check = tool(example.bin, example.checkout, *argv(_line(commands, "gate", "check"),
                                                      variables))
    assert check.returncode in (0, 1), check.stdout + check.stderr
    assert "SLO p99<100ms, errors<1% (--slo)" in check.stdout

    export = tool(example.bin, example.checkout, *argv(_line(commands, "gate", "export"),
                                                       variables))
    assert export.returncode == 0, export.stdout + export.stderr
    root = ET.parse(example.checkout / "ci-results" / "junit" / f"{example.head.name}.xml") \
        .getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "slo · shop-api"
    cases = suite.findall("testcase")
    assert len(cases) == 4  # (uvicorn, granian-asgi) x (p99 latency, error rate)
    assert int(suite.get("tests", -1)) == len(cases)
    assert int(suite.get("failures", -1)) == sum(len(c.findall("failure")) for c in cases)
    assert int(suite.get("skipped", -1)) == sum(len(c.findall("skipped")) for c in cases) == 0
    assert sum(1 for c in cases if "error rate" in (c.get("name") or "")
               and not c.findall("failure")) == 2  # no request failed


@pytest.mark.slow
def test_the_main_branch_publishes_its_history(example: Example,
                                               commands: list[Command]) -> None:
    """Runs kept as the main job keeps them (without requests/, locust/, logs/), then
    its publish line: an index listing both runs, each run's report, the history."""
    history = example.runner / "history"
    for run_dir in (example.base, example.head):
        kept = history / "runs" / run_dir.name
        shutil.copytree(run_dir, kept, ignore=shutil.ignore_patterns("requests", "locust",
                                                                     "logs"))
    r = tool(example.bin, example.checkout,
             *argv(_line(commands, "main", "publish"), example.variables(history=str(history))))
    assert r.returncode == 0, r.stdout + r.stderr
    site = example.checkout / "site"
    index = (site / "index.html").read_text()
    for run_dir in (example.base, example.head):
        assert f'href="runs/{run_dir.name}.html"' in index
        assert (site / "runs" / f"{run_dir.name}.html").is_file()
    assert (site / "history.html").is_file() and (site / ".nojekyll").is_file()
