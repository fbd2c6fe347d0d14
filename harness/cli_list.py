"""``bench list scenarios`` and ``bench list servers`` (``--json``: one JSON document).

Registered on the main typer app by :func:`register` (called from harness.cli). The
scenarios listed are those shipped with bench plus the project's (``scenarios`` in
``bench.toml`` or ``[tool.bench]``, :mod:`harness.config`).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import config, scenarios, servers

out = Console(emoji=False)
if not out.is_terminal:
    out.width = 170

list_app = typer.Typer(no_args_is_help=True, help="List scenarios or server configs.")

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of the table.")]


@list_app.command("scenarios")
def list_scenarios(json_out: JsonOpt = False) -> None:
    """Scenarios (shipped, and the project's from bench.toml) with their request,
    parameters, load levels and SLO."""
    cfg = config.load()
    found = scenarios.catalogue(cfg.scenarios)
    loaded = [scenarios.parse(found[name]) for name in sorted(found)]
    if json_out:
        from harness import jsonout

        jsonout.emit("list scenarios", {
            "config": str(cfg.source) if cfg.source else None,
            "scenarios": [jsonout.scenario_document(sc) for sc in loaded]})
        return
    own = bool(cfg.scenarios)
    table = Table(title=escape(f"project: {cfg.where}") if cfg.source else None)
    for col in ("scenario", "protocol", "request", "params (default [min..max])", "users",
                "warmup+duration s", "SLO", *(("file",) if own else ())):
        table.add_column(escape(col), overflow="fold")
    shipped = scenarios.SCENARIOS_DIR.resolve()
    for sc in loaded:
        params = ", ".join(p.summary() for p in sc.params.values())
        warm = f"steady<={sc.max_warmup_s:g}" if sc.steady else f"{sc.warmup_s:g}"
        source = "bench" if sc.source.resolve().parent == shipped else str(sc.source)
        table.add_row(*(escape(v) for v in (
                      sc.name, sc.protocol, f"{sc.method} {sc.request_path}", params,
                      ",".join(map(str, sc.users)), f"{warm}+{sc.duration_s:g}",
                      f"p99 <= {sc.slo_p99_ms:g} ms, errors <= {sc.slo_max_error_rate:.1%}",
                      *((source,) if own else ()))))
    out.print(table)


@list_app.command("servers")
def list_servers(json_out: JsonOpt = False) -> None:
    """Server configs with interface, protocols, command template and whether they run here.

    ``default``: run by ``bench run`` without ``--servers``; the others when named.
    ``here``: ``ok``, or ``unsupported`` with the reason (package or program missing).
    """
    if json_out:
        from harness import jsonout

        jsonout.emit("list servers", {
            "servers": [jsonout.server_document(c) for c in servers.SERVERS.values()]})
        return
    table = Table()
    for col in ("server", "interface", "protocols", "threads", "default", "here",
                "command template"):
        table.add_column(col, overflow="fold")
    for c in servers.SERVERS.values():
        reason = c.unsupported()
        table.add_row(c.name, c.interface, ",".join(sorted(c.protocols)),
                      str(c.threads or c.worker_connections or ""),
                      "yes" if c.name in servers.DEFAULT_SERVERS else "",
                      escape(f"unsupported: {reason}" if reason else "ok"),
                      escape(" ".join(c.template).replace("{python}", "python")))
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add ``list scenarios`` and ``list servers`` to the ``bench`` app."""
    app.add_typer(list_app, name="list")
