"""Regression gates: which metrics are gated, and the statistics that decide a change.

The rule (``harness.compare``'s docstring, steps 2 to 5): per configuration and gated
metric, a one-sided Mann-Whitney U test in each direction (scipy.stats.mannwhitneyu;
Mann & Whitney 1947), exact where it can be, Holm's step-down adjustment across the
gated metrics of one configuration (Holm 1979), and a minimum relative change of the
medians. Rank tests are discrete: with too few repeats no outcome can be significant,
and the decision is *insufficient repeats* (:func:`repeats_needed`).

Pure functions of numbers; no files. :func:`simulate` measures a gate's false-alarm
and detection rates on synthetic repeats (vectorised over simulations).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from harness.compare_defaults import DEFAULT_ALPHA, DEFAULT_METRICS
from harness.errors import UserError

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
