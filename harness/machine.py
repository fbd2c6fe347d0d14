"""Where a run ran: machine, OS, Python, package versions and git commit, without being asked."""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from harness import PROJECT_ROOT, procs
from harness.errors import UserError

PACKAGES = ("bench", "locust", "gunicorn", "gevent", "uvicorn", "uvicorn-worker", "uvloop",
            "httptools", "websockets", "hypercorn", "granian", "psutil", "pandas", "scipy",
            "plotly")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, logical CPUs, memory (GiB), OS, kernel, governor, Python."""
    return {
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "logical_cpus": psutil.cpu_count(logical=True),
        "physical_cpus": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 2),
        "os": platform.platform(),
        "kernel": platform.release(),
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


def package_versions() -> dict[str, str | None]:
    """Installed versions of the servers, locust and the analysis stack."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_info(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The checkout's commit and whether it has uncommitted changes; nulls outside git."""
    def git(*args: str) -> str | None:
        try:
            r = procs.run(["git", *args], cwd=root, timeout_s=5)
        except procs.CommandError:
            return None
        return r.stdout.strip() if r.returncode == 0 else None
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def parse_cpus(text: str, option: str) -> list[int]:
    """Parse a CPU list like ``0``, ``0,2`` or ``0-3`` and check every CPU is usable here.

    Raises:
        UserError: malformed, empty, or naming a CPU not in this process's affinity.
    """
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                cpus.update(range(lo, hi + 1))
            else:
                cpus.add(int(part))
    except ValueError:
        raise UserError(f"{option} {text!r}: expected CPU numbers like 0 or 0,1 or 0-3") from None
    usable = os.sched_getaffinity(0)
    missing = sorted(cpus - usable)
    if missing:
        raise UserError(f"{option} {text!r}: CPU {', '.join(map(str, missing))} not available "
                        f"here (usable: {format_cpus(sorted(usable))})")
    return sorted(cpus)


def format_cpus(cpus: list[int]) -> str:
    return ",".join(map(str, cpus))


def default_cpu_sets(usable: set[int] | None = None) -> tuple[list[int], list[int]]:
    """(server CPUs, load-generator CPUs): disjoint when there are 2+ CPUs.

    The load generator gets the last CPU and the server the rest; one locust process
    uses at most one core. On a 1-CPU machine both share it (the caller warns).
    """
    cpus = sorted(usable if usable is not None else os.sched_getaffinity(0))
    if len(cpus) == 1:
        return cpus, cpus
    return cpus[:-1], cpus[-1:]


def require_disjoint(server: list[int], load: list[int]) -> None:
    """Raises UserError when server and load CPU sets overlap on a multi-CPU machine."""
    overlap = sorted(set(server) & set(load))
    if overlap and len(os.sched_getaffinity(0)) > 1:
        raise UserError(f"--server-cpus and --load-cpus overlap on CPU "
                        f"{format_cpus(overlap)}: the load generator would steal the server's "
                        f"cores; give them disjoint sets")
