"""Upper bounds on a run's counts, from what this machine can carry; checked before
anything starts.

A *hard* bound is one the run cannot pass whatever the user wants: more concurrent
users than the open-file limit lets one process hold (each user is one connection,
one file descriptor in locust and one in the server, and a one-worker server holds
them all), workers and locust processes whose memory exceeds the machine's, more trials
than a run can record, a window longer than locust can be told to run. A *soft* bound
is where a run still works but most likely measures the wrong thing or never ends:
more than 4 workers per server CPU (gunicorn's own advice is 2-4 x cores), more than
4 locust processes per load CPU, users beyond the soft ``ulimit -n`` the servers
inherit, an estimated memory above what is available now, an estimated wall time
above a day. ``bench run --exceed-limits`` passes soft bounds (each is then a warning);
hard bounds never. CPUs the machine does not have are refused by
:func:`harness.machine.parse_cpus`.

The memory figures are estimates on the high side of what this project's apps use
(RSS of one idle server worker or locust process, and per held connection on both
sides); they guard against absurd input, not against a tight fit.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

from harness.errors import UserError

if TYPE_CHECKING:
    from harness.plan import RunPlan

#: File descriptors one process needs besides its connections (logs, pipes, listening
#: socket, imported modules, the sampler's /proc reads).
FD_RESERVE = 64
#: Estimated resident memory, MiB, of one server worker and one locust process.
SERVER_WORKER_MIB = 40.0
LOCUST_PROCESS_MIB = 80.0
#: Estimated memory per concurrent user, MiB: a locust greenlet with its HTTP client,
#: plus the server's state for that connection.
USER_MIB = 0.25
#: Soft bounds.
WORKERS_PER_SERVER_CPU = 4
LOAD_PROCESSES_PER_LOAD_CPU = 4
MAX_WALL_S = 24 * 3600.0
#: Hard bounds. run.json holds every trial and is rewritten after each one.
MAX_TRIALS = 100_000
#: A warm-up or window longer than this (7 days) is refused: locust is given the sum
#: as its --run-time, and nothing useful is measured in one window that long.
MAX_WINDOW_S = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Capacity:
    """What this machine offers a run: memory (MiB) and the open-file limits."""

    memory_total_mib: float
    memory_available_mib: float
    nofile_soft: int
    nofile_hard: int

    @classmethod
    def here(cls) -> Capacity:
        """Read this machine's memory (psutil) and ``RLIMIT_NOFILE`` (``ulimit -n``)."""
        vm = psutil.virtual_memory()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        cap = 1 << 30  # RLIM_INFINITY reads as -1 or a huge number
        return cls(vm.total / 2**20, vm.available / 2**20,
                   cap if soft in (resource.RLIM_INFINITY, -1) else min(soft, cap),
                   cap if hard in (resource.RLIM_INFINITY, -1) else min(hard, cap))


def _stacks(plan: RunPlan) -> str:
    """``"9 configs"``, or ``"47 stacks"`` when the run serves apps besides the raw ones."""
    if all(st.app.is_raw for st in plan.stacks):
        return f"{len(plan.stacks)} configs"
    return f"{len(plan.stacks)} stacks"


def _gib(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB"


def estimated_memory_mib(plan: RunPlan) -> float:
    """Peak memory of one level, MiB: server workers + locust processes + users."""
    max_users = max(u for u, _ in plan.levels)
    return (plan.workers * SERVER_WORKER_MIB + plan.load_processes * LOCUST_PROCESS_MIB
            + max_users * USER_MIB)


def check(plan: RunPlan, *, users_from: str = "--users", exceed: bool = False,
          capacity: Capacity | None = None) -> list[str]:
    """Check ``plan`` against this machine; return the soft bounds it passes (with
    ``exceed``), one sentence each, for the caller to show as warnings.

    ``users_from`` names where the user counts came from, for the message.

    Raises:
        UserError: a hard bound is passed, or a soft one without ``exceed``; one line
            naming the option, the value, the bound and where the bound comes from.
    """
    cap = capacity or Capacity.here()
    max_users = max(u for u, _ in plan.levels)
    for name, value in (("--warmup", plan.warmup_s), ("--duration", plan.duration_s)):
        if value > MAX_WINDOW_S:
            raise UserError(f"{name} {value:g}: longer than {MAX_WINDOW_S:g} s (7 days), "
                            "the longest window bench runs")
    if plan.trial_count > MAX_TRIALS:
        raise UserError(f"--repeats {plan.repeats}: {plan.trial_count} trials ({_stacks(plan)}"
                        f" x {len(plan.levels)} levels x {plan.repeats} repeats); "
                        f"a run records at most {MAX_TRIALS}")
    fd_hard = cap.nofile_hard - FD_RESERVE
    if max_users > fd_hard:
        raise UserError(f"{users_from} {max_users}: more users than one process can hold "
                        f"connections for (open-file hard limit {cap.nofile_hard}, "
                        f"{FD_RESERVE} kept: at most {fd_hard})")
    for name, value, each in (("--workers", plan.workers, SERVER_WORKER_MIB),
                              ("--load-processes", plan.load_processes, LOCUST_PROCESS_MIB)):
        if value * each > cap.memory_total_mib:
            raise UserError(f"{name} {value}: about {_gib(value * each)} of memory "
                            f"({each:g} MiB each); this machine has {_gib(cap.memory_total_mib)}")
    memory = estimated_memory_mib(plan)
    if memory > cap.memory_total_mib:
        raise UserError(f"{users_from} {max_users} with --workers {plan.workers} and "
                        f"--load-processes {plan.load_processes}: about {_gib(memory)} of "
                        f"memory; this machine has {_gib(cap.memory_total_mib)}")

    soft: list[str] = []
    per_cpu = WORKERS_PER_SERVER_CPU * len(plan.server_cpus)
    if plan.workers > per_cpu:
        soft.append(f"--workers {plan.workers}: more than {WORKERS_PER_SERVER_CPU} per server "
                    f"CPU ({len(plan.server_cpus)} CPU(s): at most {per_cpu}); they would "
                    "measure contention")
    per_load_cpu = LOAD_PROCESSES_PER_LOAD_CPU * len(plan.load_cpus)
    if plan.load_processes > per_load_cpu:
        soft.append(f"--load-processes {plan.load_processes}: more than "
                    f"{LOAD_PROCESSES_PER_LOAD_CPU} per load CPU ({len(plan.load_cpus)} CPU(s): "
                    f"at most {per_load_cpu})")
    fd_soft = cap.nofile_soft - FD_RESERVE
    if max_users > fd_soft:
        soft.append(f"{users_from} {max_users}: above the open-file soft limit the servers "
                    f"inherit (ulimit -n {cap.nofile_soft}, {FD_RESERVE} kept: at most "
                    f"{fd_soft}); raise it with ulimit -n")
    if memory > 0.8 * cap.memory_available_mib:
        soft.append(f"{users_from} {max_users} with --workers {plan.workers}: about "
                    f"{_gib(memory)} of memory; {_gib(cap.memory_available_mib)} is available now")
    wall_s = plan.estimated_seconds()
    if wall_s > MAX_WALL_S:
        soft.append(f"{plan.trial_count} trials ({_stacks(plan)} x "
                    f"{len(plan.levels)} levels x {plan.repeats} repeats) take about "
                    f"{wall_s / 3600:.3g} h; more than {MAX_WALL_S / 3600:g} h")
    if soft and not exceed:
        raise UserError(f"{soft[0]} (pass --exceed-limits to run anyway)")
    return soft
