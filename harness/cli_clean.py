"""``bench clean [RESULTS_DIR] [--dry-run]``: stop what dead runs left behind.

A run whose ``bench`` process is gone (``kill -9``, the OOM killer, a power cut of the
terminal before the watchdog could act) while its ``run.json`` still says ``running``
may have left process groups and containers. This finds them by the run's own records
only (the groups in ``groups.json``, checked against their leader's start time so a
recycled pid is never touched; containers and networks labelled with the run's compose
projects) and stops them (``harness.watchdog.clean_run``), then marks the run
``crashed``. Never by name patterns, never ``pkill``. A run that is still alive is left
alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from harness.errors import UserError


def dead_runs(results_dir: Path) -> list[Path]:
    """Run folders under ``results_dir`` (depth 1; or ``results_dir`` itself if it is a
    run) whose run.json says ``running`` and whose recorded ``bench`` process is gone on
    this host (``harness.procs.same_process``)."""
    import socket

    from harness.procs import same_process
    from harness.runmeta import RunMeta

    found = []
    single = results_dir / "run.json"
    for meta_path in [single] if single.is_file() else sorted(results_dir.glob("*/run.json")):
        try:
            meta = RunMeta.from_dict(json.loads(meta_path.read_text(encoding="utf-8")))
        except (OSError, ValueError):  # unreadable or damaged (RecordError): not ours to judge
            continue
        if meta.status != "running" or meta.harness.host != socket.gethostname():
            continue
        if same_process(meta.harness.identity()) is False:
            found.append(meta_path.parent)
    return found


def clean_cmd(
    results_dir: Annotated[Path, typer.Argument(help="Folder of run folders (default: results/), or one run folder.")] = Path("results"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be stopped; touch nothing.")] = False,
) -> None:
    """Stop the process groups and containers of runs whose bench process died, by their recorded ids and labels only, and mark those runs crashed."""
    from harness.watchdog import clean_run

    out = Console(emoji=False, width=None if sys.stdout.isatty() else 170)
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: no such folder")
    runs = dead_runs(results_dir)
    if not runs:
        out.print(f"nothing to clean in {escape(str(results_dir))}: no run there is "
                  "'running' with its bench process gone", highlight=False)
        return
    verb = "would stop" if dry_run else "stopped"
    for run_dir in runs:
        report = clean_run(run_dir, dry_run=dry_run)
        parts = [f"{len(report.groups)} process group(s)"
                 + (f" {report.groups}" if report.groups else "")]
        if report.containers or report.networks:
            parts.append(f"{len(report.containers)} container(s), {len(report.networks)} network(s)")
        note = f" ({report.docker_note})" if report.docker_note else ""
        state = ("" if dry_run else
                 "; marked crashed" if report.marked_crashed else f"; left {report.status}")
        out.print(f"{escape(run_dir.name)}: {verb} {', '.join(parts)}{escape(note)}{state}",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``clean`` command to the ``bench`` app."""
    app.command("clean")(clean_cmd)
