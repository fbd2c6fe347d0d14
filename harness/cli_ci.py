"""CI commands: ``bench compare`` (the regression gate), ``bench export``, ``bench history``
and ``bench publish``.

Registered on the main typer app by :func:`register` (called from harness.cli). Each
command parses its options, calls one function of harness.compare / harness.export /
harness.openmetrics / harness.junit / harness.history / harness.publish, and renders the
result. Bad input raises UserError (one line, exit 2).
``bench compare`` exits 1 when a gated metric regressed (unless
``--no-fail-on-regression``), 0 otherwise.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness.compare_defaults import DEFAULT_ALPHA, DEFAULT_METRICS
from harness.errors import UserError

out = Console(emoji=False)  # a `:name:` in a run id or path stays as written
if not out.is_terminal:  # CI logs: one table row per line
    out.width = 170
err = Console(stderr=True, emoji=False)
if not err.is_terminal:  # compare --json sends its table here
    err.width = 170

if TYPE_CHECKING:
    from harness.results import RunData

RESULTS_DIR = Path("results")  # of the current directory
REPORTS_DIR = Path("reports")  # of the current directory

DEFAULT_METRICS_TEXT = ",".join(DEFAULT_METRICS)

_COLOURS = {"regression": "bold red", "improvement": "bold green", "no change": "",
            "insufficient repeats": "yellow", "no data": "dim"}

MetricsOpt = Annotated[str, typer.Option(
    "--metrics", help="Comma-separated trials.csv columns: throughput_rps (higher is better), "
    "latency_*_ms, pss_mib_peak, ... (lower is better).")]
MinEffectOpt = Annotated[list[str] | None, typer.Option(
    "--min-effect", help="Smallest relative change of the medians that counts, METRIC=10% or "
    "METRIC=0.10 (repeatable). Defaults: throughput_rps=10%, latency_p99_ms=15%, "
    "pss_mib_peak=10%, others 10%.")]
AlphaOpt = Annotated[float, typer.Option(
    "--alpha", help="Significance level (family-wise, Holm across the metrics).")]


def parse_min_effects(items: list[str] | None) -> dict[str, float]:
    """``["throughput_rps=5%", "pss_mib_peak=0.2"]`` -> {metric: fraction}.

    Raises:
        UserError: not METRIC=VALUE, not a number, or a bare number >= 1 (ambiguous:
            write 10% or 0.10).
    """
    effects: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise UserError(f"--min-effect {item!r}: expected METRIC=10% or METRIC=0.10")
        try:
            fraction = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            raise UserError(f"--min-effect {item!r}: {value!r} is not a number") from None
        if not value.endswith("%") and fraction >= 1:
            raise UserError(f"--min-effect {item!r}: ambiguous; write {value}% or a fraction "
                            "like 0.10")
        effects[name] = fraction
    return effects


def _metrics(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def _write(path: Path, option: str, write: Callable[[], object]) -> None:
    try:
        write()
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write there ({exc.strerror})") from None


def compare_cmd(
    baseline: Annotated[Path, typer.Argument(help="Baseline: a run folder, its run.json, or a folder of run folders (pooled).")],
    current: Annotated[Path, typer.Argument(help="Current (candidate): same forms as BASELINE.")],
    metrics: MetricsOpt = DEFAULT_METRICS_TEXT,
    min_effect: MinEffectOpt = None,
    alpha: AlphaOpt = DEFAULT_ALPHA,
    json_out: Annotated[Path | None, typer.Option("--json-out", help="Where compare.json goes; default: CURRENT/compare.json (inside the current run folder, or the folder of runs).")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write a Markdown summary for a pull-request comment here.")] = None,
    fail_on_regression: Annotated[bool, typer.Option("--fail-on-regression/--no-fail-on-regression", help="Exit 1 when any gated metric regressed (the default).")] = True,
    force: Annotated[bool, typer.Option("--force", help="Compare runs from different machines, scenarios or scenario parameters anyway.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Also print compare.json's document on stdout (with the files written and the exit code); the table and verdict go to stderr.")] = False,
) -> None:
    """Compare CURRENT with BASELINE: regression, improvement or no change per metric.

    Trials are matched by (scenario, server, workers, users, backend); only ok trials take
    part. A metric regressed when a one-sided Mann-Whitney U test on the repeats, Holm-
    adjusted across the gated metrics, is significant at --alpha AND the medians moved by
    at least --min-effect. Exit 1 on a regression, 0 otherwise, 2 on bad input.
    """
    from rich.markup import escape

    from harness.compare import compare, config_label, load_side, render_markdown
    from harness.gates import make_gates
    from harness.results import atomic_write_bytes, atomic_write_json

    chosen = make_gates(_metrics(metrics), parse_min_effects(min_effect))
    result = compare(load_side(baseline), load_side(current), gates=chosen, alpha=alpha,
                     force=force)
    json_path = json_out or ((current.parent if current.name == "run.json" else current)
                             / "compare.json")
    _write(json_path, "--json-out", lambda: atomic_write_json(json_path, result.to_json()))
    if markdown is not None:
        text = render_markdown(result)
        _write(markdown, "--markdown", lambda: atomic_write_bytes(markdown, text.encode()))

    human = err if as_json else out
    for text in result.forced:
        err.print(f"[bold yellow]warning:[/] compared despite: {escape(text)} (--force)",
                  highlight=False, soft_wrap=True)
    table = Table(title=escape(f"bench compare · baseline {_side(result.baseline)} → current "
                               f"{_side(result.current)}"))
    for col in ("configuration", "metric", "baseline", "current", "change", "result", "decision"):
        table.add_column(col, overflow="fold")
    for key, v in result.rows:
        style = _COLOURS[v.decision]
        table.add_row(escape(config_label(key)), f"{v.metric.label} ({v.metric.unit})",
                      f"{_num(v.baseline_median)} (n={v.n_baseline})",
                      f"{_num(v.current_median)} (n={v.n_current})",
                      "–" if math.isnan(v.change) else f"{v.change:+.1%}", v.summary,
                      f"[{style}]{v.decision}[/]" if style else v.decision)
    human.print(table)
    for side in ("baseline", "current"):
        excluded = result.excluded[side]
        if excluded:
            names = ", ".join(f"{e['trial_id']} ({e['status']})" for e in excluded)
            human.print(f"excluded from {side} (not ok): {len(excluded)}: {names}",
                        markup=False, highlight=False, soft_wrap=True)
    for name, label in (("baseline_only", "only in baseline"), ("current_only", "only in current")):
        if result.unmatched[name]:
            human.print(f"{label}, not compared: "
                        + ", ".join(config_label(k) for k in result.unmatched[name]),
                        markup=False, highlight=False, soft_wrap=True)
    for note in result.notes:
        human.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    short = [v for _, v in result.rows if v.decision == "insufficient repeats"]
    if short:
        err.print(f"[bold yellow]warning:[/] {len(short)} of {len(result.rows)} comparisons "
                  f"could not be decided: {escape(short[0].note)}", highlight=False,
                  soft_wrap=True)
    n_reg, n_imp = result.count("regression"), result.count("improvement")
    verdict = (f"[bold red]{n_reg} regression{'s' if n_reg != 1 else ''}[/]" if n_reg
               else "[bold green]no regression[/]")
    human.print(f"{verdict}, {n_imp} improvement{'s' if n_imp != 1 else ''} · "
                + escape(f"compare.json: {json_path}"
                         + (f" · markdown: {markdown}" if markdown else "")),
                highlight=False, soft_wrap=True)
    if fail_on_regression and not result.regressed and result.rows \
            and len(short) == len(result.rows):
        # A gate that cannot fire must not pass silently.
        raise UserError(f"nothing could be decided ({short[0].note}); add repeats, or pass "
                        "--no-fail-on-regression to accept an undecided comparison")
    code = 1 if result.regressed and fail_on_regression else 0
    if as_json:
        from harness import jsonout

        jsonout.emit("compare", {**result.to_json(), "compare_json": str(json_path.absolute()),
                                 "markdown": str(markdown.absolute()) if markdown else None,
                                 "exit_code": code})
    if code:
        raise typer.Exit(code)


def _num(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.4g}"


def _side(side: list[dict[str, object]]) -> str:
    if len(side) == 1:
        commit = str(side[0].get("commit") or "")[:7]
        return f"{side[0]['run_id']}" + (f" ({commit})" if commit else "")
    return f"{len(side)} runs"


class ExportFormat(enum.StrEnum):
    github_action_benchmark = "github-action-benchmark"
    csv_history = "csv-history"
    openmetrics = "openmetrics"
    prometheus = "prometheus"
    junit = "junit"


#: Formats written to one file (or stdout with ``-o -``).
_TEXT_FORMATS = (ExportFormat.openmetrics, ExportFormat.prometheus, ExportFormat.junit)


def _export_text(data: RunData, fmt: ExportFormat, output: Path,
                 baseline: Path | None) -> None:
    """openmetrics / prometheus / junit: one document to ``output`` or stdout (``-``)."""
    import sys

    from harness.results import atomic_write_bytes

    summary = ""
    if fmt is ExportFormat.junit:
        from harness.compare import compare, load_side
        from harness.junit import build

        comparison = compare(load_side(baseline), [data]) if baseline is not None else None
        body, suites = build(data.meta, data.trials, comparison)
        summary = " · ".join(f"{s.name}: {len(s.cases)} tests, {s.count('failure')} failures, "
                             f"{s.count('skipped')} skipped" for s in suites)
    else:
        from harness.openmetrics import render

        body = render(data, fmt.value)
    if str(output) == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return
    if output.is_dir():
        raise UserError(f"-o {output}: a folder; {fmt.value} writes one file (or - for stdout)")
    _write(output, "-o", lambda: atomic_write_bytes(output, body))
    out.print(f"{fmt.value}: {output}" + (f" · {summary}" if summary else ""), markup=False,
              highlight=False, soft_wrap=True)


def export_cmd(
    run: Annotated[Path, typer.Argument(help="A run folder (or its run.json).")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="github-action-benchmark: a folder with bigger_is_better.json and smaller_is_better.json for benchmark-action/github-action-benchmark (tool customBiggerIsBetter / customSmallerIsBetter). csv-history: append one row for this run to a history CSV. openmetrics: OpenMetrics 1.0 text, one sample per trial and metric, labelled by configuration and status. prometheus: the same in the classic Prometheus text format (node-exporter textfile collector, Pushgateway). junit: JUnit XML, one test case per configuration and SLO check (and per gated metric with --baseline).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder (github-action-benchmark), CSV file (csv-history), or file, - for stdout (openmetrics, prometheus, junit).")],
    baseline: Annotated[Path | None, typer.Option("--baseline", help="junit: also one test case per configuration and gated metric of `bench compare BASELINE RUN` (default gates); a regression is a failure.")] = None,
) -> None:
    """Export a run for CI dashboards and test views."""
    from harness.export import append_csv_history, write_github_action_benchmark
    from harness.results import load_run

    if baseline is not None and fmt is not ExportFormat.junit:
        raise UserError("--baseline: only with --format junit")
    data = load_run(run)
    if fmt in _TEXT_FORMATS:
        _export_text(data, fmt, output, baseline)
        return
    if str(output) == "-":
        raise UserError(f"-o -: {fmt.value} writes files, not stdout")
    if fmt is ExportFormat.github_action_benchmark:
        if output.exists() and not output.is_dir():
            raise UserError(f"-o {output}: not a folder (github-action-benchmark writes two files)")
        paths: list[Path] = []
        _write(output, "-o", lambda: paths.extend(write_github_action_benchmark(data, output)))
        out.print(f"customBiggerIsBetter:  {paths[0]}\ncustomSmallerIsBetter: {paths[1]}",
                  markup=False, highlight=False)
        return
    if output.is_dir():
        raise UserError(f"-o {output}: a folder; csv-history appends to a CSV file")
    appended: list[bool] = []
    _write(output, "-o", lambda: appended.append(append_csv_history(data, output)))
    run_id = data.meta.run_id
    out.print(f"appended {run_id} to {output}" if appended[0]
              else f"{run_id} already in {output}; nothing appended", markup=False,
              highlight=False)


HistoryAlphaOpt = Annotated[float, typer.Option(
    "--alpha", help="Significance level of a change point (Bonferroni over the splits tried).")]


def history_cmd(
    results_dir: Annotated[Path, typer.Argument(help="Folder of run folders.")] = RESULTS_DIR,
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = REPORTS_DIR / "history.html",
    metrics: MetricsOpt = DEFAULT_METRICS_TEXT,
    min_effect: MinEffectOpt = None,
    alpha: HistoryAlphaOpt = DEFAULT_ALPHA,
) -> None:
    """Trend dashboard over many runs: an overview (latest value of every series, its change
    against the previous run and since its last change point, regressions highlighted),
    then small multiples per scenario and metric with the repeats' min-max band and the
    change points marked at the run where they happened."""
    from rich.markup import escape

    from harness.history import collect, overview
    from harness.history_page import render

    history = collect(results_dir, _metrics(metrics), alpha=alpha,
                      min_effects=parse_min_effects(min_effect))
    _write(output, "-o", lambda: render(history, output))
    cps = [(s, cp) for s in history.series for cp in s.change_points]
    for text in history.skipped:
        err.print(f"[bold yellow]skipped:[/] {escape(text)}", highlight=False, soft_wrap=True)
    for s, cp in cps:
        out.print(f"change point: {s.title}: {cp.before:.4g} → {cp.after:.4g} {s.metric.unit} "
                  f"({cp.change:+.1%}) at {cp.label} ({cp.run_id}), p={cp.p_value:.2g}",
                  markup=False, highlight=False, soft_wrap=True)
    regressed = sum(i.verdict == "regression" for i in overview(history))
    out.print(f"history: {output} · {len(history.runs)} runs · {len(history.series)} series · "
              f"{len(cps)} change points · {regressed} regressed at their last change point",
              markup=False, highlight=False, soft_wrap=True)


def publish_cmd(
    results_dir: Annotated[Path, typer.Argument(help="Folder of run folders.")] = RESULTS_DIR,
    output: Annotated[Path, typer.Option("-o", "--output", help="Site folder to write (created if needed; other files in it are left alone).")] = Path("site"),
    metrics: MetricsOpt = DEFAULT_METRICS_TEXT,
    min_effect: MinEffectOpt = None,
    alpha: HistoryAlphaOpt = DEFAULT_ALPHA,
) -> None:
    """Static site of RESULTS_DIR for GitHub Pages: index.html (runs newest first, linking
    each run's report under runs/), history.html (as `bench history`). Works offline."""
    from rich.markup import escape

    from harness.publish import publish

    if output.exists() and not output.is_dir():
        raise UserError(f"-o {output}: not a folder")
    try:
        site = publish(results_dir, output, _metrics(metrics), alpha=alpha,
                       min_effects=parse_min_effects(min_effect))
    except OSError as exc:
        raise UserError(f"-o {output}: cannot write there ({exc.strerror})") from None
    for text in site.skipped:
        err.print(f"[bold yellow]skipped:[/] {escape(text)}", highlight=False, soft_wrap=True)
    out.print(f"site: {site.index} · {len(site.reports)} run reports · history: {site.history} · "
              f"{site.regressions} regressed at their last change point", markup=False,
              highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add compare, export, history and publish to the ``bench`` app."""
    app.command("compare")(compare_cmd)
    app.command("export")(export_cmd)
    app.command("history")(history_cmd)
    app.command("publish")(publish_cmd)
