"""A run's checks as a JUnit XML report, for the test views of CI systems.

The file follows the JUnit XML that Jenkins (its ``junit-10.xsd``), GitLab and the
GitHub test-report actions read: ``<testsuites>`` holding ``<testsuite>`` elements with
``tests``, ``failures``, ``errors``, ``skipped`` and ``time`` counts, each holding
``<properties>``, ``<testcase name classname time>`` (with at most one ``<failure>`` or
``<skipped>``, and a ``<system-out>`` with the figures) and ``<system-out>``. Built
with :mod:`xml.etree.ElementTree`; the counts are computed from the cases written.

Suites:

``slo`` (always): one test case per configuration (scenario, server, workers, users,
open-loop rate, backend) and SLO check: p99 latency at most the scenario's SLO p99, and
error rate at most its error bound (``[slo] max_error_rate``, else the validity bound).
The figure is the median of the configuration's ``ok`` repeats (as the report's capacity
table uses). A miss is a ``<failure>``; a configuration with no ok trial (invalid,
unsupported, failed) is ``<skipped>`` with the statuses and reasons, never judged; so is
a check the scenario has no bound for, or a figure not measured.

``regressions`` (with a baseline): one test case per configuration and gated metric of
:func:`harness.compare.compare`: ``regression`` is a failure; ``insufficient repeats``
and ``no data`` are skipped; ``no change`` and ``improvement`` pass. Configurations on
one side only are skipped cases (one per gated metric).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from harness.compare import KEY, Comparison, config_keys, config_label
from harness.runmeta import RunMeta

Outcome = Literal["passed", "failure", "skipped"]


@dataclass(frozen=True, slots=True)
class Case:
    """One ``<testcase>``: ``message`` is the failure's or skip's one-line reason,
    ``output`` the figures (``<system-out>``), ``time`` seconds of measurement."""

    classname: str
    name: str
    outcome: Outcome
    message: str
    output: str
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    cases: tuple[Case, ...]
    properties: tuple[tuple[str, str], ...]

    def count(self, outcome: Outcome) -> int:
        return sum(c.outcome == outcome for c in self.cases)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[int, float, str], ...]:
    return tuple((0, float(x), "") if isinstance(x, int | float) else (1, 0.0, str(x))
                 for x in key)


def _classname(key: Mapping[str, Any]) -> str:
    # CI views split classnames at dots into package.class: scenario.server
    return f"{key['scenario']}.{key['server']}".replace(" ", "_")


def _not_ok_text(group: pd.DataFrame) -> str:
    bad = group[group["status"] != "ok"]
    return "; ".join(f"{r['trial_id']}: {r['status']}"
                     + (f" ({r['reason']})" if str(r.get("reason") or "") not in ("", "nan") else "")
                     for r in bad.to_dict("records"))


def _bounds(meta: RunMeta) -> list[tuple[str, str, float, float, str]]:
    """(column, label, bound, scale to the shown unit, unit) of each SLO check; a bound of
    NaN when the scenario sets none."""
    slo, validity = meta.scenario.slo, meta.scenario.validity
    p99 = _float(slo.p99_ms)
    errors = _float(slo.max_error_rate)
    if math.isnan(errors):
        errors = _float(validity.max_error_rate)
    return [("latency_p99_ms", "p99 latency", p99 if p99 > 0 else math.nan, 1.0, "ms"),
            ("error_rate", "error rate", errors if errors >= 0 else math.nan, 100.0, "%")]


def slo_suite(meta: RunMeta, trials: pd.DataFrame) -> Suite:
    """The ``slo`` suite of one run (module docstring); configurations in
    :data:`harness.compare.KEY` order, checks p99 then error rate."""
    cases: list[Case] = []
    bounds = _bounds(meta)
    t = trials.assign(_key=config_keys(trials)) if len(trials) else trials.assign(_key=[])
    for k in sorted(set(t["_key"]), key=_sort_key):
        key = dict(zip(KEY, k, strict=True))
        group = t[[x == k for x in t["_key"]]]
        ok = group[group["status"] == "ok"]
        excluded = _not_ok_text(group)
        window = float(pd.to_numeric(ok.get("window_s", pd.Series(dtype=float)),
                                     errors="coerce").fillna(0).sum())
        for column, label, bound, scale, unit in bounds:
            shown = f"{bound * scale:g} {unit}" if not math.isnan(bound) else ""
            name = f"{config_label(key)}: {label} <= {shown or 'SLO'}"
            values = pd.to_numeric(ok.get(column, pd.Series(dtype=float)),
                                   errors="coerce").dropna()
            out = (f"{len(ok)} ok of {len(group)} trials"
                   + (f"; not ok: {excluded}" if excluded else ""))
            if not len(ok):
                statuses = ", ".join(sorted(set(group["status"].astype(str))))
                cases.append(Case(_classname(key), name, "skipped",
                                  f"no ok trial ({statuses}): {excluded}", out))
            elif math.isnan(bound):
                cases.append(Case(_classname(key), name, "skipped",
                                  f"the scenario sets no {label} SLO", out, window))
            elif not len(values):
                cases.append(Case(_classname(key), name, "skipped",
                                  f"{label} not measured in the ok trials", out, window))
            else:
                median = float(values.median())
                figures = (f"{label} {median * scale:.4g} {unit} (median of {len(values)} ok "
                           f"repeats: {', '.join(f'{v * scale:.4g}' for v in values)}); "
                           f"SLO {shown}")
                missed = median > bound
                cases.append(Case(_classname(key), name, "failure" if missed else "passed",
                                  f"{label} {median * scale:.4g} {unit} > SLO {shown}"
                                  if missed else "", f"{figures}\n{out}", window))
    return Suite("slo", tuple(cases), ())


def regression_suite(comparison: Comparison) -> Suite:
    """The ``regressions`` suite from a :class:`harness.compare.Comparison`."""
    cases: list[Case] = []
    for key, v in comparison.rows:
        name = f"{config_label(key)}: {v.metric.label} not regressed"
        out = (f"baseline {v.baseline_median:.4g} {v.metric.unit} (n={v.n_baseline}), current "
               f"{v.current_median:.4g} {v.metric.unit} (n={v.n_current}): {v.summary}; "
               f"decision: {v.decision}")
        outcome: Outcome = ("failure" if v.decision == "regression" else
                            "skipped" if v.decision in ("insufficient repeats", "no data")
                            else "passed")
        message = "" if outcome == "passed" else f"{v.decision}: {v.summary}"
        cases.append(Case(_classname(key), name, outcome, message, out))
    for side, text in (("current_only", "only in the current run"),
                       ("baseline_only", "only in the baseline")):
        for key in comparison.unmatched[side]:
            for gate in comparison.gates:
                cases.append(Case(_classname(key), f"{config_label(key)}: {gate.metric.label} "
                                  "not regressed", "skipped", f"{text}: not compared", ""))
    base = ", ".join(str(s.get("run_id")) for s in comparison.baseline)
    props = (("baseline", base), ("alpha", f"{comparison.alpha:g}"),
             ("gates", ", ".join(f"{g.metric.column}>={g.min_effect:.0%}"
                                 for g in comparison.gates)))
    return Suite("regressions", tuple(cases), props)


def _timestamp(meta: RunMeta) -> str:
    ts = pd.to_datetime(meta.started_at, utc=True, errors="coerce")
    # junit-10.xsd: an ISO 8601 date-time without a time zone (here UTC)
    return "" if ts is None or pd.isna(ts) else ts.strftime("%Y-%m-%dT%H:%M:%S")


def to_xml(meta: RunMeta, suites: Sequence[Suite]) -> bytes:
    """The JUnit XML document of ``suites`` (UTF-8, with an XML declaration)."""
    run_id = meta.run_id or ""
    scenario = meta.scenario.label()
    root = ET.Element("testsuites", name=f"bench {scenario} {run_id}".strip())
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    hostname = meta.machine.hostname or "localhost"
    for number, suite in enumerate(suites):
        time = sum(c.time for c in suite.cases)
        counts = {"tests": len(suite.cases), "failures": suite.count("failure"), "errors": 0,
                  "skipped": suite.count("skipped")}
        el = ET.SubElement(root, "testsuite", name=f"{suite.name} · {scenario}",
                           id=str(number), package=f"bench.{suite.name}", hostname=hostname,
                           timestamp=_timestamp(meta), time=f"{time:.3f}",
                           **{k: str(v) for k, v in counts.items()})
        if not el.get("timestamp"):
            del el.attrib["timestamp"]
        props = ET.SubElement(el, "properties")
        for name, value in (("run_id", run_id), ("commit", meta.git.commit or ""),
                            ("run_status", meta.status or ""), *suite.properties):
            ET.SubElement(props, "property", name=name, value=value)
        for c in suite.cases:
            case = ET.SubElement(el, "testcase", name=c.name, classname=c.classname,
                                 time=f"{c.time:.3f}")
            if c.outcome == "skipped":
                ET.SubElement(case, "skipped", message=c.message)
            elif c.outcome == "failure":
                failure = ET.SubElement(case, "failure", message=c.message, type=suite.name)
                failure.text = c.output
            if c.output and c.outcome != "failure":  # a failure carries them itself
                ET.SubElement(case, "system-out").text = c.output
        for k, v in counts.items():
            totals[k] += v
        total_time += time
    root.set("time", f"{total_time:.3f}")
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def build(meta: RunMeta, trials: pd.DataFrame,
          comparison: Comparison | None = None) -> tuple[bytes, list[Suite]]:
    """(the JUnit XML, its suites) of one run: the ``slo`` suite, and the
    ``regressions`` suite when ``comparison`` (baseline vs this run) is given."""
    suites = [slo_suite(meta, trials)]
    if comparison is not None:
        suites.append(regression_suite(comparison))
    return to_xml(meta, suites), suites
