"""The regression gate: compare the repeats of two runs, metric by metric.

A change is reported only when it is both *statistically significant* and *large
enough to matter*:

1. Trials are matched by :data:`KEY` (scenario, server, workers, users, backend); only
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from harness.compare_defaults import DEFAULT_ALPHA, DEFAULT_METRICS
from harness.errors import UserError
from harness.results import RunData, load_run

#: How trials of two runs are matched. ``offered_rps`` is the open-loop arrival rate of a
#: level (None for closed-loop levels, and for runs written before it existed).
KEY = ("scenario", "server", "workers", "users", "offered_rps", "backend")

Decision = Literal["regression", "improvement", "no change", "insufficient repeats", "no data"]

#: Largest number of distinct splits enumerated exactly when there are ties.
EXACT_PERMUTATIONS = 20_000


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A trials.csv column that can be gated: its label, unit and which way is better."""

    column: str
    label: str
    unit: str
    higher_is_better: bool
    worse: str
    better: str


def _latency(column: str, label: str) -> MetricSpec:
    return MetricSpec(column, label, "ms", False, "slower", "faster")


def _memory(column: str, label: str) -> MetricSpec:
    return MetricSpec(column, label, "MiB", False, "larger", "smaller")


#: Every metric ``--metrics`` accepts, by trials.csv column.
METRICS: dict[str, MetricSpec] = {m.column: m for m in (
    MetricSpec("throughput_rps", "throughput", "req/s", True, "slower", "faster"),
    _latency("latency_mean_ms", "mean latency"),
    _latency("latency_p50_ms", "p50 latency"),
    _latency("latency_p90_ms", "p90 latency"),
    _latency("latency_p95_ms", "p95 latency"),
    _latency("latency_p99_ms", "p99 latency"),
    _latency("latency_p999_ms", "p99.9 latency"),
    _latency("latency_max_ms", "max latency"),
    _memory("pss_mib_peak", "peak PSS"),
    _memory("pss_mib_mean", "mean PSS"),
    _memory("rss_mib_peak", "peak RSS"),
    _memory("uss_mib_peak", "peak USS"),
    MetricSpec("cpu_percent_mean", "mean CPU", "% of a core", False, "higher", "lower"),
)}

#: Minimum relative change of the medians that counts (fraction). Run-to-run noise of
#: p99 latency is larger than that of throughput, hence its larger default.
DEFAULT_MIN_EFFECT: dict[str, float] = {"throughput_rps": 0.10, "latency_p99_ms": 0.15,
                                        "pss_mib_peak": 0.10}
FALLBACK_MIN_EFFECT = 0.10


@dataclass(frozen=True, slots=True)
class Gate:
    """One gated metric and the smallest relative change of its median that matters."""

    metric: MetricSpec
    min_effect: float


def make_gates(metrics: Sequence[str] = DEFAULT_METRICS,
          min_effects: Mapping[str, float] | None = None) -> list[Gate]:
    """Gates for ``metrics`` (trials.csv columns) with minimum effects (fractions, 0.1 = 10%).

    Defaults: :data:`DEFAULT_MIN_EFFECT`, else :data:`FALLBACK_MIN_EFFECT`.

    Raises:
        UserError: unknown or repeated metric, a minimum effect for a metric not gated,
            or an effect outside [0, 1) for a higher-is-better metric / below 0 otherwise.
    """
    import difflib

    min_effects = dict(min_effects or {})
    if not metrics:
        raise UserError("--metrics: give at least one metric")
    out: list[Gate] = []
    for name in metrics:
        if name not in METRICS:
            near = difflib.get_close_matches(name, list(METRICS), n=1)
            hint = f"; did you mean {near[0]}" if near else f"; known: {', '.join(METRICS)}"
            raise UserError(f"--metrics: unknown metric {name!r}{hint}")
        if any(g.metric.column == name for g in out):
            raise UserError(f"--metrics: {name} given twice")
        spec = METRICS[name]
        effect = min_effects.pop(name, DEFAULT_MIN_EFFECT.get(name, FALLBACK_MIN_EFFECT))
        if not 0 <= effect < (1 if spec.higher_is_better else math.inf) or math.isnan(effect):
            raise UserError(f"--min-effect {name}={effect:g}: must be a fraction >= 0"
                            + (" and < 1" if spec.higher_is_better else ""))
        out.append(Gate(spec, float(effect)))
    if min_effects:
        raise UserError(f"--min-effect {', '.join(min_effects)}: not a gated metric "
                        f"(gated: {', '.join(metrics)})")
    return out


# --- statistics -------------------------------------------------------------------------


def mann_whitney_p(x: Sequence[float], y: Sequence[float],
                   alternative: Literal["less", "greater"]) -> float:
    """One-sided Mann-Whitney U p-value that ``x`` is stochastically less / greater than ``y``.

    Exact where it can be: scipy's exact distribution without ties (up to 8 values per
    side), the exhaustive permutation distribution with ties when there are at most
    :data:`EXACT_PERMUTATIONS` splits, else the normal approximation with tie and
    continuity correction. NaN-free inputs of length >= 1; returns 1.0 when undefined.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    tied = len(np.unique(np.concatenate([a, b]))) < len(a) + len(b)
    method: Any = "auto"
    if tied and min(len(a), len(b)) >= 2 and math.comb(len(a) + len(b), len(a)) <= EXACT_PERMUTATIONS:
        method = stats.PermutationMethod(n_resamples=EXACT_PERMUTATIONS)
    p = float(stats.mannwhitneyu(a, b, alternative=alternative, method=method).pvalue)
    return 1.0 if math.isnan(p) else min(p, 1.0)


def _mann_whitney_rows(x: np.ndarray, y: np.ndarray,
                       alternative: Literal["less", "greater"]) -> np.ndarray:
    """:func:`mann_whitney_p` of each row of ``x`` (shape (r, n)) against the same row of
    ``y`` (shape (r, m)): rows without ties in one vectorised scipy call (the method
    scipy's "auto" picks from the sizes, as for one row), rows with ties one by one."""
    ordered = np.sort(np.concatenate([x, y], axis=1), axis=1)
    tied = (np.diff(ordered, axis=1) == 0).any(axis=1)
    p = np.empty(len(x))
    if (~tied).any():
        p[~tied] = stats.mannwhitneyu(x[~tied], y[~tied], alternative=alternative,
                                      axis=1).pvalue
    for i in np.flatnonzero(tied):
        p[i] = mann_whitney_p(x[i], y[i], alternative)
    return np.where(np.isnan(p), 1.0, np.minimum(p, 1.0))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (Holm 1979, "A simple sequentially rejective multiple test
    procedure"): sorted ascending, ``p_(i) * (m - i + 1)`` made non-decreasing and capped
    at 1. Rejecting every hypothesis whose adjusted p is <= alpha is Holm's step-down
    test; it keeps the family-wise error rate <= alpha under any dependence.
    """
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (m - rank) * float(p[index])))
        adjusted[index] = running
    return [float(v) for v in adjusted]


def min_attainable_p(n_baseline: int, n_current: int) -> float:
    """Smallest one-sided Mann-Whitney p-value with these sample sizes: ``1 / C(n + m, n)``
    (complete separation, no ties). 1 repeat per side: 0.5; 5 vs 5: 1/252 = 0.0040."""
    return 1.0 / math.comb(n_baseline + n_current, n_baseline)


def repeats_needed(alpha: float, metrics: int) -> int:
    """Fewest repeats per side (equal on both) for which a one-sided Mann-Whitney test with
    Holm over ``metrics`` metrics can reach ``alpha``: smallest n with 1/C(2n, n) <= alpha/k.
    alpha 0.01: 1 metric -> 5, 2 -> 5, 3 -> 6."""
    n = 1
    while min_attainable_p(n, n) > alpha / metrics:
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision about one metric of one configuration.

    ``change`` is ``(current_median - baseline_median) / baseline_median``; the p-values
    are one-sided Mann-Whitney ("current worse" / "current better"); ``p_holm`` is the
    Holm-adjusted p of the direction of the observed change (NaN without data).
    """

    metric: MetricSpec
    min_effect: float
    n_baseline: int
    n_current: int
    baseline_median: float
    current_median: float
    change: float
    p_regression: float
    p_improvement: float
    p_holm: float
    decision: Decision
    note: str = ""

    @property
    def summary(self) -> str:
        """What a person wants to read: ``"1.23x slower, p=0.002"``."""
        if self.decision == "no data":
            return self.note
        text = ratio_text(self.metric, self.baseline_median, self.current_median)
        if self.decision == "insufficient repeats":
            return f"{text}, insufficient repeats ({self.n_baseline} vs {self.n_current})"
        text = f"{text}, p={self.p_holm:.2g}"
        return f"{text} ({self.note})" if self.note else text


def ratio_text(metric: MetricSpec, baseline: float, current: float) -> str:
    """``"1.23x slower"`` / ``"1.10x larger"`` / ``"same"`` from two medians."""
    if baseline == current:
        return "same"
    worse = current < baseline if metric.higher_is_better else current > baseline
    hi, lo = max(baseline, current), min(baseline, current)
    factor = f"{hi / lo:.2f}x" if lo > 0 else "∞x"
    return f"{factor} {metric.worse if worse else metric.better}"


def _relative_change(baseline: float, current: float) -> float:
    if baseline == 0:
        return 0.0 if current == 0 else math.copysign(math.inf, current)
    return (current - baseline) / abs(baseline)


def decide(samples: Sequence[tuple[Sequence[float], Sequence[float]]], gates: Sequence[Gate],
           alpha: float = DEFAULT_ALPHA) -> list[Verdict]:
    """Decide every gated metric of one configuration.

    ``samples[i]`` is (baseline repeats, current repeats) of ``gates[i].metric``, in the
    metric's unit; NaNs are dropped. The rule is the module's (Mann-Whitney one-sided,
    Holm across the metrics that have data on both sides, minimum effect, attainable-p
    check). Returns one :class:`Verdict` per gate, in order.
    """
    if len(samples) != len(gates):
        raise ValueError("one (baseline, current) pair per gate")
    clean = [(_finite(b), _finite(c)) for b, c in samples]
    family = [i for i, (b, c) in enumerate(clean) if len(b) and len(c)]
    p_worse: dict[int, float] = {}
    p_better: dict[int, float] = {}
    for i in family:
        b, c = clean[i]
        worse_alt, better_alt = _alternatives(gates[i].metric)
        p_worse[i] = mann_whitney_p(c, b, worse_alt)
        p_better[i] = mann_whitney_p(c, b, better_alt)
    return _verdicts(clean, gates, alpha, p_worse, p_better)


def _alternatives(metric: MetricSpec) -> tuple[Literal["less", "greater"],
                                               Literal["less", "greater"]]:
    """The one-sided alternatives (current vs baseline) for "worse" and for "better"."""
    return ("less", "greater") if metric.higher_is_better else ("greater", "less")


def _verdicts(clean: Sequence[tuple[np.ndarray, np.ndarray]], gates: Sequence[Gate],
              alpha: float, p_worse: Mapping[int, float],
              p_better: Mapping[int, float]) -> list[Verdict]:
    """:func:`decide`'s rule once the one-sided p-values of the metrics with data on both
    sides (the keys of ``p_worse`` / ``p_better``) are known."""
    family = [i for i, (b, c) in enumerate(clean) if len(b) and len(c)]
    k = len(family)
    adj_worse = dict(zip(family, holm([p_worse[i] for i in family]), strict=True))
    adj_better = dict(zip(family, holm([p_better[i] for i in family]), strict=True))
    out: list[Verdict] = []
    for i, gate in enumerate(gates):
        b, c = clean[i]
        if i not in family:
            out.append(Verdict(gate.metric, gate.min_effect, len(b), len(c), _median(b),
                               _median(c), math.nan, math.nan, math.nan, math.nan, "no data",
                               f"no {gate.metric.label} values in the "
                               f"{'baseline' if not len(b) else 'current'} ok trials"))
            continue
        med_b, med_c = float(np.median(b)), float(np.median(c))
        change = _relative_change(med_b, med_c)
        signed = change if gate.metric.higher_is_better else -change  # > 0: better
        p_holm = adj_better[i] if signed > 0 else adj_worse[i]
        decision: Decision
        note = ""
        floor = min_attainable_p(len(b), len(c))
        if floor > alpha / k:
            decision = "insufficient repeats"
            note = insufficient_reason(len(b), len(c), alpha, k)
        elif adj_worse[i] <= alpha and -signed >= gate.min_effect:
            decision = "regression"
        elif adj_better[i] <= alpha and signed >= gate.min_effect:
            decision = "improvement"
        else:
            decision = "no change"
            if p_holm <= alpha:
                note = f"below the {gate.min_effect:.0%} minimum effect"
            elif abs(change) >= gate.min_effect:
                note = "not significant"
        out.append(Verdict(gate.metric, gate.min_effect, len(b), len(c), med_b, med_c, change,
                           p_worse[i], p_better[i], p_holm, decision, note))
    return out


def insufficient_reason(n_baseline: int, n_current: int, alpha: float, metrics: int) -> str:
    """Why ``n_baseline`` vs ``n_current`` repeats cannot decide at ``alpha`` with Holm over
    ``metrics`` metrics, and how many repeats would."""
    return (f"insufficient repeats: {n_baseline} vs {n_current} can reach p >= "
            f"{min_attainable_p(n_baseline, n_current):.2g} at best, Holm over {metrics} "
            f"metric{'s' if metrics > 1 else ''} at alpha {alpha:g} needs <= "
            f"{alpha / metrics:.2g}; use >= {repeats_needed(alpha, metrics)} repeats per side")


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    return a[np.isfinite(a)]


def _median(a: np.ndarray) -> float:
    return float(np.median(a)) if len(a) else math.nan


@dataclass(frozen=True, slots=True)
class GateRates:
    """Fractions of simulated comparisons whose group had any regression / any improvement /
    an insufficient-repeats decision."""

    regression: float
    improvement: float
    insufficient: float


def simulate(n_baseline: int, n_current: int, *, cv: float, shift: float = 0.0,
             gates: Sequence[Gate] | None = None, alpha: float = DEFAULT_ALPHA,
             sims: int = 2000, seed: int = 0) -> GateRates:
    """Monte-Carlo rates of :func:`decide` on normal samples with coefficient of variation
    ``cv`` (0.05 = 5%). Every gated metric is independent with mean 100 at baseline; the
    *first* metric's current mean is moved by ``shift`` in its worse direction (0.2 = 20%
    worse), the others are unchanged. ``shift=0`` gives the false-alarm rate, ``shift>0``
    the power. Deterministic for a given ``seed``.
    """
    gates = list(gates or make_gates())
    rng = np.random.default_rng(seed)
    # The same draws, in the same order, as one rng.normal call per side per metric per
    # comparison: standard normals scaled by the metric's mean and sd.
    z = rng.standard_normal((sims, len(gates), n_baseline + n_current))
    base_z, cur_z = z[..., :n_baseline], z[..., n_baseline:]
    sides: list[tuple[np.ndarray, np.ndarray]] = []
    p_worse: list[np.ndarray] = []
    p_better: list[np.ndarray] = []
    for j, gate in enumerate(gates):
        factor = 1.0
        if j == 0 and shift:
            factor = 1 - shift if gate.metric.higher_is_better else 1 + shift
        b = 100.0 + 100.0 * cv * base_z[:, j]
        c = 100.0 * factor + 100.0 * factor * cv * cur_z[:, j]
        worse_alt, better_alt = _alternatives(gate.metric)
        sides.append((b, c))
        p_worse.append(_mann_whitney_rows(c, b, worse_alt))
        p_better.append(_mann_whitney_rows(c, b, better_alt))
    reg = imp = short = 0
    family = range(len(gates))
    for s in range(sims):
        clean = [(b[s], c[s]) for b, c in sides]
        verdicts = _verdicts(clean, gates, alpha, {j: float(p_worse[j][s]) for j in family},
                             {j: float(p_better[j][s]) for j in family})
        decisions = {v.decision for v in verdicts}
        reg += "regression" in decisions
        imp += "improvement" in decisions
        short += "insufficient repeats" in decisions
    return GateRates(reg / sims, imp / sims, short / sims)


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


#: (what, path in run.json) that must be equal on both sides unless --force.
_MUST_MATCH = (
    ("CPU model", ("machine", "cpu_model")),
    ("logical CPUs", ("machine", "logical_cpus")),
    ("scenario", ("scenario", "name")),
    ("request", ("scenario", "request_path")),
    ("scenario parameters", ("scenario", "params")),
)
#: Differences worth a note but no refusal.
_SHOULD_MATCH = (
    ("measurement window s", ("scenario", "duration_s")),
    ("warm-up s", ("scenario", "warmup_s")),
    ("CPU sets", ("cpus",)),
    ("Python", ("machine", "python")),
)


def _get(meta: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = meta
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, Mapping) and path[-1] == "cpus":
        return {k: value.get(k) for k in ("server", "load")}
    return value


def differences(a: Mapping[str, Any], b: Mapping[str, Any],
                fields: Sequence[tuple[str, tuple[str, ...]]] = _MUST_MATCH) -> list[str]:
    """``"CPU model 'X' vs 'Y'"`` for every field of ``fields`` on which two run.json differ."""
    return [f"{what} {_get(a, p)!r} vs {_get(b, p)!r}" for what, p in fields
            if _get(a, p) != _get(b, p)]


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
        out.append({"path": str(r.path), "run_id": r.meta.get("run_id"),
                    "status": r.meta.get("status"), "started_at": r.meta.get("started_at"),
                    "commit": (r.meta.get("git") or {}).get("commit"),
                    "ok_trials": int((status == "ok").sum()),
                    "excluded_trials": int((status != "ok").sum())})
    return out


def _trials(runs: Sequence[RunData]) -> pd.DataFrame:
    frames = []
    for r in runs:
        t = r.trials.copy()
        t["run_id"] = r.meta.get("run_id") or r.path.name
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
        if r.meta.get("status") != "complete":
            notes.append(f"run {r.meta.get('run_id')} is {r.meta.get('status')}: "
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
    """``"gunicorn-sync · workers=1 · users=4"``; the open-loop rate and a backend other
    than local are added when there."""
    text = f"{key['server']} · workers={key['workers']} · users={key['users']}"
    rate = plain_value(key.get("offered_rps"))
    if rate is not None:
        text += f" · offered={rate:g} req/s"
    backend = key.get("backend")
    return text if backend in (None, "local") else f"{text} · {backend}"


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
