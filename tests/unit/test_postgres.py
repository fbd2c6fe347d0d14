"""The run's private PostgreSQL (harness.postgres): a real cluster, started, seeded, checked
and removed; bad setups refused in one line before anything starts."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import psutil
import psycopg
import pytest

from harness import watchdog
from harness.apps.work import WORLD_ROWS, row_ids, world_randomnumber
from harness.postgres import DIR_PREFIX, Postgres, cluster_processes, find_binaries
from harness.procs import ProcessError
from harness.runmeta import RunMeta
from tests.support import bench


def _cluster_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*")}


def test_cluster_is_seeded_on_loopback_pinned_and_leaves_nothing(tmp_path: Path) -> None:
    pg = Postgres(find_binaries(), cpus=[0], log_path=tmp_path / "pg.log", max_connections=30)
    pg.start()
    base = pg.base
    assert base is not None and base.is_dir()
    try:
        with psycopg.connect(pg.url) as conn:
            ids = row_ids(7, 5)
            got = [conn.execute("SELECT id, randomnumber FROM world WHERE id = %s",
                                (i,)).fetchone() for i in ids]
            assert got == [(i, world_randomnumber(i)) for i in ids]
            assert conn.execute("SELECT count(*) FROM world").fetchone() == (WORLD_ROWS,)
        settings = pg.settings()
        assert (settings["fsync"], settings["max_connections"]) == ("off", "30")
        assert settings["listen_addresses"] == "127.0.0.1"
        postmaster = psutil.Process(pg.proc.pid)  # type: ignore[union-attr]
        assert postmaster.cpu_affinity() == [0]
        if os.geteuid() == 0:  # PostgreSQL refuses root: the cluster runs as `postgres`
            assert postmaster.username() == "postgres"
        listening = {c.laddr.ip for c in psutil.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == pg.port}
        assert listening == {"127.0.0.1"}
        members = cluster_processes(base)
        assert len(members) >= 4  # postmaster, checkpointer, writers, launcher...
        assert pg.info()["randomnumber_sum"] == sum(
            world_randomnumber(i) for i in range(1, WORLD_ROWS + 1))
    finally:
        pg.stop()
    assert not base.exists()
    assert not cluster_processes(base)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in members)


def test_a_server_that_cannot_start_is_a_process_error_and_its_folder_goes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A temporary folder of its own (open to the database's user, like /tmp): another
    # test's cluster appearing meanwhile is not this one's.
    with (tempfile.TemporaryDirectory(prefix="bench-test-pg-") as own,
          monkeypatch.context() as patch):
        Path(own).chmod(0o1777)
        patch.setattr(tempfile, "tempdir", own)
        before = _cluster_dirs()
        pg = Postgres(find_binaries(), cpus=[0], log_path=tmp_path / "pg.log",
                      max_connections=-1)
        with pytest.raises(ProcessError, match="exited with code") as info:
            pg.start()
        assert "max_connections" in info.value.log_tail
        assert _cluster_dirs() <= before


def test_a_dead_runs_cluster_is_removed_by_the_watchdogs_cleanup(tmp_path: Path) -> None:
    """The harness was killed: its postmaster is gone (here: SIGKILL), its backends and
    folder are left; the watchdog's cleanup finds the folder in run.json and removes it."""
    pg = Postgres(find_binaries(), cpus=[0], log_path=tmp_path / "pg.log")
    pg.start()
    base = pg.base
    assert base is not None
    try:
        with psycopg.connect(pg.url):
            pass
        os.kill(pg.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        watchdog.remove_component_dirs(
            RunMeta.from_dict({"components": {"postgres": {"dir": str(base)}}}))
        assert not base.exists()
        assert not cluster_processes(base)
    finally:
        pg.stop()


def test_missing_binaries_are_one_line_naming_the_package(tmp_path: Path) -> None:
    r = bench("run", "--scenario", "db-io", "--results-dir", str(tmp_path / "results"),
              env={"BENCH_PG_BINDIR": str(tmp_path)}, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "postgresql" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "results").exists()


def test_docker_backend_with_the_upstream_scenario_is_one_line(tmp_path: Path) -> None:
    r = bench("run", "--scenario", "upstream-http", "--backend", "docker",
              "--results-dir", str(tmp_path / "results"), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        ("bench: error: --backend docker: scenario upstream-http needs upstream, which only "
        "the local backend starts so far; use --backend local")]
    assert not (tmp_path / "results").exists()
