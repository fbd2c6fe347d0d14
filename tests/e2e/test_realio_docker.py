"""db-io under ``--backend docker``: the database as a compose service (harness.dockerdb)
that the server containers reach over the run's internal network; same figures as the
local backend's, and nothing left after the run. Needs a docker engine and the images
of ``bench docker build`` (skipped without them, saying so)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.support import run_bench


def _ready() -> str:
    """'' when an engine answers and both images are built, else why not."""
    try:
        from harness import dockerdb, dockerimage

        client = dockerimage.engine()
        if dockerimage.find_image(client) is None:
            return "no app image: run `bench docker build`"
        if dockerdb.find_image(client) is None:
            return "no database image: run `bench docker build`"
    except Exception as exc:  # noqa: BLE001 - any reason the engine cannot be used
        return f"no docker engine: {type(exc).__name__}"
    return ""


@pytest.mark.alone
@pytest.mark.slow
def test_db_io_with_the_database_as_a_compose_service(tmp_path: Path) -> None:
    why = _ready()
    if why:
        pytest.skip(why)
    run_dir = run_bench(tmp_path, "--scenario", "db-io", "--backend", "docker",
                        "--servers", "uvicorn", "--workers", "1", "--users", "6",
                        "--param", "latency_ms=20", "--param", "pool_size=2",
                        "--duration", "2", "--warmup", "1", report=False)
    (t,) = pd.read_csv(run_dir / "trials.csv").to_dict("records")
    assert (t["backend"], t["driver"], t["status"]) == ("docker", "asyncpg", "ok"), t["reason"]
    assert t["ceiling_rps"] == 100.0 and 50 < t["throughput_rps"] <= 105
    assert t["db_active_peak"] == 2 and t["db_cpu_ms_per_request"] > 0
    pg = json.loads((run_dir / "run.json").read_text())["components"]["postgres"]
    assert pg["backend"] == "docker" and pg["container_address"] == "db:5432"
    assert pg["version"][0].isdigit() and pg["settings"]["fsync"] == "off"
    import docker

    client = docker.from_env()
    label = {"label": f"com.docker.compose.project={pg['project']}"}
    assert not client.containers.list(all=True, filters=label)
    assert not client.networks.list(filters=label)
