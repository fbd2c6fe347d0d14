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


def git_info(root: Path | None = None) -> dict[str, Any]:
    """The commit of the code being benchmarked, whether it has uncommitted changes, and
    the work tree it was read from; nulls outside git (or without a git binary).

    ``root`` ``None``: the bench checkout when the harness runs from one (an editable
    install: the package's parent is the top of a work tree), else the repository of
    the current directory (bench installed as a tool, run from the user's project),
    else nulls. A wheel installed in a virtualenv that happens to sit inside some
    repository never reports that repository as its own: only a work tree whose top is
    the package's parent counts as a checkout.
    """
    def git(where: Path, *args: str) -> str | None:
        try:
            r = procs.run(["git", *args], cwd=where, timeout_s=5)
        except procs.CommandError:  # no git binary, or it hung
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    if root is None:
        top = git(PROJECT_ROOT, "rev-parse", "--show-toplevel")
        checkout = top is not None and Path(top).resolve() == PROJECT_ROOT.resolve()
        try:
            root = PROJECT_ROOT if checkout else Path.cwd()
        except OSError:  # the current directory was removed
            return {"commit": None, "dirty": None, "work_tree": None}
    top = git(root, "rev-parse", "--show-toplevel") if root.is_dir() else None
    if top is None:
        return {"commit": None, "dirty": None, "work_tree": None}
    commit = git(root, "rev-parse", "--verify", "--quiet", "HEAD")  # None before a commit
    status = git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status),
            "work_tree": top}


def parse_cpus(text: str, option: str) -> list[int]:
    """Parse a CPU list like ``0``, ``0,2`` or ``0-3`` and check every CPU is usable here.

    Ranges are never expanded: ``0-100000000`` is checked against the usable CPUs as
    an interval, so an absurd range costs nothing and is refused in one line.

    Raises:
        UserError: malformed, empty, or naming a CPU not in this process's affinity.
    """
    ranges: list[tuple[int, int]] = []
    try:
        for part in text.split(","):
            lo_text, dash, hi_text = part.strip().partition("-")
            lo = int(lo_text)
            hi = int(hi_text) if dash else lo
            if lo < 0 or hi < lo:
                raise ValueError
            ranges.append((lo, hi))
    except ValueError:
        raise UserError(f"{option} {text!r}: expected CPU numbers like 0 or 0,1 or 0-3") from None
    usable = sorted(os.sched_getaffinity(0))
    cpus = sorted({c for c in usable if any(lo <= c <= hi for lo, hi in ranges)})
    missing = [gap for lo, hi in ranges for gap in _gaps(lo, hi, usable)]
    if missing:
        shown = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise UserError(f"{option} {text!r}: CPU {shown}{more} not available "
                        f"here (usable: {format_cpus(usable)})")
    return cpus


def _gaps(lo: int, hi: int, usable: list[int]) -> list[tuple[int, int]]:
    """The sub-ranges of [lo, hi] holding no usable CPU (``usable`` sorted)."""
    gaps, start = [], lo
    for c in usable:
        if c > hi:
            break
        if c >= start:
            if c > start:
                gaps.append((start, c - 1))
            start = c + 1
    if start <= hi:
        gaps.append((start, hi))
    return gaps


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
