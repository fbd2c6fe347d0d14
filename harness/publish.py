"""``bench publish``: a static site of a results folder, for GitHub Pages or any web server.

A pure function of the run folders under RESULTS_DIR (as asv's published pages are)::

    SITE/index.html          the runs, newest first: run id (link to its report), start,
                             scenario with parameters, configurations, trials per status,
                             run status, commit; links to the history
    SITE/history.html        the history page (harness.history_page): overview, small
                             multiples, change points
    SITE/runs/<folder>.html  each run's report (harness.report.render), self-contained
    SITE/.nojekyll           GitHub Pages serves the files as they are

Every page works offline: no CDN, plotly.js inlined in each page that draws charts.
Files are written atomically; files in SITE that publish does not write are left alone.
Folders under RESULTS_DIR that cannot be read are listed on the index, not fatal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from harness import history
from harness.compare_defaults import DEFAULT_ALPHA, DEFAULT_METRICS
from harness.results import RunData, atomic_write_bytes
from harness.trial import TRIAL_STATUSES

INDEX = "index.html"
HISTORY = "history.html"
RUNS = "runs"


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One row of the index: ``href`` is relative to the site's root."""

    run_id: str
    folder: str
    started_at: str
    scenario: str
    configs: str
    levels: str
    counts: tuple[tuple[str, int], ...]
    status: str
    commit: str
    href: str

    @property
    def bad(self) -> bool:
        """Whether some trial was invalid or failed (unsupported is a result, not a fault)."""
        return any(status in ("invalid", "failed") for status, _ in self.counts)


@dataclass(frozen=True)
class Site:
    """What :func:`publish` wrote: the index, the history page, the reports (newest
    first), the folders skipped (messages) and the history's regressions count."""

    index: Path
    history: Path
    reports: list[Path]
    skipped: list[str]
    regressions: int
    runs: list[RunEntry]


def _file_name(folder: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", folder) + ".html"


def _levels(trials: pd.DataFrame) -> str:
    for column, unit in (("offered_rps", " req/s"), ("users", "")):
        values = pd.to_numeric(trials.get(column, pd.Series(dtype=float)), errors="coerce").dropna()
        if len(values):
            return ", ".join(f"{v:g}" for v in sorted(set(values))) + unit
    return ""


def entry(run: RunData) -> RunEntry:
    """The index row of ``run`` (its report at ``runs/<folder>.html``)."""
    meta, t = run.meta, run.trials
    statuses = t["status"].astype(str).value_counts() if len(t) else pd.Series(dtype=int)
    order = [s for s in TRIAL_STATUSES if s in statuses] + sorted(set(statuses.index)
                                                                 - set(TRIAL_STATUSES))
    servers = list(dict.fromkeys(t["server"].astype(str))) if len(t) else []
    folder = run.path.name
    return RunEntry(
        run_id=meta.run_id or folder, folder=folder,
        started_at=meta.started_at or "", scenario=meta.scenario.label(unnamed="?"),
        configs=", ".join(servers), levels=_levels(t),
        counts=tuple((s, int(statuses[s])) for s in order),
        status=meta.status or "unknown",
        commit=(meta.git.commit or "")[:7],
        href=f"{RUNS}/{quote(_file_name(folder))}")


def publish(results_dir: Path, site: Path, metrics: Sequence[str] = DEFAULT_METRICS, *,
            alpha: float = DEFAULT_ALPHA, min_effects: Mapping[str, float] | None = None,
            ) -> Site:
    """Build the site of ``results_dir`` in ``site`` (created if needed); the history
    takes ``metrics``, ``alpha`` and ``min_effects`` as :func:`harness.history.collect`.

    Raises:
        UserError: ``results_dir`` is not a folder or holds no readable run; bad history
            options (checked before anything is written).
        OSError: ``site`` cannot be written.
    """
    from harness import report
    from harness.history_page import render as render_history
    from harness.report.templating import render_template
    from harness.report.traces import template_held

    effects = history.check_options(metrics, alpha, min_effects)
    runs, skipped = history.load_runs(results_dir)
    ordered = sorted(runs, key=history.start_key)
    undated = [r for r in ordered if history.start_key(r)[0]]
    newest_first = [r for r in reversed(ordered) if not history.start_key(r)[0]] + undated
    entries = [entry(r) for r in newest_first]
    reports = []
    h = history.from_runs(runs, skipped, metrics, alpha=alpha, min_effects=effects)
    with template_held():  # once for every page's figures, not once a page
        for run, e in zip(newest_first, entries, strict=True):
            out = site / RUNS / _file_name(e.folder)
            report.render([run], out)
            reports.append(out)
        history_path = render_history(h, site / HISTORY, links=[(INDEX, "all runs")])
    regressions = sum(i.verdict == "regression" for i in history.overview(h))
    page = render_template("publish_index.html.j2", runs=entries, skipped=skipped,
                           history_href=HISTORY, regressions=regressions,
                           change_points=sum(len(s.change_points) for s in h.series),
                           series=len(h.series))
    index = site / INDEX
    atomic_write_bytes(index, page.encode("utf-8"))
    atomic_write_bytes(site / ".nojekyll", b"")
    return Site(index, history_path, reports, list(skipped), regressions, entries)
