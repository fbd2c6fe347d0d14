"""Backends side by side: a trial's backend falls back to run.json's, then ``local``; the
baseline is ``local`` when present, else the first by name; each side is the median over its
ok repeats; a level missing or not ok on one side says why. The engine's memory is read in
ok windows only, NaN beside a PSS that was not sampled there."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.report import backends, model
from harness.results import SAMPLE_COLUMNS, RunData, atomic_write_json, load_run
from tests import synth


def _run(root: Path, run_id: str, rows: list[dict[str, Any]], *, backend: str | None,
         samples: pd.DataFrame | None = None) -> RunData:
    """An io-heavy run of ``rows``, run.json's ``backend`` set to ``backend`` (None: absent)."""
    folder = synth.write_report_run(root, run_id, rows,
                                    synth.samples() if samples is None else samples,
                                    records=False)
    meta = json.loads((folder / "run.json").read_text())
    if backend is not None:
        meta["backend"] = backend
    atomic_write_json(folder / "run.json", meta)
    return load_run(folder)


def _uvicorn(run_id: str, rps: tuple[float, ...], latency: float, trial_backend: str = ""
             ) -> list[dict[str, Any]]:
    rows = [synth.trial(f"{run_id}-u10-{r}", "uvicorn", "asgi", 10, "ok", "", 6.0 * r, value,
                        repeat=r, latency=latency)
            for r, value in enumerate(rps, start=1)]
    for row in rows:
        row["backend"] = trial_backend
    return rows


def test_backend_falls_back_and_baseline_is_local_else_first_by_name(tmp_path: Path) -> None:
    podman = _run(tmp_path, "p", _uvicorn("p", (90.0, 110.0, 100.0), 60.0), backend="podman")
    docker = _run(tmp_path, "d", _uvicorn("d", (200.0, 180.0, 220.0), 40.0), backend="docker")
    table = backends.backend_comparison([podman, docker])
    assert list(table.columns) == list(backends.BACKEND_COLUMNS)
    (row,) = table.to_dict("records")
    assert (row["baseline"], row["backend"], row["users"]) == ("docker", "podman", 10)
    base, other = np.median([200.0, 180.0, 220.0]), np.median([90.0, 110.0, 100.0])
    assert (row["throughput_rps_baseline"], row["throughput_rps_other"]) == (base, other)
    assert row["throughput_rps_ratio"] == pytest.approx(other / base)  # 0.5
    assert row["latency_p99_ms_ratio"] == pytest.approx(65.0 / 45.0)  # p99 = latency + 5
    assert (row["state_baseline"], row["state"]) == ("ok", "ok")
    # a run that names no backend anywhere is local, and local becomes the baseline
    local = _run(tmp_path, "l", _uvicorn("l", (400.0,), 20.0), backend=None)
    three = backends.backend_comparison([podman, docker, local])
    assert sorted(zip(three["baseline"], three["backend"], strict=True)) == [
        ("local", "docker"), ("local", "podman")]
    assert sorted(three["throughput_rps_ratio"]) == pytest.approx([100 / 400, 200 / 400])


def test_a_level_not_ok_or_not_measured_says_why(tmp_path: Path) -> None:
    local_rows = [
        synth.trial("u10", "uvicorn", "asgi", 10, "ok", "", 2.0, 200.0),
        synth.trial("u50", "uvicorn", "asgi", 50, "ok", "", 9.0, 900.0),
        synth.trial("s10", "gunicorn-sync", "wsgi", 10, "ok", "", 16.0, 40.0),
    ]
    docker_rows = [
        synth.trial("u10", "uvicorn", "asgi", 10, "ok", "", 2.0, 180.0),
        synth.trial("u50-1", "uvicorn", "asgi", 50, "invalid", "generator-saturated: 96%",
                    9.0, 870.0),
        synth.trial("u50-2", "uvicorn", "asgi", 50, "failed", "server exited with code 3",
                    16.0, synth.NAN, repeat=2),
        synth.trial("h10", "hypercorn", "asgi", 10, "ok", "", 23.0, 150.0),
    ]
    for row in docker_rows:
        row["backend"] = "docker"
    table = backends.backend_comparison([_run(tmp_path, "local", local_rows, backend="local"),
                                         _run(tmp_path, "docker", docker_rows, backend="docker")])
    states = {(r["server"], r["users"]): (r["state_baseline"], r["state"])
              for r in table.to_dict("records")}
    assert states == {
        ("gunicorn-sync", 10): ("ok", "not measured"),
        ("hypercorn", 10): ("not measured", "ok"),
        ("uvicorn", 10): ("ok", "ok"),
        # no ok repeat: the most severe status (failed before invalid) and its reason
        ("uvicorn", 50): ("ok", "failed: server exited with code 3"),
    }
    ratios = table.set_index(["server", "users"])["throughput_rps_ratio"]
    assert ratios[("uvicorn", 10)] == pytest.approx(0.9)
    assert all(math.isnan(ratios[k]) for k in states if k != ("uvicorn", 10))


def test_engine_memory_without_pss_in_the_window(tmp_path: Path) -> None:
    """uvicorn's ok window [20, 25) s has engine samples (70, 80, 90 MiB) but no psutil
    samples of uvicorn at all; the engine's 500 MiB in the invalid window is not read."""
    rows = [synth.trial("u10", "uvicorn", "asgi", 10, "ok", "", 20.0, 200.0),
            synth.trial("u50", "uvicorn", "asgi", 50, "invalid", "generator-saturated", 27.0,
                        900.0)]
    for row in rows:
        row["backend"] = ""  # run.json's backend, then
    engine = pd.DataFrame(
        [{**dict.fromkeys(SAMPLE_COLUMNS, synth.NAN), "t_s": t, "source": "engine",
          "server": "uvicorn", "repeat": 1, "rss_mib": mib}
         for t, mib in ((19.0, 500.0), (21.0, 70.0), (22.0, 80.0), (24.0, 90.0),
                        (25.0, 500.0), (28.0, 500.0))], columns=list(SAMPLE_COLUMNS))
    samples = pd.concat([synth.samples((("gunicorn-sync", 0.0),)), engine], ignore_index=True)
    a = model.analyse(_run(tmp_path, "docker", rows, backend="docker", samples=samples))
    table = backends.engine_memory(a)
    assert list(table.columns) == list(backends.ENGINE_COLUMNS)
    (row,) = table.to_dict("records")
    assert (row["server"], row["backend"], row["windows"]) == ("uvicorn", "docker", 1)
    assert (row["engine_mib_peak"], row["engine_mib_mean"]) == (90.0, np.mean([70, 80, 90]))
    assert math.isnan(row["pss_mib_peak"]) and math.isnan(row["engine_to_pss"])
    assert math.isnan(row["engine_minus_pss_mib"])
    table.loc[0, "engine_mib_peak"] = 0.0  # the caller's copy: the model keeps its own
    assert backends.engine_memory(a).loc[0, "engine_mib_peak"] == 90.0
    # a run without engine samples: no rows, the same columns
    local = backends.engine_memory(_run(tmp_path, "local", rows, backend=None))
    assert local.empty and list(local.columns) == list(backends.ENGINE_COLUMNS)
