"""harness.cli, the entry point: every documented bad input (docs/errors.md) gives one clear\nline on stderr, exit code 2, no traceback, nothing started or written."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness import PROJECT_ROOT
from tests.support import cli

DOC = PROJECT_ROOT / "docs" / "errors.md"


def documented_rows() -> list[tuple[str, int, str]]:
    """(command, exit code, message) from the table in docs/errors.md."""
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and " bench " in f" {cells[0].strip('`')}":
            rows.append((cells[0].strip("`"), int(cells[1]), cells[2].strip("`")))
    return rows


ROWS = documented_rows()


def test_the_table_is_not_empty() -> None:
    assert len(ROWS) >= 25


@pytest.mark.parametrize(("command", "code", "message"), ROWS, ids=[r[0].split("bench ", 1)[1][:44] for r in ROWS])
def test_documented_error(command: str, code: int, message: str, tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    bad = fixtures / "bad.toml"
    bad.write_text('name = "bad"\nprotocol = "http"\n[load\nusers = [1]\n')
    newer = fixtures / "newer"
    newer.mkdir()
    (newer / "run.json").write_text(json.dumps({"schema_version": 99, "run_id": "x"}))
    empty = fixtures / "empty"
    empty.mkdir()
    words = shlex.split(command.format(bad_toml=bad, newer_run=newer, empty_dir=empty))
    env = {}
    while "=" in words[0]:  # NAME=value prefixes set the environment, as in a shell
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[0] == "bench"
    args = words[1:]
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    # In this process (tests.support.cli): every refusal is pre-flight, so nothing starts;
    # test_list_commands_show_every_config_and_scenario runs the installed entry point.
    r = cli(*args, env=env, cwd=workdir, columns=300)
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("bench: error: ") and message in lines[0], lines[0]
    assert r.stdout == ""
    assert list(workdir.iterdir()) == []  # nothing written where it ran


def test_list_commands_show_every_config_and_scenario() -> None:
    r = subprocess.run([sys.executable, "-m", "harness.cli", "list", "servers"],
                       capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "300"})
    for name in ("gunicorn-sync", "gunicorn-asgi", "granian-wsgi", "hypercorn", "uvicorn"):
        assert name in r.stdout
    r = subprocess.run([sys.executable, "-m", "harness.cli", "list", "scenarios"],
                       capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "300"})
    assert "io-heavy" in r.stdout and "cpu-heavy" in r.stdout and "latency_ms" in r.stdout
