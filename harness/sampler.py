"""psutil sampler of a process tree (a server's master and workers, or locust).

A background thread reads the tree every ``interval_s`` (default 0.1 s: 10 Hz)
for CPU and RSS, and every ``memory_every`` samples (default 10: 1 Hz) for PSS and
USS, which need ``/proc/PID/smaps_rollup`` and cost more. The tree is re-listed on
every sample, so workers that start or exit mid-trial are followed.

CPU is cumulative CPU time of the tree, differenced between samples: the live
processes' user+system time plus the root's ``children_user``/``children_system``,
which hold the time of workers that already exited and were reaped by it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import psutil

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a process tree. Memory in MiB; CPU in percent of one core.

    ``pss_mib``/``uss_mib`` are NaN on samples where they were not read, and so is
    ``connections``: established TCP connections held (accepted) by the tree's
    processes, read on the same ~1 Hz cadence. Connections the kernel completed but
    the server has not accepted yet (the listen queue) are not counted.
    ``cpu_percent`` is NaN on the first sample (no interval yet).
    """

    t_s: float
    processes: int
    cpu_percent: float
    rss_mib: float
    pss_mib: float
    uss_mib: float
    threads: int
    fds: int
    cpu_seconds: float
    connections: float = float("nan")
    #: CPU % of the busiest single process in the tree (NaN on the first sample):
    #: a process at ~100% is saturated even when the tree's total is not.
    cpu_percent_top: float = float("nan")
    #: How busy the CPU set the tree is pinned to was, from *any* process, in percent
    #: of the set's capacity (100 = every CPU of the set fully busy); NaN if not asked.
    cpuset_busy_percent: float = float("nan")
    per_process_cpu_s: dict[int, float] | None = None


def busy_times(cpus: list[int] | None) -> tuple[float, float]:
    """(busy seconds, total seconds) summed over ``cpus``, from /proc/stat."""
    if not cpus:
        return (0.0, 0.0)
    per_cpu = psutil.cpu_times(percpu=True)
    busy = total = 0.0
    for c in cpus:
        t = per_cpu[c]
        idle = t.idle + getattr(t, "iowait", 0.0)
        all_ = sum(t)
        busy += all_ - idle
        total += all_
    return busy, total


def busy_percent(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Busy share of the CPUs' time between two :func:`busy_times` readings, in [0, 100] %
    (float sums of /proc/stat seconds can differ by 1e-11 past either end: clamped); NaN
    when no time passed."""
    d_total = after[1] - before[1]
    if d_total <= 0:
        return float("nan")
    return min(100.0, max(0.0, 100.0 * (after[0] - before[0]) / d_total))


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def read_tree(root: psutil.Process, *, full_memory: bool, t_s: float,
              last: tuple[float, float] | None,
              last_per_process: dict[int, float] | None = None,
              count_connections: bool = False) -> Sample | None:
    """One :class:`Sample` of ``root`` and its descendants; ``None`` if the root is gone.

    ``last`` is the previous (t_s, cpu_seconds), for the CPU rate, and
    ``last_per_process`` the previous per-pid CPU seconds, for ``cpu_percent_top``
    (a process new since then counts from its first reading). Processes that
    vanish while being read are skipped (their CPU then shows up in the root's
    children times once reaped).
    """
    procs = _tree(root)
    if not procs:
        return None
    nan = float("nan")
    cpu_s = rss = pss = uss = 0.0
    threads = fds = alive = connections = 0
    per_process: dict[int, float] = {}
    for i, p in enumerate(procs):
        try:
            with p.oneshot():
                t = p.cpu_times()
                cpu_s += t.user + t.system
                per_process[p.pid] = t.user + t.system
                if i == 0:
                    cpu_s += t.children_user + t.children_system
                if full_memory:
                    m = p.memory_full_info()
                    pss += m.pss
                    uss += m.uss
                    rss += m.rss
                    if count_connections:  # ~4 ms per process: only where it is asked for
                        connections += sum(1 for c in p.net_connections(kind="tcp4")
                                           if c.status == psutil.CONN_ESTABLISHED)
                else:
                    rss += p.memory_info().rss
                threads += p.num_threads()
                fds += p.num_fds()
            alive += 1
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            if i == 0:
                return None
        except psutil.AccessDenied:
            continue
    cpu_percent = top = nan
    if last is not None and t_s > last[0]:
        dt = t_s - last[0]
        cpu_percent = max(0.0, (cpu_s - last[1]) / dt * 100.0)
        if last_per_process is not None:
            top = max((max(0.0, v - last_per_process.get(pid, v)) / dt * 100.0
                       for pid, v in per_process.items()), default=nan)
    return Sample(t_s, alive, cpu_percent, rss / MIB,
                  pss / MIB if full_memory else nan, uss / MIB if full_memory else nan,
                  threads, fds, cpu_s,
                  float(connections) if full_memory and count_connections else nan,
                  top, per_process)


class NoSampler:
    """The sampler of a deployment whose processes are not on this host (a remote docker
    engine, harness.dockerhost): psutil cannot see them, so there are no samples. Has the
    parts of :class:`TreeSampler` the runner uses."""

    def __init__(self) -> None:
        self.count_connections = False
        self.samples: list[Sample] = []
        self.root_exited = False

    def stop(self) -> list[Sample]:
        return self.samples


class TreeSampler:
    """Samples a process tree on a daemon thread until :meth:`stop`.

    Use as a context manager. ``clock`` gives the time base of ``Sample.t_s``
    (seconds; the run's monotonic clock). ``samples`` is filled as it goes; a
    reader may copy it at any time.
    """

    def __init__(self, pid: int, *, clock: Callable[[], float] = time.monotonic,
                 interval_s: float = 0.1, memory_every: int = 10,
                 full_memory: bool = True, cpus: list[int] | None = None) -> None:
        if interval_s <= 0 or memory_every < 1:
            raise ValueError("interval_s must be > 0 and memory_every >= 1")
        self.root = psutil.Process(pid)
        self.clock = clock
        self.interval_s = interval_s
        self.memory_every = memory_every
        self.full_memory = full_memory
        self.cpus = cpus
        #: Count established connections on full readings. Off by default: it costs
        #: ~4 ms of CPU per process (benchmarks/sampler_cost.py); stream scenarios
        #: turn it on. Servers bind IPv4 loopback, so only tcp4 is read.
        self.count_connections = False
        self.samples: list[Sample] = []
        self.root_exited = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"sampler-{pid}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Sample]:
        """Stop sampling (idempotent) and return the samples."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        return self.samples

    def _loop(self) -> None:
        last: tuple[float, float] | None = None
        last_pp: dict[int, float] | None = None
        last_busy = busy_times(self.cpus)
        n = 0
        next_t = self.clock()
        while not self._stop.is_set():
            t = self.clock()
            sample = read_tree(self.root, t_s=t, last=last, last_per_process=last_pp,
                               full_memory=self.full_memory and n % self.memory_every == 0,
                               count_connections=self.count_connections)
            if sample is None:
                self.root_exited = True
                return
            if self.cpus:
                busy = busy_times(self.cpus)
                sample = dataclasses.replace(sample, cpuset_busy_percent=busy_percent(last_busy, busy))
                last_busy = busy
            self.samples.append(sample)
            last = (t, sample.cpu_seconds)
            last_pp = sample.per_process_cpu_s
            n += 1
            # Fixed-rate schedule: the sampler's own cost does not stretch the period.
            next_t += self.interval_s
            self._stop.wait(max(0.0, next_t - self.clock()))
