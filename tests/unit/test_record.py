"""harness.record: typed JSON records on records of these tests' own: a file read and
written back keeps its keys, their order and the unknown ones; a record built in code
writes its fields in declared order, optional ones only once set; a wrong type is
refused with the dotted key path; JSON given to ``updated`` is converted like a read."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.record import Record, RecordError, optional


@dataclass(frozen=True, kw_only=True)
class Listener(Record):
    port: int | None = None
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Deployed(Record):
    name: str | None = None
    p99_ms: float | None = None
    listener: Listener = field(default_factory=Listener)
    labels: Mapping[str, str] = optional({})
    spare: Listener = optional(Listener)


def test_a_file_read_and_written_back_keeps_keys_order_and_unknowns() -> None:
    raw = {"future": {"x": [1, None]}, "p99_ms": 12, "listener": {"hosts": ["a", "b"],
           "tls": True, "port": 8000}, "name": "uvicorn"}
    rec = Deployed.from_dict(raw)
    assert rec.listener == Listener(port=8000, hosts=("a", "b"), extra={"tls": True})
    assert rec.extra == {"future": {"x": [1, None]}} and rec.p99_ms == 12
    out = rec.to_dict()
    assert out == raw and list(out) == list(raw)
    assert list(out["listener"]) == ["hosts", "tls", "port"]
    # a field set since the read comes after the keys read
    later = rec.replace(labels={"tier": "web"}).to_dict()
    assert list(later) == [*raw, "labels"]


def test_a_record_built_in_code_writes_declared_order_and_optional_fields_once_set() -> None:
    built = Deployed(name="uvicorn", extra={"note": math.nan})
    assert built.to_dict() == {"name": "uvicorn", "p99_ms": None,
                               "listener": {"port": None, "hosts": []}, "note": None}
    full = Deployed(name="g", labels={"a": "b"}, spare=Listener(port=1))
    assert list(full.to_dict()) == ["name", "p99_ms", "listener", "labels", "spare"]
    assert json.loads(json.dumps(full.to_dict(), allow_nan=False))["spare"]["port"] == 1
    assert not Deployed() and not Listener() and Deployed(name="x") and Listener(port=0)


@pytest.mark.parametrize(("data", "key", "message"), [
    ({"listener": {"hosts": ["a", 3]}}, "listener.hosts[1]", "is a JSON number, not a string"),
    ({"listener": {"port": True}}, "listener.port", "is a JSON boolean, not an integer or null"),
    ({"listener": {"port": 80.0}}, "listener.port", "is a JSON number, not an integer or null"),
    ({"listener": [80]}, "listener", "is a JSON array, not an object"),
    ({"labels": {"tier": 1}}, "labels.tier", "is a JSON number, not a string"),
    ({"name": ["uvicorn"]}, "name", "is a JSON array, not a string or null"),
])
def test_a_wrong_type_names_its_dotted_key(data: dict[str, Any], key: str,
                                           message: str) -> None:
    with pytest.raises(RecordError) as caught:
        Deployed.from_dict(data)
    assert (caught.value.key, caught.value.problem) == (key, message)
    assert str(caught.value) == f"{key!r} {message}"


def test_numbers_must_be_finite_and_an_object_is_needed_at_the_top() -> None:
    assert Deployed(p99_ms=3).p99_ms == 3  # an int is a number too
    with pytest.raises(RecordError, match=r"^'p99_ms' is inf: not a finite number \(use null\)$"):
        Deployed(p99_ms=math.inf)
    with pytest.raises(RecordError, match=r"^'run\.json' is a JSON array, not an object$"):
        Deployed.from_dict([])
    with pytest.raises(RecordError, match="'labels' has a key 1 that is not a string"):
        Deployed(labels={1: "x"})  # type: ignore[dict-item]


def test_updated_converts_json_and_refuses_a_key_that_is_no_field() -> None:
    rec = Deployed(name="uvicorn").updated({"listener": {"port": 80, "hosts": ["h"]},
                                           "labels": {"a": "b"}})
    assert rec.listener == Listener(port=80, hosts=("h",)) and rec.labels == {"a": "b"}
    hosts: Any = ["x"]  # a writer's list is the record's tuple
    assert Deployed(listener=Listener(hosts=hosts)).listener.hosts == ("x",)
    with pytest.raises(RecordError, match="^'lisener' is not a key of Deployed$"):
        rec.updated({"lisener": {}})
    with pytest.raises(RecordError, match="'listener.port' is a JSON string"):
        rec.updated({"listener": {"port": "80"}})
