"""harness.scenarios.own: a user's app from the command line (``own_app``: defaults for load
and SLO, file names relative to ``base``, each bad value one UserError naming the option it
came from) and from a scenario file (the ``[app]`` / ``[expect]`` tables, files relative to
the scenario's folder, the tables that belong to an own app only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.errors import UserError
from harness.scenarios import parse
from harness.scenarios.own import OWN_APP_DEFAULTS, OWN_APP_SCENARIO, Expect, own_app
from tests.support import SCENARIO


def cli_app(base: Path, **options: Any) -> Any:
    """``bench run --app mysite.wsgi:application --interface wsgi --path /items`` + options."""
    given: dict[str, Any] = {"target": "mysite.wsgi:application", "interface": "wsgi",
                             "path": "/items?id=1", **options}
    return own_app(base=base, **given)


def test_the_command_line_app_gets_the_defaults_and_its_files(tmp_path: Path) -> None:
    (tmp_path / "req").mkdir()
    (tmp_path / "req" / "body.json").write_bytes(b'{"id": 1}')
    sc = cli_app(tmp_path, method="post", headers={"X-Team": "perf"}, body_file="req/body.json",
                 env={"DJANGO_SETTINGS_MODULE": "mysite.settings"}, expect_contains="ok")
    assert sc.name == OWN_APP_SCENARIO == "own-app" and sc.protocol == "http"
    assert (sc.method, sc.request_path, sc.body) == ("POST", "/items?id=1", b'{"id": 1}')
    assert dict(sc.headers) == {"X-Team": "perf"}
    assert sc.app.app_dir == tmp_path.resolve()  # default "." of base
    assert dict(sc.app.env) == {"DJANGO_SETTINGS_MODULE": "mysite.settings"}
    assert sc.expect == Expect(contains=b"ok") and sc.expect.given
    load = OWN_APP_DEFAULTS["load"]
    assert list(sc.users) == load["users"] and sc.duration_s == load["duration_s"]
    assert sc.steady and sc.max_warmup_s == load["max_warmup_s"]
    assert sc.slo_p99_ms == OWN_APP_DEFAULTS["slo"]["p99_ms"]
    assert not Expect().given


@pytest.mark.parametrize(("options", "message"), [
    ({"target": "mysite"}, "--app must be 'package.module:attribute', got 'mysite'"),
    ({"target": "a:b:c"}, "--app must be 'package.module:attribute', got 'a:b:c'"),
    ({"target": ":app"}, "--app must be 'package.module:attribute', got ':app'"),
    ({"interface": "rsgi"}, "--interface must be wsgi or asgi, got 'rsgi'"),
    ({"interface": None}, "--app needs --interface wsgi or asgi"),
    ({"path": None}, "--app needs --path"),
    ({"method": "fetch"}, "--method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    ({"expect_status": 99}, "--expect-status must be an HTTP status (100-599), got 99"),
    ({"expect_status": 600}, "--expect-status must be an HTTP status (100-599), got 600"),
    ({"expect_contains": ""}, "--expect-contains must be a non-empty string"),
    ({"expect_body_file": "b.txt", "expect_contains": "x"},
     "--expect-body-file and --expect-contains exclude each other"),
    ({"body_file": "missing.json"}, "--body-file {base}/missing.json: cannot read (No such file"),
    ({"app_dir": "nowhere"}, "--app-dir {base}/nowhere: no such folder"),
])
def test_a_bad_option_is_one_error_naming_it(options: dict[str, Any], message: str,
                                             tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("body")
    with pytest.raises(UserError) as info:
        cli_app(tmp_path, **options)
    assert str(info.value).startswith(message.format(base=tmp_path.resolve()))


def scenario_file(folder: Path, extra: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mine.toml"
    path.write_text(SCENARIO.format(name="mine", users="[2]", warmup=0.5, duration=1) + extra)
    return path


def test_files_of_a_scenario_are_relative_to_its_folder(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "perf"
    (folder / "app").mkdir(parents=True)
    (folder / "payload.bin").write_bytes(b"\x00\x01")
    (folder / "expected.txt").write_bytes(b"done")
    path = scenario_file(folder, '[app]\ntarget = "hello:app"\ninterface = "asgi"\n'
                         'app_dir = "app"\nname = "hello"\n[app.env]\nMODE = "bench"\n'
                         '[expect]\nstatus = 201\nbody_file = "expected.txt"\n')
    path.write_text(path.read_text().replace('path = "/io"', 'path = "/io"\n'
                                             'body_file = "payload.bin"\n'
                                             'headers = { "X-Team" = "perf" }'))
    monkeypatch.chdir(tmp_path)  # not the scenario's folder
    sc = parse(path)
    assert sc.app is not None and sc.app.app_dir == (folder / "app").resolve()
    assert (sc.app.target, sc.app.interface, sc.app.name) == ("hello:app", "asgi", "hello")
    assert dict(sc.app.env) == {"MODE": "bench"} and sc.body == b"\x00\x01"
    assert sc.expect == Expect(status=201, body=b"done") and dict(sc.headers) == {"X-Team": "perf"}
    with pytest.raises(TypeError):
        sc.app.env["MODE"] = "other"  # type: ignore[index]


@pytest.mark.parametrize(("extra", "message"), [
    ('[expect]\nstatus = 200\n', ("[expect], [request].headers and body_file are for a scenario "
     "with an [app] table (an app of your own)")),
    ('[app]\ntarget = "hello:app"\ninterface = "asgi"\nport = 8000\n',
     "[app] has unknown key(s): port"),
    ('[app]\ntarget = "hello:app"\ninterface = "asgi"\n[expect]\nstatus = true\n',
     "[expect].status must be an HTTP status (100-599), got True"),
    ('[app]\ntarget = "hello:app"\ninterface = "asgi"\n[app.env]\nWORKERS = 4\n',
     "[app].env must be a table of strings"),
])
def test_a_scenario_file_with_bad_own_app_tables_is_refused(
        extra: str, message: str, tmp_path: Path) -> None:
    path = scenario_file(tmp_path, extra)
    with pytest.raises(UserError) as info:
        parse(path)
    assert str(info.value) == f"{path}: {message}"


def test_an_own_app_is_request_response_http(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, '[app]\ntarget = "hello:app"\ninterface = "asgi"\n')
    path.write_text(path.read_text().replace('protocol = "http"', 'protocol = "sse"'))
    with pytest.raises(UserError, match=r'an \[app\] scenario is request/response HTTP'):
        parse(path)
