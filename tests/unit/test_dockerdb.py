"""harness.dockerdb, what needs no engine: the database image's tag follows its recipe and
mirror, no engine answering is one line before anything starts, and the compose service
runs PostgreSQL hardened, on loopback and an internal network only, with the local
cluster's settings."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from harness import dockerdb, dockerimage, postgres
from harness.errors import UserError

MIRROR = "http://deb.debian.org/debian"


def test_the_image_tag_names_the_suite_and_a_key_of_the_recipe_and_mirror() -> None:
    tag = dockerdb.image_tag(MIRROR)
    assert tag is not None
    assert re.fullmatch(rf"bench-db:{dockerimage.SUITE}-[0-9a-f]{{16}}", tag)
    assert tag == dockerdb.image_tag(MIRROR)  # the same recipe: the same (cached) image
    assert tag != dockerdb.image_tag("http://mirror.example/debian")
    # Not the app image's base key for the same mirror: another package set.
    assert dockerdb.image_key(MIRROR) != dockerimage.debootstrap_key(MIRROR)


def test_no_engine_is_one_line_before_anything_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "PATH": "/usr/bin:/bin"}
    log = tmp_path / "db.log"
    with pytest.raises(UserError, match=r"^no Docker engine reachable at unix://") as info:
        dockerdb.DockerPostgres(cpus=[0], log_path=log, max_connections=50,
                                run_id="20260101T000000Z-db-io-abc123", environ=dead)
    assert "\n" not in str(info.value)
    assert not log.exists()  # no compose ran
    monkeypatch.setenv("DOCKER_HOST", dead["DOCKER_HOST"])
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    with pytest.raises(UserError, match=r"^no Docker engine reachable at unix://"):
        dockerdb.require_image()


@pytest.fixture(scope="module")
def db_service() -> dict:
    return yaml.safe_load(dockerdb.COMPOSE_DB.read_text())


def test_the_database_service_is_hardened_and_reached_on_loopback_or_inside(
        db_service: dict) -> None:
    db = db_service["services"][dockerdb.SERVICE]
    assert db["cap_drop"] == ["ALL"] and db["read_only"] is True
    assert db["security_opt"] == ["no-new-privileges:true"] and db["user"] == "postgres"
    assert str(db["restart"]) == "no" and db["init"] is True
    assert db["mem_limit"] == db["memswap_limit"]  # no swap beyond the limit
    # Published for the harness on 127.0.0.1 only, at the container port the module names.
    assert db["ports"] == [f"127.0.0.1::{dockerdb.CONTAINER_PORT}"]
    data = db_service["networks"]["data"]
    assert data["internal"] is True and data["name"].startswith("${BENCH_DATA_NETWORK")
    assert set(db["networks"]) == {"default", "data"}
    assert {db["labels"]["io.bench.run"], data["labels"]["io.bench.run"]} == {
        "${BENCH_RUN_ID:-}"}


def test_the_database_runs_with_the_local_clusters_settings(db_service: dict) -> None:
    command = db_service["services"][dockerdb.SERVICE]["command"]
    assert command[:2] == ["sh", "-c"]
    words = shlex.split(command[2].split("exec ", 1)[1])
    settings = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "-c")
    assert {k: settings[k] for k in postgres.SETTINGS} == postgres.SETTINGS
    assert settings["port"] == str(dockerdb.CONTAINER_PORT)
    assert settings["max_connections"] == "${BENCH_DB_MAX_CONNECTIONS:-100}"
    assert words[0] == "postgres" and words[1:3] == ["-D", "/pgdata/data"]
