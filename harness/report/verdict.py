"""The verdict: plain sentences generated from a run's capacity figures, each claim with
its number (throughput, p99, memory, the WSGI/ASGI ratio with its bootstrap CI).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from harness import stats
from harness.report.fmt import _float, _int, _num
from harness.report.model import (
    _INTERFACE_ORDER,
    Analysis,
    _cap_level,
    _unsupported_configs,
    as_analysis,
)
from harness.report.stacks import stack_sentences, stacked
from harness.report.stream_model import _no_slope, _per_connection_fits
from harness.results import RunData

#: Server CPU below this (% of one core) makes req/s per core an extrapolation worth a caveat.
LOW_CPU_PERCENT = 10.0


def verdict(run: RunData | Analysis, *, slo_p99_ms: float | None = None) -> list[str]:
    """The verdict sentences of one run (plain text), as shown in its section."""
    return _verdict(as_analysis(run, slo_p99_ms=slo_p99_ms))


def _ok_throughputs(a: Analysis, server: str, level: float) -> np.ndarray:
    """Throughput (req/s) of each ok repeat of ``server`` at ``level``."""
    rows = a.trials[(a.trials["server"] == server) & (a.trials["status"] == "ok")
                    & (a.trials[a.level] == level)]
    return rows["throughput_rps"].dropna().to_numpy(dtype=float)


def _verdict(a: Analysis) -> list[str]:
    """Sentences from the capacity table; each claim carries its number. A run with
    framework apps starts with what its stacks show (harness.report.stacks)."""
    lead = stack_sentences(a) if stacked(a) and a.slo.p99_ms > 0 else []
    return lead + _capacity_verdict(a)


def _capacity_verdict(a: Analysis) -> list[str]:
    slo_text = (f"p99 ≤ {a.slo.p99_ms:g} ms and errors ≤ {100 * a.slo.max_error_rate:g} %")
    statuses = a.trials["status"].value_counts()
    out: list[str] = []
    not_ok = int(len(a.trials) - statuses.get("ok", 0))
    excluded = ""
    if not_ok:
        parts = ", ".join(f"{n} {s or '(no status)'}" for s, n in statuses.items() if s != "ok")
        excluded = (f"{not_ok} of {len(a.trials)} trials are not ok ({parts}) and are "
                    "excluded from every figure below (see Validity).")
    if a.trials.empty:
        return ["No trials: nothing to judge."]
    if not a.slo.p99_ms > 0:
        return [("This run records no SLO p99, so no level can be called sustainable: "
                 "re-render with --slo-p99-ms."), *([excluded] if excluded else [])]
    cap = a.capacity
    able = cap[cap["sustainable_rps"].notna()]
    unsupported = _unsupported_sentences(a)
    if able.empty:
        p99 = a.levels[a.levels["n"] > 0].dropna(subset=["latency_p99_ms_median"])
        if p99.empty:
            out.append(f"No server config has an ok trial to compare against the SLO "
                       f"({slo_text}).")
        else:
            low = p99.loc[p99["latency_p99_ms_median"].idxmin()]
            out.append(f"No server config met the SLO ({slo_text}) at any measured level: "
                       f"the lowest median p99 was {_num(low['latency_p99_ms_median'], 1)} ms "
                       f"({low['server']} at {a.level_text(low[a.level])}). There is no "
                       "sustainable throughput to plan capacity with.")
        return out + unsupported + ([excluded] if excluded else [])

    best = able.loc[able["sustainable_rps"].idxmax()]
    out.append(f"Most throughput within the SLO ({slo_text}): {best['server']} "
               f"({str(best['interface']).upper() or 'interface unknown'}), "
               f"{_num(best['sustainable_rps'], 1)} {a.rate_unit}{_ci_text(best)} at "
               f"{a.level_text(_cap_level(a, best))} (p99 "
               f"{_num(best['sustainable_p99_ms'], 1)} ms).")
    per_core = able.dropna(subset=["rps_per_core"])
    if len(per_core):
        top = per_core.loc[per_core["rps_per_core"].idxmax()]
        cpu = _float(top["sustainable_cpu_percent"])
        caveat = (f"; the server used only {cpu:.1f} % of a core there, so this "
                  "extrapolates far: waiting, not CPU, bounds this workload"
                  if cpu < LOW_CPU_PERCENT else "")
        out.append(f"Most throughput per core within the SLO: {top['server']}, "
                   f"{_num(top['rps_per_core'], 0)} {a.rate_unit} per fully used core "
                   f"({_num(top['sustainable_rps'], 1)} {a.rate_unit} at {_num(cpu, 1)} % of one "
                   f"core){caveat}.")
    if "sustainable_cpu_ms_per_request" in able:
        costed = able.dropna(subset=["sustainable_cpu_ms_per_request"])
        if len(costed):
            cheap = costed.loc[costed["sustainable_cpu_ms_per_request"].idxmin()]
            ms = _float(cheap["sustainable_cpu_ms_per_request"])
            target = (f"; {_num(a.target_rps, 0)} {a.rate_unit} would take "
                      f"{_num(a.target_rps * ms / 1000.0, 2)} server cores at that cost"
                      if a.target_rps is not None else "")
            out.append(f"Least CPU per request within the SLO: {cheap['server']}, "
                       f"{_num(ms, 3)} ms of server CPU per successful request at "
                       f"{a.level_text(_cap_level(a, cheap))}{target}.")
    per_conn = able.dropna(subset=["sustainable_pss_kib_per_connection"])
    memory = able.dropna(subset=["sustainable_pss_mib"])
    if len(per_conn):
        low = per_conn.loc[per_conn["sustainable_pss_kib_per_connection"].idxmin()]
        out.append(f"Least memory per connection at its sustainable level: {low['server']}, "
                   f"{_num(low['sustainable_pss_kib_per_connection'], 1)} KiB PSS per "
                   f"connection at {a.level_text(_cap_level(a, low))}.")
    elif len(memory):
        low = memory.loc[memory["sustainable_pss_mib"].idxmin()]
        out.append(f"Least memory at its sustainable level: {low['server']}, "
                   f"{_num(low['sustainable_pss_mib'], 1)} MiB PSS for the whole server "
                   f"({_num(low['pss_mib_per_worker'], 1)} MiB per worker, "
                   f"{_int(low['workers'])} worker(s)) at {a.level_text(_cap_level(a, low))}.")
    if a.stream:
        out.append(_per_connection_sentence(a))
    out.append(_interfaces_sentence(a, able))
    out += unsupported
    failing = cap[cap["sustainable_rps"].isna() & ~cap["server"].isin(_unsupported_configs(a))]
    if len(failing):
        out.append("Without a sustainable level: " + "; ".join(
            f"{r.server}: {r.note}" for r in failing.itertuples(index=False)) + ".")
    noisy = able[able["sustainable_noisy"]]
    if len(noisy):
        out.append("Repeats varied by more than 5 % (coefficient of variation) at the "
                   "sustainable level of " + ", ".join(noisy["server"]) + ": differences "
                   "smaller than that between these configs are not meaningful.")
    if a.stream:
        out.append(_headline_sentence(a))
    if excluded:
        out.append(excluded)
    return out


def _headline_sentence(a: Analysis) -> str:
    """What throughput and "p99" mean in a stream run (harness.streams)."""
    if a.protocol == "sse":
        return ("In this SSE run, throughput (streams/s) counts streams whose first event "
                "arrived per second and latency (p99, the SLO) is the time to first event; "
                "events/s and event lag are in their own charts.")
    return ("In this WebSocket run, throughput (msg/s) counts echoes received per second "
            "and latency (p99, the SLO) is the echo round-trip time.")


def _unsupported_sentences(a: Analysis) -> list[str]:
    """One sentence per (interface, reason) of the configs whose every trial is
    unsupported, e.g. "WebSocket: 4 WSGI configs unsupported (handshake answered 404 Not
    Found): ...; left out of the ranking." """
    groups: dict[tuple[str, str], list[str]] = {}
    for server, reason in _unsupported_configs(a).items():
        groups.setdefault((a.configs.get(server, ""), reason), []).append(server)
    out = []
    for (interface, reason), servers in sorted(
            groups.items(), key=lambda kv: (_INTERFACE_ORDER.get(kv[0][0], 2), kv[0][1])):
        prefix = f"{a.protocol_name} ".lower()
        short = reason[len(prefix):] if reason.lower().startswith(prefix) else reason
        kind = f"{interface.upper()} " if interface else ""
        plural = "s" if len(servers) != 1 else ""
        out.append(f"{a.protocol_name}: {len(servers)} {kind}config{plural} unsupported "
                   f"({short}): {', '.join(servers)}; shown as unsupported at every level "
                   "and left out of the ranking.")
    return out


def _per_connection_sentence(a: Analysis) -> str:
    """Every config's PSS per held connection (KiB), ASGI first, smallest first."""
    fits = {s: f for s, f in _per_connection_fits(a).items()
            if s not in _unsupported_configs(a)}
    groups: list[str] = []
    for interface in sorted({a.configs.get(s, "") for s in fits},
                            key=lambda i: (-_INTERFACE_ORDER.get(i, -1), i)):
        have = sorted((f[0], s) for s, f in fits.items()
                      if a.configs.get(s, "") == interface and not math.isnan(f[0]))
        if have:
            groups.append(f"{interface.upper() or 'other'}: " + ", ".join(
                f"{s} {_num(k, 1)} KiB" for k, s in have))
    none = [s for s, f in fits.items() if math.isnan(f[0])]
    if not groups and not none:
        return ("Memory per held connection: no config had ok trials with PSS and "
                "connection counts.")
    text = ("Memory per held connection (least-squares slope of PSS peak against "
            "connections held, across levels): " + ("; ".join(groups) or "none measured"))
    for server in none:
        ok = a.trials[(a.trials["server"] == server) & (a.trials["status"] == "ok")]
        text += f"; no slope for {server}: {_no_slope(ok)}"
    return text + "."


def _ci_text(row: Any) -> str:
    low, high = _float(row["sustainable_rps_ci_low"]), _float(row["sustainable_rps_ci_high"])
    if math.isnan(low):
        return " (one repeat: no confidence interval)"
    return (f" (95 % CI of the mean {_num(low, 1)}–{_num(high, 1)}, "
            f"{_int(row['sustainable_n'])} repeats)")


def _interfaces_sentence(a: Analysis, able: pd.DataFrame) -> str:
    """Best WSGI vs best ASGI max sustainable throughput, ratio and bootstrap CI."""
    measured = {str(i) for i in a.capacity["interface"]}
    best: dict[str, Any] = {}
    for interface in ("wsgi", "asgi"):
        mine = able[able["interface"] == interface]
        if len(mine):
            best[interface] = mine.loc[mine["sustainable_rps"].idxmax()]
    if len(best) < 2:
        present = sorted(i.upper() for i in measured if i in ("wsgi", "asgi"))
        if len(present) < 2:
            return (f"WSGI vs ASGI: only {' and '.join(present) or 'unlabelled'} configs were "
                    "measured in this run; no comparison.")
        (has,) = best
        missing = "asgi" if has == "wsgi" else "wsgi"
        row = best[has]
        theirs = [s for s, i in a.configs.items() if i == missing]
        if theirs and set(theirs) <= set(_unsupported_configs(a)):
            return (f"WSGI vs ASGI: no {missing.upper()} config can serve {a.protocol_name} "
                    f"({len(theirs)} measured, every one unsupported), so {has.upper()} is "
                    f"the only choice here; the best {has.upper()} config ({row['server']}) "
                    f"sustained {_num(row['sustainable_rps'], 1)} {a.rate_unit} at "
                    f"{a.level_text(_cap_level(a, row))}.")
        text = (f"WSGI vs ASGI: no {missing.upper()} config met the SLO, while the best "
                f"{has.upper()} config ({row['server']}) sustained "
                f"{_num(row['sustainable_rps'], 1)} {a.rate_unit}")
        peaks = a.capacity[(a.capacity["interface"] == missing)].dropna(subset=["peak_rps"])
        if len(peaks):
            peak = peaks.loc[peaks["peak_rps"].idxmax()]
            text += (f"; the best {missing.upper()} peak, outside the SLO, was {peak['server']} "
                     f"at {_num(peak['peak_rps'], 1)} {a.rate_unit} "
                     f"({a.level_text(_cap_level(a, peak, 'peak'))})")
        return text + "."
    wsgi, asgi = best["wsgi"], best["asgi"]
    ratio, low, high = stats.ratio_ci(
        _ok_throughputs(a, asgi["server"], _cap_level(a, asgi)),
        _ok_throughputs(a, wsgi["server"], _cap_level(a, wsgi)))
    if ratio >= 1:
        winner, loser, shown, lo, hi = asgi, wsgi, ratio, low, high
    else:
        winner, loser = wsgi, asgi
        shown, lo, hi = 1 / ratio, 1 / high if high else math.nan, 1 / low if low else math.nan
    text = (f"WSGI vs ASGI on this workload: the best {winner['interface'].upper()} config "
            f"({winner['server']}, {_num(winner['sustainable_rps'], 1)} {a.rate_unit} at "
            f"{a.level_text(_cap_level(a, winner))}) sustains {shown:.2f}× the throughput "
            f"of the best {loser['interface'].upper()} config ({loser['server']}, "
            f"{_num(loser['sustainable_rps'], 1)} {a.rate_unit} at "
            f"{a.level_text(_cap_level(a, loser))}) within the SLO")
    if math.isnan(lo):
        return text + (" (one repeat each: no confidence interval for the ratio; run with "
                       "--repeats 3 or more).")
    text += (f" (95 % bootstrap CI of the ratio of medians {lo:.2f}–{hi:.2f}, "
             f"{len(_ok_throughputs(a, winner['server'], _cap_level(a, winner)))} and "
             f"{len(_ok_throughputs(a, loser['server'], _cap_level(a, loser)))} repeats)")
    if lo <= 1.0:
        text += ": the interval includes 1, so this run shows no clear difference"
    return text + "."

