"""The HTML pages the tool writes (the report, ``bench history``), from jinja2 templates.

Templates live in ``templates/`` beside this module (shipped as package data):
``base.html.j2`` is the page every other extends (charset, title, the shared
``base.css`` inlined plus the page's own CSS), ``macros.html.j2`` holds the ``table``
and ``kv`` macros. Autoescape is on for every template, so every value a page prints
is escaped exactly once, there; only plotly's own chart markup (:func:`plot_div`) is
inserted as is. A page stays one self-contained file: CSS and JS are inlined, and
plotly.js is embedded with the first chart of the page only.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2
import plotly.graph_objects as go
import plotly.io as pio
from markupsafe import Markup

#: Where the templates (and the CSS/JS they inline) are.
TEMPLATES = Path(__file__).with_name("templates")
#: plotly's config for every chart of every page.
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


@functools.cache
def environment() -> jinja2.Environment:
    """The one jinja2 environment of the tool's pages: autoescape on, strict undefined
    (a misspelt variable raises instead of printing nothing)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def render_template(name: str, **context: Any) -> str:
    """The page of template ``name`` (in :data:`TEMPLATES`) with ``context``.

    Raises:
        jinja2.TemplateError: no such template, or it uses an undefined variable.
    """
    return environment().get_template(name).render(**context)


def plot_div(fig: go.Figure, *, div_id: str, include_js: bool, height: str) -> Markup:
    """``fig`` as a ``<div>`` with its script (plotly.js inline when ``include_js``),
    marked safe: plotly escapes what it embeds itself."""
    return Markup(pio.to_html(fig, include_plotlyjs=include_js, full_html=False,
                              config=PLOT_CONFIG, div_id=div_id, default_height=height))
