"""The SSE user's HTTP/1.1 framing (``harness/loadgen/streams.py``: ``get_request``, ``read_head``,
``read_body``, by ``h11``) fed responses split at awkward byte boundaries.

``scenarios.streams`` imports locust, which monkey-patches the process with gevent at
import, so the framing runs in one child Python per module (as in locust's own process)
and hands back, per case, what it read and *when*: how many ``recv`` calls had returned
when the head and each body piece came out. An SSE event must come out at the ``recv``
that brought its last byte (its receipt time is what the scenario measures), never later.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness import PROJECT_ROOT
from harness.apps.work import sse_event
from harness.load import LoadSpec, run_level
from harness.results import read_records

#: Reads JSON cases on stdin ({"path", "pieces": [base64]}), writes JSON results.
DRIVER = r"""
import base64, json, sys
from harness.loadgen.streams import get_request, read_body, read_head

out = []
for case in json.load(sys.stdin):
    pieces = [base64.b64decode(p) for p in case["pieces"]]
    calls = 0
    def recv():
        global calls
        calls += 1
        return pieces[calls - 1] if calls <= len(pieces) else b""
    res = {"request": "", "head": None, "body": [], "error": None}
    try:
        http, request = get_request("127.0.0.1", 8000, case["path"])
        res["request"] = request.decode("latin-1")
        status, headers = read_head(http, recv)
        res["head"] = [status, headers, calls]
        for piece in read_body(http, recv):
            res["body"].append([calls, base64.b64encode(piece).decode()])
    except Exception as exc:
        res["error"] = [type(exc).__name__, str(exc), calls]
    out.append(res)
json.dump(out, sys.stdout)
"""

EVENTS = [sse_event(seq, 1_700_000_000_000_000_000 + seq * 200_000_000, size)
          for seq, size in ((0, 16), (1, 0), (2, 40), (3, 16))]
BODY = b"".join(EVENTS)
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"


def _framed(head: bytes, parts: list[bytes], *, chunked: bool,
            size_line: bytes = b"%x\r\n") -> tuple[bytes, list[int]]:
    """A response of ``head`` and a body of ``parts`` (one chunk each if ``chunked``,
    each after its ``size_line``), and the offset in it of each body byte."""
    raw, where = head, []
    for part in parts:
        if chunked:
            raw += size_line % len(part)
        where += range(len(raw), len(raw) + len(part))
        raw += part + (b"\r\n" if chunked else b"")
    return raw + (b"0\r\n\r\n" if chunked else b""), where


#: name: (the whole response as the server sends it, the offset of each body byte).
RESPONSES = {
    # One chunk per event, as the apps' servers flush them.
    "chunked": _framed(SSE_HEAD + b"transfer-encoding: chunked\r\n\r\n", EVENTS, chunked=True),
    # Events cut across chunks (one of a single byte), a chunk extension, upper-case hex.
    "chunked-across": _framed(SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n",
                              [BODY[:50], BODY[50:51], BODY[51:]], chunked=True,
                              size_line=b"%X;ext=1\r\n"),
    "content-length": _framed(SSE_HEAD + b"content-length: %d\r\n\r\n" % len(BODY), [BODY],
                              chunked=False),
    "close-delimited": _framed(SSE_HEAD + b"connection: close\r\n\r\n", [BODY], chunked=False),
    # An interim 100 before the final head is skipped.
    "interim-100": _framed(b"HTTP/1.1 100 Continue\r\n\r\n" + SSE_HEAD
                           + b"content-length: %d\r\n\r\n" % len(BODY), [BODY], chunked=False),
}


_CHUNKED = RESPONSES["chunked"][0]
_FIRST_CHUNK_END = _CHUNKED.index(b"\r\n", _CHUNKED.index(EVENTS[0])) + 2
_CLOSED = "server closed the connection mid-response"
_MALFORMED = "malformed HTTP response: "
#: name: (response, exception type, message start, events delivered before it).
MALFORMED = {
    "bad chunk size": (_CHUNKED[:_FIRST_CHUNK_END] + b"zz\r\n" + _CHUNKED[_FIRST_CHUNK_END:],
                       "ValueError", _MALFORMED, 1),
    "chunk without its CRLF": (
        _CHUNKED[:_FIRST_CHUNK_END - 2] + b"XY" + _CHUNKED[_FIRST_CHUNK_END:],
        "ValueError", _MALFORMED, 1),
    "bad status line": (b"HTTP/1.1 2x0 OK\r\n\r\n", "ValueError", _MALFORMED, 0),
    "not HTTP": (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "ValueError", _MALFORMED, 0),
    "closed mid chunk": (_CHUNKED[:_FIRST_CHUNK_END + 10], "ConnectionError", _CLOSED, 1),
    "closed before the last chunk": (_CHUNKED[:-5], "ConnectionError", _CLOSED, 4),
    "closed short of content-length": (RESPONSES["content-length"][0][:-3], "ConnectionError",
                                       _CLOSED, 3),
    "closed mid head": (_CHUNKED[:RESPONSES["chunked"][1][0] - 10], "ConnectionError", _CLOSED,
                        0),
    "closed at once": (b"", "ConnectionError", _CLOSED, 0),
}
SSE_PATH = "/sse?events=4&interval_ms=200&size=16"


def _splits(raw: bytes) -> dict[str, list[bytes]]:
    """The awkward ways a response arrives: whole, one byte at a time, in two pieces at
    every offset (mid chunk-size line, mid CRLF, mid header, mid event ...), in 7-byte
    pieces."""
    out = {"whole": [raw], "bytewise": [raw[i:i + 1] for i in range(len(raw))],
           "sevens": [raw[i:i + 7] for i in range(0, len(raw), 7)]}
    out.update({f"at{i}": [raw[:i], raw[i:]] for i in range(1, len(raw))})
    return out


def _drive(cases: list[tuple[str, list[bytes]]]) -> list[dict[str, Any]]:
    stdin = json.dumps([{"path": path, "pieces": [base64.b64encode(p).decode() for p in pieces]}
                        for path, pieces in cases])
    r = subprocess.run([sys.executable, "-c", DRIVER], input=stdin, capture_output=True,
                       text=True, cwd=PROJECT_ROOT, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def _piece_of(pieces: list[bytes], offset: int) -> int:
    """1-based index of the piece (= the ``recv`` call) that holds byte ``offset``."""
    end = 0
    for i, p in enumerate(pieces, 1):
        end += len(p)
        if offset < end:
            return i
    raise AssertionError(offset)


def _events_with_recv(body: list[list[Any]]) -> tuple[list[tuple[bytes, int]], bytes]:
    """SSE frames split from the body pieces as SSEUser._read splits them, each with
    the ``recv`` count at which its last byte came out; and the bytes left over."""
    pending, out = b"", []
    for calls, b64 in body:
        pending += base64.b64decode(b64)
        while b"\n\n" in pending:
            frame, _, pending = pending.partition(b"\n\n")
            out.append((frame + b"\n\n", calls))
    return out, pending


@pytest.fixture(scope="module")
def framed() -> dict[tuple[str, str], tuple[list[bytes], dict[str, Any]]]:
    """(response name, split): (the pieces fed, what came out), for every response
    above and every split, the malformed ones (whole and bytewise), and a bad path:
    all in one child."""
    cases = [(name, split, pieces, SSE_PATH) for name, (raw, _) in RESPONSES.items()
             for split, pieces in _splits(raw).items()]
    cases += [(name, split, _splits(raw)[split] if raw else [], SSE_PATH)
              for name, (raw, *_) in MALFORMED.items() for split in ("whole", "bytewise")]
    cases.append(("bad path", "whole", [], "/sse?events=1 HTTP/1.1"))
    results = _drive([(path, pieces) for *_, pieces, path in cases])
    return {(name, split): (pieces, res)
            for (name, split, pieces, _), res in zip(cases, results, strict=True)}


def test_the_request_is_the_one_the_hand_written_reader_sent(
        framed: dict[tuple[str, str], tuple[list[bytes], dict[str, Any]]]) -> None:
    _, res = framed[("chunked", "whole")]
    assert res["request"] == (f"GET {SSE_PATH} HTTP/1.1\r\n"
                              "Host: 127.0.0.1:8000\r\nAccept: text/event-stream\r\n\r\n")


@pytest.mark.parametrize("name", list(RESPONSES))
def test_events_come_out_in_order_at_the_recv_that_brought_their_last_byte(
        framed: dict[tuple[str, str], tuple[list[bytes], dict[str, Any]]], name: str) -> None:
    raw, where = RESPONSES[name]
    head_end = raw.index(b"\r\n\r\n", raw.index(SSE_HEAD)) + 3  # the final head's last byte
    event_ends = [where[end - 1] for end in itertools.accumulate(len(e) for e in EVENTS)]
    splits = [s for (n, s) in framed if n == name]
    assert len(splits) == len(raw) + 2  # every offset, whole, bytewise, sevens
    for split in splits:
        pieces, res = framed[(name, split)]
        assert res["error"] is None, (split, res["error"])
        status, headers, head_calls = res["head"]
        assert status == 200 and headers["content-type"].startswith("text/event-stream")
        # The head comes out when its last byte arrived: the connect time is right.
        assert head_calls == _piece_of(pieces, head_end), split
        events, left = _events_with_recv(res["body"])
        assert [e for e, _ in events] == EVENTS and left == b"", split
        # Each event as soon as its last byte arrived, not at a later recv (buffering).
        assert [c for _, c in events] == [_piece_of(pieces, o) for o in event_ends], split


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_or_cut_response_is_a_value_or_connection_error_after_the_good_events(
        framed: dict[tuple[str, str], tuple[list[bytes], dict[str, Any]]], name: str) -> None:
    """The SSE user catches OSError (ConnectionError) and ValueError and records them as a
    failed connect or stream with this text: a malformed or cut response never crashes it."""
    _, kind, message, delivered = MALFORMED[name]
    for split in ("whole", "bytewise"):
        _, res = framed[(name, split)]
        assert res["error"] is not None, (name, split, res)
        assert res["error"][0] == kind and res["error"][1].startswith(message), (split, res)
        assert (res["head"] is None) == (delivered == 0), (split, res)
        events, _ = _events_with_recv(res["body"])
        assert [e for e, _ in events] == EVENTS[:delivered], split


def test_a_path_h11_refuses_to_send_is_a_value_error(
        framed: dict[tuple[str, str], tuple[list[bytes], dict[str, Any]]]) -> None:
    _, res = framed[("bad path", "whole")]
    assert res["error"][0] == "ValueError" and "cannot send GET" in res["error"][1], res
    assert res["request"] == "" and res["head"] is None


# --- the SSE user against a server that breaks its streams (real locust) ----------------------

class _BreakingSSE(socketserver.BaseRequestHandler):
    """Answers each GET with an SSE head and event 0 (chunked), then, one connection
    in two, a malformed chunk-size line, else a close in the middle of event 1."""

    count = itertools.count()

    def handle(self) -> None:
        self.request.settimeout(5)
        got = b""
        while b"\r\n\r\n" not in got and (data := self.request.recv(4096)):
            got += data
        ev0, ev1 = (sse_event(i, time.time_ns(), 16) for i in range(2))
        self.request.sendall(SSE_HEAD + b"transfer-encoding: chunked\r\n\r\n"
                             + b"%x\r\n%s\r\n" % (len(ev0), ev0))
        time.sleep(0.05)
        if next(self.count) % 2:
            self.request.sendall(b"%x\r\n%s" % (len(ev1), ev1[:10]))
        else:
            self.request.sendall(b"zz\r\n")


@pytest.mark.alone
@pytest.mark.slow
def test_the_sse_user_records_a_broken_stream_as_a_failed_stream_with_its_reason(
        tmp_path: Path) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _BreakingSSE)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        spec = LoadSpec(users=2, warmup_s=0.0, duration_s=1.5, method="GET",
                        path="/sse?events=3&interval_ms=50&size=16", expected_status=200,
                        expected_body=b"", name="broken-sse", user_class="SSEUser")
        result = run_level(spec, port=server.server_address[1],
                           cpus=[max(os.sched_getaffinity(0))], trial_dir=tmp_path,
                           trial_id="broken-sse", log_dir=tmp_path / "logs",
                           clock=time.monotonic)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert not result.problem, result.problem
    records = read_records(result.records_dir)
    streams = records[records["name"] == "stream"]
    connects = records[(records["name"] == "connect") & (records["ok"] == 1)]
    events = records[records["name"] == "event"]
    # Every stream that got its head ends in a failed stream record (none crashed the
    # user), after its good event 0; at most the two cut by the test's stop are missing.
    assert len(streams) >= 4 and (streams["ok"] == 0).all(), streams
    assert len(connects) - 2 <= len(streams) <= len(connects)
    assert events["ok"].all() and len(events) >= len(streams)
    errors = " | ".join(result.meta["errors"])
    assert "stream ended early: ValueError: malformed HTTP response: " in errors, errors
    assert "stream ended early: ConnectionError: server closed the connection mid-response" \
        in errors, errors
