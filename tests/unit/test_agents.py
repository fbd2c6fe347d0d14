"""harness.agents, the harness's side of load agents: each agent's row of agents.csv comes
from its own record file (throughput req/s and p50/p99 ms as numpy gives them on the same
records, its CPU over the window only), the rows' histograms add up to the trial's, and
the verdicts and option checks say which agent or option is wrong."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import latency
from harness.agents import (
    AGENT_COLUMNS,
    agent_rows,
    check_run_options,
    cpu_percent,
    generator_figures,
    parse_address,
    problems,
    save,
)
from harness.analysis import Window
from harness.errors import UserError

WINDOW = Window(1000.0, 1010.0)


def write_agent(records: Path, index: int, latencies_ms: np.ndarray, *, failed: int = 0,
                cpu_samples: list[list[float]] | None = None) -> None:
    """Agent ``index``'s records (one request every 10 ms from the window's start, the
    last ``failed`` of them failed) and its meta, as the locust master writes them."""
    starts = WINDOW.start + 0.01 * np.arange(len(latencies_ms))
    ok = np.ones(len(latencies_ms), dtype=int)
    ok[len(ok) - failed:] = 0
    lines = [f"{s:.6f},{lat:.4f},{o},{200 if o else 500},12,request\n"
             for s, lat, o in zip(starts, latencies_ms, ok, strict=True)]
    # One completion before the window: outside it, it counts nowhere.
    lines.append(f"{WINDOW.start - 5:.6f},1.0000,1,200,12,request\n")
    (records / f"agent-{index}.csv").write_text("".join(lines))
    (records / f"agent-{index}.meta.json").write_text(json.dumps({
        "role": "worker", "cpu_warning": False, "shipped_bytes": 4096, "shipped_batches": 3,
        "cpu_samples": cpu_samples or [],
        "agent": {"index": index, "address": f"10.0.0.{index}", "host": f"load{index}",
                  "pid": 4000 + index, "cpus": [2, 3], "offset_ms": 0.25,
                  "uncertainty_ms": 0.1}}))


def test_each_agents_row_comes_from_its_own_records(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    one, two = rng.gamma(4.0, 2.5, 500), rng.gamma(2.0, 20.0, 300)
    write_agent(tmp_path, 1, one, cpu_samples=[[999.0, 0.0], [1000.0, 1.0], [1010.0, 4.0]])
    write_agent(tmp_path, 2, two, failed=30)
    (tmp_path / "agent-3.meta.json").write_text("{not json")  # a damaged meta: no row
    rows = agent_rows(tmp_path, WINDOW, trial_id="t1")
    assert [r["agent"] for r in rows] == [1, 2]
    for row, lat, failed in ((rows[0], one, 0), (rows[1], two, 30)):
        assert row["requests"] == len(lat) and row["failures"] == failed
        assert row["throughput_rps"] == pytest.approx((len(lat) - failed) / WINDOW.seconds)
        assert row["error_rate"] == pytest.approx(failed / len(lat))
        for key, q in (("latency_p50_ms", 50), ("latency_p99_ms", 99)):
            # the histogram's bucket midpoints: within 0.05% of the exact percentile
            assert row[key] == pytest.approx(np.percentile(lat, q), rel=5e-4), key
        assert row["latency_max_ms"] == pytest.approx(lat.max(), abs=1e-4)
    first = rows[0]
    assert (first["trial_id"], first["address"], first["host"], first["pid"], first["cpus"]) == (
        "t1", "10.0.0.1", "load1", 4001, "2 3")
    assert (first["clock_offset_ms"], first["clock_uncertainty_ms"]) == (0.25, 0.1)
    # CPU over the window only: 3 s of CPU in its 10 s, the busy second before ignored
    assert first["cpu_percent"] == pytest.approx(30.0)
    assert math.isnan(rows[1]["cpu_percent"])  # no samples: unknown, not 0
    # The agents' histograms add up to the trial's (exact merging, not averaged percentiles)
    merged = latency.decode(first["histogram"])
    merged.add(latency.decode(rows[1]["histogram"]))
    trial = latency.scan_records(tmp_path, WINDOW, pattern="agent-*.csv")
    assert merged.get_total_count() == trial.requests == len(one) + len(two)
    assert latency.encode(merged) == latency.encode(trial.histogram)


def test_agents_csv_grows_by_trial_with_its_columns(tmp_path: Path) -> None:
    write_agent(tmp_path, 1, np.full(10, 5.0))
    rows: list[dict] = []
    save(tmp_path, rows, [])
    assert not (tmp_path / "agents.csv").exists()  # nothing new: nothing written
    save(tmp_path, rows, agent_rows(tmp_path, WINDOW, trial_id="t1"))
    save(tmp_path, rows, agent_rows(tmp_path, WINDOW, trial_id="t2"))
    table = pd.read_csv(tmp_path / "agents.csv")
    assert tuple(table.columns) == AGENT_COLUMNS
    assert list(table["trial_id"]) == ["t1", "t2"] and list(table["requests"]) == [10, 10]


def test_generator_figures_add_the_agents_and_keep_the_unknown_unknown() -> None:
    figures = generator_figures([{"cpu_percent": 40.0}, {"cpu_percent": math.nan},
                                 {"cpu_percent": 65.0}])
    assert figures["generator_cpu_percent"] == 105.0
    assert figures["generator_cpu_percent_top"] == 65.0
    assert math.isnan(figures["generator_cpu_percent_peak"])
    assert math.isnan(figures["load_cpus_busy_percent"])  # other hosts' CPUs: not known here
    none = generator_figures([{"cpu_percent": math.nan}])
    assert all(math.isnan(v) for v in none.values())
    assert math.isnan(cpu_percent([[1000.0, 1.0]], WINDOW.start, WINDOW.end))  # one sample


def test_every_verdict_names_who_is_wrong() -> None:
    def row(agent: int, cpu: float, *, warning: bool = False) -> dict:
        return {"agent": agent, "address": f"10.0.0.{agent}", "pid": 4000 + agent,
                "cpu_percent": cpu, "cpu_warning": warning, "clock_offset_ms": 0.0,
                "clock_uncertainty_ms": math.nan}

    meta = {"agents": [1, 2], "agents_lost": []}
    hot_master = problems([row(1, 10), row(2, 10)], meta, {"generator_cpu_percent_top": 95.0},
                          planned=2, limit_percent=90)
    assert hot_master == ("generator-saturated: locust master at 95% of a core receiving the "
                          "agents' records (limit 90%)")
    warned = problems([row(1, math.nan, warning=True)], {"agents": [1]}, {}, planned=1,
                      limit_percent=90)
    assert warned == ("generator-saturated: agent 1 (10.0.0.1 pid 4001): locust warned of high "
                      "CPU (limit 90%)")
    assert problems([row(1, 10)], {"agents": [1]}, {}, planned=2, limit_percent=90) == (
        "only 1 of 2 load agents took part")
    # An unknown clock (NaN) is not "within the bound": SSE's event lag is not trusted.
    sse = problems([row(1, 10)], {"agents": [1]}, {}, planned=1, limit_percent=90,
                   protocol="sse")
    assert sse.startswith("clock: SSE event lag") and "agent 1 offset 0.000 ms +- nan ms" in sse


@pytest.mark.parametrize("text", ["5557", ":5557", "host:", "host:0", "host:65536", "host:x",
                                  "[::1]:5557", "a b:5557", "http://h:5557"])
def test_a_master_address_is_host_colon_port(text: str) -> None:
    with pytest.raises(UserError, match=r"^--master-bind '.*': expected HOST:PORT, e\.g\. "):
        parse_address(text, "--master-bind")


def test_run_options_return_the_bind_address_or_say_which_is_wrong() -> None:
    assert parse_address(" load-host.example:65535 ", "--master") == ("load-host.example", 65535)
    assert check_run_options(2, 1, " 127.0.0.1:5557", 60) == "127.0.0.1:5557"
    assert check_run_options(2, 1, None, 3600) == ""
    assert check_run_options(0, 4, None, 60) == ""  # no agents: --load-processes is free
    for timeout in (math.nan, math.inf, 3600.5):
        with pytest.raises(UserError, match="--agent-timeout .*: must be > 0 and <= 3600 s"):
            check_run_options(1, 1, None, timeout)
