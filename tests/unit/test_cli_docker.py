"""``bench docker``'s part that needs no engine: the image reference grammar ``--base``
is checked against (the engine's distribution/reference forms, 255 characters at most),
and a bad ``--base`` refused in one line before any engine is asked."""

from __future__ import annotations

import pytest

from harness.cli_docker import check_image_reference
from harness.errors import UserError
from tests.support import bench_here

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("ref", [
    "python", "python:3.11-slim", "debian:bookworm-20240101", "library/python:3.11",
    "registry:5000/team/image:tag", "ghcr.io/org/sub/img:v1.2.3", "localhost/a_b/c__d-e:1",
    f"python@{DIGEST}", f"python:3.11-slim@{DIGEST}", "a" * 255,
    "img:" + "t" * 128,
])
def test_well_formed_references_pass(ref: str) -> None:
    check_image_reference(ref, "--base")


@pytest.mark.parametrize("ref", [
    "", "Python:3.11", "python:", ":3.11", "a//b", "a/-b", "team/_img", "img:tag with space",
    "img:-tag", "img:" + "t" * 129, "python@sha256:abc", "python@" + "0" * 64,
    "https://registry/img", "a" * 256,
])
def test_malformed_references_are_refused_naming_the_option(ref: str) -> None:
    with pytest.raises(UserError) as info:
        check_image_reference(ref, "--base")
    assert str(info.value).startswith(f"--base {ref!r}: not a valid image reference (like ")


def test_build_with_a_bad_base_is_one_line_before_the_engine(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # an engine that cannot be reached: were it asked, the message would be about it
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code, out, err = bench_here(capsys, monkeypatch, "docker", "build", "--base", "Not/An Image")
    assert (code, out) == (2, "")
    assert err == ("bench: error: --base 'Not/An Image': not a valid image reference (like "
                   "python:3.11-slim or registry:5000/team/image:tag)\n")
