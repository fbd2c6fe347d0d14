"""``bench check RUN [--slo SPEC] [--at-users N] [--json]``: a stored run against an SLO.

Registered on the main typer app by :func:`register` (called from harness.cli); ``bench
run --fail-on-slo`` renders its check with :func:`show` too. The rule is
:func:`harness.slo.judge`: exit 1 when an ``ok`` trial misses an objective (each miss
printed with its config, level, repeat, metric, value and bound), 3 when no selected
trial is ``ok``, 0 otherwise; 2 on bad input (a bad ``--slo`` spec: one line).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from harness.errors import UserError

if TYPE_CHECKING:
    from harness.slo import Check

out = Console(emoji=False)
if not out.is_terminal:  # CI logs: one line per miss
    out.width = 170
err = Console(stderr=True, emoji=False)

#: Misses printed one per line at most; the rest are counted (all are in --json).
MAX_LINES = 40

SloOpt = Annotated[str | None, typer.Option(
    "--slo", help="Objectives, comma-separated: p50/p90/p95/p99/p999/mean/max latency "
    "(<, <=; ms, s, us), errors (<, <=; % or a fraction), rps (>, >=), pss (<, <=; MiB, GiB). "
    "Example: 'p99<150ms,errors<1%,rps>300'. Default: the scenario's [slo] "
    "(p99 <= p99_ms, errors <= max_error_rate).")]
AtUsersOpt = Annotated[int | None, typer.Option(
    "--at-users", help="Judge only the trials at this level (concurrent users); default: "
    "every level (a sweep past the knee misses at its top levels).")]


def show(check: Check, console: Console) -> None:
    """The check for a person: the SLO, each miss (config · level · repeat: metric value,
    bound), the trials skipped for not being ok, and the verdict line."""
    def p(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    at = f" at users={check.at_users}" if check.at_users is not None else ""
    p(f"bench check · {check.run_id} · {check.scenario}{at} · SLO "
      f"{', '.join(o.text for o in check.objectives)} ({check.source})")
    misses = check.misses
    for v, o in misses[:MAX_LINES]:
        p(f"  missed: {check.describe(v, o)}")
    if len(misses) > MAX_LINES:
        p(f"  ... and {len(misses) - MAX_LINES} more misses (--json lists them all)")
    skipped = sum(check.skipped.values())
    if skipped:
        by = ", ".join(f"{status} {n}" for status, n in check.skipped.items())
        p(f"skipped {skipped} trial{'s' if skipped != 1 else ''} that "
          f"{'are' if skipped != 1 else 'is'} not ok ({by}): not judged, not passes")
    judged = len(check.verdicts)
    missed = sum(not v.passed for v in check.verdicts)
    if check.exit_code == 3:
        p(f"NO VALID TRIAL: no ok trial among the {skipped} selected; nothing to judge "
          "(exit 3)")
    elif missed:
        p(f"FAIL: {missed} of {judged} ok trials missed the SLO (exit 1)")
    else:
        p(f"PASS: all {judged} ok trials meet the SLO")


def check_cmd(
    run: Annotated[Path, typer.Argument(help="A run folder (or its run.json).")],
    slo: SloOpt = None,
    at_users: AtUsersOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout (the verdict, every judged trial, every miss); the human lines go to stderr.")] = False,
) -> None:
    """Judge a stored run's ok trials against an SLO: exit 1 when one misses it, 3 when
    no trial is ok, 0 otherwise (2 on bad input)."""
    from harness import slo as slo_mod
    from harness.results import load_run

    objectives = slo_mod.parse(slo) if slo is not None else None
    if at_users is not None and at_users <= 0:
        raise UserError(f"--at-users {at_users}: must be > 0")
    check = slo_mod.judge(load_run(run), objectives, at_users=at_users)
    show(check, err if json_out else out)
    if json_out:
        from harness import jsonout

        jsonout.emit("check", check.to_json())
    if check.exit_code:
        raise typer.Exit(check.exit_code)


def register(app: typer.Typer) -> None:
    """Add ``check`` to the ``bench`` app."""
    app.command("check")(check_cmd)

