"""``bench agent --master HOST:PORT``: a load agent for ``bench run --load-agents N``.

Runs on a load host as locust worker process(es) of the run's master (locust's own
``--worker`` mode, with the harness's locustfile: the same user classes and per-request
records as a local run), pinned to ``--cpus``. The records, the meta and the clock
pings travel over locust's own message channel (harness/loadgen/agents.py); the agent
needs no shared folder and opens no port.

Lifetime is bounded: one line and exit 2 when not every worker reached the master
within ``--timeout`` (nothing left running); otherwise it ends when the master quits
(the run ended) or after locust's own 60 s without the master's heartbeat. Each
``--processes`` worker counts as one agent of ``--load-agents``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console(emoji=False)


def agent_cmd(
    master: Annotated[str, typer.Option(help="The run's locust master, HOST:PORT (bench run --master-bind).")],
    cpus: Annotated[str | None, typer.Option(help="CPUs to pin the worker(s) to, e.g. 1 or 2-3; default: every CPU this process may use.")] = None,
    processes: Annotated[int, typer.Option(help="locust worker processes (one agent each).")] = 1,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the master before giving up (exit 2).")] = 120.0,
) -> None:
    """Run load agent(s): locust worker(s) of a `bench run --load-agents N` master.

    Exit 0 when the master ended the session, 2 when no master answered within
    --timeout (or on bad input), the worker's own code if it failed.
    """
    import math
    import os

    from harness import procs
    from harness.agents import parse_address
    from harness.errors import UserError
    from harness.load import LOCUST_CONFIG, LOCUSTFILE
    from harness.machine import parse_cpus

    host, port = parse_address(master, "--master")
    if processes < 1:
        raise UserError(f"--processes {processes}: must be > 0")
    if not (math.isfinite(timeout) and 0 < timeout <= 86400):
        raise UserError(f"--timeout {timeout}: must be > 0 and <= 86400 s")
    pinned = parse_cpus(cpus, "--cpus") if cpus else sorted(os.sched_getaffinity(0))
    folder = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    log = folder / "locust.log"
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
            "--master-host", host, "--master-port", str(port),
            "--config", str(procs.empty_config(LOCUST_CONFIG)), "--loglevel", "WARNING",
            "--bench-agent-dir", str(folder),
            *(["--processes", str(processes)] if processes > 1 else [])]
    proc = procs.spawn(argv, cpus=pinned, log_path=log, env=procs.child_env())
    try:
        def connected() -> int:
            return len(list(folder.glob("*.connected")))

        procs.poll_until(lambda: connected() >= processes or proc.poll() is not None,
                         timeout, every_s=0.1)
        if connected() < processes:
            raise UserError(f"{connected()} of {processes} worker(s) reached a "
                            f"master at {host}:{port} within {timeout:g} s; start "
                            "`bench run --load-agents N --master-bind "
                            f"{host}:{port}` first"
                            + (f" (locust: {procs.tail(log, 1)})" if proc.poll() else ""))
        out.print(f"agent: {processes} locust worker(s) connected to {host}:{port}, pinned "
                  f"to CPUs {','.join(map(str, pinned))}; ends with the master",
                  markup=False, highlight=False, soft_wrap=True)
        code = proc.wait()
    finally:
        procs.stop_group(proc, grace_s=5.0)
        shutil.rmtree(folder, ignore_errors=True)
    if code:
        raise typer.Exit(code if code > 0 else 1)


def register(app: typer.Typer) -> None:
    app.command("agent")(agent_cmd)
