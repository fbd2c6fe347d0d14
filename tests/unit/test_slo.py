"""The ``--slo`` grammar (harness.slo): what parses, what is refused in one line, and that a
missing figure never meets an objective. The gate on real runs is tests/e2e/test_check.py."""

from __future__ import annotations

import math

import pytest

from harness import slo
from harness.errors import UserError


@pytest.mark.parametrize(("spec", "expected"), [
    ("p99<150ms", [("p99", "<", 150.0)]),
    ("p99<150", [("p99", "<", 150.0)]),  # latency: ms by default (k6's convention)
    (" p95 <= 0.2s , errors<1% ,rps>300", [("p95", "<=", 200.0), ("errors", "<", 0.01),
                                            ("rps", ">", 300.0)]),
    ("errors<=0", [("errors", "<=", 0.0)]),
    ("errors<0.005,mean<250us,max<2e3", [("errors", "<", 0.005), ("mean", "<", 0.25),
                                         ("max", "<", 2000.0)]),
    ("pss<1GiB,P999<1S,rps>=1.5", [("pss", "<", 1024.0), ("p999", "<", 1000.0),
                                   ("rps", ">=", 1.5)]),
])
def test_good_specs(spec: str, expected: list[tuple[str, str, float]]) -> None:
    got = slo.parse(spec)
    assert [(o.metric.name, o.op) for o in got] == [e[:2] for e in expected]
    assert [o.bound for o in got] == pytest.approx([e[2] for e in expected])
    assert slo.parse(",".join(o.text for o in got)) == got  # the shown text parses back


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty; expected objectives like"),
    ("p99<150ms,", "an empty objective"),
    ("p99", "expected METRIC OP NUMBER[UNIT]"),
    ("p99=150ms", "expected METRIC OP NUMBER[UNIT]"),
    ("p99<-1ms", "expected METRIC OP NUMBER[UNIT]"),
    ("p99<nan", "expected METRIC OP NUMBER[UNIT]"),
    ("p98<150ms", "unknown metric 'p98'; did you mean"),
    ("p99>150ms", "bounds p99 latency from above; use < or <="),
    ("rps<300", "bounds throughput from below; use > or >="),
    ("p99<150kg", "p99 takes a bare number, ms, s, us, µs, not 'kg'"),
    ("rps>300req/s", "rps takes a bare number, not 'req/s'"),
    ("errors<1", "ambiguous; write 1% or a fraction like 0.01"),
    ("errors<150%", "an error rate bound must be in"),
    ("errors<0%", "an error rate bound must be in"),
    ("p99<0ms", "the bound must be > 0"),
    ("p99<150ms,p99<=200ms", "p99 is bounded twice"),
])
def test_bad_specs_are_one_line(spec: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        slo.parse(spec)
    text = str(caught.value)
    assert message in text and "\n" not in text and text.startswith(f"--slo {spec!r}")


def test_a_missing_figure_never_meets_an_objective() -> None:
    (p99,) = slo.parse("p99<150ms")
    (rps,) = slo.parse("rps>0.001")
    assert p99.met(149.9) and not p99.met(150.0) and not p99.met(math.nan)
    assert rps.met(1.0) and not rps.met(math.nan)


