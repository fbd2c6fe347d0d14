"""harness.apps.drivers against the real upstream service (harness.upstream, its own
process): every HTTP driver returns exactly the reference results, calls one after another,
a pool of ``BENCH_POOL_SIZE`` connections makes further calls wait, an upstream error is
raised (the apps turn it into a 503), and a missing component or a driver that cannot do
the work is :class:`~harness.apps.drivers.Unavailable` naming why.

The drivers keep their pools per process (and the async ones in the event loop that made
them), so the calls run in one child Python with a fresh environment and one event loop,
which hands back what each driver returned and how long it took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from harness import PROJECT_ROOT
from harness.apps import drivers
from harness.apps.work import UPSTREAM_BODY, UpstreamCall, reference_results
from harness.upstream import Upstream

#: Runs in a child with BENCH_UPSTREAM_URL and BENCH_POOL_SIZE=2; prints JSON
#: {case: {"ok": [bodies], "s": seconds} or {"error": [type, text]}}.
CHILD = r"""
import asyncio, json, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from harness.apps import drivers
from harness.apps.work import DbRead, UpstreamCall

out = {}

def outcome(fn):
    t = time.monotonic()
    try:
        got = fn()
        return {"ok": [bytes(b).decode() for b in got], "s": time.monotonic() - t}
    except Exception as exc:
        return {"error": [type(exc).__name__, str(exc)]}

async def timed(coro):
    t = time.monotonic()
    try:
        got = await coro
        return {"ok": [bytes(b).decode() for b in got], "s": time.monotonic() - t}
    except Exception as exc:
        return {"error": [type(exc).__name__, str(exc)]}

def four_at_once():
    with ThreadPoolExecutor(4) as pool:
        return [b for got in pool.map(lambda _: drivers.run_sync(UpstreamCall(1, 80)),
                                      range(4)) for b in got]

def sync_cases():
    # requests: 3 calls of 20 ms one after another; 4 of 80 ms at once on a pool of 2
    out["requests"] = outcome(lambda: drivers.run_sync(UpstreamCall(3, 20)))
    out["requests-4-on-2"] = outcome(four_at_once)
    out["requests-error"] = outcome(lambda: drivers.run_sync(UpstreamCall(1, -1)))

async def four(name):
    got = await asyncio.gather(*(drivers.run_async(UpstreamCall(1, 80), name)
                                 for _ in range(4)))
    return [b for g in got for b in g]

async def main():
    for name in ("httpx", "aiohttp", "blocking"):
        out[name] = await timed(drivers.run_async(UpstreamCall(3, 20), name))
        out[name + "-error"] = await timed(drivers.run_async(UpstreamCall(1, -1), name))
    # each its own pool of 2: both at once
    out["httpx-4-on-2"], out["aiohttp-4-on-2"] = await asyncio.gather(
        timed(four("httpx")), timed(four("aiohttp")))
    out["asyncpg-upstream"] = await timed(drivers.run_async(UpstreamCall(1, 0), "asyncpg"))
    out["httpx-db"] = await timed(drivers.run_async(DbRead((1,)), "httpx"))
    out["psycopg-async-no-db"] = await timed(drivers.run_async(DbRead((1,)), "psycopg-async"))
    await drivers._loop_cache()[1]["aiohttp"].close()  # else aiohttp warns of it unclosed

async def again():
    # a second event loop in the same process: pools and clients of its own
    for name in ("httpx", "aiohttp"):
        out[name + "-second-loop"] = await timed(drivers.run_async(UpstreamCall(1, 20), name))
    await drivers._loop_cache()[1]["aiohttp"].close()
    out["loops-held"] = len(drivers._async)  # the first, closed, was let go

sync = threading.Thread(target=sync_cases)  # meanwhile, on a loop of its own
sync.start()
asyncio.run(main())
asyncio.run(again())
sync.join()
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    service = Upstream(cpus=sorted(os.sched_getaffinity(0)),
                       log_path=tmp_path_factory.mktemp("upstream") / "upstream.log")
    try:
        yield service.start()
    finally:
        service.stop()


@pytest.fixture(scope="module")
def called(upstream: Upstream) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in drivers.ENV_NAMES}
    env.update({drivers.ENV_UPSTREAM_URL: upstream.url, drivers.ENV_POOL_SIZE: "2"})
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                       cwd=PROJECT_ROOT, env=env, timeout=60, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_a_missing_component_or_driver_is_unavailable_naming_its_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in drivers.ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(drivers.Unavailable, match=r"^BENCH_DRIVER_ASGI is not set: this server "
                                                  "was started without the component$"):
        drivers.driver("asgi")
    with pytest.raises(drivers.Unavailable, match="^BENCH_UPSTREAM_URL is not set"):
        drivers.run_sync(UpstreamCall(1, 0))
    assert drivers.pool_size() == 10
    monkeypatch.setenv(drivers.ENV_POOL_SIZE, "3")
    assert drivers.pool_size() == 3


@pytest.mark.parametrize("driver", ["requests", "httpx", "aiohttp", "blocking"])
def test_every_http_driver_returns_the_reference_calling_one_after_another(
        called: dict[str, Any], driver: str) -> None:
    got = called[driver]
    assert "error" not in got, got
    expected = reference_results(UpstreamCall(3, 20))
    assert [b.encode() for b in got["ok"]] == expected == [UPSTREAM_BODY] * 3
    assert got["s"] >= 3 * 0.02  # sequential: three waits of 20 ms


@pytest.mark.parametrize("driver", ["requests", "httpx", "aiohttp"])
def test_a_pool_of_two_connections_makes_the_third_call_wait(
        called: dict[str, Any], driver: str) -> None:
    got = called[f"{driver}-4-on-2"]
    assert "error" not in got, got
    assert got["ok"] == [UPSTREAM_BODY.decode()] * 4
    # Four calls of 80 ms on two connections: two rounds (four connections: one round).
    assert 0.16 <= got["s"] < 2.0


@pytest.mark.parametrize(("driver", "error"), [("requests", "HTTPError"),
                                               ("httpx", "HTTPStatusError"),
                                               ("aiohttp", "ClientResponseError"),
                                               ("blocking", "HTTPError")])
def test_an_upstream_error_is_raised_not_returned(called: dict[str, Any], driver: str,
                                                  error: str) -> None:
    kind, text = called[f"{driver}-error"]["error"]
    assert kind == error and "400" in text


@pytest.mark.parametrize("driver", ["httpx", "aiohttp"])
def test_each_event_loop_gets_its_own_pool(called: dict[str, Any], driver: str) -> None:
    """A pool is bound to the loop that made it; a second loop in the process (a server
    running one loop per thread, or one after another) gets its own, not the first's."""
    got = called[f"{driver}-second-loop"]
    assert got.get("ok") == [UPSTREAM_BODY.decode()], got
    assert called["loops-held"] == 1


def test_a_driver_that_cannot_do_the_work_is_unavailable(called: dict[str, Any]) -> None:
    assert called["asyncpg-upstream"]["error"] == [
        "Unavailable", "driver 'asyncpg' cannot call the upstream from an ASGI app"]
    assert called["httpx-db"]["error"] == [
        "Unavailable", "driver 'httpx' cannot read the database from an ASGI app"]
    # The right driver, but the harness gave this process no database.
    assert called["psycopg-async-no-db"]["error"][0] == "Unavailable"
    assert called["psycopg-async-no-db"]["error"][1].startswith("BENCH_PG_URL is not set")
