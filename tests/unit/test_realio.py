"""Real-I/O planning without starting anything: scenario parameters that reach the server
and not the request, drivers per interface, the capacity a pool or the blocking driver
allows, what bounded a trial, the apps' reference bytes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from harness import realio, scenarios
from harness.apps.work import expected, route, row_ids, world_randomnumber
from harness.errors import UserError
from harness.servers import SERVERS


@dataclass
class Plan:
    scenario: scenarios.Scenario
    workers: int


def test_server_parameters_stay_out_of_the_request_and_choices_are_checked() -> None:
    sc = scenarios.load("db-io").with_params({"driver": "asyncpg", "pool_size": "7"})
    assert sc.request_path == "/db?latency_ms=50&seed=1"
    assert sc.values["driver"] == "asyncpg" and sc.values["pool_size"] == 7
    with pytest.raises(UserError, match=r"expected one of auto, psycopg, asyncpg.*did you mean "
                                        r"asyncpg"):
        sc.with_params({"driver": "asyncpgg"})
    with pytest.raises(UserError, match="out of range"):
        sc.with_params({"pool_size": "0"})
    up = scenarios.load("upstream-http").with_params({"calls": "3", "latency_ms": "20"})
    assert up.ceiling_wait_ms == 60.0 and up.components == ("upstream",)
    assert scenarios.load("db-rows").ceiling_wait_ms is None


def test_a_named_driver_replaces_its_own_interfaces_default_only() -> None:
    db = scenarios.load("db-io")
    assert realio.drivers(db) == {"wsgi": "psycopg", "asgi": "asyncpg"}
    assert realio.drivers(db.with_params({"driver": "blocking"})) == {
        "wsgi": "psycopg", "asgi": "blocking"}
    assert realio.drivers(scenarios.load("upstream-http")) == {"wsgi": "requests",
                                                               "asgi": "httpx"}
    assert realio.drivers(scenarios.load("io-heavy")) == {}


def test_capacity_is_capped_by_the_pool_or_by_blocking() -> None:
    db = scenarios.load("db-io").with_params({"pool_size": "10"})
    assert realio.concurrency_capacity(Plan(db, 1), SERVERS["uvicorn"]) == 10
    assert realio.concurrency_capacity(Plan(db, 2), SERVERS["gunicorn-sync"]) == 2
    assert realio.concurrency_capacity(Plan(db, 2), SERVERS["gunicorn-gthread"]) == 20
    blocking = db.with_params({"driver": "blocking"})
    assert realio.concurrency_capacity(Plan(blocking, 3), SERVERS["uvicorn"]) == 3
    io = scenarios.load("io-heavy")
    assert math.isinf(realio.concurrency_capacity(Plan(io, 1), SERVERS["uvicorn"]))


def test_bound_by_names_the_limit_at_the_ceiling_or_the_busy_resource() -> None:
    at = {"efficiency": 0.96, "users": 100}
    common = {"workers": 1, "server_cpus": 1, "shared": False}
    assert realio.bound_by(at, capacity=10, driver="asyncpg", pool=10, **common) == "pool"
    assert realio.bound_by(at, capacity=1, driver="blocking", pool=10, **common) == "blocking"
    assert realio.bound_by({"efficiency": 0.95, "users": 4}, capacity=10, driver="asyncpg",
                           pool=10, **common) == "users"
    below = {"efficiency": 0.6, "users": 100, "server_cpus_busy_percent": 97.0}
    assert realio.bound_by(below, capacity=100, driver="httpx", pool=100, **common) == \
        "server-cpu"
    assert realio.bound_by(below, capacity=100, driver="httpx", pool=100, workers=1,
                           server_cpus=1, shared=True) == "shared-cpu"
    db_busy = {"efficiency": 0.6, "users": 100, "db_cpu_percent_mean": 95.0}
    assert realio.bound_by(db_busy, capacity=100, driver="asyncpg", pool=100,
                           **common) == "database-cpu"
    assert realio.bound_by({"efficiency": 0.5, "users": 100}, capacity=100, driver="asyncpg",
                           pool=100, **common) == ""


def test_reference_bodies_come_from_the_seeded_rows() -> None:
    (row_id,) = row_ids(1, 1)
    assert expected("/db?latency_ms=5&seed=1")[2] == (
        b'{"id":%d,"randomNumber":%d}' % (row_id, world_randomnumber(row_id)))
    ids = row_ids(9, 3)
    assert len(set(row_ids(9, 50))) > 40 and all(1 <= i <= 10_000 for i in row_ids(9, 500))
    assert expected("/queries?queries=3&seed=9")[2].count(b'"id"') == 3
    assert str(ids[0]).encode() in expected("/queries?queries=3&seed=9")[2]
    assert route("GET", "/queries", "queries=0").status == 400
    assert route("GET", "/upstream", "calls=2&latency_ms=1").io.path == "/wait?latency_ms=1"


def test_every_real_io_scenario_lists_and_parses() -> None:
    for name in ("db-io", "db-rows", "upstream-http"):
        sc = scenarios.load(name)
        assert sc.components and sc.params["driver"].scope == "server"
        assert "driver=auto [auto|" in sc.params["driver"].summary()


def test_components_get_spare_cpus_or_share_the_servers(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setattr(realio, "_machine_cpus", lambda: set(range(8)))
    assert realio.component_cpus([0, 1, 2, 3], [4]) == ([5, 6, 7], False)
    monkeypatch.setattr(realio, "_machine_cpus", lambda: {0, 1})
    assert realio.component_cpus([0], [1]) == ([0], True)
