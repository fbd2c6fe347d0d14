"""The server on a host of its own: the docker backend against an engine named by
``--docker-host`` (a URL or a docker context), ``--target-host``, and the refusals.

On this machine the "other host" is the local engine reached through a second docker
context, created in a temporary DOCKER_CONFIG (the user's contexts are untouched), with
``--target-host 127.0.0.1``: psutil's view is then off, as for a remote engine, and the
run's CPU and memory must come from the engine's stats. Tests that need the engine skip
where ``docker info`` fails.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from harness import dockerhost
from harness.backends import check_target_host, get_backend
from harness.errors import UserError
from tests.support import ENGINE_PROBLEM, needs_engine, report_of, run_bench

CONTEXT = "bench-test"
ENGINE_URL = "unix:///var/run/docker.sock"


def _store_context(config: Path, name: str, host: str, *, tls: bool = False) -> None:
    """A context as the docker CLI stores it (``docker context create``): metadata under
    the sha256 of the name, TLS files beside it."""
    key = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / key
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({
        "Name": name, "Metadata": {},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))
    if tls:
        certs = config / "contexts" / "tls" / key / "docker"
        certs.mkdir(parents=True)
        for f in ("ca.pem", "cert.pem", "key.pem"):
            (certs / f).write_text("x")


def test_the_engine_is_named_as_the_docker_cli_names_it(tmp_path: Path) -> None:
    _store_context(tmp_path, "far", "ssh://ops@127.0.0.1")
    _store_context(tmp_path, "tls", "tcp://127.0.0.1:2376", tls=True)
    base = {"DOCKER_CONFIG": str(tmp_path)}
    # --docker-host wins over everything; a URL is taken as it is
    e = dockerhost.resolve("tcp://127.0.0.1:2375", {**base, "DOCKER_HOST": "unix:///x.sock"})
    assert (e.url, e.source, e.local) == ("tcp://127.0.0.1:2375", "--docker-host", False)
    # a name is a context, resolved to what the SDK and compose both read
    e = dockerhost.resolve("far", base)
    assert (e.url, e.source, e.env) == ("ssh://ops@127.0.0.1", "context far",
                                       {"DOCKER_HOST": "ssh://ops@127.0.0.1"})
    e = dockerhost.resolve("tls", base)
    assert e.env == {"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1",
                     "DOCKER_CERT_PATH": str(tmp_path / "contexts" / "tls" / hashlib.sha256(
                         b"tls").hexdigest() / "docker")}
    # then DOCKER_HOST, DOCKER_CONTEXT, the config's current context, the local socket
    assert dockerhost.resolve(None, {**base, "DOCKER_HOST": "unix:///x.sock",
                                     "DOCKER_CONTEXT": "far"}).source == "DOCKER_HOST"
    assert dockerhost.resolve(None, {**base, "DOCKER_CONTEXT": "far"}).source == "context far"
    assert dockerhost.resolve(None, base).url == ENGINE_URL  # no config.json: default
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "far"}))
    assert dockerhost.resolve(None, base).url == "ssh://ops@127.0.0.1"
    e = dockerhost.resolve(None, {**base, "DOCKER_CONTEXT": "default"})
    assert (e.url, e.local) == (ENGINE_URL, True)
    with pytest.raises(UserError, match="docker context 'nope': no such context"):
        dockerhost.resolve("nope", base)
    with pytest.raises(UserError, match="expected a URL"):
        dockerhost.resolve("ftp://x", base)
    # export: the environment names that engine alone (a context's TLS left no trace)
    env = {"DOCKER_CONTEXT": "far", "DOCKER_TLS_VERIFY": "1", "DOCKER_CONFIG": "c", "X": "y"}
    dockerhost.export(dockerhost.resolve("tcp://127.0.0.1:2375", base), env)
    assert env == {"DOCKER_HOST": "tcp://127.0.0.1:2375", "DOCKER_CONFIG": "c", "X": "y"}


def test_targets_other_than_the_loopback_publish_address_are_refused() -> None:
    # The CLI's refusals (one line, exit 2, nothing written) are rows of docs/errors.md.
    with pytest.raises(UserError, match="local backend .* can only target what it started"):
        check_target_host("127.0.0.1", "local")
    for address in ("10.0.0.5", "0.0.0.0", "::", "example.org"):
        with pytest.raises(UserError, match="loopback addresses only .* deliberate change"):
            check_target_host(address, "docker")
    with pytest.raises(UserError, match="nothing listens on 127.0.0.2"):
        check_target_host("127.0.0.2", "docker")
    check_target_host("127.0.0.1", "docker")
    with pytest.raises(UserError, match="--docker-host .* needs --backend docker"):
        get_backend("local", docker_host=ENGINE_URL)


@pytest.fixture(scope="module")
def remote_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """io-heavy on uvicorn through a second context to the local engine, with
    --target-host 127.0.0.1: (run folder, report). One level, 2 s window."""
    if ENGINE_PROBLEM:
        pytest.skip(f"no Docker engine here ({ENGINE_PROBLEM})")
    base = tmp_path_factory.mktemp("remote")
    config = base / "docker-config"
    config.mkdir()
    env = {"DOCKER_CONFIG": str(config)}
    made = subprocess.run(["docker", "context", "create", CONTEXT, "--docker",
                           f"host={ENGINE_URL}"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **env}, check=False)
    if made.returncode != 0:  # no docker CLI with contexts: the store written as it would
        _store_context(config, CONTEXT, ENGINE_URL)
    run_dir = run_bench(base, "--backend", "docker", "--docker-host", CONTEXT, "--target-host",
                        "127.0.0.1", "--scenario", "io-heavy", "--servers", "uvicorn",
                        "--users", "10", "--duration", "2", "--warmup", "1", env=env)
    yield run_dir, report_of(run_dir)


@needs_engine
@pytest.mark.slow
def test_remote_engine_run_takes_cpu_and_memory_from_the_engine(
        remote_run: tuple[Path, Path]) -> None:
    run_dir, _ = remote_run
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["backend"] == "docker"
    assert meta["engine"] == {"url": ENGINE_URL, "source": f"context {CONTEXT}", "local": True,
                              "tls": False, "env": {"DOCKER_HOST": ENGINE_URL}}
    view = meta["resource_view"]
    assert view["psutil"] is False and "psutil's view was not available" in view["reason"]
    assert {"PSS", "USS", "RSS"} <= set(view["missing"])
    (deployment,) = meta["deployments"]
    assert deployment["psutil_view"] is False and deployment["target_host"] == "127.0.0.1"
    assert deployment["publish_ip"] == "127.0.0.1"
    (trial,) = pd.read_csv(run_dir / "trials.csv").to_dict("records")
    assert trial["status"] == "ok", trial["reason"]
    # 10 users over a 50 ms wait: 200 req/s by Little's law, so the load reached the
    # published port (190.5 measured on a shared VM: each request's own cost; serialised
    # it would be 20, unreached 0)
    assert 0.8 * 200 <= trial["throughput_rps"] <= 1.05 * 200, trial["throughput_rps"]
    # memory and CPU are the engine's; psutil's figures are absent, not zero
    assert trial["engine_mib_peak"] > 5 and trial["engine_mib_mean"] > 5
    assert trial["cpu_percent_mean"] == trial["engine_cpu_percent_mean"] > 0
    for psutil_only in ("pss_mib_peak", "uss_mib_peak", "rss_mib_peak", "server_processes"):
        assert math.isnan(trial[psutil_only]), psutil_only
    samples = pd.read_csv(run_dir / "samples.csv")
    assert "server" not in set(samples["source"])  # no psutil sample of the container
    engine = samples[samples["source"] == "engine"]
    assert len(engine) >= 2 and (engine["rss_mib"] > 5).all()


@needs_engine
def test_remote_engine_report_shows_engine_stats_and_says_psutil_was_missing(
        remote_run: tuple[Path, Path]) -> None:
    from tests.report_extract import extract

    _, report = remote_run
    page = extract(report.read_text())
    text = " ".join(page["paragraphs"])
    assert "psutil's view was not available" in text
    assert "the engine's figure is this run's only memory figure" in text
    cells = [[c[1] for c in row["cells"]] for t in page["tables"] for row in t["rows"]]
    (setup,) = [c for c in cells if c and c[0] == "server figures"]
    assert "missing: PSS, USS, RSS" in setup[1]
    (table,) = [t for t in page["tables"] if "engine memory peak MiB" in str(t["head"])]
    (row,) = [[c[3] for c in r["cells"]] for r in table["rows"]]  # data-v: the numbers
    assert row[0] is None and float(row[3]) > 5  # the engine's memory peak, MiB
    assert row[5] == ""  # PSS peak: not measured, shown as a dash


@needs_engine
def test_bench_clean_asks_the_engine_the_run_used(remote_run: tuple[Path, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.watchdog import clean_run

    run_dir, _ = remote_run
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # not the run's engine
    report = clean_run(run_dir, dry_run=True)
    assert report.docker_note == "" and report.containers == [] and report.networks == []
