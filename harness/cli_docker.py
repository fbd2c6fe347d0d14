"""``bench docker ...``: build the server image the docker backend runs (see docs/docker.md)."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from rich.console import Console

# An image reference as the engine parses it (distribution/reference grammar): optional
# registry host[:port], lower-case path components, optional :tag and @digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?", re.ASCII)


def check_image_reference(ref: str, option: str) -> None:
    """Raise UserError unless ``ref`` is a well-formed image reference (``name[:tag]``,
    ``host:port/path:tag``, ``name@sha256:...``), at most 255 characters."""
    from harness.errors import UserError

    if len(ref) > 255 or not _REFERENCE.fullmatch(ref):
        raise UserError(f"{option} {ref!r}: not a valid image reference (like "
                        "python:3.11-slim or registry:5000/team/image:tag)")


docker_app = typer.Typer(no_args_is_help=True,
                         help="Containers: build the image `bench run --backend docker` runs.")


@docker_app.command("build")
def build_cmd(
    base: Annotated[str, typer.Option(help="Base image: auto (python:3.11-slim if the engine has it, else a Debian bookworm base made with debootstrap), debootstrap, or an image the engine has.")] = "auto",
    mirror: Annotated[str | None, typer.Option(help="Debian mirror for debootstrap; default: the one apt uses here.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild base, wheelhouse and image even if cached.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show every build step's output.")] = False,
) -> None:
    """Build bench-apps:<content hash> offline (cached by content): base image, host-side
    wheelhouse, then the app image with no network. Prints the image and its packages."""
    import docker.errors

    from harness import dockerimage
    from harness.errors import UserError

    if base not in ("auto", "debootstrap"):
        check_image_reference(base, "--base")
    out = Console()
    err = Console(stderr=True)

    def log(line: str) -> None:
        if verbose or not line.startswith("  "):
            err.print(line, highlight=False, markup=False, soft_wrap=True)

    client = dockerimage.engine()
    try:
        info = dockerimage.build(client, base=base, mirror=mirror, no_cache=no_cache, log=log)
    except docker.errors.APIError as exc:  # the engine refused a request: its words, one line
        what = " ".join(str(exc.explanation or exc).split())
        raise UserError(f"docker engine: {what}") from None
    from harness import dockerdb  # the db-* scenarios' database image

    db_image = dockerdb.build_image(client, mirror=mirror, log=log, refresh=no_cache)
    if as_json:
        out.print_json(json.dumps({**info.as_dict(), "db_image": db_image}))
        return
    state = "cached" if info.cached else f"built in {info.build_s:.1f} s"
    out.print(f"image: {info.tag} ({state})\nid:    {info.image_id}\n"
              f"base:  {info.base_image} ({info.base_image_id[:19]})\n"
              f"packages ({len(info.packages)}): "
              + ", ".join(f"{k}=={v}" for k, v in sorted(info.packages.items()))
              + f"\ndatabase image: {db_image}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``docker`` command group to the ``bench`` app."""
    app.add_typer(docker_app, name="docker")
