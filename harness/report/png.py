"""PNG export of the report's charts: kaleido (>= 1.0) driving a system Chromium/Chrome
(``BROWSER_PATH``, else :data:`BROWSER_CANDIDATES`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.report.charts import _figures
from harness.report.fmt import _run_id
from harness.report.model import Analysis, as_analysis
from harness.results import RunData

#: Browsers looked for by :func:`find_browser` when ``BROWSER_PATH`` is not set.
BROWSER_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome",
                      "google-chrome-stable", "chrome")


class BrowserNotFound(UserError):
    """No Chromium/Chrome to export PNGs with; the HTML report is unaffected."""


def find_browser(environ: Mapping[str, str] | None = None) -> str | None:
    """A Chromium/Chrome executable for kaleido: ``BROWSER_PATH`` when set (None if it
    is not an executable file), else the first of :data:`BROWSER_CANDIDATES` found."""
    env = os.environ if environ is None else environ
    configured = env.get("BROWSER_PATH")
    if configured:
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) \
            else None
    for candidate in BROWSER_CANDIDATES:
        found = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if found and os.path.isfile(found) and os.access(found, os.X_OK):
            return found
    return None


def write_pngs(runs: Sequence[RunData | Analysis], directory: Path, *, slo_p99_ms: float | None = None,
               browser_path: str | None = None, width: int = 1200,
               height: int = 600) -> list[Path]:
    """Write every chart of ``runs`` (runs, or their :class:`~harness.report.Analysis`
    with ``slo_p99_ms`` None) as ``<run-id>-<chart>.png`` in ``directory``.

    Uses kaleido >= 1.0, which drives a Chromium/Chrome through the DevTools protocol:
    ``browser_path``, else :func:`find_browser`. Sizes in CSS pixels. Returns the files
    written, in report order.

    Raises:
        BrowserNotFound: no browser (the caller should say so and carry on).
    """
    browser = browser_path or find_browser()
    if browser is None:
        raise BrowserNotFound("no Chromium or Chrome found (set BROWSER_PATH); "
                              "PNG charts not written")
    import kaleido
    from choreographer.browsers.chromium import ChromeNotFoundError

    directory.mkdir(parents=True, exist_ok=True)
    specs: list[dict[str, Any]] = []
    paths: list[Path] = []
    seen: set[str] = set()
    for index, given in enumerate(runs):
        a = as_analysis(given, slo_p99_ms=slo_p99_ms)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", _run_id(a.run))
        if stem in seen:
            stem = f"{stem}-{index}"
        seen.add(stem)
        for key, fig in _figures(a).items():
            path = directory / f"{stem}-{key}.png"
            specs.append({"fig": fig.to_dict(), "path": path,
                          "opts": {"format": "png", "width": width, "height": height}})
            paths.append(path)
    if not specs:
        return []
    try:
        kaleido.write_fig_from_object_sync(specs, kopts={"path": browser, "mathjax": False},
                                           cancel_on_error=True)
    except ChromeNotFoundError as exc:
        raise BrowserNotFound(f"browser {browser!r} could not be started ({exc}); "
                              "PNG charts not written") from None
    return paths

