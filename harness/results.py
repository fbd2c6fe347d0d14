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

import json
import math
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness import trial
from harness.errors import UserError
from harness.runmeta import RecordError, RunMeta

#: 4: the app axis: ``app`` and ``framework_version`` at the end of trials.csv, ``app``
#:    at the end of samples.csv (runs before it served the raw apps: ``raw``, "").
#: 3: steady-state warm-up, generator self-measurement and cost-per-request columns
#:    in trials.csv (warmup_s, warmup_mode, queue_cycle_s, generator_lag_*, sends_*,
#:    cpu_ms_per_request, pss_kib_per_inflight).
#: 2: per-process request files (requests/<trial_id>/<pid>.csv with a ``name``
#:    column), open-loop, flag, generator and stream columns in trials.csv.
#: 1: requests/<trial_id>.csv without ``name``; fewer trial and sample columns.
SCHEMA_VERSION = 4

from harness.atomic import (  # noqa: F401 - the store's writers, re-exported
    atomic_write_bytes,
    atomic_write_json,
    finite_json,
)

#: trials.csv, in order: the fields of harness.trial.Trial (the one place a column is
#: defined, with its unit in its name).
TRIAL_COLUMNS = trial.TRIAL_COLUMNS
TRIAL_STATUSES = trial.TRIAL_STATUSES

#: samples.csv. ``t_s`` is seconds since the run started (monotonic clock); ``server``
#: and ``app`` name the stack sampled (harness.stacks).
SAMPLE_COLUMNS = (
    "t_s", "source", "server", "repeat", "users", "processes",
    "cpu_percent", "cpu_percent_top", "cpuset_busy_percent", "rss_mib", "pss_mib", "uss_mib", "threads", "fds", "connections",
    "app",
)
#: samples.csv columns that hold text.
TEXT_SAMPLE_COLUMNS = ("source", "server", "app")

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


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_bytes(path, frame.to_csv(index=False).encode())


@dataclass(frozen=True)
class RunData:
    """One stored run read back: ``meta`` from run.json (typed, migrated to this
    schema), trials and samples as DataFrames."""

    path: Path
    meta: RunMeta
    trials: pd.DataFrame
    samples: pd.DataFrame

    def requests(self, trial_id: str) -> pd.DataFrame:
        """The per-request records of one trial (REQUEST_COLUMNS); empty if none were kept."""
        flat = self.path / "requests" / f"{trial_id}.csv"
        if (self.meta.migrated_from or SCHEMA_VERSION) < 2 and flat.is_file():
            # schema 1: one file per trial, no `name` column (every row was a request)
            records = pd.read_csv(flat, names=list(REQUEST_COLUMNS[:-1]), header=None)
            return records.assign(name="request")
        return read_records(self.path / "requests" / trial_id)


@dataclass
class RunState:
    """What a run has recorded so far (harness.runner keeps it current); ``meta`` is
    replaced as the run goes (it is frozen). :meth:`save` writes the run folder."""

    run_dir: Path
    meta: RunMeta
    trials: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def save(self) -> None:
        """trials.csv, samples.csv and run.json (the typed record, with the trials so far)."""
        self.meta = self.meta.replace(trials=tuple(self.trials))
        atomic_write_csv(self.run_dir / "trials.csv",
                         pd.DataFrame(self.trials, columns=list(TRIAL_COLUMNS)))
        atomic_write_csv(self.run_dir / "samples.csv",
                         pd.DataFrame(self.samples, columns=list(SAMPLE_COLUMNS)))
        atomic_write_json(self.run_dir / "run.json", self.meta.to_dict())


def load_run(path: Path) -> RunData:
    """Read a run folder (or its run.json).

    Raises:
        UserError: no run.json there, or a damaged file: run.json that is not a JSON
            object, not UTF-8, without schema_version or with a newer one, or with a
            key of the wrong type (harness.runmeta; the message names the key path,
            e.g. ``'scenario.users[1]'``; unknown keys are kept, not refused); trials.csv or
            samples.csv that is not UTF-8, not CSV, or lacks a column readers need. The
            message names the file and what is wrong with it, in one line.
    """
    run_dir = path.parent if path.name == "run.json" else path
    meta_path = run_dir / "run.json"
    if not meta_path.is_file():
        raise UserError(f"{run_dir}: no run here (run.json missing)")
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{meta_path}: damaged: not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"{meta_path}: unreadable: {exc.strerror}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UserError(f"{meta_path}: damaged: not JSON ({_one_line(exc)})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: damaged: a JSON {_JSON_TYPES.get(type(meta), 'value')}, "
                        "not an object; not a bench run")
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UserError(f"{meta_path}: no schema_version; not a bench run")
    if version > SCHEMA_VERSION:
        raise UserError(f"{meta_path}: schema_version {version} is newer than this bench "
                        f"understands ({SCHEMA_VERSION}); upgrade bench to read it")
    try:
        record = RunMeta.from_dict(meta)
    except RecordError as exc:
        raise UserError(f"{meta_path}: damaged: {exc}") from None
    if version < SCHEMA_VERSION:
        record = record.replace(migrated_from=version, schema_version=SCHEMA_VERSION)
    record = crashed_if_harness_gone(record)
    trials_csv = run_dir / "trials.csv"
    if trials_csv.is_file() and trials_csv.stat().st_size > 0:
        # Text columns read as text: a framework version like "2.10" is not the number 2.1.
        trials = _read_table(trials_csv, {"reason": "object", "status": "object",
                                          "flags": "object", "app": "object",
                                          "framework_version": "object"})
    else:
        trials = pd.DataFrame(list(record.trials), columns=list(TRIAL_COLUMNS))
        # run.json writes null for a missing figure; back to NaN, numbers as numbers.
        trials = trials.astype(object).where(trials.notna(), math.nan).infer_objects()
    samples_csv = run_dir / "samples.csv"
    if samples_csv.is_file() and samples_csv.stat().st_size > 0:
        samples = _read_table(samples_csv, {"app": "object"})
    else:
        samples = pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    for migrate in MIGRATIONS[version - 1:]:  # in memory only: the stored files stay as written
        trials, samples = migrate(trials, samples)
    missing = [c for c in REQUIRED_TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise UserError(f"{trials_csv}: damaged: no column {', '.join(missing)}")
    missing = [c for c in REQUIRED_SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise UserError(f"{samples_csv}: damaged: no column {', '.join(missing)}")
    # A figure column a run lacks (written before the column existed) reads as no figure.
    for col in TRIAL_COLUMNS:
        if col not in trials.columns:
            trials[col] = "" if col in ("reason", "flags") else math.nan
    for col in SAMPLE_COLUMNS:
        if col not in samples.columns:
            samples[col] = math.nan
    for col in ("reason", "flags", "framework_version"):
        trials[col] = trials[col].astype("object").fillna("").astype(str)
    for col in TEXT_TRIAL_COLUMNS:
        trials[col] = trials[col].astype(object).where(trials[col].isna(),
                                                       trials[col].astype(str))
    _numbers(trials, NUMERIC_TRIAL_COLUMNS, trials_csv)
    _numbers(samples, tuple(c for c in SAMPLE_COLUMNS if c not in TEXT_SAMPLE_COLUMNS),
             samples_csv)
    return RunData(run_dir, record, trials, samples)


def crashed_if_harness_gone(meta: RunMeta) -> RunMeta:
    """``meta`` with status ``crashed`` (and ``crash_reason``) if it says ``running`` but
    the ``bench`` process it names is gone: its pid missing, or now another process
    (different start time, ``harness.procs.identity``). Unchanged when the run was
    recorded on another host (this machine cannot tell) or names no process. In memory
    only: the watchdog or ``bench clean`` write the status into run.json."""
    from harness.procs import same_process

    recorded = meta.harness
    if meta.status != "running" or recorded.pid is None:
        return meta
    if recorded.host != socket.gethostname() or same_process(recorded.to_dict()) is not False:
        return meta
    return meta.replace(status="crashed", crash_reason=f"bench process {recorded.pid} is "
                        "gone; the run never finished")


#: trials.csv columns every reader (report, compare, export, history) relies on.
REQUIRED_TRIAL_COLUMNS = ("trial_id", "scenario", "server", "users", "repeat", "status")
#: samples.csv columns the report reads.
REQUIRED_SAMPLE_COLUMNS = ("t_s", "source", "server")
#: trials.csv columns that hold text; every other TRIAL_COLUMNS column holds numbers.
TEXT_TRIAL_COLUMNS = trial.TEXT_COLUMNS
NUMERIC_TRIAL_COLUMNS = tuple(c for c in TRIAL_COLUMNS if c not in TEXT_TRIAL_COLUMNS)


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _read_table(path: Path, dtype: dict[str, str]) -> pd.DataFrame:
    """One CSV of a run; UserError (naming the file) when it is not UTF-8 CSV."""
    try:
        with warnings.catch_warnings():
            # index_col=False: a row longer than the header is damage, not an index column.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, dtype=dtype, encoding="utf-8",  # type: ignore[arg-type]
                               index_col=False)
    except pd.errors.ParserWarning as exc:
        raise UserError(f"{path}: damaged: not a CSV table ({_one_line(exc)})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: damaged: not UTF-8 (byte {exc.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise UserError(f"{path}: damaged: not a CSV table ({_one_line(exc)})") from None
    except OSError as exc:
        raise UserError(f"{path}: unreadable: {exc.strerror}") from None


def _numbers(frame: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    """Make ``columns`` numeric in place (blank cells become NaN).

    Raises:
        UserError: a column holds text that is not a number.
    """
    for col in columns:
        column = frame[col]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        text = column.astype(object).where(column.isna(), column.astype(str).str.strip())
        text = text.where(text != "", math.nan)
        numbers = pd.to_numeric(text, errors="coerce")
        wrong = (text.notna() & numbers.isna()).tolist()
        if any(wrong):
            row = wrong.index(True)
            raise UserError(f"{path}: damaged: column {col} holds text where numbers belong "
                            f"(row {row + 1}: {str(text.iloc[row])[:40]!r})")
        frame[col] = numbers


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


def _v3_to_v4(trials: pd.DataFrame, samples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Schema 3 -> 4: every run before the app axis served the raw apps: ``app`` is
    ``raw`` and ``framework_version`` empty on every trial, ``app`` ``raw`` on every
    sample."""
    trials = trials.copy()
    for col in TRIAL_COLUMNS:
        if col not in trials:
            trials[col] = math.nan
    trials["app"] = "raw"
    trials["framework_version"] = ""
    samples = samples.copy()
    samples["app"] = "raw"
    extra = [c for c in trials.columns if c not in TRIAL_COLUMNS]
    return trials[[*TRIAL_COLUMNS, *extra]], samples.reindex(columns=list(SAMPLE_COLUMNS))


#: MIGRATIONS[v - 1] upgrades tables of schema v to v + 1.
MIGRATIONS = (_v1_to_v2, _v2_to_v3, _v3_to_v4)
assert len(MIGRATIONS) == SCHEMA_VERSION - 1
