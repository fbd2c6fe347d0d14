"""A real run across apps and servers: WebSocket echo with the raw apps, Flask, Django and
Starlette under gunicorn-sync and uvicorn (real servers, real locust). Every compatible
(server, app) pair is a row; what cannot serve WebSocket is ``unsupported`` with its
reason; ``app`` and ``framework_version`` are in trials.csv, capacity.csv and run.json;
the report leads with the stack matrix and the framework overhead."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from tests.support import real_run, report_of, tables

APPS = "raw,flask,django,starlette"
ROWS = {  # trial id -> (server, app, status, what the reason says)
    "gunicorn-sync-l1-u4-r1": ("gunicorn-sync", "raw", "unsupported", "404"),
    "gunicorn-sync+flask-l1-u4-r1": ("gunicorn-sync", "flask", "unsupported",
                                     "WSGI cannot hand a connection over to a WebSocket"),
    "gunicorn-sync+django-l1-u4-r1": ("gunicorn-sync", "django", "unsupported",
                                      "Django has no WebSocket without Channels"),
    "uvicorn-l1-u4-r1": ("uvicorn", "raw", "ok", ""),
    "uvicorn+django-l1-u4-r1": ("uvicorn", "django", "unsupported",
                                "Django has no WebSocket without Channels"),
    "uvicorn+starlette-l1-u4-r1": ("uvicorn", "starlette", "ok", ""),
}


@pytest.fixture(scope="module")
def stacks_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_run(tmp_path_factory.mktemp("stacks"), "--scenario", "websocket-echo",
                    "--apps", APPS, "--servers", "gunicorn-sync,uvicorn", "--users", "4",
                    "--workers", "1", "--param", "hold_s=0.5", "--warmup", "1",
                    "--duration", "1", timeout=240, statuses=("ok", "unsupported"))


@pytest.mark.slow
def test_every_pair_is_a_row_with_its_app_and_reason(stacks_run: Path) -> None:
    trials = pd.read_csv(stacks_run / "trials.csv", dtype={"reason": str,
                                                           "framework_version": str})
    assert list(trials.columns[-2:]) == ["app", "framework_version"]
    rows = trials.set_index("trial_id")
    assert set(rows.index) == set(ROWS)
    for trial, (server, app, status, reason) in ROWS.items():
        row = rows.loc[trial]
        assert (row["server"], row["app"], row["status"]) == (server, app, status), trial
        assert reason in str(row["reason"]) if reason else pd.isna(row["reason"]), trial
    assert rows.loc["uvicorn+starlette-l1-u4-r1", "framework_version"] == \
        metadata.version("starlette")
    assert pd.isna(rows.loc["uvicorn-l1-u4-r1", "framework_version"])  # raw: no framework
    assert rows.loc["uvicorn+starlette-l1-u4-r1", "messages_per_s"] > 0
    # an app that cannot serve the workload starts no server; the raw WSGI probe does
    logs = {p.name for p in (stacks_run / "logs").glob("server-*.log")}
    assert logs == {"server-gunicorn-sync-r1.log", "server-uvicorn-r1.log",
                    "server-uvicorn+starlette-r1.log"}


def test_capacity_and_run_json_name_the_app(stacks_run: Path) -> None:
    capacity = pd.read_csv(stacks_run / "capacity.csv", dtype={"framework_version": str})
    assert {"app", "framework_version"} <= set(capacity.columns)
    pairs = set(zip(capacity["server"], capacity["app"], strict=True))
    assert pairs == {(s, a) for s, a, _, _ in ROWS.values()}
    starlette = capacity[capacity["app"] == "starlette"].iloc[0]
    assert starlette["sustainable_rps"] > 0
    meta = json.loads((stacks_run / "run.json").read_text())
    assert {t["app"] for t in meta["trials"]} == set(APPS.split(","))
    assert [s["name"] for s in meta["stacks"]] == [
        "gunicorn-sync", "gunicorn-sync+flask", "gunicorn-sync+django", "uvicorn",
        "uvicorn+django", "uvicorn+starlette"]
    apps = {a["name"]: a for a in meta["apps"]}
    assert apps["django"]["framework_version"] == metadata.version("django")
    assert apps["django"]["interfaces"] == ["wsgi", "asgi"]
    starlette_stack = next(s for s in meta["stacks"] if s["name"] == "uvicorn+starlette")
    assert "harness.apps.frameworks.starlette_app:app" in starlette_stack["argv"]


def test_report_leads_with_the_stack_matrix_and_overhead(stacks_run: Path) -> None:
    page = report_of(stacks_run).read_text(encoding="utf-8")
    assert page.index("Stack matrix") < page.index("<h3>Setup</h3>")
    assert page.index('<ul class="verdict">') < page.index("Stack matrix")
    found = tables(page)
    matrix = {r["app"][0]: r for r in found["stacks-run0"]}
    assert list(matrix) == ["raw", "flask", "django", "starlette"]
    assert matrix["flask"]["uvicorn (ASGI)"][0] == "– (not ASGI)"
    assert matrix["starlette"]["gunicorn-sync (WSGI)"][0] == "– (not WSGI)"
    assert matrix["django"]["uvicorn (ASGI)"][0].startswith("unsupported: Django has no")
    assert matrix["raw"]["gunicorn-sync (WSGI)"][0].startswith("unsupported")
    assert float(matrix["starlette"]["uvicorn (ASGI)"][1] or "nan") > 0
    (overhead,) = [r for r in found["overhead-run0"] if r["app"][0] == "starlette"]
    assert overhead["server config"][0] == "uvicorn"
    assert 0 < float(overhead["× raw"][1] or "nan") < 2
    assert 'id="run0-overhead"' in page
