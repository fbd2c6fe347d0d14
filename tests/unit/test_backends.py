"""harness.backends: the registry gives the local backend or refuses a name in one line;
placement checks --docker-host and --target-host without asking an engine and says whether
psutil will see the servers; background stops run in threads and give back their errors."""

from __future__ import annotations

import threading

import pytest

from harness.backends import BackgroundStops, get_backend, placement
from harness.backends.local import LocalBackend
from harness.errors import UserError


def test_the_local_backend_sees_its_servers_with_psutil() -> None:
    backend = get_backend("local")
    assert isinstance(backend, LocalBackend) and backend.name == "local"
    backend.check()  # needs nothing beyond the package
    assert backend.run_meta()["resource_view"]["psutil"] is True
    assert placement("local") is True
    with pytest.raises(UserError, match=r"^unknown backend 'k8s' \(known: local, docker\)$"):
        get_backend("k8s")


def test_engine_and_target_options_belong_to_the_docker_backend() -> None:
    with pytest.raises(UserError, match="--docker-host names a Docker engine: it needs "
                                        "--backend docker, not local"):
        placement("local", docker_host="tcp://10.0.0.5:2375")
    with pytest.raises(UserError, match="^--target-host 127.0.0.1: the local backend"):
        placement("local", target_host="127.0.0.1")
    with pytest.raises(UserError, match="nothing listens on ::1; use 127.0.0.1"):
        placement("docker", docker_host="unix:///no/such.sock", target_host="::1")


def test_placement_says_whether_psutil_sees_the_containers_without_asking_an_engine() -> None:
    # No engine is contacted: none of these sockets or hosts exists.
    assert placement("docker", docker_host="unix:///no/such.sock") is True
    assert placement("docker", docker_host="unix:///no/such.sock", target_host="127.0.0.1") \
        is False  # a target given: the servers run on another host (e.g. a VM's engine)
    assert placement("docker", docker_host="tcp://192.0.2.1:2375") is False
    assert placement("docker", docker_host="ssh://ops@192.0.2.1") is False
    with pytest.raises(UserError, match="--docker-host 'ftp://x': expected a URL"):
        placement("docker", docker_host="ftp://x")


class _SlowStop:
    """A deployment whose stop waits until the test lets it finish (or fails)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.release = threading.Event()
        self.error = error
        self.stopped = False

    def stop(self) -> None:
        assert self.release.wait(10), "never released"
        self.stopped = True
        if self.error is not None:
            raise self.error


def test_background_stops_overlap_the_caller_and_raise_the_first_error() -> None:
    stops = BackgroundStops()
    ok, failing = _SlowStop(), _SlowStop(RuntimeError("compose down failed"))
    stops.stop(ok)  # returns while the stop still waits: it runs in a thread
    stops.stop(failing)
    assert not stops.idle()
    ok.release.set()
    failing.release.set()
    with pytest.raises(RuntimeError, match="compose down failed"):
        stops.join()
    assert stops.idle() and ok.stopped and failing.stopped
    stops.join()  # the error was given back once


def test_background_stop_errors_can_be_left_unraised() -> None:
    stops = BackgroundStops()
    failing = _SlowStop(OSError("engine gone"))
    failing.release.set()
    stops.stop(failing)
    stops.join(raise_errors=False)
    assert stops.idle() and failing.stopped
