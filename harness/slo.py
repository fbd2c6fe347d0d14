"""SLOs as a gate: parse ``--slo 'p99<150ms,errors<1%,rps>300'`` and judge a run's trials.

``bench check RUN`` and ``bench run --fail-on-slo`` call :func:`judge`; the exit code is
:attr:`Check.exit_code`: 1 when an ``ok`` trial misses an objective, 3 when no trial of
the selection is ``ok`` (nothing could be judged), 0 otherwise. Trials that are not
``ok`` (invalid, failed, unsupported) are never judged, so never count as passes; they
are counted by status. An objective whose figure an ok trial lacks (NaN) is a miss.

Grammar (docs/ci.md): objectives separated by commas, each ``METRIC OP NUMBER[UNIT]``.

=========== ============== ===================== ==========================
metric      trials.csv     operators             units (default first)
=========== ============== ===================== ==========================
p50 p90 p95 latency_*_ms   ``<`` ``<=``          ms, s, us
p99 p999
mean max
errors      error_rate     ``<`` ``<=``          %, or a fraction < 1
rps         throughput_rps ``>`` ``>=``          none (req/s; streams/s or
                                                 msg/s for stream scenarios)
pss         pss_mib_peak   ``<`` ``<=``          MiB, GiB
=========== ============== ===================== ==========================

The default SLO is the run's scenario ``[slo]`` as recorded in its run.json:
``p99 <= p99_ms`` and ``errors <= max_error_rate`` (the report's rule, per trial here).
This module needs no pandas to parse; :func:`judge` reads a loaded run.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import UserError

if TYPE_CHECKING:
    from harness.results import RunData
    from harness.runmeta import RunMeta

Kind = Literal["latency", "fraction", "rate", "memory"]


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric an SLO can bound: its name in a spec, its trials.csv column, and whether
    an objective bounds it from above (latency, errors, memory) or below (throughput)."""

    name: str
    column: str
    label: str
    kind: Kind
    upper: bool


METRICS: dict[str, Metric] = {
    **{p: Metric(p, f"latency_{p}_ms", f"{p} latency", "latency", True)
       for p in ("p50", "p90", "p95", "p99", "p999")},
    "mean": Metric("mean", "latency_mean_ms", "mean latency", "latency", True),
    "max": Metric("max", "latency_max_ms", "max latency", "latency", True),
    "errors": Metric("errors", "error_rate", "error rate", "fraction", True),
    "rps": Metric("rps", "throughput_rps", "throughput", "rate", False),
    "pss": Metric("pss", "pss_mib_peak", "peak PSS", "memory", True),
}

#: Unit -> factor to the metric's own unit (ms, fraction, MiB); "" is the bare number.
_UNITS: dict[Kind, dict[str, float]] = {
    "latency": {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001},
    "fraction": {"%": 0.01, "": 1.0},
    "rate": {"": 1.0},
    "memory": {"": 1.0, "mib": 1.0, "gib": 1024.0},
}

_OBJECTIVE = re.compile(
    r"^\s*(?P<metric>[A-Za-z][A-Za-z0-9_]*)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>[A-Za-zµ%/]*)\s*$")


@dataclass(frozen=True, slots=True)
class Objective:
    """One bound: ``metric op bound``, ``bound`` in the metric's unit (ms, fraction,
    req/s, MiB)."""

    metric: Metric
    op: str
    bound: float

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the bound; a missing figure (NaN) never does."""
        if not math.isfinite(value):
            return False
        return {"<": value < self.bound, "<=": value <= self.bound,
                ">": value > self.bound, ">=": value >= self.bound}[self.op]

    @property
    def text(self) -> str:
        """The objective as a spec item: ``p99<150ms``, ``errors<=1%``, ``rps>300``."""
        return f"{self.metric.name}{self.op}{_number(self.metric, self.bound, spec=True)}"

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric.name, "column": self.metric.column, "op": self.op,
                "bound": self.bound, "unit": _unit(self.metric), "text": self.text}


def _unit(metric: Metric, rate_unit: str = "req/s") -> str:
    return {"latency": "ms", "fraction": "fraction", "rate": rate_unit,
            "memory": "MiB"}[metric.kind]


def _number(metric: Metric, value: float, *, spec: bool = False,
            rate_unit: str = "req/s") -> str:
    """``value`` as a person reads it: ``212.4 ms``, ``2.3%``, ``312.5 req/s``; with
    ``spec``, as written in a spec (``150ms``, ``1%``, ``300``)."""
    if not math.isfinite(value):
        return "no value"
    sep = "" if spec else " "
    if metric.kind == "fraction":
        return f"{100 * value:.4g}%"
    if metric.kind == "latency":
        return f"{value:.4g}{sep}ms"
    if metric.kind == "memory":
        return f"{value:.4g}{sep}MiB"
    return f"{value:.4g}" if spec else f"{value:.4g} {rate_unit}"


def parse(text: str, option: str = "--slo") -> tuple[Objective, ...]:
    """Parse an SLO spec like ``p99<150ms,errors<1%,rps>300`` (grammar: module docstring).

    Raises:
        UserError: an empty spec or item, an unknown metric (with the closest names), an
            operator pointing the wrong way for the metric (``p99>150ms``), a unit the
            metric does not take, a bare error rate >= 1 (ambiguous: 1% or 100%?), a bound
            <= 0 (latency, throughput, memory) or an error rate bound outside [0, 1], a
            metric given twice. One line naming the item.
    """
    if not text.strip():
        raise UserError(f"{option} {text!r}: empty; expected objectives like "
                        "'p99<150ms,errors<1%,rps>300'")
    objectives: list[Objective] = []
    for item in text.split(","):
        if not item.strip():
            raise UserError(f"{option} {text!r}: an empty objective (two commas, or one at "
                            "an end)")
        where = f"{option} {text!r}" + (f": {item.strip()!r}" if item != text else "")
        match = _OBJECTIVE.match(item)
        if match is None:
            raise UserError(f"{where}: expected METRIC OP NUMBER[UNIT], like p99<150ms, "
                            "errors<1% or rps>300")
        name = match["metric"].lower()
        metric = METRICS.get(name)
        if metric is None:
            from harness.scenarios import _suggest

            raise UserError(f"{where}: unknown metric {name!r}" + _suggest(name, list(METRICS))
                            + f" (known: {', '.join(METRICS)})")
        op = match["op"]
        if metric.upper != op.startswith("<"):
            way = "< or <=" if metric.upper else "> or >="
            raise UserError(f"{where}: an SLO bounds {metric.label} from "
                            f"{'above' if metric.upper else 'below'}; use {way}")
        unit = match["unit"].lower()
        units = _UNITS[metric.kind]
        if unit not in units:
            takes = ", ".join(u or "a bare number" for u in units)
            raise UserError(f"{where}: {metric.name} takes {takes}, not {match['unit']!r}")
        number = float(match["number"])
        if metric.kind == "fraction" and not unit and number >= 1:
            raise UserError(f"{where}: ambiguous; write {match['number']}% or a fraction "
                            "like 0.01")
        bound = number * units[unit]
        if metric.kind == "fraction":
            if bound > 1 or (op == "<" and bound == 0):
                raise UserError(f"{where}: an error rate bound must be in (0, 100%] for <, "
                                "[0, 100%] for <=")
        elif bound <= 0:
            raise UserError(f"{where}: the bound must be > 0")
        if any(o.metric is metric for o in objectives):
            raise UserError(f"{where}: {metric.name} is bounded twice")
        objectives.append(Objective(metric, op, bound))
    return tuple(objectives)


def scenario_slo(meta: RunMeta) -> tuple[Objective, ...]:
    """The SLO a run's scenario recorded (run.json ``scenario.slo``): ``p99 <= p99_ms``
    and ``errors <= max_error_rate``, each when present and a finite number >= 0.

    Raises:
        UserError: the run recorded neither (give ``--slo``).
    """
    slo = meta.scenario.slo
    objectives = []
    for value, metric, zero_ok in ((slo.p99_ms, METRICS["p99"], False),
                                   (slo.max_error_rate, METRICS["errors"], True)):
        if value is not None and value >= 0 and (value > 0 or zero_ok):
            objectives.append(Objective(metric, "<=", float(value)))
    if not objectives:
        raise UserError(f"run {meta.run_id or '?'}: its scenario records no SLO; give "
                        "--slo, like 'p99<150ms,errors<1%'")
    return tuple(objectives)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One objective judged on one ok trial."""

    objective: Objective
    value: float

    @property
    def met(self) -> bool:
        return self.objective.met(self.value)


@dataclass(frozen=True, slots=True)
class TrialVerdict:
    """One ok trial against every objective: which config, level and repeat it was."""

    trial_id: str
    server: str
    backend: str
    workers: int
    users: int
    offered_rps: float
    repeat: int
    outcomes: tuple[Outcome, ...]

    @property
    def passed(self) -> bool:
        return all(o.met for o in self.outcomes)

    @property
    def level(self) -> str:
        """``users=16``; open loop: ``rate=40 req/s`` (the offered arrival rate)."""
        if math.isfinite(self.offered_rps):
            return f"rate={self.offered_rps:g} req/s"
        return f"users={self.users}"

    @property
    def config(self) -> str:
        """The server config, with the backend when it is not local."""
        return self.server + (f" ({self.backend})" if self.backend != "local" else "")


@dataclass(frozen=True)
class Check:
    """A run judged against an SLO. ``skipped``: the selected trials that are not ok,
    by status (never judged, never passes)."""

    run_dir: Path
    run_id: str
    scenario: str
    rate_unit: str
    objectives: tuple[Objective, ...]
    source: Literal["--slo", "scenario"]
    at_users: int | None
    verdicts: tuple[TrialVerdict, ...]
    skipped: dict[str, int]

    @property
    def misses(self) -> list[tuple[TrialVerdict, Outcome]]:
        return [(v, o) for v in self.verdicts for o in v.outcomes if not o.met]

    @property
    def exit_code(self) -> int:
        """3: no ok trial to judge; 1: an ok trial missed an objective; 0: every ok
        trial met every objective."""
        if not self.verdicts:
            return 3
        return 1 if self.misses else 0

    @property
    def verdict(self) -> str:
        return {0: "pass", 1: "fail", 3: "no valid trial"}[self.exit_code]

    def describe(self, verdict: TrialVerdict, outcome: Outcome) -> str:
        """``uvicorn · users=16 · repeat 2: p99 212.4 ms, bound < 150 ms``."""
        m = outcome.objective.metric
        return (f"{verdict.config} · {verdict.level} · repeat {verdict.repeat}: {m.name} "
                f"{_number(m, outcome.value, rate_unit=self.rate_unit)}, bound "
                f"{outcome.objective.op} "
                f"{_number(m, outcome.objective.bound, rate_unit=self.rate_unit)}")

    def to_json(self) -> dict[str, Any]:
        """The check as a JSON-ready dict (NaN stays float('nan'); the writer makes it
        null). Shape: docs/ci.md, "Machine-readable output"."""
        def outcome(o: Outcome) -> dict[str, Any]:
            return {"metric": o.objective.metric.name, "value": o.value,
                    "bound": o.objective.bound, "op": o.objective.op, "met": o.met}
        return {
            "run_id": self.run_id, "run_dir": str(self.run_dir), "scenario": self.scenario,
            "verdict": self.verdict, "exit_code": self.exit_code,
            "slo": {"source": self.source, "text": ",".join(o.text for o in self.objectives),
                    "objectives": [o.to_json() for o in self.objectives]},
            "at_users": self.at_users, "rate_unit": self.rate_unit,
            "counts": {"judged": len(self.verdicts),
                       "passed": sum(v.passed for v in self.verdicts),
                       "missed": sum(not v.passed for v in self.verdicts),
                       "skipped": sum(self.skipped.values())},
            "skipped": dict(self.skipped),
            "misses": [{"trial_id": v.trial_id, "config": v.config, "server": v.server,
                        "level": v.level, "users": v.users, "repeat": v.repeat,
                        **outcome(o), "text": self.describe(v, o)} for v, o in self.misses],
            "trials": [{"trial_id": v.trial_id, "server": v.server, "backend": v.backend,
                        "workers": v.workers, "users": v.users, "offered_rps": v.offered_rps,
                        "repeat": v.repeat, "passed": v.passed,
                        "outcomes": [outcome(o) for o in v.outcomes]} for v in self.verdicts],
        }


def check_at_users(at_users: int | None, levels: list[int], where: str) -> None:
    """Refuse ``--at-users N`` when ``N`` is not one of ``levels``.

    Raises:
        UserError: N <= 0, or no trial at that level.
    """
    if at_users is None:
        return
    if at_users <= 0:
        raise UserError(f"--at-users {at_users}: must be > 0")
    if at_users not in levels:
        raise UserError(f"--at-users {at_users}: {where} has no trial at users={at_users} "
                        f"(levels: {', '.join(map(str, sorted(set(levels)))) or 'none'})")


def judge(run: RunData, objectives: tuple[Objective, ...] | None = None, *,
          at_users: int | None = None) -> Check:
    """Judge every ``ok`` trial of ``run`` (at ``at_users`` users only, if given) against
    ``objectives`` (default: the scenario's, :func:`scenario_slo`).

    Raises:
        UserError: the run has no trial at ``at_users``; no objectives given and the
            run recorded no SLO.
    """
    from harness.scenarios import rate_unit

    meta = run.meta
    run_id = meta.run_id or run.path.name
    source: Literal["--slo", "scenario"] = "--slo" if objectives is not None else "scenario"
    chosen = objectives if objectives is not None else scenario_slo(meta)
    trials = run.trials
    check_at_users(at_users, [int(u) for u in trials["users"].dropna()], f"run {run_id}")
    if at_users is not None:
        trials = trials[trials["users"] == at_users]
    ok = trials[trials["status"] == "ok"]
    skipped = Counter(str(s) for s in trials.loc[trials["status"] != "ok", "status"])
    verdicts = tuple(
        TrialVerdict(
            trial_id=str(t["trial_id"]), server=str(t["server"]),
            backend=str(t.get("backend") or "local"), workers=int(t["workers"]),
            users=int(t["users"]), offered_rps=float(t["offered_rps"]),
            repeat=int(t["repeat"]),
            outcomes=tuple(Outcome(o, float(t[o.metric.column])) for o in chosen))
        for _, t in ok.sort_values(["users", "server", "repeat"]).iterrows())
    return Check(run_dir=run.path, run_id=run_id, scenario=meta.scenario.name or "?",
                 rate_unit=rate_unit(meta.scenario.protocol or "http"),
                 objectives=chosen, source=source, at_users=at_users, verdicts=verdicts,
                 skipped=dict(sorted(skipped.items())))
