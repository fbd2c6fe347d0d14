"""Atomic file writes: a reader sees the old file or the new one, never a mix.

Write to a temp file in the same folder, fsync, ``os.replace``. No pandas here, so the
process helpers (``harness.procs``, the watchdog) can record state cheaply; the results
store (``harness.results``) re-exports these and adds its CSV writer.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


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


def finite_json(obj: Any) -> Any:
    """``obj`` with every NaN/inf float (also numpy's) replaced by ``None``, recursively
    through dicts, lists and tuples: JSON has no NaN, so strict readers (browsers, jq,
    ``json.loads(..., parse_constant=...)``) read ``null`` where there was no figure."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    return obj


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as strict JSON (non-finite floats become ``null``), atomically.

    numpy scalars are written as numbers, other objects JSON does not know (paths) as ``str``.
    """
    def default(value: Any) -> Any:
        if hasattr(value, "item") and callable(value.item):  # numpy scalar
            return finite_json(value.item())
        return str(value)
    text = json.dumps(finite_json(obj), indent=2, sort_keys=False, default=default,
                      allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())
