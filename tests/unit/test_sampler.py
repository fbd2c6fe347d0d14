"""The psutil sampler on a real gunicorn process tree."""

from __future__ import annotations

import itertools
import math
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from harness.procs import http_get
from harness.sampler import TreeSampler, read_tree
from tests.conftest import serve


def _wait_for(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.05)


def test_pss_is_at_most_summed_rss_on_forked_workers(tmp_path: Path) -> None:
    with serve("gunicorn-sync", tmp_path, workers=3) as (_, master):
        _wait_for(lambda: len(master.children()) == 3)
        s = read_tree(master, full_memory=True, t_s=0.0, last=None)
        assert s is not None and s.processes == 4
        assert 0 < s.uss_mib <= s.pss_mib <= s.rss_mib
        # Forked workers share the master's pages: summed RSS double-counts them.
        assert s.pss_mib < 0.95 * s.rss_mib


@pytest.mark.slow
def test_follows_workers_appearing_and_leaving_and_keeps_their_cpu(tmp_path: Path) -> None:
    with serve("gunicorn-sync", tmp_path, workers=2) as (port, master):
        _wait_for(lambda: len(master.children()) == 2)
        with TreeSampler(master.pid, interval_s=0.05, memory_every=4) as sampler:
            os.kill(master.pid, signal.SIGTTIN)  # gunicorn: one more worker
            _wait_for(lambda: len(master.children()) == 3)
            time.sleep(0.3)
            # Burn CPU in a worker, then kill it: its CPU time must stay counted
            # (via the master's children times once reaped).
            assert http_get(port, "/cpu?work=20000", timeout_s=30)[0] == 200
            busy = max(master.children(), key=lambda p: p.cpu_times().user)
            busy.kill()
            os.kill(master.pid, signal.SIGTTOU)  # and one fewer
            time.sleep(1.5)
            samples = list(sampler.samples)
    counts = [s.processes for s in samples]
    assert 3 in counts and 4 in counts, counts
    assert counts[-1] in (2, 3)
    cpu = [s.cpu_seconds for s in samples]
    assert cpu[-1] - cpu[0] >= 0.1  # the /cpu request's work is in the tree's time
    # Cumulative CPU never drops by more than clock-tick noise, even as workers die.
    assert all(b >= a - 0.02 for a, b in itertools.pairwise(cpu))
    full = [s for s in samples if not math.isnan(s.pss_mib)]
    assert full and len(full) < len(samples)  # PSS read on every 4th sample only
    assert all(0 < s.pss_mib <= s.rss_mib for s in full)
    rates = [s.cpu_percent for s in samples[1:]]
    assert max(rates) > 20  # the burst shows up as CPU %


def test_sampler_stops_when_root_exits() -> None:
    proc = psutil.Popen(["sleep", "0.3"])
    with TreeSampler(proc.pid, interval_s=0.05) as sampler:
        proc.wait()
        _wait_for(lambda: sampler.root_exited)
    assert sampler.samples and sampler.root_exited


def test_counts_connections_the_server_holds_only_when_asked(tmp_path: Path) -> None:
    import socket

    with serve("gunicorn-gthread", tmp_path) as (port, master):
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            def held() -> float:
                s = read_tree(master, full_memory=True, t_s=0.0, last=None,
                              count_connections=True)
                assert s is not None
                return s.connections
            _wait_for(lambda: held() == 3)
            off = read_tree(master, full_memory=True, t_s=0.0, last=None)
            assert off is not None and math.isnan(off.connections)
        finally:
            for c in clients:
                c.close()
        _wait_for(lambda: held() == 0)


def test_a_busy_share_stays_within_0_and_100_percent() -> None:
    """Differences of float sums of /proc/stat seconds land 1e-11 past 0 or 100 %: the
    busy share is clamped (a negative busy CPU once failed a bound), NaN when no time
    passed."""
    from harness.sampler import busy_percent

    assert busy_percent((10.0, 20.0), (10.0 - 1e-12, 30.0)) == 0.0
    assert busy_percent((10.0, 20.0), (20.0 + 1e-9, 30.0)) == 100.0
    assert busy_percent((10.0, 20.0), (12.5, 30.0)) == 25.0
    assert math.isnan(busy_percent((10.0, 20.0), (10.0, 20.0)))
