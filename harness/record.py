"""Typed JSON records: frozen dataclasses read from and written to JSON objects.

The base of :mod:`harness.runmeta` (run.json's metadata). A record's fields are its
known keys, with their types as annotations; construction checks every value against
its annotation (:class:`RecordError`, a ``ValueError``, naming the key path), so a
writer that puts a wrong type in fails where it does so, and a reader of a damaged file
gets one sentence naming the key.

Reading (:meth:`Record.from_dict`): nested objects become nested records, arrays
tuples; keys the record does not know are kept in ``extra`` (a newer bench's key, or an
older one's that this version dropped), and the order the keys were read in is kept, so
``from_dict(d).to_dict() == d`` with the same key order: a stored file written back is
the same bytes (but for NaN tokens an old bench wrote in free-form values: ``null``).

Writing (:meth:`Record.to_dict`): a record built in code writes its fields in declared
order, then ``extra``; a field declared with :func:`optional` is left out until it is
set. A record read from a file writes the keys it read, in their order, then the fields
set since (in declared order) and the unknown keys.
Non-finite floats are refused in typed fields and written as ``null`` in free-form ones
(strict JSON: no NaN, no Infinity).

Supported annotations: ``str``, ``int``, ``float`` (an int is a number too), ``bool``,
``None``, ``Any``, unions of these, ``tuple[X, ...]``, ``Mapping[str, X]`` and records.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.atomic import finite_json

_OPTIONAL = {"optional": True}
_JSON_TYPES = {dict: "object", list: "array", tuple: "array", str: "string", int: "number",
               float: "number", bool: "boolean", type(None): "null"}


def optional(default: Any = None) -> Any:
    """A field a record built in code writes only once set (not ``None``, not empty, not
    a blank record): a key that appears during a run (``deployments``) or only for some
    runs (an own app's ``scenario.app``). Every other field is always written."""
    if isinstance(default, tuple):
        return field(default=default, metadata=_OPTIONAL)
    if isinstance(default, type) and issubclass(default, Record):
        return field(default_factory=default, metadata=_OPTIONAL)
    if isinstance(default, Mapping):
        return field(default_factory=dict, metadata=_OPTIONAL)
    return field(default=default, metadata=_OPTIONAL)


class RecordError(ValueError):
    """A value of the wrong type (or a non-finite number) at ``key`` (a dotted path)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key!r} {problem}")
        self.key, self.problem = key, problem

    def under(self, prefix: str) -> RecordError:
        return RecordError(f"{prefix}.{self.key}" if prefix else self.key, self.problem)


def _kind(value: Any) -> str:
    name = _JSON_TYPES.get(type(value))
    return f"a JSON {name}" if name else f"a {type(value).__name__}"


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is tuple:
        return "an array"
    if origin is Mapping or (isinstance(hint, type) and issubclass(hint, Record)):
        return "an object"
    return {str: "a string", int: "an integer", float: "a number",
            bool: "a boolean"}.get(hint, str(hint))


def _check(value: Any, hint: Any, key: str) -> None:
    """Raise :class:`RecordError` unless ``value`` fits ``hint``."""
    if hint is Any:
        return
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in typing.get_args(hint):
            try:
                _check(value, arm, key)
                return
            except RecordError as exc:
                errors.append(exc)
        # an element deeper down was wrong, or the right type with a wrong value (NaN)
        inner = [e for e in errors if e.key != key or "finite" in e.problem]
        raise inner[0] if inner else RecordError(key, f"is {_kind(value)}, not {_describe(hint)}")
    if origin is tuple:
        if not isinstance(value, tuple):
            raise RecordError(key, f"is {_kind(value)}, not an array")
        (item, _) = typing.get_args(hint)
        for i, v in enumerate(value):
            _check(v, item, f"{key}[{i}]")
        return
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise RecordError(key, f"is {_kind(value)}, not an object")
        _, item = typing.get_args(hint)
        for k, v in value.items():
            if not isinstance(k, str):
                raise RecordError(key, f"has a key {k!r} that is not a string")
            _check(v, item, f"{key}.{k}")
        return
    ok: bool
    if hint is type(None):
        ok = value is None
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise RecordError(key, f"is {value!r}: not a finite number (use null)")
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise RecordError(key, f"is {_kind(value)}, not {_describe(hint)}")


def _convert(value: Any, hint: Any, key: str) -> Any:
    """JSON ``value`` as ``hint`` wants it: objects to records, arrays to tuples."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            if arm is not type(None) and (isinstance(value, Mapping | list)):
                return _convert(value, arm, key)
        return value
    if isinstance(hint, type) and issubclass(hint, Record) and isinstance(value, Mapping):
        return hint.from_dict(value, key)
    if origin is tuple and isinstance(value, list):
        (item, _) = typing.get_args(hint)
        return tuple(_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is Mapping and isinstance(value, Mapping):
        _, item = typing.get_args(hint)
        return {k: _convert(v, item, f"{key}.{k}") for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return finite_json(value)


def _present(value: Any) -> bool:
    """An :func:`optional` field worth writing: set, non-empty, not a blank record."""
    if value is None:
        return False
    if isinstance(value, tuple | Mapping):
        return bool(value)
    return bool(value) if isinstance(value, Record) else True  # a record: not blank


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of a typed JSON object; see the module docstring.

    ``extra``: keys this record does not know, with their values as read. ``read_order``:
    the keys in the order they were read (empty for a record built in code).
    """

    extra: Mapping[str, Any] = field(default_factory=dict)
    read_order: tuple[str, ...] = field(default=(), repr=False, compare=False)

    _hints: ClassVar[dict[type, dict[str, Any]]] = {}

    @classmethod
    def known(cls) -> dict[str, Any]:
        """Field name -> resolved annotation, for the record's own keys."""
        hints = Record._hints.get(cls)
        if hints is None:
            resolved = typing.get_type_hints(cls)  # in the module that defines cls
            hints = {f.name: resolved[f.name] for f in dataclasses.fields(cls)
                     if f.name not in ("extra", "read_order")}
            Record._hints[cls] = hints
        return hints

    def __post_init__(self) -> None:
        for name, hint in self.known().items():
            value = getattr(self, name)
            if isinstance(value, list):  # a writer's list is the record's tuple
                value = tuple(value)
                object.__setattr__(self, name, value)
            _check(value, hint, name)
        _check(self.extra, Mapping[str, Any], "extra")

    @classmethod
    def from_dict(cls, data: Any, key: str = "") -> typing.Self:
        """Build from a JSON object; unknown keys go to ``extra``.

        Raises:
            RecordError: ``data`` is not an object, or a known key holds a wrong type
                (the message names the dotted key path, e.g. ``'scenario.users'``).
        """
        if not isinstance(data, Mapping):
            raise RecordError(key or "run.json", f"is {_kind(data)}, not an object")
        hints = cls.known()
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for k, v in data.items():
            if k in hints:
                values[k] = _convert(v, hints[k], f"{key}.{k}" if key else k)
            else:
                extra[k] = v
        try:
            return cls(**values, extra=extra, read_order=tuple(data))
        except RecordError as exc:
            raise exc.under(key) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: keys in the order read (new keys after), else declared order;
        see the module docstring for which unset fields are left out."""
        names = list(self.known())
        if self.read_order:
            order = [*self.read_order, *(n for n in names if n not in self.read_order)]
        else:
            order = names
        out: dict[str, Any] = {}
        opt = {f.name: f.metadata.get("optional", False) for f in dataclasses.fields(self)}
        for k in order:
            if k in self.extra:
                out[k] = _plain(self.extra[k])
            elif k in opt:
                value = getattr(self, k)
                if k in self.read_order or (not self.read_order and not opt[k]) \
                        or _present(value):
                    out[k] = _plain(value)
        for k, v in self.extra.items():
            out.setdefault(k, _plain(v))
        return out

    def __bool__(self) -> bool:
        """False for a blank record: a section the run did not record (``if meta.engine:``)."""
        return self != type(self)()

    def replace(self, **changes: Any) -> typing.Self:
        """A copy with ``changes`` (checked like a new record); the key order is kept.

        Raises:
            RecordError: a value of the wrong type (a writer's bug).
        """
        return dataclasses.replace(self, **changes)

    def updated(self, values: Mapping[str, Any]) -> typing.Self:
        """A copy with JSON ``values`` (objects, arrays) for its own keys, converted as
        :meth:`from_dict` does: what a backend or component says of itself as a dict.

        Raises:
            RecordError: a key that is not a field (writing, an unknown key is a typo or
                a field not yet declared; reading keeps them in ``extra``), or a value
                of the wrong type (a writer's bug).
        """
        hints = self.known()
        unknown = sorted(set(values) - set(hints))
        if unknown:
            raise RecordError(unknown[0], f"is not a key of {type(self).__name__}")
        return dataclasses.replace(self, **{k: _convert(v, hints[k], k)
                                            for k, v in values.items()})

