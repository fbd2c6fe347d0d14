"""harness.ownapp: which line of a server's output says why it could not serve an app, the
preflight of a user's app under a real uvicorn (its answer returned, a 500 refused with the
app's own exception line, nothing left running), and what the load then checks each
response against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.errors import UserError
from harness.ownapp import own_load_checks, preflight, why_not_served
from harness.plan import RunPlan
from harness.scenarios.own import own_app
from harness.servers import SERVERS
from harness.stacks import Stack, own_app_spec
from harness.verify import Answer

APP = '''\
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/boom":
        raise ValueError("no database configured")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello " + scope["path"].encode()})
'''


def own_plan(folder: Path, path: str = "/x", *, stack: bool = True,
             own_answer: Answer | None = None, **options: Any) -> RunPlan:
    """A plan serving ``myapp:app`` from ``folder`` under uvicorn (its own-app stack only
    with ``stack``: the preflight needs it, the load checks do not)."""
    (folder / "myapp.py").write_text(APP)
    sc = own_app(target="myapp:app", interface="asgi", path=path, app_dir=str(folder),
                 base=folder, **options)
    assert sc.app is not None
    uvicorn = SERVERS["uvicorn"]
    stacks = (Stack(uvicorn, own_app_spec(sc.app, sc.request_path)),) if stack else ()
    return RunPlan(scenario=sc, servers=[uvicorn], users=(1,), warmup_s=0.0, duration_s=1.0,
                   repeats=1, workers=1, server_cpus=[0], load_cpus=[1], results_dir=folder,
                   stacks=stacks, own_answer=own_answer)


@pytest.mark.parametrize(("log", "reason"), [
    ("[INFO] Starting gunicorn\nFailed to find attribute 'app' in 'mysite'.\n[INFO] Shutting down",
     "Failed to find attribute 'app' in 'mysite'."),
    ('ERROR:    Error loading ASGI app. Could not import module "nosuch".',
     'Error loading ASGI app. Could not import module "nosuch".'),
    (("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
     "ModuleNotFoundError: No module named 'mysite'\n"),
     "ModuleNotFoundError: No module named 'mysite'"),
    ("KeyError: 'first'\nTraceback ...\nsettings.ConfigError: SECRET_KEY missing\n\n",
     "settings.ConfigError: SECRET_KEY missing"),
    (("Traceback ...\ndjango.core.exceptions.ImproperlyConfigured: The SECRET_KEY setting must "
      "not be empty.\n[2026-11-30] [ERROR] Exception in worker process\n"
      "gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>"),
     "django.core.exceptions.ImproperlyConfigured: The SECRET_KEY setting must not be empty."),
    ("booting\n[ERROR] worker timed out\nexiting", "[ERROR] worker timed out"),
    ("all fine\n   \n", "fallback"),
    ("", "fallback"),
])
def test_why_not_served_takes_the_line_that_says_why(log: str, reason: str) -> None:
    assert why_not_served(log, "fallback") == reason


def test_a_long_error_line_is_cut_to_its_end() -> None:
    line = "x" * 500 + " error at the end"
    assert why_not_served(line, "fallback") == line[-300:]


def test_preflight_returns_the_apps_answer_and_stops_its_server(tmp_path: Path) -> None:
    answer = preflight(own_plan(tmp_path))
    assert answer == Answer(200, "text/plain", b"hello /x")
    assert psutil.Process().children(recursive=True) == []


def test_preflight_refuses_a_500_with_the_apps_exception(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        preflight(own_plan(tmp_path, path="/boom"))
    assert str(info.value) == ("app myapp:app: GET /boom under uvicorn answered 500: the app "
                               "failed on it: ValueError: no database configured")
    assert psutil.Process().children(recursive=True) == []


def test_load_checks_follow_the_expectation_else_the_first_answer(tmp_path: Path) -> None:
    first = Answer(200, "text/plain", b"hello /x")
    (tmp_path / "expected.txt").write_bytes(b"exact body")
    cases = [({}, "exact", 200, b"hello /x", ""),
             ({"expect_status": 201}, "status", 201, b"hello /x", ""),
             ({"expect_contains": "hel"}, "contains", 200, b"hello /x", "hel"),
             ({"expect_body_file": "expected.txt"}, "exact", 200, b"exact body", "")]
    for given, check, status, body, contains in cases:
        plan = own_plan(tmp_path, stack=False, own_answer=first, headers={"X-Team": "perf"},
                        **given)
        options: dict[str, Any] = {}
        assert own_load_checks(plan, options) == (status, body), given
        assert options == {"headers": {"X-Team": "perf"}, "body": "", "check": check,
                            "expected_contains": contains}, given
