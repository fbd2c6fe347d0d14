"""The server image: base image, host-side wheelhouse and the app image, built offline.

``bench docker build`` (:func:`build`) makes ``bench-apps:<key>`` from ``harness/apps/Dockerfile``:

1. **Base image.** ``python:3.11-slim`` if the engine already has it; otherwise one the
   project makes itself: a Debian bookworm rootfs from ``debootstrap --variant=minbase
   --include=python3,python3-venv`` (from the Debian mirror apt uses here), loaded with
   ``docker import`` as ``bench-base:<recipe hash>``. Made once, then reused.
2. **Wheelhouse.** ``pip download`` on the host, binary wheels only, for CPython 3.11 on
   manylinux x86_64 (glibc <= 2.36, bookworm's). The server packages are pinned to the
   versions installed here, and everything they depend on is constrained to the host's
   versions too, so containers run exactly what the local backend runs.
3. **App image.** The engine's builder with ``network_mode="none"``: the Dockerfile
   installs only from the wheelhouse (``pip install --no-index --find-links``) into a
   venv and records ``pip freeze`` in ``/opt/bench/pip-freeze.txt``.

The image is cached by content: its tag is a hash of the Dockerfile, the app sources,
the pinned requirements and constraints, the wheel target and the base image's id,
so a second build with the same inputs touches neither the network nor the builder.
Everything the harness makes (images, the wheelhouse and build contexts under
``$XDG_CACHE_HOME/bench/docker``) is labelled or named ``bench``; nothing else is touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import PACKAGE_DIR
from harness.errors import UserError

if TYPE_CHECKING:
    import docker

DOCKERFILE = PACKAGE_DIR / "apps" / "Dockerfile"
APPS_DIR = PACKAGE_DIR / "apps"
DEFAULT_BASE_IMAGE = "python:3.11-slim"
IMAGE_REPO = "bench-apps"
BASE_REPO = "bench-base"
#: Bump when the build procedure changes in a way the hashed inputs do not show.
RECIPE_VERSION = 1
#: The server packages the image carries, and the drivers the real-I/O apps use
#: (harness/apps/drivers.py). gunicorn's gevent worker imports ``packaging``, which
#: gunicorn declares only under its ``gevent`` extra: without the extra,
#: gunicorn-gevent cannot start in the image.
SERVER_PACKAGES = ("gunicorn[gevent]", "gevent", "uvicorn[standard]", "uvicorn-worker",
                   "hypercorn", "granian", "waitress", "daphne", "pyuwsgi",
                   "psycopg[binary]", "psycopg-pool", "asyncpg",
                   "requests", "httpx", "aiohttp")
#: Where the image keeps the output of ``pip freeze --all`` taken inside it.
FREEZE_PATH = "/opt/bench/pip-freeze.txt"

SUITE = "bookworm"
DEBOOTSTRAP_INCLUDE = ("python3", "python3-venv")
#: The wheel target: the image's CPython 3.11 on x86_64 glibc; bookworm has glibc 2.36.
PYTHON_VERSION = "3.11"
GLIBC_MAX = (2, 36)
#: Large files of the rootfs the image does not need (apt's package cache and lists).
ROOTFS_PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                "usr/share/man", "usr/share/info")

Log = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/bench/docker`` (``~/.cache/bench/docker``): wheelhouses, contexts."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "bench" / "docker"


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text[:limit] + ("..." if len(text) > limit else "")


def engine(environ: Mapping[str, str] | None = None) -> docker.DockerClient:
    """A docker SDK client for the engine ``environ`` names (``DOCKER_HOST``, a docker
    context, else the local socket: :func:`harness.dockerhost.resolve`).

    Raises:
        UserError: no engine answers there (one line, with what to do).
    """
    from harness import dockerhost

    return dockerhost.client(dockerhost.resolve(None, environ))


# ---------------------------------------------------------------------------- requirements

#: The environment markers of the image's interpreter (the wheel target below), where
#: they differ from this host's: a requirement is followed when its marker holds there.
TARGET_MARKERS = {"python_version": "3.11", "python_full_version": "3.11.2",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython",
                  "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                  "platform_machine": "x86_64"}


def _requested(requirement: str) -> tuple[str, frozenset[str]]:
    """(canonical name, extras asked for) of a requirement string like ``a[b,c]>=1; m``.

    Raises:
        packaging.requirements.InvalidRequirement: not a PEP 508 requirement.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    req = Requirement(requirement)
    return canonicalize_name(req.name), frozenset(canonicalize_name(e) for e in req.extras)


def _needed(requirement: str, extras: frozenset[str]) -> bool:
    """Whether ``requirement`` (a distribution's declared dependency) applies in the image
    when the distribution was asked for with ``extras``: its marker holds for
    :data:`TARGET_MARKERS` and one of those extras (or no extra). Unparsable ones do not."""
    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        marker = Requirement(requirement).marker
    except InvalidRequirement:
        return False
    if marker is None:
        return True
    env: dict[str, str] = {**default_environment(), **TARGET_MARKERS}
    return any(marker.evaluate({**env, "extra": extra}) for extra in (*sorted(extras), ""))


def pinned_requirements() -> tuple[str, str]:
    """(requirements.txt, constraints.txt) for the wheelhouse, from the installed packages.

    requirements: each of :data:`SERVER_PACKAGES` pinned to the installed version.
    constraints: ``name==version`` of every installed package reachable from them
    through their declared requirements (parsed by ``packaging``), following a
    requirement only where its marker holds for the image's interpreter
    (:data:`TARGET_MARKERS`) with the extras that were asked for; a constraint on a
    package that is not needed would constrain nothing anyway.

    Raises:
        UserError: a server package is not installed here.
    """
    from packaging.utils import canonicalize_name

    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()
                 if d.metadata["Name"]}
    reqs = []
    for spec in SERVER_PACKAGES:
        name, _ = _requested(spec)
        dist = installed.get(name)
        if dist is None:
            raise UserError(f"server package {name} is not installed; pip install -e . first")
        reqs.append(f"{spec}=={dist.version}")
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [_requested(s) for s in SERVER_PACKAGES]
    while todo:
        item = todo.pop()
        name, extras = item
        if item in seen or name not in installed:
            continue
        seen.add(item)
        todo += [_requested(r) for r in installed[name].requires or [] if _needed(r, extras)]
    constraints = sorted({f"{installed[n].metadata['Name']}=={installed[n].version}"
                          for n, _ in seen})
    return "\n".join(reqs) + "\n", "\n".join(constraints) + "\n"


def wheel_target_args() -> list[str]:
    """pip's target options: CPython 3.11, binary wheels for manylinux x86_64 <= glibc 2.36."""
    major, top = GLIBC_MAX
    platforms = [f"manylinux_{major}_{minor}_x86_64" for minor in range(top, 4, -1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    args = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
            "--abi", "cp" + PYTHON_VERSION.replace(".", "")]
    for p in platforms:
        args += ["--platform", p]
    return args


def _digest(parts: Iterable[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in parts:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


#: What pip, debootstrap and tar get from the environment besides harness.procs.ENV_ALLOW:
#: the proxy, certificate and pip settings a host may need to reach PyPI or a mirror
#: (and every other ``PIP_*`` variable).
TOOL_ENV = ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
            "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
            "XDG_CONFIG_HOME", "XDG_CACHE_HOME")


def _tool_env() -> dict[str, str]:
    from harness.procs import allowed_env

    return allowed_env((*TOOL_ENV, *(k for k in os.environ if k.startswith("PIP_"))))


def _run(argv: list[str], *, log: Log, what: str, timeout_s: float) -> None:
    """Run ``argv`` (never a shell) through :func:`harness.procs.run`; its output goes to
    ``log``. Raises UserError (one line, with its last output) on any failure."""
    from harness.procs import CommandError, run

    log(f"$ {' '.join(argv)}")
    try:
        proc = run(argv, timeout_s=timeout_s, env=_tool_env())
    except CommandError as exc:
        if exc.timed_out:
            raise UserError(f"{what}: no result after {timeout_s:.0f} s") from None
        raise UserError(f"{what}: {argv[0]} not found or not runnable ({exc})") from None
    for line in (proc.stdout + proc.stderr).splitlines():
        log(f"  {line}")
    if proc.returncode != 0:
        last = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()][-3:]
        raise UserError(f"{what} failed (exit {proc.returncode}): {' | '.join(last)}")


def build_wheelhouse(cache: Path, *, log: Log = _quiet, refresh: bool = False) -> Path:
    """The wheelhouse folder for the current pins (downloaded once; reused while they hold).

    Holds the wheels and ``requirements.txt``/``constraints.txt``. Downloaded into a
    temporary folder and renamed, so a half-finished download is never reused.

    Raises:
        UserError: pip failed (no network to PyPI, no wheel for the target...).
    """
    reqs, constraints = pinned_requirements()
    target = wheel_target_args()
    key = _digest([("requirements", reqs.encode()), ("constraints", constraints.encode()),
                   ("target", json.dumps(target).encode())])[:16]
    dest = cache / f"wheelhouse-{key}"
    if dest.is_dir() and not refresh:
        log(f"wheelhouse: cached {dest}")
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".wheelhouse-"))
    try:
        (tmp / "requirements.txt").write_text(reqs)
        (tmp / "constraints.txt").write_text(constraints)
        _run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
              "--no-input", "--dest", str(tmp), "-r", str(tmp / "requirements.txt"),
              "-c", str(tmp / "constraints.txt"), *target],
             log=log, what="pip download (wheelhouse)", timeout_s=900)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


# ---------------------------------------------------------------------------- base image

def apt_mirror(suite: str = SUITE, *, root: Path = Path("/")) -> str | None:
    """The URI apt uses for Debian ``suite`` here (sources.list or deb822 .sources), or None."""
    etc = root / "etc" / "apt"
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list")),
             *sorted((etc / "sources.list.d").glob("*.sources"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[0].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if ("deb" in fields.get("types", "").split()
                        and suite in fields.get("suites", "").split() and fields.get("uris")):
                    return fields["uris"].split()[0]
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
                    return parts[1]
    return None


def engine_message(exc: BaseException) -> str:
    """One line saying what the engine answered (an APIError's explanation, else its text)."""
    explanation = getattr(exc, "explanation", None)
    return _first_line(explanation if isinstance(explanation, str) and explanation else exc)


def _image_id(client: docker.DockerClient, ref: str) -> str | None:
    """The id of image ``ref`` in the engine, or None if the engine has no such image.

    Raises:
        UserError: the engine refused the reference (e.g. ``invalid reference format``).
    """
    import docker.errors

    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise UserError(f"image {ref!r}: {engine_message(exc)}") from None


def debootstrap_key(mirror: str) -> str:
    return _digest([("recipe", str(RECIPE_VERSION).encode()), ("suite", SUITE.encode()),
                    ("include", ",".join(DEBOOTSTRAP_INCLUDE).encode()),
                    ("mirror", mirror.encode()), ("prune", ",".join(ROOTFS_PRUNE).encode())])[:16]


def debootstrap_base(client: docker.DockerClient, cache: Path, *, mirror: str | None,
                     log: Log = _quiet, refresh: bool = False) -> str:
    """``bench-base:<hash>``: a Debian bookworm minbase with Python 3.11, made here if missing.

    Raises:
        UserError: not root, debootstrap missing, no mirror known, or debootstrap failed.
    """
    mirror = mirror or apt_mirror()
    if not mirror:
        raise UserError(f"no Debian {SUITE} mirror in /etc/apt/sources.list*; pass --mirror URL")
    tag = f"{BASE_REPO}:{SUITE}-{debootstrap_key(mirror)}"
    if not refresh and _image_id(client, tag):
        log(f"base image: cached {tag}")
        return tag
    if os.geteuid() != 0:
        raise UserError("making the base image needs root (debootstrap); run `bench docker "
                        f"build` as root, or load {DEFAULT_BASE_IMAGE} into the engine")
    return import_rootfs(client, cache, tag=tag, mirror=mirror, include=DEBOOTSTRAP_INCLUDE,
                         changes=['ENV LANG=C.UTF-8', 'CMD ["python3"]'], what="debootstrap",
                         log=log, hint=f" (or load {DEFAULT_BASE_IMAGE} into the engine)")


def import_rootfs(client: docker.DockerClient, cache: Path, *, tag: str, mirror: str,
                  include: Iterable[str], changes: list[str], what: str, log: Log = _quiet,
                  hint: str = "") -> str:
    """Make image ``tag`` from nothing: ``debootstrap --variant=minbase`` of :data:`SUITE`
    with the packages ``include`` into a temporary folder under ``cache``, prune
    :data:`ROOTFS_PRUNE`, tar it and ``docker import`` it with the Dockerfile ``changes``.
    The folder is removed in every case. Returns ``tag``.

    Raises:
        UserError: debootstrap missing (``hint`` appended), a step failed or timed out, or
            the import produced no image.
    """
    debootstrap = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if Path(p).exists()), None)
    if debootstrap is None:
        raise UserError(f"debootstrap not found: apt-get install debootstrap{hint}")
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache, prefix=".rootfs-"))
    try:
        rootfs = work / "rootfs"
        _run([debootstrap, "--variant=minbase", f"--include={','.join(include)}",
              SUITE, str(rootfs), mirror], log=log, what=what, timeout_s=1800)
        for rel in ROOTFS_PRUNE:
            target = rootfs / rel
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        tarball = work / "rootfs.tar"
        _run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tarball), "."],
             log=log, what="tar rootfs", timeout_s=600)
        repo, _, tag_part = tag.partition(":")
        log(f"docker import {tarball} {tag}")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag_part,
                                          changes=changes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not _image_id(client, tag):
        raise UserError(f"docker import did not produce {tag}")
    return tag


def resolve_base(client: docker.DockerClient, base: str, cache: Path, *, mirror: str | None,
                 log: Log = _quiet, make: bool = True, refresh: bool = False) -> str | None:
    """The base image reference to build on.

    ``base="auto"``: :data:`DEFAULT_BASE_IMAGE` if the engine has it, else the
    debootstrap base (made when ``make``). ``"debootstrap"``: always the latter.
    Anything else: that image, which the engine must have. None when ``make`` is
    False and the base does not exist yet.
    """
    if base == "auto" and _image_id(client, DEFAULT_BASE_IMAGE):
        return DEFAULT_BASE_IMAGE
    if base in ("auto", "debootstrap"):
        if not make:
            the_mirror = mirror or apt_mirror()
            if not the_mirror:
                return None
            tag = f"{BASE_REPO}:{SUITE}-{debootstrap_key(the_mirror)}"
            return tag if _image_id(client, tag) else None
        return debootstrap_base(client, cache, mirror=mirror, log=log, refresh=refresh)
    if not _image_id(client, base):
        if not make:
            return None
        raise UserError(f"base image {base!r} is not in the engine (no registry is used); "
                        "docker load it first, or use --base auto")
    return base


# ---------------------------------------------------------------------------- app image

def _app_sources() -> list[Path]:
    return sorted(p for p in APPS_DIR.glob("*.py") if p.is_file())


def image_key(base_id: str) -> str:
    """The content hash naming ``bench-apps:<key>``: every input of the app image."""
    reqs, constraints = pinned_requirements()
    parts = [("recipe", str(RECIPE_VERSION).encode()), ("dockerfile", DOCKERFILE.read_bytes()),
             ("requirements", reqs.encode()), ("constraints", constraints.encode()),
             ("target", json.dumps(wheel_target_args()).encode()), ("base", base_id.encode())]
    parts += [("harness/__init__.py", (PACKAGE_DIR / "__init__.py").read_bytes())]
    parts += [(f"harness/apps/{p.name}", p.read_bytes()) for p in _app_sources()]
    return _digest(parts)


@dataclass(frozen=True)
class ImageInfo:
    """The app image: tag, engine id, how it was made, and the packages inside it."""

    tag: str
    image_id: str
    key: str
    base_image: str
    base_image_id: str
    cached: bool = False
    build_s: float = 0.0
    packages: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"image": self.tag, "image_id": self.image_id, "key": self.key,
                "base_image": self.base_image, "base_image_id": self.base_image_id,
                "cached": self.cached, "build_s": round(self.build_s, 1),
                "packages": self.packages}


def parse_freeze(text: str) -> dict[str, str]:
    """``pip freeze`` lines (``name==version``) as a dict; other lines are skipped."""
    out = {}
    for line in text.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            out[name] = version
    return out


def read_file_from(container: Any, path: str) -> str:
    """A text file from a container (running or only created), via the engine's archive API."""
    stream, _ = container.get_archive(path)
    data = io.BytesIO(b"".join(stream))
    with tarfile.open(fileobj=data) as tar:
        member = tar.next()
        if member is None:
            return ""
        f = tar.extractfile(member)
        return f.read().decode() if f else ""


def image_packages(client: docker.DockerClient, image: str) -> dict[str, str]:
    """``pip freeze`` as recorded inside ``image`` (a created, never started container)."""
    container = client.containers.create(image, command=["true"], network_mode="none",
                                         labels={"io.bench.role": "inspect"})
    try:
        return parse_freeze(read_file_from(container, FREEZE_PATH))
    finally:
        container.remove(force=True)


def find_image(client: docker.DockerClient, *, base: str = "auto", mirror: str | None = None,
               cache: Path | None = None) -> ImageInfo | None:
    """The built app image for the current inputs, or None if it was not built yet.

    The base that ``base``/``mirror`` select is preferred; otherwise any app image the
    engine has whose recorded key is the current inputs' key on its own base (so an
    image built with ``--base X`` or ``--mirror M`` is found without repeating them).
    """
    base_ref = resolve_base(client, base, cache or cache_root(), mirror=mirror, make=False)
    if base_ref is not None:
        base_id = _image_id(client, base_ref) or ""
        key = image_key(base_id)
        tag = f"{IMAGE_REPO}:{key[:16]}"
        image_id = _image_id(client, tag)
        if image_id is not None:
            return ImageInfo(tag, image_id, key, base_ref, base_id, cached=True)
    candidates = sorted(client.images.list(name=IMAGE_REPO, filters={"label": "io.bench.key"}),
                        key=lambda im: str(im.attrs.get("Created", "")), reverse=True)
    for im in candidates:
        labels = im.labels or {}
        base_id = labels.get("io.bench.base-image-id", "")
        key = labels.get("io.bench.key", "")
        tag = f"{IMAGE_REPO}:{key[:16]}"
        if base_id and key == image_key(base_id) and tag in im.tags:
            return ImageInfo(tag, str(im.id), key, labels.get("io.bench.base-image", ""),
                             base_id, cached=True)
    return None


def _stage_context(cache: Path, wheelhouse: Path, key: str) -> Path:
    """The build context: the Dockerfile, ``harness/apps/*.py`` and the wheelhouse, nothing else."""
    ctx = Path(tempfile.mkdtemp(dir=cache, prefix=f".context-{key[:8]}-"))
    shutil.copy2(DOCKERFILE, ctx / "Dockerfile")
    # The apps import as harness.apps (the registry's argv): the package's __init__
    # (no imports beyond pathlib) and the apps, nothing else of the harness.
    (ctx / "harness" / "apps").mkdir(parents=True)
    shutil.copy2(PACKAGE_DIR / "__init__.py", ctx / "harness" / "__init__.py")
    for src in _app_sources():
        shutil.copy2(src, ctx / "harness" / "apps" / src.name)
    shutil.copytree(wheelhouse, ctx / "wheelhouse")
    return ctx


def build(client: docker.DockerClient, *, base: str = "auto", mirror: str | None = None,
          cache: Path | None = None, log: Log = _quiet, no_cache: bool = False) -> ImageInfo:
    """Build (or find, by content hash) ``bench-apps:<key>``; also tag it ``bench-apps:latest``.

    ``no_cache`` rebuilds the base (if it is the project's own), the wheelhouse and
    the image from scratch. Needs the network for PyPI only (and for the Debian
    mirror the first time the base is made); the image build itself has none.

    Raises:
        UserError: any step failed, the engine's own errors included (a refused image
            reference, an engine that went away); one line, saying which step, with its
            last output.
    """
    import docker.errors
    import requests

    try:
        return _build(client, base=base, mirror=mirror, cache=cache, log=log,
                      no_cache=no_cache)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise UserError(f"docker: {engine_message(exc)}") from None


def _build(client: docker.DockerClient, *, base: str, mirror: str | None, cache: Path | None,
           log: Log, no_cache: bool) -> ImageInfo:
    import docker.errors

    cache = cache or cache_root()
    start = time.monotonic()
    base_ref = resolve_base(client, base, cache, mirror=mirror, log=log, refresh=no_cache)
    assert base_ref is not None
    base_id = _image_id(client, base_ref) or ""
    key = image_key(base_id)
    tag = f"{IMAGE_REPO}:{key[:16]}"
    existing = _image_id(client, tag)
    if existing and not no_cache:
        log(f"app image: cached {tag}")
        client.images.get(tag).tag(IMAGE_REPO, "latest")
        return ImageInfo(tag, existing, key, base_ref, base_id, cached=True,
                         build_s=time.monotonic() - start,
                         packages=image_packages(client, tag))
    wheelhouse = build_wheelhouse(cache, log=log, refresh=no_cache)
    ctx = _stage_context(cache, wheelhouse, key)
    try:
        log(f"docker build {tag} FROM {base_ref} (network none)")
        error = ""
        for chunk in client.api.build(
                path=str(ctx), dockerfile="Dockerfile", tag=tag, rm=True, forcerm=True,
                pull=False, nocache=no_cache, network_mode="none", decode=True,
                buildargs={"BASE_IMAGE": base_ref},
                labels={"io.bench.key": key, "io.bench.base-image": base_ref,
                        "io.bench.base-image-id": base_id,
                        "io.bench.recipe": str(RECIPE_VERSION)}):
            if "stream" in chunk:
                for line in str(chunk["stream"]).splitlines():
                    if line.strip():
                        log(f"  {line}")
            if "error" in chunk:
                error = str(chunk["error"]).strip()
        if error:
            raise UserError(f"docker build failed: {error}")
    except docker.errors.APIError as exc:
        raise UserError(f"docker build failed: {engine_message(exc)}") from None
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    image_id = _image_id(client, tag)
    if image_id is None:
        raise UserError(f"docker build finished without an image {tag}")
    client.images.get(tag).tag(IMAGE_REPO, "latest")
    with contextlib.suppress(OSError):
        (cache / "last-build.json").write_text(json.dumps({"image": tag, "key": key}))
    return ImageInfo(tag, image_id, key, base_ref, base_id, cached=False,
                     build_s=time.monotonic() - start, packages=image_packages(client, tag))
