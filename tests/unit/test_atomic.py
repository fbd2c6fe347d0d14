"""harness.atomic: a write replaces the file whole (a reader sees the old bytes or the
new, a failed write leaves the old file and no temp file), with the umask's permissions,
and JSON is written strict (NaN and inf as null, numpy scalars as numbers)."""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from harness.atomic import atomic_write_bytes, atomic_write_json, finite_json


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_write_replaces_the_file_with_shareable_permissions_and_no_temp_left(
        tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "trials.csv"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    # mkstemp creates 0600; results are for sharing: 0666 less the umask
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in path.parent.iterdir()] == ["trials.csv"]


def test_a_failed_replace_keeps_the_old_file_and_removes_its_temp_file(tmp_path: Path) -> None:
    """The target is a folder that holds a file: ``os.replace`` refuses, the error
    propagates, what was there is untouched and the temp file is gone."""
    target = tmp_path / "run.json"
    target.mkdir()
    (target / "kept").write_text("old")
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"{}")
    assert (target / "kept").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_a_reader_never_sees_a_mix_of_two_versions(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    versions = (b"a" * 200_000, b"b" * 150_000)
    atomic_write_bytes(path, versions[0])
    done = threading.Event()
    seen: set[bytes] = set()

    def reader() -> None:
        while not done.is_set():
            seen.add(path.read_bytes())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(40):
            atomic_write_bytes(path, versions[i % 2])
    finally:
        done.set()
        thread.join()
    assert seen and seen <= set(versions)


def test_finite_json_nulls_every_non_finite_float_recursively() -> None:
    data = {"p99_ms": math.nan, "levels": (1.5, math.inf, [-math.inf, 2]), "n": 3,
            "rps": np.float64("nan"), "name": "nan"}
    assert finite_json(data) == {"p99_ms": None, "levels": [1.5, None, [None, 2]], "n": 3,
                                 "rps": None, "name": "nan"}


def test_json_is_strict_with_numpy_scalars_as_numbers_and_paths_as_text(
        tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    atomic_write_json(path, {"throughput_rps": np.float32(12.5), "users": np.int64(4),
                             "p50_ms": np.float32("nan"), "dir": tmp_path,
                             "window_s": (5.0, math.inf)})
    text = path.read_text()

    def no_constants(token: str) -> None:
        raise AssertionError(f"non-JSON token {token} in {text}")

    data = json.loads(text, parse_constant=no_constants)
    assert data == {"throughput_rps": 12.5, "users": 4, "p50_ms": None, "dir": str(tmp_path),
                    "window_s": [5.0, None]}
    assert text.endswith("}\n")
