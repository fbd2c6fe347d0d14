"""The results store: ``results/<run-id>/`` written atomically, read back into pandas.

Layout of one run folder (see ``results/README.md``)::

    run.json        metadata + status + the trials list (schema_version inside)
    trials.csv      one row per trial, columns TRIAL_COLUMNS
    samples.csv     psutil samples of the server and generator trees, SAMPLE_COLUMNS
    requests/<trial_id>/  per locust process: <pid>.csv, every request it made
                    (REQUEST_COLUMNS), and <pid>.meta.json (role, timing, errors)
    locust/         locust's own --json-file and the spec the harness gave it
    logs/           server and locust output

Every file is replaced atomically (write to a temp file in the same folder, fsync,
``os.replace``), so a reader never sees a half-written ``run.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import UserError
from harness.streams import STREAM_COLUMNS

#: 2: per-process request files (requests/<trial_id>/<pid>.csv with a ``name``
#:    column), open-loop, flag, generator and stream columns in trials.csv.
#: 1: requests/<trial_id>.csv without ``name``; fewer trial and sample columns.
SCHEMA_VERSION = 2

_UMASK = os.umask(0)
os.umask(_UMASK)

TRIAL_STATUSES = ("ok", "invalid", "unsupported", "failed")

#: trials.csv, in order. Units are in the names: _ms, _rps, _mib, _percent (of one core), _s.
TRIAL_COLUMNS = (
    "trial_id", "scenario", "server", "interface", "backend", "workers", "threads",
    "users", "offered_rps", "repeat", "status", "reason", "flags", "load_mode",
    "t_start_s", "t_end_s", "window_s",
    "requests", "failures", "throughput_rps", "error_rate",
    "latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p95_ms",
    "latency_p99_ms", "latency_p999_ms", "latency_max_ms",
    "cpu_percent_mean", "cpu_percent_peak", "pss_mib_mean", "pss_mib_peak",
    "rss_mib_peak", "uss_mib_peak", "server_processes",
    "generator_cpu_percent", "generator_cpu_percent_peak", "generator_cpu_percent_top",
    "load_cpus_busy_percent", "server_cpus_busy_percent",
    "latency_trend_ms_per_s", "incomplete",
    "littles_law_ratio", "ceiling_rps", "efficiency",
    *STREAM_COLUMNS,
)

#: samples.csv. ``t_s`` is seconds since the run started (monotonic clock).
SAMPLE_COLUMNS = (
    "t_s", "source", "server", "repeat", "users", "processes",
    "cpu_percent", "cpu_percent_top", "cpuset_busy_percent", "rss_mib", "pss_mib", "uss_mib", "threads", "fds", "connections",
)

#: requests/<trial_id>/<pid>.csv, written by the locust listener.
#: start_unix_s: wall-clock start (s); latency_ms: unrounded, from perf_counter;
#: ok: 1/0; status: HTTP status (0 = no response); bytes: response body length;
#: name: what was timed ("request" for request/response scenarios; stream scenarios
#: record several kinds, e.g. "connect", "ttfe", "event", "rtt").
REQUEST_COLUMNS = ("start_unix_s", "latency_ms", "ok", "status", "bytes", "name")

_DTYPES = {"start_unix_s": "float64", "latency_ms": "float64", "ok": "int8",
           "status": "int16", "bytes": "int64", "name": "str"}


def read_records(records_dir: Path) -> pd.DataFrame:
    """Per-request records of one trial (REQUEST_COLUMNS): every ``*.csv`` that a
    locust process wrote into ``records_dir``, concatenated, sorted by start time."""
    frames = []
    for f in sorted(Path(records_dir).glob("*.csv")):
        try:
            frames.append(pd.read_csv(f, names=list(REQUEST_COLUMNS), header=None,
                                      dtype=_DTYPES))
        except pd.errors.EmptyDataError:
            continue
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    return pd.concat(frames, ignore_index=True).sort_values("start_unix_s", ignore_index=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are for sharing
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_bytes(path, frame.to_csv(index=False).encode())


@dataclass(frozen=True)
class RunData:
    """One stored run read back: ``meta`` from run.json, trials and samples as DataFrames."""

    path: Path
    meta: dict[str, Any]
    trials: pd.DataFrame
    samples: pd.DataFrame

    def requests(self, trial_id: str) -> pd.DataFrame:
        """The per-request records of one trial (REQUEST_COLUMNS); empty if none were kept."""
        flat = self.path / "requests" / f"{trial_id}.csv"
        if self.meta.get("migrated_from", SCHEMA_VERSION) < 2 and flat.is_file():
            # schema 1: one file per trial, no `name` column (every row was a request)
            records = pd.read_csv(flat, names=list(REQUEST_COLUMNS[:-1]), header=None)
            return records.assign(name="request")
        return read_records(self.path / "requests" / trial_id)


def load_run(path: Path) -> RunData:
    """Read a run folder (or its run.json).

    Raises:
        UserError: no run.json there, unreadable JSON, or a newer schema_version.
    """
    run_dir = path.parent if path.name == "run.json" else path
    meta_path = run_dir / "run.json"
    if not meta_path.is_file():
        raise UserError(f"{run_dir}: no run here (run.json missing)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{meta_path}: unreadable: {exc}") from None
    version = meta.get("schema_version")
    if not isinstance(version, int):
        raise UserError(f"{meta_path}: no schema_version; not a bench run")
    if version > SCHEMA_VERSION:
        raise UserError(f"{meta_path}: schema_version {version} is newer than this bench "
                        f"understands ({SCHEMA_VERSION}); upgrade bench to read it")
    if version < SCHEMA_VERSION:
        meta = {**meta, "migrated_from": version, "schema_version": SCHEMA_VERSION}
    trials_csv = run_dir / "trials.csv"
    if trials_csv.is_file() and trials_csv.stat().st_size > 0:
        trials = pd.read_csv(trials_csv, dtype={"reason": "object", "status": "object",
                                                 "flags": "object"})
    else:
        trials = pd.DataFrame(meta.get("trials", []), columns=list(TRIAL_COLUMNS))
    samples_csv = run_dir / "samples.csv"
    if samples_csv.is_file() and samples_csv.stat().st_size > 0:
        samples = pd.read_csv(samples_csv)
    else:
        samples = pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    for migrate in MIGRATIONS[version - 1:]:  # in memory only: the stored files stay as written
        trials, samples = migrate(trials, samples)
    for col in ("reason", "flags"):
        trials[col] = trials[col].astype("object").fillna("").astype(str)
    return RunData(run_dir, meta, trials, samples)


def _v1_to_v2(trials: pd.DataFrame, samples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Schema 1 -> 2: the columns 2 added, empty (``load_mode`` closed-loop, the only
    mode 1 had); column order as in 2."""
    trials = trials.copy()
    if "load_mode" not in trials or trials["load_mode"].isna().all():
        trials["load_mode"] = "closed-loop"
    for col in TRIAL_COLUMNS:
        if col not in trials:
            trials[col] = "" if col == "flags" else math.nan
    samples = samples.reindex(columns=list(SAMPLE_COLUMNS))
    extra = [c for c in trials.columns if c not in TRIAL_COLUMNS]
    return trials[[*TRIAL_COLUMNS, *extra]], samples


#: MIGRATIONS[v - 1] upgrades tables of schema v to v + 1.
MIGRATIONS = (_v1_to_v2,)
assert len(MIGRATIONS) == SCHEMA_VERSION - 1
