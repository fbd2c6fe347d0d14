"""`bench publish`: the static site of a results folder, opened offline in headless Chromium.

Results: copies of the stored real runs under tests/data (tests.synth.stored_history:
io-heavy with an invalid trial, websocket-echo with unsupported ones, a week of them with a
planted throughput step), and the session's real sweep (``conftest.io_sweep``). Chromium
runs with every host name unresolvable, so a page that fetched anything from the network
(a CDN's plotly.js) would log an error and fail the test.
"""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from harness.results import load_run
from tests.support import bench, chart_problems, needs_chromium, open_in_chromium
from tests.synth import DAYS, copy_run, stored_history
from tests.synth import STORED as STORED_RESULTS

OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        if tag in ("script", "link", "img") and (a.get("src") or a.get("href")):
            self.sources.append(str(a.get("src") or a.get("href")))


def links(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text("utf-8"))
    return parser


def index_rows(index: Path) -> list[list[str]]:
    """The runs table of the index: per row, its cells' text."""
    html = index.read_text("utf-8")
    body = html[html.index('<table class="runs"'):html.index("</table>")]
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", body)]


def check_site(site: Path, results: Path) -> list[list[str]]:
    """Index, history and one report per run folder; every link resolves inside the site;
    no page loads anything from elsewhere. Returns the index's rows."""
    index, history = site / "index.html", site / "history.html"
    assert index.is_file() and history.is_file() and (site / ".nojekyll").is_file()
    folders = sorted(p.name for p in results.iterdir() if (p / "run.json").is_file())
    assert sorted(p.stem for p in (site / "runs").glob("*.html")) == folders
    found = links(index)
    assert "history.html" in found.links
    for href in found.links:
        assert not re.match(r"[a-z]+:", href), href  # relative: works under any Pages path
        assert (site / unquote(href)).is_file(), href
    for page in (index, history, *(site / "runs").glob("*.html")):
        assert links(page).sources == [], page  # nothing loaded by URL: plotly is inline
    assert history.read_text("utf-8").count("plotly.js v") == 1
    return index_rows(index)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """``bench publish`` of the stored history (12 runs): (results, site, its outcome)."""
    base = tmp_path_factory.mktemp("publish")
    results = stored_history(base / "results")
    site = base / "site"
    return results, site, bench("publish", str(results), "-o", str(site))


@pytest.mark.slow
def test_site_of_stored_runs(published: tuple[Path, Path, subprocess.CompletedProcess[str]]
                             ) -> None:
    results, site, r = published
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{2 * DAYS} run reports" in r.stdout and "3 regressed" in r.stdout
    rows = check_site(site, results)
    assert len(rows) == 2 * DAYS
    started = [row[1] for row in rows]
    assert started == sorted(started, reverse=True)  # newest first
    for row in rows:  # the trial counts are the run's, not ok ones only
        run_id = row[0]
        (folder,) = [p for p in results.iterdir() if load_run(p).meta.run_id == run_id]
        counts = pd.read_csv(folder / "trials.csv")["status"].value_counts()
        expected = " · ".join(f"{counts[s]} {s}" for s in ("ok", "invalid", "unsupported",
                                                          "failed") if s in counts)
        assert row[5] == expected, (row, expected)
    assert "3 regressed at their last change point" in (site / "index.html").read_text()


@needs_chromium
@pytest.mark.slow  # three pages of 5 MB in Chromium
def test_site_pages_open_offline_without_errors(
        published: tuple[Path, Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    _, site, r = published
    assert r.returncode == 0, r.stdout + r.stderr
    report = max((site / "runs").glob("io-heavy-*.html"))
    for page in (site / "index.html", site / "history.html", report):
        dom, console = open_in_chromium(page, tmp_path / f"profile-{page.stem}", OFFLINE,
                                        "--dump-dom")
        assert console == [], (page, console)
        if page.name == "index.html":
            assert "plotly-graph-div" not in dom and "20261130T015450Z-io-heavy" in dom
            continue
        assert chart_problems(dom) == {}, page
        if page.name == "history.html":
            assert dom.count('class="main-svg"') >= 6  # every small-multiples figure drawn


@pytest.mark.slow
def test_publish_refuses_bad_input(tmp_path: Path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    r = bench("publish", str(STORED_RESULTS), "-o", str(a_file))
    assert r.returncode == 2 and "not a folder" in r.stderr
    (tmp_path / "empty").mkdir()
    r = bench("publish", str(tmp_path / "empty"), "-o", str(tmp_path / "site"))
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("bench: error: ") and "no readable run here" in line
    assert not (tmp_path / "site").exists()


@pytest.mark.slow
@needs_chromium
def test_site_with_the_real_sweep(io_sweep: Path, tmp_path: Path) -> None:
    """Three days of the real sweep (the stored runs are test_site_of_stored_runs'): a
    report per run, the history of real figures drawn offline."""
    results = tmp_path / "results"
    for day in (DAYS + 1, DAYS + 2, DAYS + 3):
        copy_run(io_sweep, results / f"sweep-{day}", day)
    site = tmp_path / "site"
    r = bench("publish", str(results), "-o", str(site))
    assert r.returncode == 0, r.stdout + r.stderr
    rows = check_site(site, results)
    assert len(rows) == 3 and rows[0][0].endswith(f"-d{DAYS + 3}")
    assert "io-heavy latency_ms=20" in rows[0][2]
    trials = pd.read_csv(io_sweep / "trials.csv")
    assert rows[0][5] == f"{len(trials)} ok"
    dom, console = open_in_chromium(site / "history.html", tmp_path / "profile", OFFLINE,
                                    "--dump-dom")
    assert console == [] and chart_problems(dom) == {}
