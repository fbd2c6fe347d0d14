"""The results store: ``results/<run-id>/`` written atomically, read back into pandas.

Layout of one run folder (see ``results/README.md``)::

    run.json        metadata + status + the trials list (schema_version inside)
    trials.csv      one row per trial, columns TRIAL_COLUMNS
    samples.csv     psutil samples of the server and generator trees, SAMPLE_COLUMNS
    requests/<trial_id>/  per locust process: <pid>.csv, every request it made
                    (REQUEST_COLUMNS), and <pid>.meta.json (role, timing, errors)
    locust/         locust's own --json-file and the spec the harness gave it
    logs/           server and locust output
    groups.json     the process groups the run has running (pgid + leader start time),
                    for the watchdog and ``bench clean`` (harness.procs.record_groups)

Every file is replaced atomically (write to a temp file in the same folder, fsync,
``os.replace``), so a reader never sees a half-written ``run.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness import trial
from harness.errors import UserError

#: 3: steady-state warm-up, generator self-measurement and cost-per-request columns
#:    in trials.csv (warmup_s, warmup_mode, queue_cycle_s, generator_lag_*, sends_*,
#:    cpu_ms_per_request, pss_kib_per_inflight).
#: 2: per-process request files (requests/<trial_id>/<pid>.csv with a ``name``
#:    column), open-loop, flag, generator and stream columns in trials.csv.
#: 1: requests/<trial_id>.csv without ``name``; fewer trial and sample columns.
SCHEMA_VERSION = 3

_UMASK = os.umask(0)
os.umask(_UMASK)

#: trials.csv, in order: the fields of harness.trial.Trial (the one place a column is
#: defined, with its unit in its name).
TRIAL_COLUMNS = trial.TRIAL_COLUMNS
TRIAL_STATUSES = trial.TRIAL_STATUSES

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
        from harness.analysis import read_records

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
    meta = crashed_if_harness_gone(meta)
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


def crashed_if_harness_gone(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with status ``crashed`` (and ``crash_reason``) if it says ``running`` but
    the ``bench`` process it names is gone: its pid missing, or now another process
    (different start time, ``harness.procs.identity``). Unchanged when the run was
    recorded on another host (this machine cannot tell) or names no process. In memory
    only: the watchdog or ``bench clean`` write the status into run.json."""
    from harness.procs import same_process

    if meta.get("status") != "running" or not isinstance(meta.get("harness"), dict):
        return meta
    recorded = meta["harness"]
    if recorded.get("host") != socket.gethostname() or same_process(recorded) is not False:
        return meta
    return {**meta, "status": "crashed",
            "crash_reason": f"bench process {recorded.get('pid')} is gone; the run never finished"}


def _v1_to_v2(trials: pd.DataFrame, samples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Schema 1 -> 2: the columns 2 added, empty (``load_mode`` closed-loop, the only
    mode 1 had); column order as in 2."""
    trials = trials.copy()
    if "load_mode" not in trials or trials["load_mode"].isna().all():
        trials["load_mode"] = "closed-loop"
    for col in TRIAL_COLUMNS:
        if col not in trials:
            trials[col] = "" if col == "flags" else math.nan
    if trials["warmup_mode"].isna().all():
        trials["warmup_mode"] = "fixed"
    samples = samples.reindex(columns=list(SAMPLE_COLUMNS))
    extra = [c for c in trials.columns if c not in TRIAL_COLUMNS]
    return trials[[*TRIAL_COLUMNS, *extra]], samples


def _v2_to_v3(trials: pd.DataFrame, samples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Schema 2 -> 3: the columns 3 added, empty; every schema-2 trial had a fixed warm-up."""
    trials = trials.copy()
    for col in TRIAL_COLUMNS:
        if col not in trials:
            trials[col] = math.nan
    if trials["warmup_mode"].isna().all():
        trials["warmup_mode"] = "fixed"
    extra = [c for c in trials.columns if c not in TRIAL_COLUMNS]
    return trials[[*TRIAL_COLUMNS, *extra]], samples


#: MIGRATIONS[v - 1] upgrades tables of schema v to v + 1.
MIGRATIONS = (_v1_to_v2, _v2_to_v3)
assert len(MIGRATIONS) == SCHEMA_VERSION - 1
