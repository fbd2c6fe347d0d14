"""Property-based tests (hypothesis) of everything `bench` reads from a user: `bench run`
arguments, scenario TOML files, stored run folders.

The property, for every generated case: exit 0 or 2; on 2 exactly one line on stderr,
``bench: error: ...``; never a traceback (an exception escaping ``harness.cli.main``
fails the test); nothing started (no child process, ``harness.procs._started`` empty,
the CPU affinity untouched) and no results folder created. `bench run` is always called
with ``--dry-run`` first on its command line, so a valid case prints its plan and stops.

The CLI runs in-process (tests.support.bench_here) for speed. Examples are
derandomized (the same cases on every run, so CI is reproducible) and not stored.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import procs, scenarios
from harness.errors import UserError
from harness.results import TEXT_TRIAL_COLUMNS, TRIAL_COLUMNS
from tests.support import SCENARIO
from tests.support import bench_here as bench
from tests.synth import write_run

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
CASES: dict[str, int] = {}
OUTCOMES: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def count_cases() -> Iterator[None]:
    yield
    print(f"\nfuzz cases run: {CASES}; outcomes: {OUTCOMES}")


def check(code: int, out: str, err: str, *, results: Path | None = None,
          affinity: set[int] | None = None) -> None:
    """The property every case must hold."""
    assert "Traceback" not in err and "Traceback" not in out, err
    assert code in (0, 2), (code, out, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("bench: error: "), err
    assert not procs._started
    assert not psutil.Process().children(recursive=True)
    if results is not None:
        assert not results.exists()
    if affinity is not None:
        assert os.sched_getaffinity(0) == affinity


# --- (a) bench run arguments --------------------------------------------------------------

# Text a shell can pass: no NUL, no lone surrogates.
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
               max_size=30)
NUMBER_WORDS = st.sampled_from(["nan", "inf", "-inf", "-0", "0", "1e308", "1e-320", "1_0",
                                " 5 ", "0x10", "", ",", "1,,2", "9" * 30, "-1", "2.5"])
INTS = st.integers(min_value=-(10**12), max_value=10**12).map(str)
FLOATS = st.floats(allow_nan=True, allow_infinity=True).map(repr)
LISTS = st.lists(st.integers(min_value=-5, max_value=10**10), min_size=0, max_size=6).map(
    lambda xs: ",".join(map(str, xs)))
MARKUP = st.sampled_from(["[/]", "[red]x", "[bold]", ":thumbs_up:", "[link=x]y[/link]",
                          "\\[x]", "[/nope]", "\\"])
VALUE = st.one_of(NUMBER_WORDS, INTS, FLOATS, LISTS, MARKUP, TEXT)
CPUS = st.one_of(st.sampled_from(["0", "1", "0-1", "1-0", "0,1", "0-100000000", "-1",
                                  "0-", "2", "0,0"]), VALUE)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` 4 times in 5: a case of several options is then often valid as a whole,
    so the plan and the bounds are exercised, not only the first refusal."""
    return st.integers(0, 4).flatmap(lambda i: good if i else bad)


def numbers(lo: float, hi: float) -> st.SearchStrategy[str]:
    return st.floats(min_value=lo, max_value=hi).map(lambda v: f"{v:g}")


LEVELS = st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=5,
                  unique=True).map(lambda xs: ",".join(map(str, xs)))
CPU_SETS = st.sampled_from(sorted(os.sched_getaffinity(0))).map(str)
OPTIONS: dict[str, st.SearchStrategy[str]] = {
    "--scenario": mostly(st.sampled_from(scenarios.available()), st.one_of(MARKUP, TEXT)),
    "--servers": mostly(st.sampled_from(["uvicorn", "gunicorn-sync,uvicorn", "granian-wsgi",
                                         "hypercorn,granian-asgi"]),
                        st.one_of(st.just("uvicorn,uvicorn"), MARKUP, TEXT)),
    "--users": mostly(LEVELS, st.one_of(LISTS, VALUE, st.just("10,10"))),
    "--duration": mostly(numbers(0.5, 3600), st.one_of(FLOATS, NUMBER_WORDS)),
    "--warmup": mostly(numbers(0, 600), st.one_of(FLOATS, NUMBER_WORDS)),
    "--repeats": mostly(st.integers(1, 50).map(str), st.one_of(INTS, NUMBER_WORDS)),
    "--workers": mostly(st.integers(1, 8).map(str), st.one_of(INTS, NUMBER_WORDS)),
    "--load-processes": mostly(st.integers(1, 8).map(str), st.one_of(INTS, NUMBER_WORDS)),
    "--param": mostly(st.sampled_from(["latency_ms=5", "latency_ms=0", "hold_s=1.5",
                                       "iterations=100", "messages=3"]),
                      st.one_of(st.sampled_from(["latency_ms=nan", "hold_s=inf", "[/]=5",
                                                 "=", "latency_ms=99999"]),
                                st.tuples(TEXT, VALUE).map("=".join))),
    "--server-cpus": mostly(CPU_SETS, CPUS),
    "--load-cpus": mostly(CPU_SETS, CPUS),
    "--arrival-rate": mostly(st.lists(st.integers(1, 5000), min_size=1, max_size=4,
                                      unique=True).map(lambda xs: ",".join(map(str, xs))),
                             st.one_of(LISTS, FLOATS.map(str), VALUE, st.just("5,5.0"))),
    "--backend": mostly(st.just("local"), st.sampled_from(["kubernetes", "", "[red]x"])),
    "--exceed-limits": st.just(""),
}
ARGS = st.lists(st.sampled_from(sorted(set(OPTIONS) - {"--scenario"})).flatmap(
    lambda name: OPTIONS[name].map(lambda value: (name, value))), max_size=6)


@FUZZ
@given(pairs=ARGS, scenario=OPTIONS["--scenario"], named=mostly(st.just("y"), st.just("")))
@pytest.mark.slow
def test_fuzz_run_arguments(pairs: list[tuple[str, str]], scenario: str, named: str,
                            capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    CASES["run arguments"] = CASES.get("run arguments", 0) + 1
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        args = ["run", "--dry-run", "--results-dir", str(results)]
        if named:
            args += ["--scenario", scenario]
        for name, value in pairs:
            args += [name] if name == "--exceed-limits" else [name, value]
        affinity = os.sched_getaffinity(0)
        code, out, err = bench(capsys, monkeypatch, *args)
        check(code, out, err, results=results, affinity=affinity)
        OUTCOMES[f"run exit {code}"] = OUTCOMES.get(f"run exit {code}", 0) + 1
        if code == 0:
            assert "dry run: nothing started" in out


# --- (b) scenario files -------------------------------------------------------------------


def toml_value(value: Any) -> str:
    """``value`` as TOML (the inverse of tomllib for the types generated here)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for these characters
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(), st.booleans(),
    st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=12), MARKUP)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["a", "type", "min", "x"]),
                                                 inner, max_size=3)), max_leaves=8)
FIELDS = {
    "protocol": ("", "protocol"), "path": ("request", "path"), "method": ("request", "method"),
    "users": ("load", "users"), "warmup_s": ("load", "warmup_s"),
    "duration_s": ("load", "duration_s"), "repeats": ("load", "repeats"),
    "p99_ms": ("slo", "p99_ms"), "slo_error": ("slo", "max_error_rate"),
    "max_error_rate": ("validity", "max_error_rate"),
    "gen_cpu": ("validity", "max_generator_cpu_percent"), "name": ("", "name"),
    "bogus": ("load", "bogus"),
}
PLAUSIBLE = st.one_of(
    st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=6, unique=True),
    st.floats(min_value=0.01, max_value=1000), st.integers(1, 10), st.just("/io"),
    st.sampled_from(["http", "sse", "websocket", "GET", "fuzz"]))
FIELD_VALUES = st.one_of(
    PLAUSIBLE, PLAUSIBLE, PLAUSIBLE, VALUES,
    st.lists(st.integers(min_value=-3, max_value=10**9), max_size=8),
    st.sampled_from([[10, 10], list(range(1, 2000)), [1.5], [], [True], "/x?y=[/]"]))


def base_scenario(name: str) -> dict[str, Any]:
    return {"name": name, "protocol": "http",
            "request": {"path": "/io"},
            "params": {"latency_ms": {"type": "int", "default": 5, "min": 0, "max": 100}},
            "load": {"users": [4], "warmup_s": 0.5, "duration_s": 1.0, "repeats": 1},
            "slo": {"p99_ms": 100, "max_error_rate": 0.01},
            "validity": {"max_error_rate": 0.05, "max_generator_cpu_percent": 90}}


def scenario_text(data: dict[str, Any]) -> str:
    top = [f"{k} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [f"{k} = {toml_value(v)}" for k, v in data.items() if isinstance(v, dict)]
    return "\n".join(top + tables) + "\n"


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(sorted(FIELDS)), FIELD_VALUES, max_size=3),
       param=mostly(st.just({}), st.dictionaries(
           st.sampled_from(["type", "default", "min", "max", "unit"]), VALUES, max_size=2)),
       mangle=mostly(st.none(), st.tuples(st.integers(0, 400), TEXT)))
@pytest.mark.slow
def test_fuzz_scenario_files(changes: dict[str, Any], param: dict[str, Any],
                             mangle: tuple[int, str] | None,
                             capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    CASES["scenario files"] = CASES.get("scenario files", 0) + 1
    with tempfile.TemporaryDirectory() as tmp:
        data = base_scenario("fuzz")
        for field, value in changes.items():
            table, key = FIELDS[field]
            (data if not table else data[table])[key] = value
        data["params"]["latency_ms"].update(param)
        text = scenario_text(data)
        if mangle is not None:  # an edit anywhere: a broken or merely odd file
            at, insert = mangle
            text = text[:at] + insert + text[at:]
        path = Path(tmp) / "fuzz.toml"
        path.write_text(text, encoding="utf-8")
        try:  # the library function: a Scenario or UserError, nothing else
            scenarios.load(str(path))
        except UserError:
            pass
        results = Path(tmp) / "results"
        code, out, err = bench(capsys, monkeypatch, "run", "--dry-run", "--results-dir",
                               str(results), "--scenario", str(path), "--servers", "uvicorn")
        check(code, out, err, results=results)
        OUTCOMES[f"scenario exit {code}"] = OUTCOMES.get(f"scenario exit {code}", 0) + 1


def test_the_generated_base_scenario_is_valid(tmp_path: Path) -> None:
    """Guards the fuzzing above: unmutated, the generated file loads (so mutations are
    what the cases vary) and equals the hand-written one of test_cli_input."""
    path = tmp_path / "fuzz.toml"
    path.write_text(scenario_text(base_scenario("fuzz")))
    generated = scenarios.load(str(path))
    (tmp_path / "b").mkdir()
    path.with_name("b").joinpath("fuzz.toml").write_text(
        SCENARIO.format(name="fuzz", users="[4]", warmup="0.5", duration="1"))
    assert generated.users == (4,) and generated.duration_s == 1.0
    assert scenarios.load(str(tmp_path / "b" / "fuzz.toml")).users == generated.users


# --- (c) stored runs ----------------------------------------------------------------------

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(TEXT, inner, max_size=4)), max_leaves=10)
META_KEYS = st.sampled_from(["schema_version", "run_id", "scenario", "machine", "git",
                             "status", "started_at", "trials", "servers", "cpus", "command",
                             "backend", "load_mode"])
CELL = st.one_of(st.sampled_from(["", "nan", "ok", "failed", "1", "-1", "1e400", "inf",
                                  "uvicorn", '"', "a,b", "[/]"]), INTS, FLOATS, TEXT)
NUMBER_CELL = mostly(st.one_of(st.integers(-5, 10**6).map(str),
                               st.floats(allow_nan=True, allow_infinity=True).map(repr),
                               st.just("")), CELL)
TEXT_CELL = mostly(st.sampled_from(["ok", "invalid", "failed", "unsupported", "uvicorn",
                                    "io-heavy", "wsgi", "closed-loop", "[red]x", ""]), CELL)
COLUMNS = st.sampled_from(list(TRIAL_COLUMNS))
SHAPED = {  # run.json keys with a value of the right JSON type but odd content
    "scenario": st.dictionaries(st.sampled_from(["name", "protocol", "request_path", "params",
                                                 "slo", "users", "duration_s", "warmup_s"]),
                                JSON, max_size=5),
    "machine": st.dictionaries(st.sampled_from(["cpu_model", "logical_cpus", "memory_gib"]),
                               JSON, max_size=3),
    "git": st.dictionaries(st.sampled_from(["commit", "dirty"]), JSON, max_size=2),
    "cpus": st.dictionaries(st.sampled_from(["server", "load", "shared"]), JSON, max_size=3),
    "servers": st.lists(st.dictionaries(st.sampled_from(["name", "argv", "workers"]), JSON,
                                        max_size=3), max_size=2),
    "started_at": st.one_of(TEXT, st.just("2026-13-45T99:00:00Z")),
    "run_id": st.one_of(TEXT, MARKUP),
    "status": st.one_of(TEXT, MARKUP),
    "trials": st.lists(st.dictionaries(COLUMNS, JSON, max_size=4), max_size=3),
}


@st.composite
def damage(draw: st.DrawFn) -> tuple[str, bytes | dict[str, Any]]:
    """One damaged file of a run: ("run.json" | "trials.csv" | "samples.csv", new content)."""
    kind = draw(st.sampled_from(["meta-value", "meta-key", "meta-shaped", "meta-shaped",
                                 "bytes", "trials", "trials", "samples"]))
    if kind == "meta-shaped":
        key = draw(st.sampled_from(sorted(SHAPED)))
        return "run.json", {key: draw(SHAPED[key])}
    if kind == "meta-value":
        return "run.json", json.dumps(draw(JSON)).encode()
    if kind == "meta-key":
        return "run.json", {draw(META_KEYS): draw(JSON)}
    if kind == "bytes":
        return draw(st.sampled_from(["run.json", "trials.csv", "samples.csv"])), draw(
            st.binary(max_size=200))
    if kind == "trials":
        keep = draw(st.lists(COLUMNS, min_size=1, max_size=12, unique=True))
        must = ["trial_id", "scenario", "server", "users", "repeat", "status"]
        header = list(dict.fromkeys([*must, *keep])) if draw(st.booleans()) else keep
        rows = [[draw(TEXT_CELL if c in TEXT_TRIAL_COLUMNS else NUMBER_CELL) for c in header]
                for _ in range(draw(st.integers(0, 4)))]
        lines = [",".join(header)] + [",".join(c.replace("\n", " ") for c in r) for r in rows]
        return "trials.csv", ("\n".join(lines) + "\n").encode("utf-8", "replace")
    columns = draw(st.lists(st.sampled_from(["t_s", "source", "server", "pss_mib", "users",
                                             "x"]), min_size=1, max_size=5, unique=True))
    rows = draw(st.lists(st.lists(CELL, min_size=len(columns), max_size=len(columns)),
                         max_size=3))
    lines = [",".join(columns)] + [",".join(c.replace("\n", " ") for c in r) for r in rows]
    return "samples.csv", ("\n".join(lines) + "\n").encode("utf-8", "replace")


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("good"), 1, [100.0, 101.0, 99.0])


def damaged_copy(good: Path, tmp: Path, what: tuple[str, bytes | dict[str, Any]]) -> Path:
    run_dir = tmp / "run"
    shutil.copytree(good, run_dir)
    name, content = what
    if isinstance(content, dict):
        meta = json.loads((run_dir / "run.json").read_text())
        meta.update(content)
        content = json.dumps(meta).encode()
    (run_dir / name).write_bytes(content)
    return run_dir


@settings(FUZZ, max_examples=120)
@given(what=damage())
@pytest.mark.slow
def test_fuzz_damaged_runs_compare_and_export(what: tuple[str, bytes | dict[str, Any]],
                                              good_run: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    CASES["damaged runs: compare, export"] = CASES.get("damaged runs: compare, export", 0) + 1
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = damaged_copy(good_run, Path(tmp), what)
        code, out, err = bench(capsys, monkeypatch, "export", str(run_dir), "--format",
                               "csv-history", "-o", str(Path(tmp) / "h.csv"))
        check(code, out, err)
        OUTCOMES[f"export exit {code}"] = OUTCOMES.get(f"export exit {code}", 0) + 1
        if code == 2 and "damaged" in err and what[0] != "run.json":
            return  # refused by load_run, which compare calls too (tests/e2e/test_damaged_runs.py)
        code, out, err = bench(capsys, monkeypatch, "compare", str(good_run), str(run_dir),
                               "--no-fail-on-regression", "--json-out",
                               str(Path(tmp) / "c.json"))
        check(code, out, err)
        OUTCOMES[f"compare exit {code}"] = OUTCOMES.get(f"compare exit {code}", 0) + 1


@settings(FUZZ, max_examples=20)
@given(what=damage())
@pytest.mark.slow
def test_fuzz_damaged_runs_report(what: tuple[str, bytes | dict[str, Any]], good_run: Path,
                                  capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    CASES["damaged runs: report"] = CASES.get("damaged runs: report", 0) + 1
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = damaged_copy(good_run, Path(tmp), what)
        code, out, err = bench(capsys, monkeypatch, "report", str(run_dir), "-o",
                               str(Path(tmp) / "r.html"))
        check(code, out, err)
        OUTCOMES[f"report exit {code}"] = OUTCOMES.get(f"report exit {code}", 0) + 1
