"""Bring your own app: a Django project made with ``django-admin startproject`` plus one
view, and a small Starlette app written here, each benchmarked unmodified (real servers,
real locust) under two servers; the same as a scenario file with an ``[app]`` table; and
the mistakes a user makes (a wrong expected status, a module that does not import, a path
that answers 404) refused with one line and exit 2, before any load, leaving no process
and no run folder behind."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.procs import run
from tests.conftest import project_processes
from tests.support import bench, only_run

STARLETTE_APP = '''
import os

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    who = request.query_params.get("who", "world")
    return PlainTextResponse(f"{os.environ['GREETING']} {who} {request.headers['x-team']}")

app = Starlette(routes=[Route("/hello", hello)])
'''
DJANGO_VIEW = '''

from django.http import JsonResponse


def hello(request):
    return JsonResponse({"hello": request.GET.get("who", "world")})


urlpatterns += [path("hello", hello)]
'''
SHORT = ("--users", "2", "--duration", "1", "--warmup", "0.3")


def _measured(run_dir: Path, servers: set[str], app: str) -> pd.DataFrame:
    """The run's trials, checked: one per server, the app's, measured (a busy machine may
    make one invalid, never failed), every response a success."""
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"reason": str})
    assert set(trials["server"]) == servers and set(trials["app"]) == {app}
    assert (trials["status"] != "failed").all(), trials[["status", "reason"]]
    assert (trials["throughput_rps"] > 0).all() and (trials["failures"] == 0).all()
    return trials


@pytest.mark.alone
@pytest.mark.slow
def test_a_django_project_unmodified_under_two_servers(tmp_path: Path) -> None:
    made = run([sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)],
               timeout_s=60)
    assert made.returncode == 0, made.stderr
    with open(tmp_path / "mysite" / "urls.py", "a", encoding="utf-8") as urls:
        urls.write(DJANGO_VIEW)
    r = bench("run", "--app", "mysite.wsgi:application", "--interface", "wsgi",
              "--app-dir", str(tmp_path), "--path", "/hello?who=bench",
              "--servers", "gunicorn-sync,gunicorn-gthread", *SHORT,
              "--results-dir", str(tmp_path / "results"), "--report", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = only_run(tmp_path / "results")
    _measured(run_dir, {"gunicorn-sync", "gunicorn-gthread"}, "mysite")
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["scenario"]["app"]["target"] == "mysite.wsgi:application"
    assert meta["scenario"]["app"]["app_dir"] == str(tmp_path)
    assert "gunicorn-sync+mysite" in (tmp_path / "r.html").read_text()


@pytest.mark.alone
@pytest.mark.slow
def test_a_starlette_app_from_a_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "hello_app.py").write_text(STARLETTE_APP)
    (tmp_path / "hello.toml").write_text('''
[app]
target = "hello_app:app"
interface = "asgi"
env = { GREETING = "hi" }

[request]
path = "/hello?who=ci"
headers = { X-Team = "perf" }

[expect]
status = 200
contains = "hi ci perf"

[load]
users = [2]
warmup_s = 0.3
duration_s = 1
repeats = 1

[slo]
p99_ms = 100
max_error_rate = 0.01

[validity]
max_error_rate = 0.01
max_generator_cpu_percent = 90
''')
    r = bench("run", "--scenario", str(tmp_path / "hello.toml"), "--servers", "uvicorn,hypercorn",
              "--results-dir", str(tmp_path / "results"), "--no-report")
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = only_run(tmp_path / "results")
    trials = _measured(run_dir, {"uvicorn", "hypercorn"}, "hello_app")
    assert list(trials["trial_id"]) == ["uvicorn+hello_app-l1-u2-r1",
                                        "hypercorn+hello_app-l1-u2-r1"]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["scenario"]["expect"] == {"status": 200, "body_bytes": None,
                                          "contains": "hi ci perf"}
    assert meta["scenario"]["headers"] == ["X-Team"]
    assert meta["scenario"]["app"]["env"] == ["GREETING"]  # names only, never values


@pytest.mark.parametrize(("args", "message"), [
    (("--expect-status", "201"), "answered 200 OK, expected 201 Created (--expect-status)"),
    (("--expect-contains", "bye"), "answered a body without b'bye' (--expect-contains)"),
    (("--app", "nosuch_module:app"),
     "uvicorn could not serve it: Error loading ASGI app. Could not import module"),
    (("--app", "hello_app:nope"), 'Attribute "nope" not found in module "hello_app"'),
    (("--path", "/nothere"), "GET /nothere under uvicorn answered 404 Not Found; check --path"),
], ids=["wrong-status", "wrong-body", "no-module", "no-attribute", "404"])
@pytest.mark.slow
def test_a_mistake_is_one_line_and_exit_2_before_any_load(args: tuple[str, ...], message: str,
                                                          tmp_path: Path) -> None:
    (tmp_path / "hello_app.py").write_text(STARLETTE_APP)
    given = {"--app": "hello_app:app", "--path": "/hello",
             **dict(zip(args[::2], args[1::2], strict=True))}
    r = bench("run", *[x for kv in given.items() for x in kv], "--interface", "asgi",
              "--app-dir", str(tmp_path), "--env", "GREETING=hi", "--header", "X-Team: perf",
              "--servers", "uvicorn", *SHORT, "--results-dir", str(tmp_path / "results"))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: app "), r.stderr
    assert message in lines[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "results").exists()  # nothing created
    left = [p.cmdline() for p in project_processes() if "hello_app" in " ".join(p.cmdline())]
    assert not left


@pytest.mark.parametrize(("args", "message"), [
    (("--app", "x:app"), "--app needs --interface wsgi or asgi"),
    (("--app", "x:app", "--interface", "asgi"), "--app needs --path"),
    (("--app", "x", "--interface", "asgi", "--path", "/"), "--app must be 'package.module"),
    (("--app", "x:app", "--interface", "asgi", "--path", "/", "--scenario", "io-heavy"),
     "--app and --scenario exclude each other"),
    (("--scenario", "io-heavy", "--path", "/x"), "--path is for --app"),
    (("--app", "x:app", "--interface", "asgi", "--path", "/", "--header", "nocolon"),
     "--header 'nocolon': expected K:V"),
    (("--app", "x:app", "--interface", "asgi", "--path", "/", "--app-dir", "/no/such"),
     "--app-dir /no/such: no such folder"),
])
@pytest.mark.slow
def test_bad_app_options_get_one_line(args: tuple[str, ...], message: str) -> None:
    r = bench("run", *args, "--dry-run")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and message in r.stderr
