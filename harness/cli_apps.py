"""The app axis on the command line: ``bench list apps``, and the scenario of a ``bench
run`` given ``--scenario`` or ``--app`` (an app of the user's) with its options."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import scenarios, stacks
from harness.errors import UserError
from harness.scenarios.own import own_app as own_app_scenario

#: ``bench run``'s options that describe an own app (besides ``--app``), by parameter.
APP_OPTIONS = {"interface": "--interface", "path": "--path", "method": "--method",
               "headers": "--header", "body_file": "--body-file", "app_dir": "--app-dir",
               "env": "--env", "expect_status": "--expect-status",
               "expect_body_file": "--expect-body-file", "expect_contains": "--expect-contains"}


def pairs(items: list[str] | None, sep: str, option: str) -> dict[str, str]:
    """``K:V`` (headers, values stripped) or ``K=V`` (environment) items as a dict.

    Raises:
        UserError: an item without ``sep`` or with an empty key.
    """
    out: dict[str, str] = {}
    for item in items or []:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise UserError(f"{option} {item!r}: expected K{sep}V")
        out[key.strip()] = value.strip() if sep == ":" else value
    return out


def run_scenario(name: str | None, own_app: str | None, params: dict[str, str],
                 apps_opt: str | None, app_options: dict[str, Any], *,
                 scenario_paths: Any = ()) -> scenarios.Scenario:
    """The run's scenario: ``--scenario`` (with ``params``, from ``--param``; found among
    the shipped ones and the project's ``scenario_paths``, harness.config), or the one
    ``--app`` and ``app_options`` describe (:func:`harness.scenarios.own_app`).

    Raises:
        UserError: neither or both given; ``--param`` or ``--apps`` with ``--app`` (or
            with a scenario file that has its own ``[app]``); an own-app option without
            ``--app``; any bad value.
    """
    given = [key for key, value in app_options.items()
             if value not in (None, {}) and not (key == "method" and value == "GET")]
    if own_app is None:
        if name is None:
            raise UserError("Missing option '--scenario' (or --app PKG.MODULE:ATTR)")
        if given:
            raise UserError(f"{APP_OPTIONS[given[0]]} is for --app PKG.MODULE:ATTR")
        sc = scenarios.load(name, paths=scenario_paths).with_params(params)
        if sc.app is not None and apps_opt is not None:
            raise UserError(f"--apps: scenario {sc.name} benchmarks an app of its own ([app])")
        return sc
    if name is not None:
        raise UserError("--app and --scenario exclude each other (a scenario file with an "
                        "[app] table holds both)")
    if params or apps_opt is not None:
        raise UserError(f"{'--param' if params else '--apps'} does not apply to --app")
    return own_app_scenario(target=own_app, **app_options)


def list_apps(json_out: Annotated[bool, typer.Option(
        "--json", help="One JSON document on stdout instead of the table.")] = False) -> None:
    """Apps: the raw callables and each framework flavour, with the framework's installed
    version, the interfaces it is served through and the scenarios it can serve."""
    out = Console(emoji=False)
    if not out.is_terminal:
        out.width = 170
    loaded = [scenarios.load(name) for name in scenarios.available()]
    paths = {sc.name: sc.path for sc in loaded}
    websocket = {sc.name for sc in loaded if sc.protocol == "websocket"}
    if json_out:
        from harness import jsonout

        jsonout.emit("list apps", {"apps": [
            {"name": a.name, "framework": a.framework, "version": a.version() or None,
             "interfaces": list(a.interfaces), "targets": dict(a.targets),
             "workloads": stacks.workload_paths(a, paths),
             "unsupported": {name: a.unsupported(path) for name, path in paths.items()
                             if a.unsupported(path)},
             "notes": a.notes} for a in stacks.APPS.values()]})
        return
    table = Table()
    for col in ("app", "framework", "version", "interfaces", "workloads", "notes"):
        table.add_column(col, overflow="fold")
    for a in stacks.APPS.values():
        # WebSocket needs ASGI: an app served through both interfaces serves it through one
        workloads = [w + (" (asgi)" if w in websocket and len(a.interfaces) > 1 else "")
                     for w in stacks.workload_paths(a, paths)]
        table.add_row(*(escape(v) for v in (
            a.name, a.framework, a.version() or "-", ",".join(a.interfaces),
            ", ".join(workloads) or "-", a.notes)))
    out.print(table)


def register(list_app: typer.Typer) -> None:
    """Add ``bench list apps``."""
    list_app.command("apps")(list_apps)
