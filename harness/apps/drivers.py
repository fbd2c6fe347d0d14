"""How the apps reach the real components: database drivers with their pools, HTTP
clients with theirs (harness.realio starts the components and sets the environment).

The harness tells each server process, through its environment (never the request):

* ``BENCH_PG_URL``: ``postgresql://user:password@127.0.0.1:port/db`` of the run's cluster;
* ``BENCH_UPSTREAM_URL``: ``http://127.0.0.1:port`` of the upstream service;
* ``BENCH_DRIVER_WSGI`` / ``BENCH_DRIVER_ASGI``: the driver each app uses;
* ``BENCH_POOL_SIZE``: connections per pool, i.e. per server worker process.

Drivers (:data:`DRIVERS`): the WSGI app reads with ``psycopg`` (3) through a
``psycopg_pool.ConnectionPool`` and calls the upstream with ``requests`` (a ``Session``
whose urllib3 pool holds ``pool_size`` connections and blocks when they are all
busy); the ASGI app uses ``asyncpg`` (its pool) or ``psycopg-async``
(``psycopg_pool.AsyncConnectionPool``), and ``httpx`` (``AsyncClient`` limited to
``pool_size`` connections) or ``aiohttp`` (``ClientSession`` on a ``TCPConnector`` of
``pool_size``). ``blocking`` is the anti-pattern on purpose: the ASGI app
calls the sync driver (psycopg's pool, requests) inside its ``async def`` handler, so
each call blocks the event loop, and its worker serves one request at a time.

Every pool is made on a process's first request (after the server forked its
workers; the async ones per event loop, on the loop's first request) and holds
``pool_size`` connections from then on (min = max), so a request waits for a free
connection exactly when ``pool_size`` are in use.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from typing import Any

from harness.apps.work import DbRead, UpstreamCall

ENV_PG_URL = "BENCH_PG_URL"
ENV_UPSTREAM_URL = "BENCH_UPSTREAM_URL"
ENV_DRIVER = {"wsgi": "BENCH_DRIVER_WSGI", "asgi": "BENCH_DRIVER_ASGI"}
ENV_POOL_SIZE = "BENCH_POOL_SIZE"
#: The environment variables the harness sets for the server processes.
ENV_NAMES = (ENV_PG_URL, ENV_UPSTREAM_URL, *ENV_DRIVER.values(), ENV_POOL_SIZE)

#: driver -> (component it reaches, or "any"; the interface whose app uses it; whether
#: it blocks an event loop on purpose).
DRIVERS: dict[str, tuple[str, str, bool]] = {
    "psycopg": ("postgres", "wsgi", False),
    "asyncpg": ("postgres", "asgi", False),
    "psycopg-async": ("postgres", "asgi", False),
    "requests": ("upstream", "wsgi", False),
    "httpx": ("upstream", "asgi", False),
    "aiohttp": ("upstream", "asgi", False),
    "blocking": ("any", "asgi", True),
}
#: Each interface's driver per component when the run names none (``driver=auto``).
DEFAULT_DRIVERS = {("postgres", "wsgi"): "psycopg", ("postgres", "asgi"): "asyncpg",
                   ("upstream", "wsgi"): "requests", ("upstream", "asgi"): "httpx"}

#: One query of db-io: the row, and a wait in the database itself.
SQL_SLEEP = {"psycopg": "SELECT id, randomnumber, pg_sleep(%s) FROM world WHERE id = %s",
             "asyncpg": "SELECT id, randomnumber, pg_sleep($2) FROM world WHERE id = $1"}
#: One single-row read (db-rows, TechEmpower's "multiple queries").
SQL_ROW = {"psycopg": "SELECT id, randomnumber FROM world WHERE id = %s",
           "asyncpg": "SELECT id, randomnumber FROM world WHERE id = $1"}
#: Seconds a request may wait for a pooled connection or an answer before it fails.
TIMEOUT_S = 60.0


class Unavailable(RuntimeError):
    """The harness gave this process no such component or driver (the app answers 503)."""


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise Unavailable(f"{name} is not set: this server was started without the component")
    return value


def pool_size() -> int:
    return int(os.environ.get(ENV_POOL_SIZE) or 10)


def driver(interface: str) -> str:
    """The driver the harness chose for this app's interface (``wsgi``/``asgi``)."""
    return _env(ENV_DRIVER[interface])


# ------------------------------------------------------------------------------ sync drivers

_lock = threading.Lock()
_sync: dict[str, Any] = {}


def _owned(cache: dict[str, Any]) -> dict[str, Any]:
    """``cache``, emptied if it was filled in another process (a fork copies it)."""
    if cache.get("pid") != os.getpid():
        cache.clear()
        cache["pid"] = os.getpid()
    return cache


def _psycopg_pool() -> Any:
    with _lock:
        cache = _owned(_sync)
        if "pg" not in cache:
            from psycopg_pool import ConnectionPool

            size = pool_size()
            pool = ConnectionPool(_env(ENV_PG_URL), min_size=size, max_size=size,
                                  kwargs={"autocommit": True}, timeout=TIMEOUT_S, open=True)
            pool.wait(timeout=TIMEOUT_S)
            cache["pg"] = pool
        return cache["pg"]


def _session() -> Any:
    with _lock:
        cache = _owned(_sync)
        if "http" not in cache:
            import requests
            from requests.adapters import HTTPAdapter

            session = requests.Session()
            session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=pool_size(),
                                                 pool_block=True, max_retries=0))
            cache["http"] = session
        return cache["http"]


def run_sync(io: DbRead | UpstreamCall) -> list[Any]:
    """Carry out ``io`` with the sync drivers (psycopg pool, requests); the WSGI app's
    way, and the ``blocking`` flavour's inside ``async def``.

    Raises:
        Unavailable: no component configured; driver errors propagate.
    """
    if isinstance(io, DbRead):
        with _psycopg_pool().connection() as conn:
            if io.sleep_s is not None:
                row = conn.execute(SQL_SLEEP["psycopg"], (io.sleep_s, io.ids[0])).fetchone()
                return [row[:2]]
            return [conn.execute(SQL_ROW["psycopg"], (i,)).fetchone() for i in io.ids]
    base, session = _env(ENV_UPSTREAM_URL), _session()
    bodies = []
    for _ in range(io.calls):
        response = session.get(base + io.path, timeout=TIMEOUT_S)
        response.raise_for_status()
        bodies.append(response.content)
    return bodies


# ----------------------------------------------------------------------------- async drivers

#: Per (process, running event loop): the loop (held, so its id is not reused while the
#: entry lives), the lock that makes each resource once, and its pools and clients by name.
_async: dict[tuple[int, int], tuple[asyncio.AbstractEventLoop, asyncio.Lock, dict[str, Any]]] = {}


def _loop_cache() -> tuple[asyncio.Lock, dict[str, Any]]:
    """The running event loop's lock and resources (made on its first use). A pool or
    client belongs to the loop that made it: used from another, asyncpg, httpx and aiohttp
    fail ("attached to a different loop", "Event loop is closed"). Entries of closed
    loops, or copied into a forked child, are dropped when a new loop comes."""
    loop = asyncio.get_running_loop()
    key = (os.getpid(), id(loop))
    entry = _async.get(key)
    if entry is None:
        for stale in [k for k, (other, _, _) in _async.items()
                      if k[0] != key[0] or other.is_closed()]:
            del _async[stale]
        entry = _async[key] = (loop, asyncio.Lock(), {})
    return entry[1], entry[2]


async def _async_resource(name: str) -> Any:
    """The running event loop's pool or client ``name`` (``asyncpg``, ``psycopg-async``,
    ``httpx``, ``aiohttp``), made on first use inside that loop."""
    lock, cache = _loop_cache()
    if name in cache:
        return cache[name]
    async with lock:
        if name not in cache:
            cache[name] = await _make(name)
    return cache[name]


async def _make(name: str) -> Any:
    size = pool_size()
    if name == "asyncpg":
        import asyncpg

        return await asyncpg.create_pool(_env(ENV_PG_URL), min_size=size, max_size=size)
    if name == "psycopg-async":
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(_env(ENV_PG_URL), min_size=size, max_size=size,
                                   kwargs={"autocommit": True}, timeout=TIMEOUT_S, open=False)
        await pool.open(wait=True, timeout=TIMEOUT_S)
        return pool
    if name == "aiohttp":
        import aiohttp

        return aiohttp.ClientSession(
            _env(ENV_UPSTREAM_URL), connector=aiohttp.TCPConnector(limit=size),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
    import httpx

    return httpx.AsyncClient(base_url=_env(ENV_UPSTREAM_URL), timeout=TIMEOUT_S,
                             limits=httpx.Limits(max_connections=size,
                                                 max_keepalive_connections=size))


async def run_async(io: DbRead | UpstreamCall, name: str) -> Sequence[Any]:
    """Carry out ``io`` with driver ``name`` on the running event loop (``blocking``:
    with the sync drivers, blocking the loop on purpose).

    Raises:
        Unavailable: no component configured, or a driver that cannot do ``io``.
    """
    if name == "blocking":
        return run_sync(io)
    if isinstance(io, DbRead):
        if name == "asyncpg":
            pool = await _async_resource("asyncpg")
            async with pool.acquire() as conn:
                if io.sleep_s is not None:
                    row = await conn.fetchrow(SQL_SLEEP["asyncpg"], io.ids[0], io.sleep_s)
                    return [(row[0], row[1])]
                return [tuple(await conn.fetchrow(SQL_ROW["asyncpg"], i)) for i in io.ids]
        if name == "psycopg-async":
            apool = await _async_resource("psycopg-async")
            async with apool.connection() as aconn:
                if io.sleep_s is not None:
                    cur = await aconn.execute(SQL_SLEEP["psycopg"], (io.sleep_s, io.ids[0]))
                    row = await cur.fetchone()
                    return [row[:2]]
                rows = []
                for i in io.ids:
                    cur = await aconn.execute(SQL_ROW["psycopg"], (i,))
                    rows.append(await cur.fetchone())
                return rows
        raise Unavailable(f"driver {name!r} cannot read the database from an ASGI app")
    if name == "aiohttp":
        session = await _async_resource("aiohttp")
        out = []
        for _ in range(io.calls):
            async with session.get(io.path) as reply:
                reply.raise_for_status()
                out.append(await reply.read())
        return out
    if name != "httpx":
        raise Unavailable(f"driver {name!r} cannot call the upstream from an ASGI app")
    client = await _async_resource("httpx")
    bodies = []
    for _ in range(io.calls):
        response = await client.get(io.path)
        response.raise_for_status()
        bodies.append(response.content)
    return bodies
