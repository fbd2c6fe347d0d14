"""harness.errors: a :class:`UserError` raised anywhere under the CLI reaches the user as
exactly its message, on one line of stderr after ``bench: error:``, with exit code 2."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from harness.machine import parse_cpus
from tests.support import bench_here


def test_a_user_error_from_deep_in_the_harness_is_its_message_on_one_line(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU-list parser raises; the CLI shows that very message, nothing added but the
    prefix, and no traceback."""
    with pytest.raises(UserError) as raised:
        parse_cpus("zero", "--server-cpus")
    code, out, err = bench_here(capsys, monkeypatch, "run", "--scenario", "io-heavy",
                                "--server-cpus", "zero", "--dry-run")
    assert code == 2 and out == ""
    assert err == f"bench: error: {raised.value}\n"


def test_a_long_message_is_not_wrapped_to_the_terminal(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Shown as is: a message far wider than the terminal (80 columns when captured)
    stays one line, the user's text (brackets included) intact."""
    value = "[bold]" + "x" * 300
    code, _, err = bench_here(capsys, monkeypatch, "run", "--scenario", "io-heavy",
                              "--param", value, "--dry-run")
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: --param ")
    assert repr(value) in lines[0] and len(lines[0]) > 300
