"""What a reader of a report sees, pulled out of its HTML: for comparing two renderers.

:func:`extract` parses a page (html.parser, no browser) into plain JSON-able data:
the section headings, every paragraph's text, the verdict sentences, every table (its
id and class, header cells, and per row its class and each cell's tag, text, class and
``data-v``), and every plotly figure (div id, title, and per trace its name, mode, x and
y). Text is whitespace-collapsed and unescaped, so the same page written with
``html.escape`` or with jinja2's autoescape extracts the same.

Regenerate the golden file of tests/unit/report/test_tables.py (only when a change to the report
is intended, and say so in the commit):

    .venv/bin/python -m tests.report_extract
"""

from __future__ import annotations

import base64
import json
import math
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "report_same"
GOLDEN = DATA / "golden.json"
#: (case name, run folders under DATA, render options): what the golden file holds.
CASES: tuple[tuple[str, tuple[str, ...], dict[str, Any]], ...] = (
    ("io-heavy", ("io-heavy",), {}),
    ("io-heavy-planned", ("io-heavy",), {"target_rps": 500.0, "slo_p99_ms": 120.0}),
    ("websocket-echo", ("websocket-echo",), {}),
    ("both", ("io-heavy", "websocket-echo"), {}),
)
_SPACE = re.compile(r"\s+")
_NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"([^"]+)"\s*,\s*')


def _text(parts: list[str]) -> str:
    return _SPACE.sub(" ", "".join(parts)).strip()


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headings: list[list[str]] = []
        self.paragraphs: list[str] = []
        self.verdict: list[str] = []
        self.tables: list[dict[str, Any]] = []
        self._stack: list[tuple[str, dict[str, str], list[str]]] = []
        self._table: dict[str, Any] | None = None
        self._row: dict[str, Any] | None = None
        self._in_head = False
        self._in_verdict = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = {"id": a.get("id", ""), "class": a.get("class", ""), "head": [],
                           "rows": []}
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and self._table is not None:
            self._row = {"class": a.get("class", ""), "cells": []}
        elif tag == "ul" and "verdict" in a.get("class", "").split():
            self._in_verdict = True
        if tag in ("h1", "h2", "h3", "p", "li", "td", "th", "script", "style", "title"):
            self._stack.append((tag, a, []))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3", "p", "li", "td", "th", "script", "style", "title"):
            while self._stack:
                open_tag, attrs, parts = self._stack.pop()
                if open_tag == tag:
                    self._close(tag, attrs, _text(parts))
                    break
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._in_head:
                self._table["head"] = [c[1] for c in self._row["cells"]]
            else:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "table" and self._table is not None:
            self.tables.append(self._table)
            self._table = None
        elif tag == "ul":
            self._in_verdict = False

    def _close(self, tag: str, attrs: dict[str, str], text: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self.headings.append([tag, text])
        elif tag == "p":
            self.paragraphs.append(text)
        elif tag == "li" and self._in_verdict:
            self.verdict.append(text)
        elif tag in ("td", "th") and self._row is not None:
            self._row["cells"].append([tag, text, attrs.get("class", ""),
                                       attrs.get("data-v")])

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1][0] not in ("script", "style"):
            for _, _, parts in self._stack:
                parts.append(data)


def _array(value: Any) -> Any:
    """A plotly array as a plain list (typed arrays ``{"dtype", "bdata"}`` decoded)."""
    if isinstance(value, dict) and "bdata" in value:
        import numpy as np

        raw = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return [None if isinstance(v, float) and math.isnan(v) else v for v in raw.tolist()]
    return list(value) if isinstance(value, list | tuple) else value


def plots(page: str) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """Every ``Plotly.newPlot`` call of ``page``, as drawn: (div id, traces, layout)."""
    decoder = json.JSONDecoder()
    out = []
    for match in _NEW_PLOT.finditer(page):
        data, end = decoder.raw_decode(page, match.end())
        end = page.index(",", end) + 1
        while page[end].isspace():
            end += 1
        layout, _ = decoder.raw_decode(page, end)
        out.append((match.group(1), data, layout))
    return out


def figures(page: str) -> list[dict[str, Any]]:
    """Every ``Plotly.newPlot`` call of ``page``: div id, title, traces (name, mode, x, y)."""
    out = []
    for div_id, data, layout in plots(page):
        title = layout.get("title", {})
        out.append({
            "id": div_id,
            "title": title.get("text", "") if isinstance(title, dict) else str(title),
            "traces": [{"name": t.get("name", ""), "mode": t.get("mode", ""),
                        "x": _array(t.get("x")), "y": _array(t.get("y"))} for t in data],
        })
    return out


def extract(page: str) -> dict[str, Any]:
    """The readable content of a report page (see the module docstring)."""
    parser = _Page()
    parser.feed(page)
    parser.close()
    return {"headings": parser.headings, "paragraphs": parser.paragraphs,
            "verdict": parser.verdict, "tables": parser.tables, "figures": figures(page)}


def render_case(runs: tuple[str, ...], options: dict[str, Any], out: Path,
                data: Path = DATA) -> dict[str, Any]:
    """Render the report of the run folders ``runs`` (under ``data``) and extract it."""
    from harness.report import render
    from harness.results import load_run

    render([load_run(data / name) for name in runs], out, **options)
    return extract(out.read_text(encoding="utf-8"))


def differences(old: Any, new: Any, where: str = "", rel: float = 1e-9) -> list[str]:
    """Where ``new`` differs from ``old`` (JSON-like values; floats within ``rel``)."""
    if isinstance(old, float) and isinstance(new, int | float) and not isinstance(new, bool):
        return [] if math.isclose(old, new, rel_tol=rel, abs_tol=1e-12) else \
            [f"{where}: {old!r} != {new!r}"]
    if isinstance(old, dict) and isinstance(new, dict):
        out = [f"{where}.{k}: only in one" for k in sorted(set(old) ^ set(new))]
        for key in old.keys() & new.keys():
            out += differences(old[key], new[key], f"{where}.{key}", rel)
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: {len(old)} items != {len(new)} items"]
        return [d for i, (o, n) in enumerate(zip(old, new, strict=True))
                for d in differences(o, n, f"{where}[{i}]", rel)]
    return [] if old == new else [f"{where}: {old!r} != {new!r}"]


def main() -> None:
    import tempfile

    golden = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, runs, options in CASES:
            golden[name] = render_case(runs, options, Path(tmp) / f"{name}.html")
    GOLDEN.write_text(json.dumps(golden, ensure_ascii=False, separators=(",", ":")) + "\n",
                      encoding="utf-8")
    print(f"{GOLDEN}: {GOLDEN.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
