"""An app of the user's (``bench run --app``, a scenario file with ``[app]``): served once
before anything else, so that a mistake is one line and exit 2, not a run of failed trials.

:func:`preflight` starts the run's first stack with one worker, sends the scenario's
request once, stops the server (in a ``finally``: nothing is left behind), and returns the
answer, which the run's other stacks are then verified against when no expectation is
given (harness.verify.verify_own). It refuses, as a :class:`~harness.errors.UserError`:
an app its server cannot load (the exception line from the server's output: a missing
module, an import error, a missing attribute), a request answered ``404``, and an answer
that does not meet the expectation (``--expect-status`` and friends). The harness never
imports the app: only the server process does.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.backends import get_backend
from harness.errors import UserError
from harness.plan import RunPlan
from harness.procs import ProcessError
from harness.verify import Answer, expectation_problem, request

#: A Python exception line in a server's output (``ModuleNotFoundError: No module ...``).
_EXCEPTION = re.compile(
    r"\b([A-Za-z_][\w.]*(?:Error|Exception|ImproperlyConfigured|AppRegistryNotReady)): (.+)$")
#: What servers say themselves when they cannot load an app (gunicorn, uvicorn).
_CANNOT_LOAD = re.compile(r"(Failed to find attribute .+|Error loading ASGI app\. .+)$")
#: How long the first server may take to answer at all (s).
READY_DEADLINE_S = 30.0


def why_not_served(log: str, fallback: str) -> str:
    """The line of a server's output that says why it could not load (or run) an app: the
    last Python exception line or the server's own "cannot load" line (gunicorn: ``Failed
    to find attribute ...``; uvicorn: ``Error loading ASGI app. ...``), else the last line
    mentioning an error, else ``fallback``."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for line in reversed(lines):
        own = _CANNOT_LOAD.search(line)
        if own:
            return own.group(1)
        match = _EXCEPTION.search(line)
        if match:
            return f"{match.group(1)}: {match.group(2)}"
    for line in reversed(lines):
        if "error" in line.lower():
            return line[-300:]
    return fallback


def preflight(plan: RunPlan) -> Answer:
    """Serve the plan's own app with its first stack and ask it the scenario's request once.

    Returns the answer (what the other stacks must equal when no expectation is given).

    Raises:
        UserError: the server could not load the app (the reason from its output), the
            request was answered 404 or not at all, or the answer misses the expectation.
    """
    sc, stack = plan.scenario, plan.stacks[0]
    target = f"app {stack.target}"
    with tempfile.TemporaryDirectory(prefix="bench-preflight-") as tmp:
        log_path = Path(tmp) / "server.log"
        try:
            server = get_backend(plan.backend).deploy(
                stack.server, workers=1, cpus=plan.server_cpus, log_path=log_path,
                clock=time.monotonic, run_id="preflight", repeat=0, **stack.launch())
        except ProcessError as exc:
            log = log_path.read_text(errors="replace") if log_path.is_file() else ""
            raise UserError(f"{target}: {stack.server.name} could not serve it: "
                            f"{why_not_served(log, str(exc))}") from None
        try:
            answer = request(server.port, sc.method, sc.request_path, sc.headers, sc.body)
        except OSError as exc:
            raise UserError(f"{target}: {sc.method} {sc.request_path} got no answer from "
                            f"{stack.server.name}: {exc}") from None
        finally:
            server.stop()
        log = log_path.read_text(errors="replace") if log_path.is_file() else ""
    where = f"{target}: {sc.method} {sc.request_path} under {stack.server.name}"
    if answer.status == 404 and sc.expect.status != 404:
        raise UserError(f"{where} answered 404 Not Found; check --path (and --app-dir)")
    if answer.status >= 500 and sc.expect.status != answer.status:
        raise UserError(f"{where} answered {answer.status}: the app failed on it: "
                        f"{why_not_served(log, 'no reason in the server output')}")
    problem = expectation_problem(answer, sc.expect)
    if problem:
        raise UserError(f"{where} {problem}")
    return answer


def own_load_checks(plan: RunPlan, options: dict[str, Any]) -> tuple[int, bytes]:
    """An own app's request and what counts as a success under load, put into the locust
    user's ``options`` (``headers``, ``body``, ``check``, ``expected_contains``); returns
    (expected status, expected body). Every response must have the expected status
    (``--expect-status``, else the first stack's); the body must be
    ``--expect-body-file``'s, contain ``--expect-contains``, or, with no expectation of
    the body, equal the first stack's (as verification required); ``--expect-status``
    alone checks the status only."""
    sc, first = plan.scenario, plan.own_answer
    assert first is not None, "an own app's run needs its preflight"
    expect = sc.expect
    status = expect.status if expect.status is not None else first.status
    body = expect.body if expect.body is not None else first.body
    check = ("contains" if expect.contains is not None else "exact"
             if expect.body is not None or not expect.given else "status")
    options.update(headers=dict(sc.headers), body=sc.body.decode("latin-1"), check=check,
                   expected_contains=(expect.contains or b"").decode("latin-1"))
    return status, body
