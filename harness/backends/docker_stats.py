"""The docker backend's sampling: a container's process tree seen from the host, its
connections counted inside the container's network namespace, and the engine's own
stats (cgroup CPU and memory) as a second view.

``ContainerTreeSampler`` is the host's psutil view (the container's processes are host
processes); :class:`EngineStats` polls ``GET /containers/<id>/stats`` through the docker
SDK in a thread. Engine timestamps are RFC 3339 with nanoseconds, read with
``datetime.fromisoformat`` after cutting the fraction to microseconds.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

from harness import dockerimage
from harness.results import SAMPLE_COLUMNS
from harness.sampler import MIB, Sample, TreeSampler

#: What talking to the engine can raise (requests' errors are OSErrors).
ENGINE_ERRORS = (docker.errors.DockerException, OSError)
_TCP_ESTABLISHED = "01"

def netns_connections(pid: int, port: int, *, accepted_only: bool) -> int:
    """Established TCP connections to local ``port`` in the network namespace of ``pid``.

    psutil's ``Process.net_connections`` matches a process's sockets against
    ``/proc/net/tcp`` of the *caller's* namespace, so from the host it sees none of a
    container's sockets. ``/proc/<pid>/net/tcp{,6}`` lists the sockets of ``pid``'s
    namespace; the container holds only the server there. ``accepted_only`` skips
    connections still in the listen queue (inode 0), matching the sampler's count
    of connections the server holds.
    """
    count = 0
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _TCP_ESTABLISHED:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) != port:
                continue
            if accepted_only and fields[9] == "0":
                continue
            count += 1
    return count


class _NetnsCounted(list[Sample]):
    """The sampler's sample list, fixing ``connections`` as each sample is appended."""

    def __init__(self, pid: int, port: int) -> None:
        super().__init__()
        self.pid = pid
        self.port = port

    def append(self, sample: Sample) -> None:
        if not math.isnan(sample.connections):  # read on this sample (~1 Hz)
            held = netns_connections(self.pid, self.port, accepted_only=True)
            sample = dataclasses.replace(sample, connections=float(held))
        super().append(sample)


class ContainerTreeSampler(TreeSampler):
    """:class:`TreeSampler` of a container's processes, connections read in its namespace.

    Same schedule and readings as the base class; only ``connections`` is replaced, on
    the samples that carry it, by :func:`netns_connections` of the root process (the
    base class would count 0: it looks in the host's namespace).
    """

    def __init__(self, pid: int, *, port: int, clock: Callable[[], float],
                 cpus: list[int]) -> None:
        super().__init__(pid, clock=clock, cpus=cpus)
        self.samples = _NetnsCounted(pid, port)


def _engine_time(stamp: str) -> float:
    """Seconds since the epoch from the engine's RFC 3339 ``read`` time (ns precision).

    ``datetime.fromisoformat`` reads it once the fraction is cut to microseconds
    (Python 3.11 takes ``Z`` but at most 6 fractional digits); the nanoseconds cut are
    below a float timestamp's resolution (about 0.2 us today) anyway.

    Raises:
        ValueError: not such a time (or one without a time zone).
    """
    head, dot, rest = stamp.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        if not digits:
            raise ValueError(f"not an RFC 3339 time: {stamp!r}")
        stamp = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    when = datetime.fromisoformat(stamp)
    if when.tzinfo is None or "T" not in stamp:
        raise ValueError(f"not an RFC 3339 time: {stamp!r}")
    return when.timestamp()


def engine_row(stats: dict[str, Any], last: tuple[float, float] | None, *, t_s: float,
               server: str, repeat: float) -> tuple[dict[str, Any], tuple[float, float] | None]:
    """One ``samples.csv`` row (``source="engine"``) from a docker stats reading.

    ``rss_mib``: cgroup memory usage minus ``inactive_file`` (cgroup v2) or
    ``total_inactive_file`` (v1), i.e. without reclaimable page cache, as ``docker
    stats`` computes it. ``cpu_percent``: the cgroup's CPU time between two readings
    over the engine's time between them (percent of one core). ``threads``: tasks in the
    cgroup (pids controller). Every other column (PSS, USS, fds, connections, ``users``,
    which the deployment cannot know) is NaN.
    Returns the row and the (time, cpu ns) to pass as ``last`` next time.
    """
    nan = math.nan
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    detail = mem.get("stats") or {}
    inactive = detail.get("inactive_file", detail.get("total_inactive_file", 0))
    working_mib = (usage - inactive) / MIB if usage is not None else nan
    cpu_ns = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    cpu_percent = nan
    now: tuple[float, float] | None = last
    read = stats.get("read")
    if cpu_ns is not None and read and not read.startswith("0001-"):
        now = (_engine_time(read), float(cpu_ns))
        if last is not None and now[0] > last[0]:
            cpu_percent = max(0.0, (now[1] - last[1]) / 1e9 / (now[0] - last[0]) * 100.0)
    tasks = (stats.get("pids_stats") or {}).get("current")
    row: dict[str, Any] = dict.fromkeys(SAMPLE_COLUMNS, nan)
    row.update(t_s=t_s, source="engine", server=server, repeat=repeat, cpu_percent=cpu_percent,
               rss_mib=working_mib, threads=float(tasks) if tasks is not None else nan)
    return row, now


class EngineStats:
    """Reads the engine's stats stream (about one reading a second) on a daemon thread."""

    def __init__(self, client: docker.DockerClient, container_id: str, *, server: str,
                 repeat: float, clock: Callable[[], float]) -> None:
        self.client = client
        self.container_id = container_id
        self.server = server
        self.repeat = repeat
        self.clock = clock
        self.rows: list[dict[str, Any]] = []
        self.error = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"engine-stats-{server}",
                                        daemon=True)

    def start(self) -> EngineStats:
        self._thread.start()
        return self

    def _loop(self) -> None:
        last: tuple[float, float] | None = None
        try:
            for stats in self.client.api.stats(self.container_id, stream=True, decode=True):
                if self._stop.is_set():
                    return
                row, last = engine_row(stats, last, t_s=self.clock(), server=self.server,
                                       repeat=self.repeat)
                with self._lock:
                    self.rows.append(row)
        except (*ENGINE_ERRORS, ValueError) as exc:
            # The container went away under the stream: the end of the data, kept as a note.
            self.error = dockerimage._first_line(exc)

    def peek(self) -> list[dict[str, Any]]:
        """A copy of the rows read and not yet drained."""
        with self._lock:
            return list(self.rows)

    def drain(self) -> list[dict[str, Any]]:
        """The rows read so far, each returned once."""
        with self._lock:
            rows, self.rows = self.rows, []
        return rows

    def stop(self, wait_s: float = 0.0) -> None:
        self._stop.set()
        if wait_s and self._thread.is_alive():
            self._thread.join(timeout=wait_s)
