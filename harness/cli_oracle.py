"""``bench cross-check RUN``: drive a stored run's server configs and levels again with
an independent load generator (wrk) and write ``oracle.csv`` beside its trials.

Registered on the main typer app by :func:`register` (called from harness.cli). The
work is :func:`harness.cross_check.cross_check_run`; this module parses and renders. No wrk:
one line with the install hint, exit 2, before anything starts. Ctrl-C exits 130 and
SIGTERM 143, after every server it started was stopped (``oracle.csv`` keeps the levels
measured so far).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

out = Console()
if not out.is_terminal:  # CI logs: one table row per line
    out.width = 170
err = Console(stderr=True)


def cross_check_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (or its run.json).")],
    servers_opt: Annotated[str | None, typer.Option("--servers", help="Comma-separated server configs of the run to check; default: all of them.")] = None,
    wait_cpus: Annotated[float, typer.Option(envvar="BENCH_WAIT_CPUS", help="If a run holds one of the run's CPUs, wait up to this many seconds for it (default: refuse at once).")] = 0.0,
) -> None:
    """Drive a stored run's levels again with wrk and write oracle.csv (bench vs wrk).

    Each server config is re-deployed with the run's recorded settings (workers, CPU
    sets, scenario parameters) and verified; each closed-loop level is driven with wrk
    at the same concurrency, warm-up and window."""
    from harness import cpulock, cross_check, oracle
    from harness.results import load_run
    from harness.runner import Interrupted, _signals_as_interrupt

    cpulock.wait_option(wait_cpus)
    oracle.require_wrk()
    run = load_run(run_dir)  # not a run: one line, before anything starts
    names = [s.strip() for s in servers_opt.split(",") if s.strip()] if servers_opt else None
    exit_code = 0
    # The run's CPUs, locked as `bench run` locks them: a run on them would measure wrk's
    # load and this check the run's (harness.cpulock).
    cpus = [*run.meta.cpus.server, *run.meta.cpus.load]
    locks = cpulock.acquire(cpus, wait_s=wait_cpus, command=["bench", "cross-check", str(run_dir)],
                            task=f"bench cross-check of run {run.meta.run_id or run.path.name}")
    try:
        with _signals_as_interrupt():
            table = cross_check.cross_check_run(run.path, names, pin_self=True, log=lambda line: err.print(
                line, highlight=False, markup=False, soft_wrap=True))
    except Interrupted as exc:
        exit_code = exc.exit_code
    except KeyboardInterrupt:
        exit_code = 130
    finally:
        locks.release()
    if exit_code:
        err.print(f"[bold yellow]interrupted[/]: levels checked so far kept in "
                  f"{run.path / 'oracle.csv'}")
        raise typer.Exit(exit_code)
    _render(table, title=f"bench vs wrk · {run.meta.run_id or run.path.name}")
    out.print(f"oracle: {run.path / 'oracle.csv'}")


def _render(table: Any, title: str) -> None:
    """One row per trial: bench's and wrk's throughput and latency, agreement, status."""
    def f(v: Any, fmt: str) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)
    view = Table(title=title)
    for col in ("server", "users", "repeat", "bench req/s", "wrk req/s", "agreement",
                "bench p50/p99 ms", "wrk p50/p99 ms", "status", "reason"):
        view.add_column(col, overflow="fold")
    colours = {"agrees": "green", "disagrees": "bold red", "not-checked": "yellow"}
    for _, r in table.iterrows():
        status = str(r["oracle_status"])
        view.add_row(
            str(r["server"]), str(r["users"]), str(r["repeat"]),
            f(r["throughput_rps"], ".1f"), f(r["oracle_throughput_rps"], ".1f"),
            f(r["oracle_agreement"], ".3f"),
            f"{f(r['latency_p50_ms'], '.1f')} / {f(r['latency_p99_ms'], '.1f')}",
            f"{f(r['oracle_latency_p50_ms'], '.1f')} / {f(r['oracle_latency_p99_ms'], '.1f')}",
            f"[{colours[status]}]{status}[/]" if status in colours else status,
            str(r["oracle_reason"] if isinstance(r["oracle_reason"], str) else "")[:90])
    out.print(view)


def register(app: typer.Typer) -> None:
    """Add ``cross-check`` to the ``bench`` app."""
    app.command("cross-check")(cross_check_cmd)
