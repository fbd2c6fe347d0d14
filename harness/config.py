"""The user's project configuration: ``bench.toml``, or ``[tool.bench]`` in ``pyproject.toml``.

Found from the current directory upwards: the first folder holding a ``bench.toml`` or a
``pyproject.toml`` with a ``[tool.bench]`` table gives the configuration (a
``pyproject.toml`` without that table is passed over, as ruff and pytest do). A folder
holding both is refused: one project, one configuration. Keys (docs/project.md)::

    scenarios   = ["perf/scenarios", "perf/smoke.toml"]  # folders of *.toml, or files
    servers     = ["uvicorn", "granian-asgi"]            # bench run's default --servers
    results_dir = "perf/results"                          # default ./results
    reports_dir = "perf/reports"                          # default ./reports

Relative paths are relative to the file that names them, so the configuration means
the same from any subfolder. Parsing is strict: an unknown key, a wrong type or an
unknown server config raises :class:`~harness.errors.UserError` naming the file.
Options on the command line override the configuration.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.scenarios import _suggest
from harness.servers import SERVERS

#: The configuration's own file, looked for before pyproject.toml in each folder.
CONFIG_FILE = "bench.toml"
PYPROJECT = "pyproject.toml"
KEYS = ("scenarios", "servers", "results_dir", "reports_dir")


@dataclass(frozen=True, slots=True)
class Config:
    """A project's settings; every path absolute. ``source`` is the file they came from
    (``None``: no configuration found, the built-in defaults)."""

    source: Path | None = None
    #: Scenario files and folders of scenario files, in the order given.
    scenarios: tuple[Path, ...] = ()
    #: ``bench run``'s servers when ``--servers`` is not given; ``None``: every config
    #: serving the scenario's protocol.
    servers: tuple[str, ...] | None = None
    results_dir: Path | None = None
    reports_dir: Path | None = None

    def results(self) -> Path:
        """Where run folders go: the configured folder, else ``./results``."""
        return self.results_dir or Path("results")

    def reports(self) -> Path:
        """Where reports go: the configured folder, else ``./reports``."""
        return self.reports_dir or Path("reports")

    @property
    def where(self) -> str:
        """How to name the configuration in a message: ``bench.toml`` path or
        ``pyproject.toml [tool.bench]``."""
        if self.source is None:
            return "built-in defaults"
        return str(self.source) + (" [tool.bench]" if self.source.name == PYPROJECT else "")


def find(start: Path | None = None) -> Path | None:
    """The configuration file that applies in ``start`` (default: the current
    directory): ``bench.toml``, or ``pyproject.toml`` with a ``[tool.bench]`` table, in
    ``start`` or the nearest parent holding one; ``None`` when there is none.

    Raises:
        UserError: a folder holds both files configuring bench, or a pyproject.toml on
            the way cannot be read as TOML.
    """
    folder = (start or Path.cwd()).absolute()
    for candidate in (folder, *folder.parents):
        own = candidate / CONFIG_FILE
        pyproject = candidate / PYPROJECT
        tool = _read(pyproject).get("tool") if pyproject.is_file() else None
        in_pyproject = isinstance(tool, dict) and "bench" in tool
        if own.is_file() and in_pyproject:
            raise UserError(f"{own} and {pyproject} [tool.bench] both configure bench; "
                            "keep one")
        if own.is_file():
            return own
        if in_pyproject:
            return pyproject
    return None


def load(start: Path | None = None) -> Config:
    """The configuration that applies in ``start`` (default: the current directory), or
    the defaults when no file configures bench.

    Raises:
        UserError: unreadable or invalid TOML, an unknown key (with the closest ones), a
            value of the wrong type, a scenario path that does not exist or is not a
            ``.toml`` file or folder, an unknown or repeated server config.
    """
    path = find(start)
    if path is None:
        return Config()
    data = _read(path)
    if path.name == PYPROJECT:
        table = data.get("tool", {}).get("bench")
        where = f"{path} [tool.bench]"
    else:
        table, where = data, str(path)
    if not isinstance(table, dict):
        raise UserError(f"{where}: must be a table of settings")
    try:
        return _build(table, path)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are "
                        "UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    except RecursionError:
        raise UserError(f"{path}: invalid TOML: nested too deeply") from None


def _strings(table: Mapping[str, Any], key: str) -> list[str]:
    value = table[key]
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v.strip() for v in value)):
        raise UserError(f"{key} must be a non-empty list of strings, like [\"a\", \"b\"]")
    return [v.strip() for v in value]


def _folder(table: Mapping[str, Any], key: str, base: Path) -> Path | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{key} must be a folder path (a string)")
    path = base / value.strip()
    if path.exists() and not path.is_dir():
        raise UserError(f"{key} {value!r}: {path} is not a folder")
    return path


def _build(table: Mapping[str, Any], path: Path) -> Config:
    for key in table:
        if key not in KEYS:
            raise UserError(f"unknown key {key!r}" + _suggest(key, list(KEYS))
                            + f" (known: {', '.join(KEYS)})")
    base = path.parent
    scenario_paths: list[Path] = []
    for text in _strings(table, "scenarios") if "scenarios" in table else []:
        found = base / text
        if not found.exists():
            raise UserError(f"scenarios: {text!r}: no such file or folder ({found})")
        if found.is_file() and found.suffix != ".toml":
            raise UserError(f"scenarios: {text!r}: not a .toml file")
        if found in scenario_paths:
            raise UserError(f"scenarios: {text!r} is named twice")
        scenario_paths.append(found)
    servers: tuple[str, ...] | None = None
    if "servers" in table:
        names = _strings(table, "servers")
        for name in names:
            if name not in SERVERS:
                raise UserError(f"servers: unknown server {name!r}" + _suggest(name, SERVERS)
                                + " (bench list servers)")
        if len(set(names)) != len(names):
            raise UserError("servers: a server config is named twice")
        servers = tuple(names)
    return Config(source=path, scenarios=tuple(scenario_paths), servers=servers,
                  results_dir=_folder(table, "results_dir", base),
                  reports_dir=_folder(table, "reports_dir", base))
