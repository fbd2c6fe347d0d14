"""The ``bench`` command line (typer). Each command parses, calls one function, renders.

Bad input raises :class:`~harness.errors.UserError` anywhere; it is caught here once
and becomes one line on stderr and exit code 2. Ctrl-C exits 130, SIGTERM 143, SIGHUP 129,
after the run has torn everything down and saved what it measured.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import cli_apps, config, cpulock, runmeta, servers, stacks
from harness.cli_check import AtUsersOpt, SloOpt
from harness.cli_check import show as show_check
from harness.errors import UserError
from harness.scenarios import check_levels, rate_unit

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark Python WSGI and ASGI servers on equivalent workloads.")

# emoji=False: a `:name:` in user text (a path, a reason) stays as typed.
out = Console(emoji=False)
if not out.is_terminal:  # logs and CI: wide enough for the summary table on one line per row
    out.width = 170
err = Console(stderr=True, emoji=False)
if not err.is_terminal:  # --json sends the progress and the summary table here
    err.width = 170


def _positive_ints(text: str, option: str) -> tuple[int, ...]:
    """Levels like ``10,50,200``: positive, each once (see :func:`scenarios.check_levels`)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{option} {text!r}: expected positive integers like 10,50,200") from None
    if not values or any(v <= 0 for v in values):
        raise UserError(f"{option} {text!r}: expected positive integers like 10,50,200")
    check_levels(values, f"{option} {text!r}")
    return values


def _positive_floats(text: str, option: str) -> tuple[float, ...]:
    """Rates like ``50,100``: finite, in (0, 1e6), each once."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{option} {text!r}: expected positive numbers like 50,100") from None
    if not values or any(not (0 < v < 1e6) for v in values):  # also refuses nan and inf
        raise UserError(f"{option} {text!r}: expected positive numbers like 50,100 (< 1e6)")
    check_levels(values, f"{option} {text!r}")
    return values


def _finite(name: str, value: float | None, *, minimum: float, strict: bool) -> None:
    """Refuse nan, inf and values below ``minimum`` (or equal to it when ``strict``)."""
    if value is None:
        return
    if not math.isfinite(value):
        raise UserError(f"{name} {value}: must be a finite number")
    if value < minimum or (strict and value == minimum):
        raise UserError(f"{name} {value}: must be {'>' if strict else '>='} {minimum:g}")


def _params(items: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--param {item!r}: expected key=value")
        parsed[key.strip()] = value.strip()
    return parsed


def _writable_dir(path: Path, option: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write there ({exc.strerror})") from None
    return path


def _could_write(path: Path, option: str) -> None:
    """Check that folder ``path`` exists and is writable, or could be made, without making it.

    The nearest existing ancestor must be a folder a file can be created in (tried with a
    temporary file, removed at once: permissions alone do not say it for root or /proc).

    Raises:
        UserError: a part of the path is a file, or nothing can be written there.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{option} {path}: cannot write there ({existing} is not a folder)")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write there ({exc.strerror})") from None


class RichReporter:
    """Progress bar (config, level, time left) plus one line per finished trial."""

    def __init__(self, progress: Progress, total_s: float, rate_unit: str = "req/s") -> None:
        self.progress = progress
        self.rate_unit = rate_unit
        self.overall = progress.add_task("run", total=total_s)
        self.current = progress.add_task("", total=1.0)
        self._done_s = 0.0
        self._trial_s = 1.0

    def trial_started(self, server: str, users: int, repeat: int, seconds: float) -> None:
        self._trial_s = seconds
        self.progress.reset(self.current, total=seconds,
                            description=f"{escape(server)} · users={users} · repeat {repeat}")

    def tick(self, elapsed_s: float) -> None:
        self.progress.update(self.current, completed=min(elapsed_s, self._trial_s))
        self.progress.update(self.overall, completed=self._done_s + min(elapsed_s, self._trial_s))

    def trial_finished(self, trial: dict[str, Any]) -> None:
        self._done_s += self._trial_s
        self.progress.update(self.overall, completed=self._done_s)
        status = trial["status"]
        colour = {"ok": "green", "invalid": "yellow", "unsupported": "blue"}.get(status, "red")
        rps = trial.get("throughput_rps")
        p99 = trial.get("latency_p99_ms")
        figures = (f"{rps:8.1f} {self.rate_unit}  p99 {p99:8.2f} ms"
                   if isinstance(rps, float) and not math.isnan(rps) and not math.isnan(p99)
                   else "")
        server = escape(f"{stacks.stack_name(trial['server'], trial.get('app', '')):<17}")
        reason = escape(str(trial.get("reason", "")))
        self.progress.console.print(
            f"[{colour}]{escape(f'{status:>11}')}[/] {server} users={trial['users']:<5} "
            f"{figures} {reason}", highlight=False, emoji=False, soft_wrap=True)

    def message(self, text: str) -> None:
        self.progress.console.print(text, markup=False, emoji=False, highlight=False)


@app.command()
def run(
    scenario: Annotated[str | None, typer.Option(help="Scenario name (see `bench list scenarios`), or a scenario file PATH.toml; required unless --app.")] = None,
    servers_opt: Annotated[str | None, typer.Option("--servers", help="Comma-separated server configs; default: the project's servers (bench.toml) that serve the scenario's protocol, else every config serving it.")] = None,
    apps_opt: Annotated[str | None, typer.Option("--apps", help="Comma-separated apps (see `bench list apps`), or all; default: raw. Each runs under every chosen server of its interface.")] = None,
    users: Annotated[str | None, typer.Option(help="Load levels: concurrent users, e.g. 10,50,200.")] = None,
    duration: Annotated[float | None, typer.Option(help="Measurement window per level, s.")] = None,
    warmup: Annotated[float | None, typer.Option(help="Fixed warm-up before each window, s (excluded); default: until steady state (http scenarios).")] = None,
    max_warmup: Annotated[float | None, typer.Option(help="Longest steady-state warm-up per level, s; a level not steady by then is invalid (not-steady).")] = None,
    repeats: Annotated[int | None, typer.Option(help="Repeats of every (config, level), interleaved.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes per server; default: CPUs in the server set.")] = None,
    param: Annotated[list[str] | None, typer.Option(help="Scenario parameter override key=value (repeatable).")] = None,
    server_cpus: Annotated[str | None, typer.Option(help="CPUs for the server, e.g. 0 or 0-2.")] = None,
    load_cpus: Annotated[str | None, typer.Option(help="CPUs for the load generator, e.g. 3.")] = None,
    results_dir: Annotated[Path | None, typer.Option(help="Where run folders are written; default: the project's results_dir (bench.toml), else ./results.")] = None,
    report: Annotated[Path | None, typer.Option(help="Report path; default <reports_dir>/<run-id>.html (the project's reports_dir, else ./reports).")] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Write the run folder only, no HTML report (`bench report RUN` renders it later).")] = False,
    backend: Annotated[str, typer.Option(help="Where servers run: local (processes) or docker.")] = "local",
    docker_host: Annotated[str | None, typer.Option(help="--backend docker: the engine, a URL (unix://, tcp://, ssh://user@host) or a docker context name; default: DOCKER_HOST, else the current docker context, else the local socket. Not a unix socket: CPU and memory from the engine's stats only (docs/remote-engine.md).")] = None,
    target_host: Annotated[str | None, typer.Option(help="--backend docker: where the load reaches the published ports (127.0.0.1, the only target: loopback only); given, the servers count as on another host: CPU and memory from the engine's stats only.")] = None,
    load_processes: Annotated[int, typer.Option(help="locust processes (its master/worker mode when > 1).")] = 1,
    load_agents: Annotated[int, typer.Option(help="Load agents to wait for (`bench agent` processes, locust workers on load hosts); the local locust is then their master only. See docs/distributed.md.")] = 0,
    master_bind: Annotated[str | None, typer.Option(help="With --load-agents: HOST:PORT the master listens on (default 127.0.0.1, a free port).")] = None,
    agent_timeout: Annotated[float, typer.Option(help="With --load-agents: seconds to wait for them (exit 2 if fewer connect).")] = 60.0,
    arrival_rate: Annotated[str | None, typer.Option(help="Open loop: constant arrival rates in req/s, one level each, e.g. 50,100; --users then caps requests in flight (default 1000).")] = None,
    cross_check: Annotated[bool, typer.Option("--cross-check", help="After each closed-loop HTTP trial, drive the same server at the same concurrency with wrk and record the agreement (needs wrk).")] = False,
    wait_cpus: Annotated[float, typer.Option(envvar="BENCH_WAIT_CPUS", help="If another run holds one of our CPUs, wait up to this many seconds for it (default: refuse at once).")] = 0.0,
    exceed_limits: Annotated[bool, typer.Option("--exceed-limits", help="Run past a soft bound of this machine (workers or locust processes per CPU, ulimit -n, available memory, a day of wall time); hard bounds still apply.")] = False,
    keep_requests: Annotated[bool, typer.Option("--keep-requests", help="Keep every HTTP request's record (requests/<trial>/*.csv); by default only the latency histograms are kept (latency/<trial>.json).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check everything, print the plan and exit 0: nothing is started or written.")] = False,
    fail_on_slo: Annotated[bool, typer.Option("--fail-on-slo", help="After the run, judge its ok trials against the SLO (as bench check): exit 1 when one misses it, 3 when none is ok.")] = False,
    slo: SloOpt = None,
    at_users: AtUsersOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout (run folder, report, trials, SLO check); progress and tables go to stderr.")] = False,
    own_app: Annotated[str | None, typer.Option("--app", help="Your app, unmodified: PKG.MODULE:ATTR, run under every server config of its --interface (or --servers); needs --path.", rich_help_panel="Your own app")] = None,
    interface: Annotated[str | None, typer.Option(help="wsgi or asgi: how --app is served.", rich_help_panel="Your own app")] = None,
    path: Annotated[str | None, typer.Option(help="The request to benchmark, e.g. '/items?id=1'.", rich_help_panel="Your own app")] = None,
    method: Annotated[str, typer.Option(help="Its HTTP method.", rich_help_panel="Your own app")] = "GET",
    header: Annotated[list[str] | None, typer.Option(help="A request header K:V (repeatable).", rich_help_panel="Your own app")] = None,
    body_file: Annotated[str | None, typer.Option(help="The request body, from this file.", rich_help_panel="Your own app")] = None,
    app_dir: Annotated[str | None, typer.Option(help="Folder put first on the servers' PYTHONPATH (default: the current one).", rich_help_panel="Your own app")] = None,
    expect_status: Annotated[int | None, typer.Option(help="The status every answer must have.", rich_help_panel="Your own app")] = None,
    expect_body_file: Annotated[str | None, typer.Option(help="The body every answer must have, byte for byte.", rich_help_panel="Your own app")] = None,
    expect_contains: Annotated[str | None, typer.Option(help="Text every answer's body must contain.", rich_help_panel="Your own app")] = None,
    env: Annotated[list[str] | None, typer.Option(help="Environment of the server processes K=V (repeatable).", rich_help_panel="Your own app")] = None,
) -> None:
    """Benchmark a scenario on server configs and write results/ and an HTML report.

    Exit 0 when the run completed, 3 when every trial failed (nothing was measured) or,
    with --fail-on-slo, when no trial is ok, 1 when --fail-on-slo finds an ok trial
    missing the SLO, 2 on bad input, 130/143 when interrupted.
    """
    from harness import limits
    from harness.backends import get_backend, placement
    from harness.machine import default_cpu_sets, format_cpus, parse_cpus, require_disjoint

    if cross_check:
        from harness.oracle import require_wrk

        require_wrk()  # no wrk: one line with the install hint, nothing started
    human = err if json_out else out
    cfg = config.load()
    sc = cli_apps.run_scenario(scenario, own_app, _params(param or []), apps_opt, {
        "interface": interface, "path": path, "method": method,
        "headers": cli_apps.pairs(header, ":", "--header"), "body_file": body_file,
        "app_dir": app_dir, "env": cli_apps.pairs(env, "=", "--env"),
        "expect_status": expect_status, "expect_body_file": expect_body_file,
        "expect_contains": expect_contains}, scenario_paths=cfg.scenarios)
    from harness import realio

    # a target or engine the backend cannot use, components that cannot start (or be
    # sampled) here, an unknown backend or an unusable engine: one line, nothing started
    psutil_view = placement(backend, docker_host=docker_host, target_host=target_host)
    realio.check(sc, backend, psutil_view=psutil_view)
    get_backend(backend, docker_host=docker_host, target_host=target_host).check()
    if docker_host is not None:
        from harness import dockerhost

        # The database service, the watchdog and compose reach the same engine.
        dockerhost.export(dockerhost.resolve(docker_host), os.environ)
    chosen = _servers(servers_opt, cfg, sc.protocol)
    apps = ([stacks.own_app_spec(sc.app, sc.request_path)] if sc.app is not None
            else stacks.select_apps(apps_opt))
    run_stacks = stacks.pairs(chosen, apps, servers_named=servers_opt is not None,
                              apps_named=sc.app is not None or (
                                  apps_opt is not None and apps_opt.strip() != "all"))
    if backend != "local" and any(not a.is_raw for a in apps):
        raise UserError(f"--backend {backend} serves the shipped raw apps only; run "
                        + (f"your app {sc.app.target}" if sc.app is not None else
                           f"--apps {','.join(a.name for a in apps if not a.is_raw)}")
                        + " with --backend local")
    chosen = list(dict.fromkeys(st.server for st in run_stacks))
    levels = _positive_ints(users, "--users") if users is not None else sc.users
    results_dir = results_dir if results_dir is not None else cfg.results()
    rates = _positive_floats(arrival_rate, "--arrival-rate") if arrival_rate is not None else ()
    if rates and users is None:
        levels = (1000,)
    objectives = _slo_gate(fail_on_slo, slo, at_users, levels)
    _finite("--duration", duration, minimum=0, strict=True)
    _finite("--warmup", warmup, minimum=0, strict=False)
    for name, count in (("--repeats", repeats), ("--workers", workers),
                        ("--load-processes", load_processes)):
        if count is not None and count <= 0:
            raise UserError(f"{name} {count}: must be > 0")
    _finite("--max-warmup", max_warmup, minimum=0, strict=True)
    from harness.agents import check_run_options

    bind = check_run_options(load_agents, load_processes, master_bind, agent_timeout)
    if max_warmup is not None and not (0 < max_warmup < 3600):
        raise UserError(f"--max-warmup {max_warmup}: must be > 0 and < 3600 s")
    if warmup is not None and max_warmup is not None:
        raise UserError("--warmup (fixed) and --max-warmup (steady state) exclude each other")
    if max_warmup is not None and sc.protocol != "http":
        raise UserError(f"--max-warmup: steady-state detection applies to http scenarios; "
                        f"{sc.name} is {sc.protocol}: use --warmup")
    steady = warmup is None and (sc.steady or max_warmup is not None)
    default_server, default_load = default_cpu_sets()
    s_cpus = parse_cpus(server_cpus, "--server-cpus") if server_cpus else default_server
    l_cpus = parse_cpus(load_cpus, "--load-cpus") if load_cpus else default_load
    require_disjoint(s_cpus, l_cpus)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from harness.runner import Interrupted, Runner, RunPlan  # pandas, scipy: after validation

    plan = RunPlan(
        scenario=sc, servers=chosen, users=levels,
        warmup_s=warmup if warmup is not None else sc.warmup_s,
        steady=steady, max_warmup_s=(max_warmup or sc.max_warmup_s or 12.0) if steady else 0.0,
        duration_s=duration if duration is not None else sc.duration_s,
        repeats=repeats or sc.repeats, workers=workers or len(s_cpus),
        server_cpus=s_cpus, load_cpus=l_cpus,
        results_dir=results_dir.absolute(), command=["bench", *sys.argv[1:]],
        backend=backend, load_processes=load_processes, arrival_rates=rates,
        load_agents=load_agents, master_bind=bind, agent_timeout_s=agent_timeout,
        cross_check=cross_check, keep_requests=keep_requests, stacks=tuple(run_stacks),
        docker_host=docker_host, target_host=target_host,
    )
    cpulock.wait_option(wait_cpus)
    users_from = "--users" if users is not None else f"scenario {sc.name} [load].users"
    passed = limits.check(plan, users_from=users_from, exceed=exceed_limits)
    # Nothing is created before every check has passed.
    _could_write(results_dir, "--results-dir")
    report_path = report
    if no_report and report_path is not None:
        raise UserError("--report and --no-report exclude each other")
    if report_path is not None:
        _could_write(report_path.parent, "--report")
    for text in passed:
        err.print(f"[bold yellow]warning:[/] {escape(text)} (--exceed-limits)",
                  highlight=False, soft_wrap=True)
    if set(s_cpus) & set(l_cpus):
        err.print("[bold yellow]warning:[/] one CPU only: server and load generator share it; "
                  "figures are a lower bound and not comparable with multi-core runs",
                  soft_wrap=True)
    if load_processes > len(l_cpus):
        err.print(f"[bold yellow]warning:[/] {load_processes} locust processes on "
                  f"{len(l_cpus)} load CPU(s): they share cores; saturation is judged on the "
                  "load CPUs together", soft_wrap=True)
    apps_text = ("" if [a.name for a in apps] == [stacks.RAW]
                 else f" ({len(run_stacks)} stacks of {len(apps)} apps)")
    human.print(f"[bold]{escape(sc.name)}[/] {escape(sc.request_path)} · {len(chosen)} server "
              f"configs{escape(apps_text)} × {len(plan.levels)} levels × {plan.repeats} repeats · "
              f"{'open loop' if rates else 'closed loop'} · workers={plan.workers} · "
              f"server CPUs {format_cpus(s_cpus)}, load CPUs {format_cpus(l_cpus)} · "
              f"about {plan.estimated_seconds() / 60:.1f} min", soft_wrap=True)
    if dry_run:
        _print_plan(plan, human)
        if json_out:
            from harness import jsonout

            jsonout.emit("run", jsonout.plan_document(plan))
        return
    # One lock per CPU, held until the run ends (the kernel drops it even on kill -9); a
    # run refused here has created nothing.
    cpu_locks = cpulock.acquire([*s_cpus, *l_cpus], wait_s=wait_cpus, command=plan.command)
    try:
        if sc.app is not None:  # your app, served once: a mistake is one line and exit 2
            from dataclasses import replace

            from harness.ownapp import preflight

            plan = replace(plan, own_answer=preflight(plan))
        try:
            results_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--results-dir {results_dir}: cannot write there ({exc.strerror})") from None
        # The harness's own threads (samplers, progress) must not steal the server's cores.
        os.sched_setaffinity(0, l_cpus)
        runner = Runner(plan)
        cpu_locks.note(run_id=runner.run_id, run_dir=str(runner.run_dir), command=plan.command)
        runner.state.meta = runner.state.meta.replace(cpu_locks=runmeta.CpuLocksMeta(
            folder=str(cpu_locks.folder), cpus=cpu_locks.cpus, waited_s=round(cpu_locks.waited_s, 3)))
        exit_code = 0
        with Progress(TextColumn("{task.description:<42}"), BarColumn(), TimeRemainingColumn(),
                      console=human, transient=True) as progress:
            total_s = plan.estimated_seconds()
            runner.reporter = RichReporter(progress, total_s, rate_unit(plan.scenario.protocol))
            try:
                runner.execute()
            except Interrupted as exc:
                exit_code = exc.exit_code
            except KeyboardInterrupt:
                exit_code = 130
        if exit_code:
            err.print(f"[bold yellow]interrupted[/]: results so far kept in {escape(str(runner.run_dir))}",
                      soft_wrap=True)
        out_html = report_path or cfg.reports() / f"{runner.run_id}.html"
        path = None if no_report else _render([runner.run_dir], out_html)
        data = _summary(runner.run_dir, human)
        human.print(f"results: {runner.run_dir}" + (f"\nreport:  {path}" if path else ""),
                    markup=False, highlight=False, soft_wrap=True)
        trials = runner.state.trials
        if not exit_code and trials and all(t["status"] == "failed" for t in trials):
            err.print(f"bench: every trial failed ({len(trials)}): nothing was measured; the "
                      f"reasons are in the table above and in {runner.run_dir}/logs",
                      markup=False, highlight=False, soft_wrap=True)
            exit_code = EXIT_ALL_FAILED
        check = None
        if fail_on_slo and not exit_code:
            from harness.slo import judge

            check = judge(data, objectives, at_users=at_users)
            show_check(check, human)
            exit_code = check.exit_code
        if json_out:
            from harness import jsonout

            jsonout.emit("run", jsonout.run_document(data, report=path, exit_code=exit_code,
                                                     slo=check))
        if exit_code:
            raise typer.Exit(exit_code)
    finally:
        cpu_locks.release()  # not left to exit: `run` may run again in one process


def _servers(names: str | None, cfg: Any, protocol: str) -> list[Any]:
    """``--servers``, else the project's ``servers`` that serve ``protocol`` (all of
    them for WebSocket, whose WSGI configs are recorded unsupported), else every config
    serving it (:func:`servers.select`).

    Raises:
        UserError: a bad --servers list, or none of the project's servers serves it.
    """
    if names:
        return servers.select(names.split(","), protocol)  # type: ignore[arg-type]
    if cfg.servers is None:
        return servers.select(None, protocol)  # type: ignore[arg-type]
    usable = [n for n in cfg.servers
              if protocol == "websocket" or protocol in servers.SERVERS[n].protocols]
    if not usable:
        raise UserError(f"{cfg.where}: servers: none of {', '.join(cfg.servers)} serves "
                        f"{protocol}; give --servers")
    return servers.select(usable, protocol)  # type: ignore[arg-type]


def _slo_gate(fail_on_slo: bool, spec: str | None, at_users: int | None,
              levels: tuple[int, ...]) -> Any:
    """Check ``--slo``/``--at-users`` of ``bench run`` before anything starts; the
    parsed objectives (``None``: the scenario's SLO).

    Raises:
        UserError: either option without --fail-on-slo, a bad spec, a level not run.
    """
    if not fail_on_slo:
        for name, value in (("--slo", spec), ("--at-users", at_users)):
            if value is not None:
                raise UserError(f"{name} judges the run only with --fail-on-slo; add it")
        return None
    from harness.slo import check_at_users, parse

    objectives = parse(spec) if spec is not None else None
    check_at_users(at_users, list(levels), "this run")
    return objectives


#: ``bench run``'s exit code when every trial failed (no server started, every response
#: wrong...): the run folder and report are still written, but nothing was measured.
EXIT_ALL_FAILED = 3


def _print_plan(plan: Any, console: Console) -> None:
    """``--dry-run``: what the run would do, one line per fact; nothing is started."""
    levels = ", ".join(f"{r:g} req/s" if not math.isnan(r) else str(u) for u, r in plan.levels)
    cap = f" (users cap {max(plan.users)})" if plan.arrival_rates else ""
    warm = (f"warm-up until steady state (at most {plan.max_warmup_s:g} s)" if plan.steady
            else f"warm-up {plan.warmup_s:g} s")
    lines = [f"servers:  {', '.join(c.name for c in plan.servers)}"]
    if any(not st.app.is_raw for st in plan.stacks):
        lines.append(f"stacks:   {len(plan.stacks)}: " + ", ".join(
            st.name + (" (unsupported)" if plan.unsupported(st) else "") for st in plan.stacks))
    lines += [
        f"levels:   {levels}{cap}",
        (f"trials:   {plan.trial_count} ({len(plan.stacks)} "
         f"{'configs' if all(st.app.is_raw for st in plan.stacks) else 'stacks'} × "
         f"{len(plan.levels)} "
         f"levels × {plan.repeats} repeats), {warm} + window {plan.duration_s:g} s each"),
        f"backend:  {plan.backend}, " + (f"{plan.load_agents} load agent(s) (bench agent)"
                                         if plan.load_agents else
                                         f"{plan.load_processes} locust process(es)"),
        f"results:  {plan.results_dir}",
        "dry run: nothing started, nothing written",
    ]
    for c in plan.servers:  # recorded as unsupported, with this reason, if run
        reason = c.unsupported(backend=plan.backend, workers=plan.workers)
        if reason:
            lines.insert(-1, f"unsupported: {c.name}: {reason}")
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _render(run_dirs: list[Path], path: Path, *, target_rps: float | None = None,
            slo_p99_ms: float | None = None, png_dir: Path | None = None) -> Path:
    """Write the HTML report (and, with ``png_dir``, one PNG per chart); return its path.

    Without a browser for the PNGs, says so in one line and still writes the HTML.
    """
    from harness.report import BrowserNotFound, analyse, render, write_pngs
    from harness.results import load_run

    for name, value in (("--target-rps", target_rps), ("--slo-p99-ms", slo_p99_ms)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{name} {value}: must be a number > 0")
    _writable_dir(path.parent, "--output")
    # One analysis per run, shared by the HTML and the PNGs.
    runs = [analyse(load_run(d), target_rps=target_rps, slo_p99_ms=slo_p99_ms)
            for d in run_dirs]
    written = render(runs, path)
    if png_dir is not None:
        _writable_dir(png_dir, "--png")
        try:
            pngs = write_pngs(runs, png_dir)
        except BrowserNotFound as exc:
            err.print(f"bench: {exc}", markup=False, highlight=False, soft_wrap=True)
        else:
            out.print(f"png:     {len(pngs)} charts in {png_dir}", markup=False, highlight=False,
                      soft_wrap=True)
    return written


def _summary(run_dir: Path, console: Console) -> Any:
    """Print the run's trials as a table on ``console``; the run as read back (RunData)."""
    from harness.results import load_run

    data = load_run(run_dir)
    table = Table(title=escape(f"{data.meta.scenario.name} · {data.meta.run_id}"))
    unit = rate_unit(data.meta.scenario.protocol or "http")
    several = set(data.trials["app"]) - {stacks.RAW}
    for col in ("server", *(("app",) if several else ()), "interface", "users", "status", unit,
                "p50 ms", "p99 ms", "CPU %", "PSS MiB", "gen CPU %", "reason"):
        table.add_column(col, overflow="fold")
    def f(v: Any, fmt: str) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)
    for _, t in data.trials.sort_values(["users", "interface", "server", "app"]).iterrows():
        table.add_row(*(escape(str(v)) for v in (
                      t["server"], *((t["app"],) if several else ()), t["interface"],
                      t["users"], t["status"],
                      f(t["throughput_rps"], ".1f"), f(t["latency_p50_ms"], ".2f"),
                      f(t["latency_p99_ms"], ".2f"), f(t["cpu_percent_mean"], ".0f"),
                      f(t["pss_mib_peak"], ".1f"), f(t["generator_cpu_percent"], ".0f"),
                      t["reason"][:80])))
    console.print(table)
    return data


@app.command("report")
def report_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders (or their run.json).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="HTML file to write.")] = None,
    target_rps: Annotated[float | None, typer.Option(help="Plan capacity for this load, req/s: instances needed (at 70% of max sustainable each) and their memory.")] = None,
    slo_p99_ms: Annotated[float | None, typer.Option(help="SLO p99 latency, ms, for every run (default: each run's scenario SLO).")] = None,
    png: Annotated[Path | None, typer.Option(help="Also write each chart as PNG into this folder (needs Chromium/Chrome; BROWSER_PATH).")] = None,
) -> None:
    """Render one HTML capacity-planning report from stored runs (one section per run)."""
    from harness.results import load_run

    runs = [load_run(d) for d in run_dirs]
    name = (runs[0].meta.run_id or runs[0].path.name if len(runs) == 1
            else f"combined-{len(runs)}-runs")
    path = _render([r.path for r in runs], output or config.load().reports() / f"{name}.html",
                   target_rps=target_rps, slo_p99_ms=slo_p99_ms, png_dir=png)
    out.print(f"report: {path}", markup=False, highlight=False, soft_wrap=True)


# Commands that live in their own modules register themselves here.
from harness import cli_list

cli_list.register(app)
cli_apps.register(cli_list.list_app)
from harness import cli_check

cli_check.register(app)
from harness import cli_docker

cli_docker.register(app)
from harness import cli_ci

cli_ci.register(app)
# (cli_ci: compare / export / history.)
from harness import cli_oracle

cli_oracle.register(app)
from harness import cli_clean

cli_clean.register(app)
from harness import cli_agent

cli_agent.register(app)


def main() -> None:
    """Console-script entry point: one line and exit 2 for bad input, never a traceback."""
    try:
        _main()
    finally:
        # Every path above stops what it started in its own finally; this only catches a
        # signal that landed between a spawn and its caller's try. harness.procs not
        # imported: nothing was started.
        procs = sys.modules.get("harness.procs")
        if procs is not None:
            procs.stop_started()


def _main() -> None:
    try:
        # Without standalone mode, click returns (not raises) typer.Exit's code.
        code = app(standalone_mode=False)
    except UserError as exc:
        # markup=False: user text (a path, a --param, "[load].users") is shown as typed.
        err.print(f"bench: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # typer vendors click, so its usage errors are matched by shape, not by class.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            err.print(f"bench: error: {exc.format_message()}", markup=False, highlight=False,
                      soft_wrap=True)
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
