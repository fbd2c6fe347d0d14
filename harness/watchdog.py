"""The run's watchdog: ``python -m harness.watchdog RUN_DIR``.

Started by the runner at the start of a run (``harness.procs.spawn``, its own process
group, no parent-death signal), it waits for the ``bench`` process recorded in
``RUN_DIR/run.json`` to exit (``pidfd_open`` + ``select``: woken at once, no polling),
then cleans up after it with :func:`clean_run`:

* stops every process group in ``RUN_DIR/groups.json`` that is still the one recorded
  (``harness.procs.kill_recorded``: SIGTERM, 2 s, SIGKILL);
* removes the run's containers and networks (compose projects ``bench-<run suffix>-*``,
  found by their ``com.docker.compose.project`` label, through the docker SDK, only if
  it is installed and an engine answers);
* marks ``run.json`` ``crashed`` (atomically) if it still says ``running``.

When the run ends normally the runner stops the watchdog (SIGTERM, whose default action
ends it before it does anything); if that stop never comes, the watchdog still sees the
harness exit, finds nothing left to stop and a final status, and exits by itself.
``bench clean`` calls :func:`clean_run` on runs whose harness is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import procs
from harness.runmeta import CrashMeta, RunMeta

#: How long recorded groups get to exit after SIGTERM before SIGKILL (s). Short: the
#: harness is gone, nobody reads what they would flush, and the whole sweep must end
#: within a few seconds of the kill.
GRACE_S = 2.0
COMPOSE_LABEL = "com.docker.compose.project"
GROUPS_FILE = "groups.json"


@dataclass
class Cleanup:
    """What :func:`clean_run` found (and, unless a dry run, stopped or removed)."""

    run_dir: Path
    status: str
    groups: list[int] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    marked_crashed: bool = False
    docker_note: str = ""


def run_suffix(run_id: str) -> str | None:
    """The 6-hex tail of a run id (``harness.plan.new_run_id``), which names its
    compose projects ``bench-<suffix>-<config>-<hex>``; None if the id has none."""
    match = re.search(r"-([0-9a-f]{6})$", run_id)
    return match.group(1) if match else None


def _docker_leftovers(suffix: str, *, remove: bool, engine_env: Mapping[str, str] | None = None
                      ) -> tuple[list[str], list[str], str]:
    """(containers, networks) of projects ``bench-<suffix>-*``, removed if ``remove``;
    and a note when docker could not be asked. ``engine_env``: the variables of
    run.json's ``engine`` (the engine the run used, harness.dockerhost), asked instead
    of the one this process's environment names."""
    try:
        import docker
        from docker.errors import DockerException, NotFound
    except ImportError:
        return [], [], "docker SDK not installed"
    prefix = f"bench-{suffix}-"
    try:
        named = dict(engine_env) if engine_env else None
        client = docker.from_env(timeout=10, environment=named)
        client.ping()
        label = {"label": COMPOSE_LABEL}
        containers = [c for c in client.containers.list(all=True, ignore_removed=True,
                                                         filters=label)
                      if str(c.labels.get(COMPOSE_LABEL, "")).startswith(prefix)]
        names = [c.name for c in containers]
        if remove:
            for c in containers:
                with contextlib.suppress(NotFound):
                    c.remove(force=True, v=True)
        networks = [n for n in client.networks.list(filters=label)
                    if str((n.attrs.get("Labels") or {}).get(COMPOSE_LABEL, "")).startswith(prefix)]
        net_names = [n.name for n in networks]
        if remove:
            for n in networks:
                with contextlib.suppress(NotFound):
                    n.remove()
        return names, net_names, ""
    except Exception as exc:
        # paramiko's errors (an ssh engine) are neither DockerException nor OSError
        if not (isinstance(exc, DockerException | OSError)
                or type(exc).__module__.startswith("paramiko")):
            raise
        return [], [], f"no docker engine answered ({type(exc).__name__})"


def _read_meta(run_dir: Path) -> RunMeta:
    """run.json, or a blank record when it is missing or unreadable (nothing recorded:
    nothing to stop or remove by it)."""
    try:
        return RunMeta.from_dict(json.loads((run_dir / "run.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):  # RecordError is a ValueError
        return RunMeta()


def clean_run(run_dir: Path, *, dry_run: bool = False, grace_s: float = GRACE_S,
              docker: bool = True, detected_by: str = "bench clean") -> Cleanup:
    """Stop what a run whose harness is gone left behind, by its records only.

    Groups from ``RUN_DIR/groups.json`` that are still the ones recorded, containers
    and networks labelled with the run's compose projects; then ``run.json``'s status
    ``running`` becomes ``crashed`` (with ``crash`` details). ``dry_run``: find, touch
    nothing. The caller checks that the harness is gone; this process's own group is
    never signalled.
    """
    meta = _read_meta(run_dir)
    status = meta.status or "unknown"
    groups = procs.read_groups(run_dir / GROUPS_FILE)
    own = os.getpgid(0)
    report = Cleanup(run_dir, status)
    if dry_run:
        report.groups = [int(g["pgid"]) for g in groups if int(g["pgid"]) != own and procs.ours(g)]
    else:
        report.groups = procs.kill_recorded(groups, grace_s=grace_s, skip=[own])
    suffix = run_suffix(meta.run_id or run_dir.name)
    if docker and suffix:
        report.containers, report.networks, report.docker_note = _docker_leftovers(
            suffix, remove=not dry_run, engine_env=meta.engine.env)
    if not dry_run:
        remove_component_dirs(meta)
    if status == "running" and not dry_run:
        report.marked_crashed = mark_crashed(run_dir, report, detected_by)
    return report


def remove_component_dirs(meta: RunMeta) -> None:
    """Remove the temporary PostgreSQL cluster a run made (``run.json`` ``components``
    ``postgres.dir``; only a ``bench-pg-*`` folder in the temp folder), once its
    processes are gone (``harness.postgres.remove_cluster_dir``)."""
    cluster = meta.components.postgres.dir
    if cluster:
        from harness.postgres import remove_cluster_dir

        remove_cluster_dir(cluster)


def mark_crashed(run_dir: Path, report: Cleanup, detected_by: str) -> bool:
    """``run.json`` status ``running`` -> ``crashed`` (atomic); False if it says otherwise."""
    from harness.atomic import atomic_write_json

    meta = _read_meta(run_dir)
    if meta.status != "running":
        return False
    now = datetime.now(UTC).isoformat()
    meta = meta.replace(status="crashed", ended_at=now, crash=CrashMeta(
        detected_by=detected_by, detected_at=now,
        reason="the bench process exited without finishing the run",
        stopped_groups=tuple(report.groups), removed_containers=tuple(report.containers),
        removed_networks=tuple(report.networks)))
    atomic_write_json(run_dir / "run.json", meta.to_dict())
    return True


def wait_for_exit(recorded: dict[str, Any], poll_s: float = 0.5) -> None:
    """Return once the process :func:`harness.procs.identity` recorded has exited."""
    pid = int(recorded["pid"])
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):  # no pidfd (old kernel): poll
        while procs.same_process(recorded):
            time.sleep(poll_s)
        return
    try:
        # Opened first, checked second: a pid recycled before pidfd_open fails the check.
        if not procs.same_process(recorded):
            return
        while not select.select([fd], [], [], 60)[0]:
            pass
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m harness.watchdog RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    process = _read_meta(run_dir).harness
    if process.pid is None:
        print(f"watchdog: {run_dir}/run.json names no harness pid", file=sys.stderr)
        return 2
    recorded = process.identity()
    wait_for_exit(recorded)
    started = time.monotonic()
    report = clean_run(run_dir, detected_by="watchdog")
    print(f"watchdog: harness {recorded['pid']} gone; stopped groups {report.groups}, "
          f"removed containers {report.containers} networks {report.networks}"
          f"{' (' + report.docker_note + ')' if report.docker_note else ''}; "
          f"run.json {'marked crashed' if report.marked_crashed else 'left ' + report.status}"
          f" in {time.monotonic() - started:.2f} s", flush=True)
    remove_child_dir(_read_meta(run_dir))
    return 0


def remove_child_dir(meta: RunMeta) -> None:
    """Remove the dead harness's private children folder (``harness.procs.child_dir``),
    which its exit handler never got to remove; only a ``bench-children-*`` folder in
    the temp folder."""
    recorded = meta.children.dir
    if not recorded:
        return
    path = Path(recorded)
    if path.name.startswith("bench-children-") and path.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
