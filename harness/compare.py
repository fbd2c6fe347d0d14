"""The regression gate: compare the repeats of two runs, metric by metric.

A change is reported only when it is both *statistically significant* and *large
enough to matter*:

1. Trials are matched by :data:`KEY` (scenario, server, app, workers, users, backend); only
   trials with status ``ok`` take part (the others are counted and named).
2. For every matched configuration and gated metric, the repeats of each side are
   compared with a one-sided Mann-Whitney U test (scipy.stats.mannwhitneyu; Mann &
   Whitney 1947), once for "current is worse" and once for "current is better". The
   p-values are exact: scipy's exact null distribution without ties, an exhaustive
   permutation distribution (scipy.stats.PermutationMethod) with ties and small samples,
   the normal approximation with tie correction for large samples.
3. Within one configuration the p-values of the gated metrics are adjusted with Holm's
   step-down procedure (Holm 1979) so that the chance of calling *any* of them
   regressed by accident stays at or below ``alpha`` (regressions and improvements are
   two families, each controlled at ``alpha``).
4. A metric *regressed* when its Holm-adjusted p-value is at most ``alpha`` and the
   relative change of the medians, ``(current - baseline) / baseline``, is at least its
   minimum effect in the worse direction; *improved* likewise in the better direction;
   otherwise *no change*.
5. Rank tests are discrete: with ``n`` and ``m`` repeats the smallest one-sided p-value
   there is, is ``1 / C(n + m, n)`` (every current repeat beyond every baseline
   repeat). When that is above the first Holm threshold ``alpha / k`` (``k`` gated
   metrics), no outcome could be significant, and the decision is *insufficient
   repeats*, never a silent "no change". At the defaults (alpha 0.01, 3 metrics) this
   needs 6 repeats per side: 5 vs 5 reaches 1/252 = 0.0040 > 0.0033 at best.

Runs from different machines, scenarios or scenario parameters measure that
difference, not a regression; :func:`compare` refuses them unless ``force=True``.

Everything but :func:`load_side` is a pure function of data.
"""


from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.compare_defaults import DEFAULT_ALPHA
from harness.errors import UserError
from harness.gates import Decision, Gate, Verdict, decide, make_gates
from harness.results import RunData, load_run
from harness.runmeta import RunMeta

#: How trials of two runs are matched. ``offered_rps`` is the open-loop arrival rate of a
#: level (None for closed-loop levels, and for runs written before it existed).
KEY = ("scenario", "server", "app", "workers", "users", "offered_rps", "backend")



# --- runs -----------------------------------------------------------------------------


def load_side(path: Path) -> list[RunData]:
    """The runs one side of a comparison is made of: a run folder (or its run.json), or a
    folder whose sub-folders are runs (their ok trials are pooled, e.g. interleaved CI rounds).

    Raises:
        UserError: no run there, or a run that :func:`harness.results.load_run` refuses.
    """
    if path.name == "run.json" or (path / "run.json").is_file():
        return [load_run(path)]
    if path.is_dir():
        runs = [load_run(p) for p in sorted(path.iterdir()) if (p / "run.json").is_file()]
        if runs:
            return runs
    raise UserError(f"{path}: no run here (no run.json in it or in its sub-folders)")


def _cpu_sets(meta: RunMeta) -> dict[str, list[int]] | None:
    cpus = meta.cpus
    return {"server": list(cpus.server), "load": list(cpus.load)} if cpus else None


#: (what, its value in run.json) that must be equal on both sides unless --force.
_MUST_MATCH: tuple[tuple[str, Callable[[RunMeta], Any]], ...] = (
    ("CPU model", lambda m: m.machine.cpu_model),
    ("logical CPUs", lambda m: m.machine.logical_cpus),
    ("scenario", lambda m: m.scenario.name),
    ("request", lambda m: m.scenario.request_path),
    ("scenario parameters", lambda m: dict(m.scenario.params)),
)
#: Differences worth a note but no refusal.
_SHOULD_MATCH: tuple[tuple[str, Callable[[RunMeta], Any]], ...] = (
    ("measurement window s", lambda m: m.scenario.duration_s),
    ("warm-up s", lambda m: m.scenario.warmup_s),
    ("CPU sets", _cpu_sets),
    ("Python", lambda m: m.machine.python),
)


def differences(a: RunMeta, b: RunMeta,
                fields: Sequence[tuple[str, Callable[[RunMeta], Any]]] = _MUST_MATCH
                ) -> list[str]:
    """``"CPU model 'X' vs 'Y'"`` for every field of ``fields`` on which two runs differ."""
    return [f"{what} {get(a)!r} vs {get(b)!r}" for what, get in fields if get(a) != get(b)]


@dataclass(frozen=True)
class Comparison:
    """Everything :func:`compare` found; :meth:`to_json` is compare.json."""

    baseline: list[dict[str, Any]]
    current: list[dict[str, Any]]
    gates: list[Gate]
    alpha: float
    rows: list[tuple[dict[str, Any], Verdict]]
    excluded: dict[str, list[dict[str, Any]]]
    unmatched: dict[str, list[dict[str, Any]]]
    forced: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, decision: Decision) -> int:
        return sum(v.decision == decision for _, v in self.rows)

    @property
    def regressed(self) -> bool:
        return self.count("regression") > 0

    def to_json(self) -> dict[str, Any]:
        """compare.json: settings, both sides, every decision, excluded and unmatched trials."""
        return _clean({
            "kind": "bench-compare",
            "schema_version": 1,
            "verdict": "regression" if self.regressed else "no regression",
            "counts": {d: self.count(d) for d in ("regression", "improvement", "no change",
                                                  "insufficient repeats", "no data")},
            "method": {
                "test": "Mann-Whitney U, one-sided per direction (scipy.stats.mannwhitneyu)",
                "correction": "Holm across the gated metrics of each configuration",
                "alpha": self.alpha,
                "effect": "relative change of the medians of the ok repeats",
                "gates": [{"metric": g.metric.column, "higher_is_better": g.metric.higher_is_better,
                           "min_effect": g.min_effect, "unit": g.metric.unit}
                          for g in self.gates],
            },
            "baseline": self.baseline,
            "current": self.current,
            "forced_despite": self.forced,
            "notes": self.notes,
            "excluded": self.excluded,
            "unmatched": self.unmatched,
            "results": [{**key, "metric": v.metric.column, "unit": v.metric.unit,
                         "higher_is_better": v.metric.higher_is_better,
                         "min_effect": v.min_effect, "n_baseline": v.n_baseline,
                         "n_current": v.n_current, "baseline_median": v.baseline_median,
                         "current_median": v.current_median, "change": v.change,
                         "p_regression": v.p_regression, "p_improvement": v.p_improvement,
                         "p_holm": v.p_holm, "decision": v.decision, "summary": v.summary}
                        for key, v in self.rows],
        })


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: they become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def _side_info(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    out = []
    for r in runs:
        status = r.trials["status"] if len(r.trials) else pd.Series(dtype=object)
        out.append({"path": str(r.path), "run_id": r.meta.run_id,
                    "status": r.meta.status, "started_at": r.meta.started_at,
                    "commit": r.meta.git.commit,
                    "ok_trials": int((status == "ok").sum()),
                    "excluded_trials": int((status != "ok").sum())})
    return out


def _trials(runs: Sequence[RunData]) -> pd.DataFrame:
    frames = []
    for r in runs:
        t = r.trials.copy()
        t["run_id"] = r.meta.run_id or r.path.name
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plain_value(value: Any) -> Any:
    """A key value as plain Python: NaN -> None, numpy scalars unwrapped, 4.0 -> 4."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def config_keys(trials: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The :data:`KEY` of every row of ``trials`` (missing columns -> None), row by row."""
    frame = trials.reindex(columns=list(KEY))
    return [tuple(plain_value(v) for v in rec) for rec in frame.itertuples(index=False, name=None)]


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((0, x, "") if isinstance(x, int | float) else (1, 0, str(x)) for x in key)


def compare(baseline: Sequence[RunData], current: Sequence[RunData], *,
            gates: Sequence[Gate] | None = None, alpha: float = DEFAULT_ALPHA,
            force: bool = False) -> Comparison:
    """Compare the ok repeats of ``current`` with those of ``baseline`` (each one run or
    several pooled) and decide every (configuration, gated metric) by the module's rule.

    Raises:
        UserError: alpha outside (0, 1); runs that differ in machine (CPU model, logical
            CPUs), scenario, request or scenario parameters, within or across sides,
            unless ``force``; no configuration with ok trials on both sides.
    """
    if not 0 < alpha < 1:
        raise UserError(f"--alpha {alpha:g}: must be between 0 and 1")
    gates = list(gates or make_gates())
    forced: list[str] = []
    for side, runs in (("baseline", baseline), ("current", current)):
        for r in runs[1:]:
            forced += [f"{side} runs differ: {d}" for d in differences(runs[0].meta, r.meta)]
    forced += differences(baseline[0].meta, current[0].meta)
    if forced and not force:
        raise UserError("cannot compare: " + "; ".join(forced) + ". The comparison would "
                        "measure that difference, not a regression; pass --force to compare "
                        "anyway")
    notes = [f"{d} (baseline vs current)"
             for d in differences(baseline[0].meta, current[0].meta, _SHOULD_MATCH)]
    for r in (*baseline, *current):
        if r.meta.status != "complete":
            notes.append(f"run {r.meta.run_id} is {r.meta.status}: "
                         "only its ok trials take part")

    sides = {"baseline": _trials(baseline), "current": _trials(current)}
    excluded: dict[str, list[dict[str, Any]]] = {}
    ok: dict[str, pd.DataFrame] = {}
    for side, t in sides.items():
        if not len(t):
            excluded[side], ok[side] = [], t.assign(_key=[])
            continue
        t = t.assign(_key=config_keys(t))
        excluded[side] = [{"run_id": r["run_id"], "trial_id": r["trial_id"],
                           "status": r["status"], "reason": r["reason"]}
                          for r in t[t["status"] != "ok"].to_dict("records")]
        ok[side] = t[t["status"] == "ok"]

    base_keys = sorted(set(ok["baseline"]["_key"]), key=_sort_key)
    cur_keys = sorted(set(ok["current"]["_key"]), key=_sort_key)
    matched = [k for k in cur_keys if k in set(base_keys)]
    unmatched = {
        "baseline_only": [dict(zip(KEY, k, strict=True)) for k in base_keys if k not in set(cur_keys)],
        "current_only": [dict(zip(KEY, k, strict=True)) for k in cur_keys if k not in set(base_keys)],
    }
    if not matched:
        def listing(keys: list[tuple[Any, ...]]) -> str:
            return ", ".join(config_label(dict(zip(KEY, k, strict=True))) for k in keys) or "none"
        raise UserError("nothing to compare: no configuration (scenario, server, workers, users, "
                        f"backend) has ok trials on both sides (baseline: {listing(base_keys)}; "
                        f"current: {listing(cur_keys)})")
    rows: list[tuple[dict[str, Any], Verdict]] = []
    for k in matched:
        key = dict(zip(KEY, k, strict=True))
        pairs = []
        for gate in gates:
            col = gate.metric.column
            values = []
            for side in ("baseline", "current"):
                frame = ok[side]
                chosen = frame[[fk == k for fk in frame["_key"]]]
                values.append(pd.to_numeric(chosen.get(col, pd.Series(dtype=float)),
                                            errors="coerce").to_numpy(dtype=float))
            pairs.append((values[0], values[1]))
        rows += [(key, v) for v in decide(pairs, gates, alpha)]
    return Comparison(
        baseline=_side_info(baseline), current=_side_info(current),
        gates=gates, alpha=alpha, rows=rows, excluded=excluded, unmatched=unmatched,
        forced=forced, notes=notes)


# --- rendering ----------------------------------------------------------------------------


def config_label(key: Mapping[str, Any]) -> str:
    """``"gunicorn-sync · workers=1 · users=4"``; an app other than the raw one
    (``uvicorn+fastapi``), the open-loop rate and a backend other than local are added when
    there."""
    app = key.get("app")
    stack = key["server"] if app in (None, "raw") or _missing(app) else f"{key['server']}+{app}"
    text = f"{stack} · workers={key['workers']} · users={key['users']}"
    rate = plain_value(key.get("offered_rps"))
    if rate is not None:
        text += f" · offered={rate:g} req/s"
    backend = key.get("backend")
    return text if backend in (None, "local") else f"{text} · {backend}"


def _missing(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _fmt(value: float) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _side_label(side: Sequence[Mapping[str, Any]]) -> str:
    commits = {str(s.get("commit") or "")[:7] for s in side} - {""}
    runs = ", ".join(str(s.get("run_id")) for s in side)
    return (f"`{', '.join(sorted(commits))}` " if commits else "") + f"({runs})"


def render_markdown(c: Comparison) -> str:
    """A Markdown summary for a pull-request comment: verdict, the changed metrics, every
    decision in a collapsed table, excluded trials, and the method in one line."""
    n_reg, n_imp = c.count("regression"), c.count("improvement")
    n_short = c.count("insufficient repeats")
    head = (f"**{n_reg} regression{'s' if n_reg != 1 else ''}**" if n_reg
            else "**No regression**")
    lines = [f"### bench compare: {head}", "",
             f"Baseline {_side_label(c.baseline)} → current {_side_label(c.current)}.", ""]
    counts = [f"{n_reg} regressed", f"{n_imp} improved", f"{c.count('no change')} unchanged"]
    if n_short:
        counts.append(f"{n_short} with insufficient repeats (no decision possible)")
    lines += [", ".join(counts) + f" of {len(c.rows)} comparisons.", ""]
    reasons = sorted({v.note for _, v in c.rows if v.decision == "insufficient repeats"})
    lines += [*(f"> **Warning**: {r}." for r in reasons), ""] if reasons else []
    header = ["| configuration | metric | baseline | current | change | decision |",
              "|---|---|---:|---:|---|---|"]

    def row(key: Mapping[str, Any], v: Verdict) -> str:
        decision = f"**{v.decision}**" if v.decision in ("regression", "improvement") else v.decision
        return (f"| {config_label(key)} | {v.metric.label} ({v.metric.unit}) | "
                f"{_fmt(v.baseline_median)} (n={v.n_baseline}) | "
                f"{_fmt(v.current_median)} (n={v.n_current}) | {v.summary} | {decision} |")

    notable = [(k, v) for k, v in c.rows if v.decision in ("regression", "improvement")]
    if notable:
        lines += [*header, *(row(k, v) for k, v in notable), ""]
    lines += [f"<details><summary>All {len(c.rows)} comparisons</summary>", "", *header,
              *(row(k, v) for k, v in c.rows), "", "</details>", ""]
    for side in ("baseline", "current"):
        if c.excluded[side]:
            names = ", ".join(f"`{e['trial_id']}` ({e['status']}{': ' + e['reason'] if e['reason'] else ''})"
                              for e in c.excluded[side])
            lines += [f"Excluded {side} trials (not ok): {len(c.excluded[side])}: {names}", ""]
    for name, label in (("baseline_only", "Only in baseline"), ("current_only", "Only in current")):
        if c.unmatched[name]:
            lines += [f"{label} (not compared): "
                      + ", ".join(config_label(k) for k in c.unmatched[name]), ""]
    for text in (*(f"Compared despite: {f}" for f in c.forced), *c.notes):
        lines += [f"Note: {text}", ""]
    effects = ", ".join(f"{g.metric.label} {g.min_effect:.0%}" for g in c.gates)
    lines.append(f"<sub>Mann-Whitney U one-sided on the ok repeats, Holm across "
                 f"{len(c.gates)} metrics, alpha {c.alpha:g}; minimum effect on the medians: "
                 f"{effects}. p is Holm-adjusted.</sub>")
    return "\n".join(lines) + "\n"
