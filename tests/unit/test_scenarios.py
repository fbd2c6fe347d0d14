"""Scenario files: shipped ones load; malformed ones fail with file, line and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UserError
from harness.scenarios import SCENARIOS_DIR, available, load, parse

GOOD = SCENARIOS_DIR / "io-heavy.toml"


@pytest.mark.parametrize("name", available())
def test_shipped_scenarios_load(name: str) -> None:
    sc = load(name)
    assert sc.users and sc.duration_s > 0 and sc.slo_p99_ms > 0
    assert sc.request_path.startswith(sc.path)


def test_param_override_is_typed_and_bounded() -> None:
    sc = load("io-heavy")
    assert sc.with_params({"latency_ms": "7"}).request_path == "/io?latency_ms=7"
    with pytest.raises(UserError, match="expected an integer"):
        sc.with_params({"latency_ms": "fast"})
    with pytest.raises(UserError, match=r"out of range \[0, 10000\]"):
        sc.with_params({"latency_ms": "10001"})
    with pytest.raises(UserError, match="did you mean latency_ms"):
        sc.with_params({"latency": "1"})


def _write(tmp_path: Path, text: str, name: str = "io-heavy") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    text = GOOD.read_text().replace("duration_s = 5", "duration_s = = 5")
    with pytest.raises(UserError, match=r"io-heavy\.toml: invalid TOML: .*line \d+"):
        parse(_write(tmp_path, text))


@pytest.mark.parametrize(("edit", "message"), [
    (("users = [10, 50, 100]", "users = []"), "users must be a non-empty list"),
    (("duration_s = 5 ", "duration_s = -5 "), r"duration_s must be > 0"),
    (("default = 50", "default = 50000"), "outside"),
    (('type = "int"', 'type = "str"'), "type must be"),
    (("[slo]", "[slo]\nbogus = 1"), "unknown key"),
    (('path = "/io"', 'path = "io"'), "starting with '/'"),
])
def test_invalid_values_are_refused(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    text = GOOD.read_text()
    assert edit[0] in text
    with pytest.raises(UserError, match=message):
        parse(_write(tmp_path, text.replace(edit[0], edit[1], 1)))
