"""harness.dockerhost without an engine: what run.json records of an engine, whether psutil
sees its processes, context stores the docker CLI wrote (a TLS context that skips
verification, damaged metadata, a config without a current context), exporting one engine
alone into an environment, and the one-line refusal when nothing answers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from harness import dockerhost
from harness.dockerhost import Endpoint
from harness.errors import UserError


def store_context(config: Path, name: str, meta: object, *, tls: bool = False) -> Path:
    """Context ``name`` as ``docker context create`` stores it (metadata under the sha256
    of the name); its TLS folder if ``tls``."""
    key = hashlib.sha256(name.encode()).hexdigest()
    folder = config / "contexts" / "meta" / key
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    certs = config / "contexts" / "tls" / key / "docker"
    if tls:
        certs.mkdir(parents=True)
    return certs


def docker_meta(host: str, *, skip_verify: bool = False) -> dict[str, object]:
    return {"Name": "x", "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_verify}}}


def test_what_run_json_records_of_an_engine() -> None:
    tls = Endpoint("tcp://192.0.2.7:2376", "DOCKER_HOST",
                   {"DOCKER_HOST": "tcp://192.0.2.7:2376", "DOCKER_TLS_VERIFY": "1"})
    record = tls.as_dict()
    assert record == {"url": "tcp://192.0.2.7:2376", "source": "DOCKER_HOST", "local": False,
                      "tls": True, "env": tls.env}
    record["env"]["DOCKER_HOST"] = "changed"
    assert tls.env["DOCKER_HOST"] == "tcp://192.0.2.7:2376"  # a copy, not the endpoint's
    local = Endpoint("unix:///var/run/docker.sock", "default")
    assert local.as_dict()["tls"] is False and local.local
    assert dockerhost.sees_processes(local, None)
    assert not dockerhost.sees_processes(local, "127.0.0.1")  # a target: servers elsewhere
    assert not dockerhost.sees_processes(tls, None)


def test_a_context_that_skips_tls_verification_is_exported_without_verify(
        tmp_path: Path) -> None:
    certs = store_context(tmp_path, "lab", docker_meta("tcp://192.0.2.7:2376", skip_verify=True),
                          tls=True)
    endpoint = dockerhost.resolve("lab", {"DOCKER_CONFIG": str(tmp_path)})
    assert endpoint.env == {"DOCKER_HOST": "tcp://192.0.2.7:2376",
                            "DOCKER_CERT_PATH": str(certs), "DOCKER_TLS_VERIFY": ""}
    assert endpoint.as_dict()["tls"] is False
    environ = {"DOCKER_CONTEXT": "lab", "DOCKER_TLS_VERIFY": "1", "DOCKER_CONFIG": str(tmp_path),
               "PATH": "/bin"}
    dockerhost.export(endpoint, environ)
    # The engine alone: its host and certificates, no stale verify flag, no context name.
    assert environ == {"DOCKER_HOST": "tcp://192.0.2.7:2376", "DOCKER_CERT_PATH": str(certs),
                       "DOCKER_CONFIG": str(tmp_path), "PATH": "/bin"}


@pytest.mark.parametrize(("meta", "message"), [
    ("{not json", "unreadable metadata"),
    ({"Name": "bad", "Endpoints": {}}, "unreadable metadata"),
    ({"Endpoints": {"docker": {"Host": "npipe:////./pipe/docker_engine"}}},
     "docker context 'bad' 'npipe:////./pipe/docker_engine': expected a URL like"),
])
def test_a_damaged_or_foreign_context_is_one_line(tmp_path: Path, meta: object,
                                                  message: str) -> None:
    store_context(tmp_path, "bad", meta)
    for how in ({"docker_host": "bad", "environ": {"DOCKER_CONFIG": str(tmp_path)}},
                {"environ": {"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "bad"}}):
        with pytest.raises(UserError, match=message) as info:
            dockerhost.resolve(**how)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("config", ["{not json", '{"currentContext": ""}',
                                    '{"currentContext": 7}', '["currentContext"]'])
def test_a_config_without_a_usable_current_context_means_the_local_socket(
        tmp_path: Path, config: str) -> None:
    (tmp_path / "config.json").write_text(config)
    endpoint = dockerhost.resolve(None, {"DOCKER_CONFIG": str(tmp_path)})
    assert (endpoint.url, endpoint.source) == (dockerhost.DEFAULT_URL, "default")
    assert endpoint.env == {"DOCKER_HOST": dockerhost.DEFAULT_URL}


def test_docker_host_passes_on_only_the_tls_settings_that_are_set() -> None:
    e = dockerhost.resolve(None, {"DOCKER_HOST": "tcp://192.0.2.7:2376", "DOCKER_TLS_VERIFY": "",
                                  "DOCKER_CERT_PATH": "/certs", "HOME": "/root"})
    assert (e.source, e.env) == ("DOCKER_HOST", {"DOCKER_HOST": "tcp://192.0.2.7:2376",
                                                 "DOCKER_CERT_PATH": "/certs"})
    with pytest.raises(UserError, match=r"^--docker-host '': expected a URL"):
        dockerhost.resolve("  ", {})


def test_no_engine_answering_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/no-engine.sock"
    with pytest.raises(UserError) as info:
        dockerhost.client(dockerhost.resolve(url, {}), timeout=5)
    message = str(info.value)
    assert message.startswith(f"no Docker engine reachable at {url} (from --docker-host): ")
    assert message.endswith("start dockerd, or name another engine with --docker-host / "
                            "DOCKER_HOST / a docker context")
    assert "\n" not in message
