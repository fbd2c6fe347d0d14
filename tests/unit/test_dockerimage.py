"""harness.dockerimage, the parts that need no engine: requirement strings and markers
(``packaging``), the pins of the wheelhouse, the engine's errors as one line."""

from __future__ import annotations

from importlib import metadata

from harness import dockerimage
from harness.dockerimage import _needed, _requested, pinned_requirements


def test_requirement_strings_parsed_by_packaging() -> None:
    assert _requested("uvicorn[standard]") == ("uvicorn", frozenset({"standard"}))
    assert _requested("Zope.Interface >= 5 ; python_version >= '3.8'") == (
        "zope-interface", frozenset())
    assert _requested("a_b[X, y]==1") == ("a-b", frozenset({"x", "y"}))


def test_a_requirement_is_followed_where_its_marker_holds_in_the_image() -> None:
    assert _needed("h11>=0.8", frozenset())
    assert _needed('uvloop>=0.15; extra == "standard"', frozenset({"standard"}))
    assert not _needed('uvloop>=0.15; extra == "standard"', frozenset())
    assert _needed('uvloop; sys_platform != "win32" and extra == "standard"',
                   frozenset({"standard"}))
    assert not _needed('colorama; sys_platform == "win32"', frozenset())
    assert not _needed('tomli; python_version < "3.11"', frozenset())
    assert not _needed("not a requirement ((", frozenset())


def test_pins_carry_the_installed_versions_and_the_gevent_worker_needs() -> None:
    reqs, constraints = pinned_requirements()
    assert f"gunicorn[gevent]=={metadata.version('gunicorn')}" in reqs.splitlines()
    pinned = dict(line.split("==") for line in constraints.splitlines())
    # gunicorn's gevent worker imports packaging, declared only under its gevent extra.
    assert pinned["packaging"] == metadata.version("packaging")
    assert pinned["uvloop"] == metadata.version("uvloop")  # uvicorn[standard]
    assert "pytest" not in pinned  # gunicorn's "testing" extra is not followed


def test_an_engine_error_reads_as_its_explanation() -> None:
    import docker.errors

    exc = docker.errors.APIError("400 Client Error for http+docker://localhost/v1.41/images/x",
                                 explanation="no such image: x;id:tag: invalid reference format")
    assert dockerimage.engine_message(exc) == "no such image: x;id:tag: invalid reference format"
    assert dockerimage.engine_message(RuntimeError("a\nb")) == "a b"

