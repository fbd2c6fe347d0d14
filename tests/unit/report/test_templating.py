"""The pages' jinja2 environment escapes every value exactly once and refuses an undefined
variable or a missing template; a chart's ``<div>`` embeds plotly.js only when asked and
is inserted as is."""

from __future__ import annotations

import jinja2
import plotly.graph_objects as go
import plotly.offline
import pytest
from markupsafe import Markup

from harness.report import templating

PLOTLY_MARKER = "plotly.js v"


def test_values_are_escaped_once_and_kv_rows_render() -> None:
    env = templating.environment()
    assert env is templating.environment()  # one environment for every page
    page = env.from_string('{% from "macros.html.j2" import kv %}{{ kv(rows) }}').render(
        rows=[("reason", "port 8000 <busy> & taken"), ("p99 ms", "&lt;")])
    assert "<th>reason</th><td>port 8000 &lt;busy&gt; &amp; taken</td>" in page
    assert "<td>&amp;lt;</td>" in page  # already-escaped text is escaped again, not trusted
    assert "<busy>" not in page


def test_undefined_variable_and_missing_template_raise() -> None:
    with pytest.raises(jinja2.UndefinedError, match="trials"):
        templating.environment().from_string("{{ trials }} trials").render()
    with pytest.raises(jinja2.TemplateNotFound):
        templating.render_template("no-such-page.html.j2")
    # both are TemplateErrors, as render_template's docstring promises
    assert issubclass(jinja2.UndefinedError, jinja2.TemplateError)
    assert issubclass(jinja2.TemplateNotFound, jinja2.TemplateError)


def test_base_page_inlines_its_css_and_escapes_the_title() -> None:
    child = ('{% extends "base.html.j2" %}{% block title %}{{ t }}{% endblock %}'
             "{% block body %}<p>body</p>{% endblock %}")
    page = templating.environment().from_string(child).render(t="io-heavy <uvicorn>")
    assert "<title>io-heavy &lt;uvicorn&gt;</title>" in page
    css = (templating.TEMPLATES / "base.css").read_text(encoding="utf-8")
    assert css.strip() and css.strip() in page
    assert "<link" not in page and "<script src" not in page  # one self-contained file


def test_plot_div_embeds_plotly_js_only_when_asked() -> None:
    fig = go.Figure(go.Scatter(x=[10, 50], y=[39.1, 197.3], name="uvicorn <asgi>"))
    first = templating.plot_div(fig, div_id="run0-throughput", include_js=True, height="520px")
    later = templating.plot_div(fig, div_id="run0-latency", include_js=False, height="520px")
    assert isinstance(first, Markup) and isinstance(later, Markup)
    assert first.count(PLOTLY_MARKER) == plotly.offline.get_plotlyjs().count(PLOTLY_MARKER) > 0
    assert PLOTLY_MARKER not in later and "<script src" not in later
    assert later.startswith('<div style="height:520px;')  # the chart's height, as given
    assert '<div id="run0-latency" class="plotly-graph-div"' in later
    assert '"displaylogo": false' in later and '"responsive": true' in later
    # Markup goes into a template as is: the chart's own markup is not escaped again
    page = templating.environment().from_string("{{ chart }}").render(chart=later)
    assert page == str(later)
