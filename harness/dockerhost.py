"""Which Docker engine a run talks to, and whether its containers' processes are on this host.

The engine is named as the docker CLI names it, in this order: ``bench run --docker-host``
(a URL, ``unix://``, ``tcp://`` or ``ssh://user@host``, or the name of a docker context),
else ``DOCKER_HOST``, else ``DOCKER_CONTEXT``, else the ``currentContext`` of the docker
config (``$DOCKER_CONFIG/config.json``, default ``~/.docker``), else the local socket
``unix:///var/run/docker.sock``.

A context is resolved to the environment the docker SDK and the compose CLI both read
(``DOCKER_HOST``, and for a TLS context ``DOCKER_CERT_PATH`` and ``DOCKER_TLS_VERIFY``),
so the SDK client, compose, the database service and the watchdog all reach the same
engine. The context store is read here from its on-disk layout (``contexts/meta/<sha256
of the name>/meta.json``, TLS files under ``contexts/tls/<same>/docker/``), the layout the
docker CLI writes and the SDK reads: the SDK's own lookup
(``docker.context.ContextAPI.get_context``) finds no context when the config folder has
no ``config.json`` (``find_config_file`` returns None and it looks in ``./contexts``),
which is the case in a fresh ``DOCKER_CONFIG``.

``ssh://`` engines go through the SDK's paramiko transport (the ``docker[ssh]`` extra);
its host key must already be known (``~/.ssh/known_hosts``: the SDK rejects unknown ones).

No docker import at module level: ``bench --help`` must not load the SDK.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError

if TYPE_CHECKING:
    import docker

DEFAULT_URL = "unix:///var/run/docker.sock"
#: The environment that names an engine and how to reach it (SDK, compose, docker CLI).
ENGINE_ENV = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
              "DOCKER_TLS_VERIFY")
#: The URL schemes the docker SDK connects to (``docker.api.client.APIClient``).
SCHEMES = ("unix://", "tcp://", "http://", "https://", "ssh://")
#: Per-process figures only psutil on the engine's own host gives: missing when the
#: engine's processes are elsewhere (see :attr:`Endpoint.local`).
PSUTIL_ONLY = ("PSS", "USS", "RSS", "open files", "held connections", "server processes",
               "server CPU set busy %")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An engine: ``url`` the SDK connects to, where it was named (``source``: ``--docker-host``,
    ``DOCKER_HOST``, ``context NAME``, ``default``), and ``env``: the variables that make the
    SDK and the compose CLI reach it (``DOCKER_HOST`` at least)."""

    url: str
    source: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        """A unix socket: the engine runs on this host, so the harness can read its
        containers' processes with psutil (``/proc``). Any other URL (tcp, ssh) is remote."""
        return self.url.startswith("unix://")

    def as_dict(self) -> dict[str, Any]:
        """What run.json records; ``env`` lets ``bench clean`` and the watchdog reach this
        engine again (variables and a certificate folder's path, no key material)."""
        return {"url": self.url, "source": self.source, "local": self.local,
                "tls": self.env.get("DOCKER_TLS_VERIFY") == "1", "env": dict(self.env)}


def sees_processes(endpoint: Endpoint, target_host: str | None) -> bool:
    """Whether psutil on this host can read the engine's container processes: a unix
    socket (:attr:`Endpoint.local`) and no ``--target-host`` (which says the servers run
    on another host, e.g. an engine in a VM behind a local socket)."""
    return endpoint.local and target_host is None


def _config_dir(environ: Mapping[str, str]) -> Path:
    """``$DOCKER_CONFIG``, else ``~/.docker`` (the docker CLI's config folder)."""
    given = environ.get("DOCKER_CONFIG")
    home = environ.get("HOME") or str(Path.home())
    return Path(given) if given else Path(home) / ".docker"


def _current_context(environ: Mapping[str, str]) -> str:
    """``currentContext`` of the docker config, ``default`` when unset or unreadable."""
    try:
        data = json.loads((_config_dir(environ) / "config.json").read_text())
    except (OSError, ValueError):
        return "default"
    name = data.get("currentContext") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else "default"


def context_env(name: str, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """(URL, environment) of docker context ``name`` from the context store.

    Raises:
        UserError: no such context, or its metadata is unreadable or names no docker host.
    """
    store = _config_dir(environ) / "contexts"
    key = hashlib.sha256(name.encode()).hexdigest()
    meta = store / "meta" / key / "meta.json"
    try:
        endpoint = json.loads(meta.read_text())["Endpoints"]["docker"]
        url = str(endpoint["Host"])
    except FileNotFoundError:
        raise UserError(f"docker context {name!r}: no such context in {store} "
                        "(`docker context ls` lists them)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"docker context {name!r}: unreadable metadata {meta} ({exc})") from None
    env = {"DOCKER_HOST": url}
    tls = store / "tls" / key / "docker"
    if tls.is_dir():
        env["DOCKER_CERT_PATH"] = str(tls)
        env["DOCKER_TLS_VERIFY"] = "" if endpoint.get("SkipTLSVerify") else "1"
    return url, env


def resolve(docker_host: str | None = None,
            environ: Mapping[str, str] | None = None) -> Endpoint:
    """The engine ``docker_host`` (``--docker-host``: a URL or a context name) or, without it,
    ``environ`` (default ``os.environ``) names; see the module docstring for the order.

    Raises:
        UserError: an unknown scheme, or a context that does not exist.
    """
    env = os.environ if environ is None else environ
    if docker_host is not None:
        value = docker_host.strip()
        if "://" in value:
            return Endpoint(_checked_url(value, "--docker-host"), "--docker-host",
                            {"DOCKER_HOST": value})
        if not value:
            raise UserError("--docker-host '': expected a URL (unix://, tcp://, ssh://user@host) "
                            "or a docker context name")
        url, ctx = context_env(value, env)
        return Endpoint(_checked_url(url, f"docker context {value!r}"), f"context {value}", ctx)
    if env.get("DOCKER_HOST"):
        url = _checked_url(env["DOCKER_HOST"], "DOCKER_HOST")
        passed = {k: env[k] for k in ("DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")
                  if env.get(k)}
        return Endpoint(url, "DOCKER_HOST", passed)
    name = env.get("DOCKER_CONTEXT") or _current_context(env)
    if name != "default":
        url, ctx = context_env(name, env)
        return Endpoint(_checked_url(url, f"docker context {name!r}"), f"context {name}", ctx)
    return Endpoint(DEFAULT_URL, "default", {"DOCKER_HOST": DEFAULT_URL})


def _checked_url(url: str, what: str) -> str:
    if not url.startswith(SCHEMES):
        raise UserError(f"{what} {url!r}: expected a URL like unix:///var/run/docker.sock, "
                        "tcp://HOST:2376 or ssh://user@host")
    return url


def export(endpoint: Endpoint, environ: dict[str, str] | os._Environ[str]) -> None:
    """Make ``environ`` name ``endpoint`` alone: its variables set, the other engine
    variables (a context, TLS settings of another engine) removed; ``DOCKER_CONFIG`` kept."""
    for name in ENGINE_ENV:
        if name != "DOCKER_CONFIG" and name not in endpoint.env:
            environ.pop(name, None)
    for name, value in endpoint.env.items():
        if value:
            environ[name] = value
        else:
            environ.pop(name, None)


def client(endpoint: Endpoint, *, timeout: float = 60) -> docker.DockerClient:
    """A docker SDK client for ``endpoint`` that answered a ping.

    Raises:
        UserError: no engine answers there, or ``ssh://`` without paramiko (one line each).
    """
    import docker
    import docker.errors

    try:
        made = docker.from_env(environment=dict(endpoint.env), timeout=int(timeout))
        made.ping()
    except docker.errors.DockerException as exc:
        text = " ".join(str(exc).split())[:160]
        hint = ("install the ssh transport: pip install 'docker[ssh]'"
                if "paramiko" in text else "start dockerd, or name another engine with "
                "--docker-host / DOCKER_HOST / a docker context")
        raise UserError(f"no Docker engine reachable at {endpoint.url} (from {endpoint.source}): "
                        f"{text}; {hint}") from None
    except Exception as exc:
        # ssh: refused (an OSError), an unknown host key or a failed login (paramiko's
        # SSHException), raised while the SDK builds its transport.
        if not (isinstance(exc, OSError) or type(exc).__module__.startswith("paramiko")):
            raise
        text = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise UserError(f"no Docker engine reachable at {endpoint.url} (from {endpoint.source}): "
                        f"{text}") from None
    return made
