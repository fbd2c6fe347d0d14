"""The app axis on the command line: ``K:V`` / ``K=V`` items as ``--header`` and ``--env``
give them, which of ``--scenario`` / ``--app`` and their options go together (each wrong
mix one :class:`UserError` naming the option), and ``bench list apps --json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import scenarios, stacks
from harness.cli_apps import pairs, run_scenario
from harness.errors import UserError
from tests.support import SCENARIO, bench_here

#: The own-app options of ``bench run`` as typer hands them over when none is given.
NO_APP_OPTIONS: dict[str, Any] = {
    "interface": None, "path": None, "method": "GET", "headers": {}, "body_file": None,
    "app_dir": None, "env": {}, "expect_status": None, "expect_body_file": None,
    "expect_contains": None}


def test_headers_are_stripped_and_environment_values_kept_as_typed() -> None:
    assert pairs(["X-Team:  perf ", "Accept:a:b"], ":", "--header") == \
        {"X-Team": "perf", "Accept": "a:b"}
    assert pairs([" GREETING= hi there ", "URL=a=b"], "=", "--env") == \
        {"GREETING": " hi there ", "URL": "a=b"}
    assert pairs(None, ":", "--header") == {}
    for item, sep, option in (("nocolon", ":", "--header"), (" :v", ":", "--header"),
                              ("=x", "=", "--env"), ("NAME", "=", "--env")):
        with pytest.raises(UserError) as info:
            pairs([item], sep, option)
        assert str(info.value) == f"{option} {item!r}: expected K{sep}V"


def test_a_shipped_scenario_takes_its_params_and_no_app_option() -> None:
    sc = run_scenario("io-heavy", None, {"latency_ms": "7"}, None, NO_APP_OPTIONS)
    assert sc.name == "io-heavy" and sc.request_path == "/io?latency_ms=7" and sc.app is None
    with pytest.raises(UserError, match=r"^Missing option '--scenario' \(or --app "):
        run_scenario(None, None, {}, None, NO_APP_OPTIONS)
    for key, value, option in (("interface", "asgi", "--interface"), ("method", "POST", "--method"),
                               ("env", {"A": "1"}, "--env"),
                               ("expect_status", 201, "--expect-status")):
        with pytest.raises(UserError, match=f"^{option} is for --app PKG.MODULE:ATTR$"):
            run_scenario("io-heavy", None, {}, None, {**NO_APP_OPTIONS, key: value})


def test_an_own_app_takes_no_param_nor_apps(tmp_path: Path) -> None:
    options = {**NO_APP_OPTIONS, "interface": "wsgi", "path": "/items?id=1",
               "app_dir": str(tmp_path)}
    sc = run_scenario(None, "mysite.wsgi:application", {}, None, options)
    assert sc.app is not None and sc.app.target == "mysite.wsgi:application"
    assert sc.app.interface == "wsgi" and sc.request_path == "/items?id=1"
    with pytest.raises(UserError, match="^--param does not apply to --app$"):
        run_scenario(None, "mysite.wsgi:application", {"latency_ms": "5"}, None, options)
    with pytest.raises(UserError, match="^--apps does not apply to --app$"):
        run_scenario(None, "mysite.wsgi:application", {}, "flask", options)


def test_a_scenario_file_with_its_own_app_refuses_apps(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(SCENARIO.format(name="mine", users="[2]", warmup=0.5, duration=1)
                    + '[app]\ntarget = "hello_app:app"\ninterface = "asgi"\n')
    sc = run_scenario(str(path), None, {}, None, NO_APP_OPTIONS)
    assert sc.app is not None and sc.app.app_dir == tmp_path.resolve()
    with pytest.raises(UserError, match="^--apps: scenario mine benchmarks an app of its own"):
        run_scenario(str(path), None, {}, "flask", NO_APP_OPTIONS)


def test_list_apps_json_splits_the_scenarios_into_served_and_unsupported(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = bench_here(capsys, monkeypatch, "list", "apps", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["bench_json"] == 1 and doc["command"] == "list apps"
    shipped = set(scenarios.available())
    apps = {a["name"]: a for a in doc["apps"]}
    assert list(apps) == list(stacks.APPS)
    for name, a in apps.items():
        served, refused = set(a["workloads"]), set(a["unsupported"])
        assert served | refused == shipped and not served & refused, name
        assert all(reason.strip() for reason in a["unsupported"].values())
        assert set(a["interfaces"]) == set(a["targets"]) <= {"wsgi", "asgi"}
        if a["interfaces"] == ["wsgi"]:  # WSGI cannot hand a connection to a WebSocket
            assert "websocket-echo" in refused, name
    assert apps["raw"]["workloads"] == sorted(shipped) and apps["raw"]["version"] is None
