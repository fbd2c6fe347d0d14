"""harness.verify: where two bodies part and why an answer misses an expectation, as the
messages say it; and against a real server (uvicorn serving the raw apps): one request's
answer is the reference's, an own app's answer is held to its expectation or to the
first stack's, a WebSocket echo passes, and no server is a reason, never an exception."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from harness.apps.work import expected
from harness.procs import free_port
from harness.scenarios import Expect, load
from harness.verify import (
    Answer,
    difference,
    expectation_problem,
    request,
    verify,
    verify_own,
    verify_websocket,
)
from tests.conftest import serve

IO = load("io-heavy").with_params({"latency_ms": "0"})


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with serve("uvicorn", tmp_path_factory.mktemp("uvicorn")) as (port, _):
        yield port


def test_difference_names_the_first_byte_that_differs() -> None:
    assert difference(b'{"n":1}', b'{"n":2}') == "at byte 5: b'1}' vs b'2}'"
    assert difference(b"abc", b"abcde") == "3 bytes vs 5 (one is the start of the other)"
    assert difference(b"x" * 100 + b"A" * 50, b"x" * 100 + b"B" * 50) == (
        f"at byte 100: {b'A' * 40!r} vs {b'B' * 40!r}")


def test_an_expectation_is_checked_for_what_is_given_only() -> None:
    answer = Answer(404, "text/html", b"<h1>Not Found</h1>")
    assert expectation_problem(answer, Expect()) == ""
    assert expectation_problem(answer, Expect(status=404, contains=b"Not Found")) == ""
    assert expectation_problem(answer, Expect(status=200)) == (
        "answered 404 Not Found, expected 200 OK (--expect-status)")
    assert expectation_problem(Answer(299, "", b""), Expect(status=200)) == (
        "answered 299 , expected 200 OK (--expect-status)")  # a status without a phrase
    assert expectation_problem(answer, Expect(body=b"<h1>Not Here</h1>")) == (
        "answered a body other than the expected one (--expect-body-file) at byte 8: "
        "b'Found</h1>' vs b'Here</h1>'")
    assert expectation_problem(answer, Expect(contains=b"Welcome")) == (
        "answered a body without b'Welcome' (--expect-contains): b'<h1>Not Found</h1>'")


def test_the_raw_apps_answer_is_the_reference(port: int) -> None:
    status, ctype, body = expected(IO.request_path)
    assert request(port, "GET", IO.request_path) == Answer(status, ctype.decode(), body)
    assert verify(port, IO.request_path) == ""
    assert verify_websocket(port, "/ws") == ""
    assert verify(port, "/ws", protocol="websocket") == ""


def test_an_own_apps_answer_is_held_to_the_expectation_or_the_first_stacks(port: int) -> None:
    first = request(port, "GET", IO.request_path)
    where = f"verification failed for GET {IO.request_path}"
    assert verify_own(port, IO, first) == ""
    assert verify_own(port, dataclasses.replace(IO, expect=Expect(status=200)),
                      Answer(500, "", b"")) == ""  # the expectation, not the first stack
    assert verify_own(port, dataclasses.replace(IO, expect=Expect(status=201)), first) == (
        f"{where}: it answered 200 OK, expected 201 Created (--expect-status)")
    assert verify_own(port, IO, dataclasses.replace(first, content_type="text/plain")) == (
        f"{where}: got 200 'application/json', the first stack answered 200 'text/plain'")
    other = dataclasses.replace(first, body=first.body.replace(b"io", b"IO"))
    assert verify_own(port, IO, other).startswith(
        f"{where}: body differs from the first stack's at byte {first.body.index(b'io')}: ")


def test_no_server_is_a_reason_not_an_exception() -> None:
    nobody = free_port()
    assert verify(nobody, "/io").startswith("verification request failed: ")
    assert verify_websocket(nobody, "/ws", timeout_s=2).startswith(
        "verification handshake failed for /ws: ")
    assert verify_own(nobody, IO, Answer(200, "", b"")).startswith(
        "verification request failed: ")
    with pytest.raises(OSError):
        request(nobody, "GET", "/io", timeout_s=2)
