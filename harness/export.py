"""Exports of one run for CI dashboards.

``github-action-benchmark``: the two JSON files that benchmark-action/github-action-benchmark
reads with ``tool: customBiggerIsBetter`` and ``tool: customSmallerIsBetter``. Its format
(the action's README, "Examples" of custom benchmarks, and ``BenchmarkResult`` in its
``src/extract.ts``) is a JSON array of objects with ``name`` (string, the chart), ``unit``
(string), ``value`` (number) and the optional ``range`` and ``extra`` (strings, shown in
the tooltip). One entry per (configuration, metric); ``value`` is the median of the ok
repeats, ``range`` their min..max, ``extra`` the repeats, run and commit.

``csv-history``: one row per run appended to a CSV that change-point tools can read
(columns :data:`HISTORY_RUN_COLUMNS`, then one column per (scenario, server, users,
metric) named ``<scenario>/<server>/users=<n>/<metric>`` (``.../users=<n>/offered=<rate>/...``
for open-loop levels), value = median of the ok
repeats, empty when none was ok). The file is read, the row appended and the file
replaced atomically; a file with other columns is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness.compare import KEY, config_label, plain_value
from harness.errors import UserError
from harness.gates import METRICS
from harness.results import RunData, atomic_write_csv, atomic_write_json
from harness.runmeta import RunMeta

#: Exported metrics: trials.csv columns (direction and unit from harness.gates.METRICS).
EXPORT_METRICS = ("throughput_rps", "latency_p50_ms", "latency_p99_ms", "pss_mib_peak")

#: File names written into the ``-o`` folder for github-action-benchmark.
BIGGER_FILE = "bigger_is_better.json"
SMALLER_FILE = "smaller_is_better.json"

#: Columns every history row starts with.
HISTORY_RUN_COLUMNS = ("timestamp", "commit", "run_id", "run_status", "backend", "workers",
                       "params")

_GROUP = list(KEY)


def summarise(run: RunData, metrics: Sequence[str] = EXPORT_METRICS) -> pd.DataFrame:
    """Per configuration (harness.compare.KEY: scenario, server, workers, users, offered_rps,
    backend) and metric: ``median``, ``min``, ``max`` and ``n`` of the ok repeats (NaN
    values left out), plus ``excluded`` (trials of that configuration that were not ok).
    Configurations without an ok value of a metric have n = 0 and NaN figures.
    Columns: the keys, metric, median, min, max, n, excluded.
    """
    t = run.trials.copy()
    rows: list[dict[str, Any]] = []
    if not len(t):
        return pd.DataFrame(columns=[*_GROUP, "metric", "median", "min", "max", "n", "excluded"])
    for col in (*_GROUP, *metrics):
        if col not in t:
            t[col] = math.nan
    for key, group in t.groupby(_GROUP, sort=True, dropna=False):
        ok = group[group["status"] == "ok"]
        for metric in metrics:
            values = pd.to_numeric(ok[metric], errors="coerce").dropna()
            rows.append({**{k: plain_value(v) for k, v in zip(_GROUP, key, strict=True)},
                         "metric": metric,
                         "median": float(values.median()) if len(values) else math.nan,
                         "min": float(values.min()) if len(values) else math.nan,
                         "max": float(values.max()) if len(values) else math.nan,
                         "n": len(values), "excluded": int(len(group) - len(ok))})
    return pd.DataFrame(rows)


def benchmark_name(meta: RunMeta, row: dict[str, Any]) -> str:
    """Stable chart name: ``"io-heavy latency_ms=50 · gunicorn-sync · workers=1 · users=4 ·
    throughput"``. Scenario parameters are part of it, so a different workload is a
    different chart, never a false step."""
    params = meta.scenario.params_text()
    scenario = f"{row['scenario']} {params}" if params else str(row["scenario"])
    return f"{scenario} · {config_label(row)} · {METRICS[row['metric']].label}"


def github_action_benchmark(run: RunData) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(customBiggerIsBetter entries, customSmallerIsBetter entries) of one run.

    Each entry: ``name`` (str), ``unit`` (str), ``value`` (float, median of the ok
    repeats), ``range`` (str, ``"min..max"``), ``extra`` (str: repeats, excluded trials,
    run id, commit). Configurations with no ok value of a metric are left out.

    Raises:
        UserError: the run has no ok trial at all (the action rejects an empty file).
    """
    meta = run.meta
    commit = meta.git.commit or "unknown"
    bigger: list[dict[str, Any]] = []
    smaller: list[dict[str, Any]] = []
    for row in summarise(run).to_dict("records"):
        if not row["n"]:
            continue
        spec = METRICS[row["metric"]]
        entry = {
            "name": benchmark_name(meta, row),
            "unit": spec.unit,
            "value": row["median"],
            "range": f"{row['min']:.6g}..{row['max']:.6g}",
            "extra": (f"median of {row['n']} ok repeats (min..max in range); "
                      f"{row['excluded']} trials not ok\nrun: {meta.run_id}\n"
                      f"commit: {commit[:12]}"),
        }
        (bigger if spec.higher_is_better else smaller).append(entry)
    if not bigger and not smaller:
        raise UserError(f"{run.path}: no ok trial to export (statuses: "
                        f"{', '.join(sorted(set(run.trials['status'].astype(str)))) or 'none'})")
    return bigger, smaller


def write_github_action_benchmark(run: RunData, out_dir: Path) -> tuple[Path, Path]:
    """Write :data:`BIGGER_FILE` and :data:`SMALLER_FILE` into ``out_dir`` (atomically);
    return their paths. Raises UserError as :func:`github_action_benchmark`."""
    bigger, smaller = github_action_benchmark(run)
    paths = out_dir / BIGGER_FILE, out_dir / SMALLER_FILE
    atomic_write_json(paths[0], bigger)
    atomic_write_json(paths[1], smaller)
    return paths


def history_row(run: RunData) -> dict[str, Any]:
    """One history row of a run: :data:`HISTORY_RUN_COLUMNS`, then one column per
    (scenario, server, users, metric) in sorted order (medians of the ok repeats; NaN when
    none). Every trial's configuration gets its columns, ok or not, so a failed trial
    leaves an empty cell rather than changing the columns."""
    meta = run.meta
    workers = sorted({str(w) for w in run.trials.get("workers", pd.Series(dtype=object))})
    backends = sorted({str(b) for b in run.trials.get("backend", pd.Series(dtype=object))})
    row: dict[str, Any] = {
        "timestamp": meta.started_at,
        "commit": meta.git.commit or "",
        "run_id": meta.run_id or run.path.name,
        "run_status": meta.status,
        "backend": ";".join(backends) or meta.backend or "",
        "workers": ";".join(workers),
        "params": meta.scenario.params_text(),
    }
    metrics: dict[str, float] = {}
    for r in summarise(run).to_dict("records"):
        rate = "" if r["offered_rps"] is None else f"/offered={r['offered_rps']:g}"
        metrics[f"{r['scenario']}/{r['server']}/users={r['users']}{rate}/{r['metric']}"] = r["median"]
    row.update(sorted(metrics.items()))
    return row


def append_csv_history(run: RunData, path: Path) -> bool:
    """Append ``run``'s :func:`history_row` to the CSV at ``path`` (created if missing):
    read, append, atomic rewrite (two writers at once can lose a row: serialise them, as
    one CI job does). Returns False (and writes nothing) when the run is already in the
    file. A run that is not complete may lack some configurations' columns; their cells
    are left empty.

    Raises:
        UserError: the run has no trials; the file is not a readable CSV; its columns
            differ from this run's (other scenario, servers, levels or metrics).
    """
    if not len(run.trials):
        raise UserError(f"{run.path}: no trials to export")
    row = history_row(run)
    if path.exists():
        try:
            history = pd.read_csv(path, dtype={"commit": str, "run_id": str, "workers": str})
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: not a readable history CSV ({exc})") from None
        missing = [c for c in row if c not in history.columns]
        extra = [c for c in history.columns if c not in row]
        if extra and not missing and row["run_status"] != "complete":
            pass  # an interrupted run measured fewer configurations: its cells stay empty
        elif missing or extra:
            detail = "; ".join(filter(None, (
                f"this run adds {_few(missing)}" if missing else "",
                f"the file has {_few(extra)} that this run lacks" if extra else "")))
            raise UserError(f"{path}: its columns differ from this run's ({detail}); keep one "
                            "history file per scenario and set of servers and levels, or start "
                            "a new file")
        row = {c: row.get(c, math.nan) for c in history.columns}
        if str(row["run_id"]) in set(history["run_id"].astype(str)):
            return False
        history = pd.concat([history, pd.DataFrame([row])], ignore_index=True)
    else:
        history = pd.DataFrame([row])
    atomic_write_csv(path, history)
    return True


def _few(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return f"{len(names)} columns ({shown}{', ...' if len(names) > limit else ''})"

