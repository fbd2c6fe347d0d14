"""Synthetic run folders, written on disk the way ``bench run`` writes them, for the tests
of the readers (report, history, publish, export, compare): figures chosen so that every
expected number can be worked out by hand, and copies of the stored real runs under
``tests/data/report_same`` re-dated as a history.

- :func:`write_report_run`: a run with trials, samples and per-request records (the
  report's fixtures; :func:`trial` and :func:`samples` make the rows).
- :func:`write_run`: a minimal run (run.json and trials.csv, one gunicorn-sync level, one
  trial per repeat) for history and damaged-run tests.
- :func:`stored_history`: the two stored real runs copied one per day.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import stats
from harness.results import (
    REQUEST_COLUMNS,
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    TRIAL_COLUMNS,
    atomic_write_csv,
    atomic_write_json,
)

DATA = Path(__file__).parent / "data"
#: Two short real ``bench run`` folders (io-heavy, websocket-echo): the report's golden runs.
STORED = DATA / "report_same"

# --- runs for the report -------------------------------------------------------------------

SLO_P99_MS = 150
CLOCK_ORIGIN = 1_700_000_000.0
NAN = math.nan


def meta(run_id: str, **scenario: Any) -> dict[str, Any]:
    """run.json of a two-server io-heavy run (gunicorn-sync, uvicorn); ``scenario`` keys
    override the scenario section."""
    return {
        "schema_version": 1, "run_id": run_id, "status": "complete",
        "started_at": "2025-01-01T10:00:00+00:00", "ended_at": "2025-01-01T10:01:00+00:00",
        "command": ["bench", "run", "io-heavy", "--servers", "gunicorn-sync,uvicorn"],
        "load_mode": "closed-loop", "clock_origin_unix_s": CLOCK_ORIGIN,
        "scenario": {
            "name": "io-heavy", "description": "Each request waits latency_ms.",
            "protocol": "http", "request_path": "/io?latency_ms=50",
            "params": {"latency_ms": 50}, "users": [10, 50], "warmup_s": 2, "duration_s": 5,
            "repeats": 1, "slo": {"p99_ms": SLO_P99_MS, "max_error_rate": 0.01},
            "validity": {"max_error_rate": 0.01, "max_generator_cpu_percent": 90},
            **scenario,
        },
        "servers": [
            {"name": "gunicorn-sync", "interface": "wsgi", "workers": 2, "threads": 1,
             "worker_connections": None, "argv": ["gunicorn", "-w", "2", "harness.apps.wsgi:app"]},
            {"name": "uvicorn", "interface": "asgi", "workers": 1, "threads": None,
             "worker_connections": None, "argv": ["uvicorn", "harness.apps.asgi:app"]},
        ],
        "cpus": {"server": [0, 1], "load": [2, 3]},
        "machine": {"cpu_model": "Test CPU", "logical_cpus": 4, "memory_gib": 8.0,
                    "os": "Linux", "python": "3.12.0", "hostname": "box"},
        "versions": {"gunicorn": "24.0.0", "uvicorn": "0.30.0", "locust": "2.32.0"},
        "git": {"commit": "abc1234", "dirty": False},
        "trials": [],
    }


def trial(trial_id: str, server: str, interface: str, users: int, status: str,
           reason: str, t_start: float, rps: float, *, repeat: int = 1,
           latency: float | None = None, cpu: float = 40.0, pss: float = 64.0,
           error_rate: float = 0.0, workers: int | None = None) -> dict[str, Any]:
    """A trial row; failed trials get NaN numbers like the harness writes."""
    numbers = status != "failed"
    row: dict[str, Any] = dict.fromkeys(TRIAL_COLUMNS, NAN)
    latency = 50.0 + users / 10 if latency is None else latency
    row.update(
        trial_id=trial_id, scenario="io-heavy", server=server, interface=interface,
        backend="local", workers=workers or (2 if interface == "wsgi" else 1), threads=1,
        users=users, repeat=repeat, status=status, reason=reason, flags="",
        load_mode="closed-loop", t_start_s=t_start, t_end_s=t_start + 5, window_s=5.0,
    )
    if numbers:
        row.update(
            requests=rps * 5, failures=round(rps * 5 * error_rate), throughput_rps=rps,
            error_rate=error_rate, latency_mean_ms=latency, latency_p50_ms=latency,
            latency_p90_ms=latency + 2, latency_p95_ms=latency + 3,
            latency_p99_ms=latency + 5, latency_p999_ms=latency + 9,
            latency_max_ms=latency + 20, cpu_percent_mean=cpu, cpu_percent_peak=80.0,
            pss_mib_mean=pss - 4, pss_mib_peak=pss, rss_mib_peak=90.0, uss_mib_peak=50.0,
            server_processes=3,
            generator_cpu_percent=95.0 if status == "invalid" else 30.0,
            generator_cpu_percent_peak=99.0, littles_law_ratio=0.99,
            ceiling_rps=users / 0.05 if interface == "asgi" else min(users, 2) / 0.05,
        )
    return row


def samples(servers: tuple[tuple[str, float], ...] = (("gunicorn-sync", 0.0),
                                                       ("uvicorn", 18.0))) -> pd.DataFrame:
    """10 Hz server samples with PSS every tenth sample, plus generator samples."""
    rows = []
    for server, start in servers:
        for i in range(160):
            t = start + i / 10
            base = dict.fromkeys(SAMPLE_COLUMNS, NAN)
            rows.append({**base, "t_s": t, "source": "server", "server": server, "repeat": 1,
                         "users": 10 if t < start + 8 else 50, "processes": 3,
                         "cpu_percent": 30.0 + i % 7, "rss_mib": 90.0,
                         "pss_mib": 60.0 + i / 100 if i % 10 == 0 else NAN,
                         "uss_mib": 50.0, "threads": 5, "fds": 20})
            rows.append({**base, "t_s": t, "source": "generator", "server": server,
                         "repeat": 1, "processes": 1, "cpu_percent": 25.0, "rss_mib": 70.0,
                         "threads": 3, "fds": 10})
    return pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))


def requests(trial: dict[str, Any], rng: np.random.Generator, n: int = 600,
              outliers_outside: bool = True) -> pd.DataFrame:
    """Records of one trial: ``n`` requests completing inside its window with latencies
    around its p50, plus (outside the window: warm-up) requests of 10 s that no figure of
    the window may show."""
    t0 = CLOCK_ORIGIN + trial["t_start_s"]
    latency = rng.lognormal(math.log(trial["latency_p50_ms"]), 0.05, n)
    end = t0 + rng.uniform(0, trial["window_s"] * 0.999, n)
    rows = {"start_unix_s": end - latency / 1000, "latency_ms": latency}
    if outliers_outside:
        warm = np.full(20, 10_000.0)
        rows = {"start_unix_s": np.concatenate([rows["start_unix_s"], t0 - 15 + np.zeros(20)]),
                "latency_ms": np.concatenate([rows["latency_ms"], warm])}
    frame = pd.DataFrame(rows)
    frame["ok"], frame["status"], frame["bytes"] = 1, 200, 30
    if "name" in REQUEST_COLUMNS:
        frame["name"] = "request"
    return frame[list(REQUEST_COLUMNS)]


def write_report_run(root: Path, run_id: str, trials: list[dict[str, Any]], samples: pd.DataFrame,
               *, records: bool = True, **scenario: Any) -> Path:
    folder = root / run_id
    atomic_write_json(folder / "run.json", meta(run_id, **scenario))
    atomic_write_csv(folder / "trials.csv", pd.DataFrame(trials, columns=list(TRIAL_COLUMNS)))
    atomic_write_csv(folder / "samples.csv", samples)
    rng = np.random.default_rng(1)
    for trial in trials if records else []:
        if trial["status"] == "failed":
            continue
        out = folder / "requests" / trial["trial_id"] / "4242.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        requests(trial, rng).to_csv(out, header=False, index=False)
    return folder


# --- runs for history and the readers -----------------------------------------------------

MACHINE = {"cpu_model": "Test CPU", "logical_cpus": 2}


def big_run(root: Path) -> Path:
    """A run of ``root`` (returned) for the report at scale: 10 configs x 10 levels x 2
    repeats = 200 trials, 10 Hz samples over ~1800 s, and per-request records (~1000 per
    trial) for every trial (tests/unit/test_report.py, benchmarks/report_render.py)."""
    configs = [(f"wsgi-{i}", "wsgi") for i in range(5)] + [(f"asgi-{i}", "asgi") for i in range(5)]
    trials, samples = [], []
    t = 0.0
    rng = np.random.default_rng(11)
    for repeat in (1, 2):
        for c, (server, interface) in enumerate(configs):
            for users in (5, 10, 20, 40, 80, 120, 160, 240, 320, 400):
                rps = stats.usl_throughput(users, 40.0 + 5 * c, 0.02, 0.0002) * \
                    rng.normal(1, 0.02)
                trials.append(trial(f"{server}-u{users}-r{repeat}", server, interface, users,
                                     "ok" if users < 400 else "invalid",
                                     "" if users < 400 else "generator-saturated", t + 1.0,
                                     float(rps), repeat=repeat, latency=users / rps * 1000))
                for k in range(90):  # 9 s per trial at 10 Hz
                    samples.append((t + k / 10, "server", server, repeat, users, 3,
                                    20 + users / 8 + k % 5, 90.0,
                                    60.0 + c if k % 10 == 0 else NAN))
                t += 9.0
    frame = pd.DataFrame(samples, columns=["t_s", "source", "server", "repeat", "users",
                                           "processes", "cpu_percent", "rss_mib", "pss_mib"])
    frame = frame.reindex(columns=list(SAMPLE_COLUMNS))
    folder = write_report_run(root, "big", trials, frame, records=False, repeats=2)
    for row in trials:
        out = folder / "requests" / row["trial_id"] / "4242.csv"
        out.parent.mkdir(parents=True)
        requests(row, rng, n=1000).to_csv(out, header=False, index=False)
    return folder


def write_run(results: Path, index: int, throughput: list[float], *, p99: float = 200.0,
              pss: float = 20.0, status: str = "complete", folder: str | None = None,
              trial_status: list[str] | None = None) -> Path:
    """A run folder: run.json + trials.csv, one gunicorn-sync level, one trial per repeat."""
    run_id = f"2026010{index // 10}T{index % 10:02d}0000Z-io-heavy-{index:06x}"
    run_dir = results / (folder or run_id)
    commit = f"{index:02d}{'c0ffee' * 6}"[:40]
    rows = []
    for repeat, value in enumerate(throughput, start=1):
        row: dict[str, object] = dict.fromkeys(TRIAL_COLUMNS, np.nan)
        row.update(trial_id=f"gunicorn-sync-u4-r{repeat}", scenario="io-heavy",
                   server="gunicorn-sync", interface="wsgi", backend="local", workers=1,
                   threads=1, users=4, repeat=repeat, reason="", load_mode="closed-loop",
                   status=(trial_status or ["ok"] * len(throughput))[repeat - 1],
                   throughput_rps=value, latency_p99_ms=p99 * (1 + 0.01 * repeat),
                   pss_mib_peak=pss + 0.1 * repeat)
        rows.append(row)
    trials = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    meta = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "status": status,
        "started_at": f"2026-01-{1 + index:02d}T10:00:00+00:00",
        "git": {"commit": commit, "dirty": False},
        "scenario": {"name": "io-heavy", "request_path": "/io?latency_ms=50",
                     "params": {"latency_ms": 50}},
        "machine": MACHINE, "trials": trials.to_dict("records"),
    }
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / "run.json", meta)
    atomic_write_csv(run_dir / "trials.csv", trials)
    return run_dir


def copy_run(src: Path, dst: Path, day: int, *, scale: float = 1.0) -> Path:
    """A copy of the real run ``src`` as if made on day ``day`` of December 2026 at commit
    ``<day>c0ffee...``: new run id, start time and commit; throughput times ``scale``."""
    shutil.copytree(src, dst)
    meta = json.loads((dst / "run.json").read_text())
    meta.update(run_id=f"{meta['run_id']}-d{day}",
                started_at=f"2026-12-{day:02d}T{10 + len(dst.name) % 10}:00:00+00:00",
                git={"commit": f"{day:02d}{'c0ffee' * 7}"[:40], "dirty": False})
    atomic_write_json(dst / "run.json", meta)
    trials = pd.read_csv(dst / "trials.csv")
    trials["throughput_rps"] *= scale
    atomic_write_csv(dst / "trials.csv", trials)
    return dst


DAYS, STEP_DAY, DRIFT = 6, 4, 0.01


def stored_history(results: Path) -> Path:
    """The two stored real runs, one copy a day for :data:`DAYS` days; io-heavy throughput
    drifts up 1% a day and drops 25% from :data:`STEP_DAY` on."""
    for day in range(1, DAYS + 1):
        for name in ("io-heavy", "websocket-echo"):
            step = 0.75 if name == "io-heavy" and day >= STEP_DAY else 1.0
            copy_run(STORED / name, results / f"{name}-{day}", day,
                     scale=step * (1 + DRIFT) ** day)
    return results


