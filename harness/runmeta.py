"""run.json's metadata, typed, in exactly one place.

:class:`RunMeta` is the top level of ``run.json``; each section (scenario, machine, CPU
sets, versions, the harness process, components, deployments, the oracle, ...) is a
frozen record of its own (harness.record: construction checks every type, unknown keys
kept in ``extra``, the key order read kept so a stored run written back is the same
bytes). Readers get it from :func:`harness.results.load_run` (``RunData.meta``) and read
attributes; the runner builds it (:func:`harness.plan.initial_meta`), replaces fields as
the run goes (:meth:`Record.replace`) and writes it with :meth:`Record.to_dict`.

Every field has a default, because runs of older schemas lack keys later ones added
(``apps``, ``stacks``, ``warmup``, ``requests_kept``, ...): ``None`` (or an empty
tuple, mapping or section) reads as "not recorded". Units are in the names (``_s``,
``_ms``, ``_gib``, ``_percent``); CPU lists are CPU numbers as the kernel counts them.

Why unknown keys are kept, not refused: a run written by a newer bench of the same
schema version (a key added without a migration, e.g. a load agent's settings) and a
run of an older schema (a key since dropped) must both stay readable, and the watchdog
or ``bench clean`` rewriting one must not lose what it recorded. A newer *schema* is
still refused by :func:`harness.results.load_run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.record import Record, RecordError, optional

__all__ = ["RUN_STATUSES", "RecordError", "RunMeta"]

#: What ``status`` says of a run: ``running`` until it ends (or a reader finds its
#: harness process gone: ``crashed``, harness.results.crashed_if_harness_gone).
RUN_STATUSES = ("running", "complete", "interrupted", "failed", "crashed")


# ----------------------------------------------------------------------------- scenario

@dataclass(frozen=True, kw_only=True)
class SloMeta(Record):
    """The scenario's service-level objective: p99 latency (ms), error rate (0..1)."""

    p99_ms: float | None = None
    max_error_rate: float | None = None


@dataclass(frozen=True, kw_only=True)
class ValidityMeta(Record):
    """When a trial is invalid: error rate above ``max_error_rate`` (0..1), the load
    generator above ``max_generator_cpu_percent`` (% of one core)."""

    max_error_rate: float | None = None
    max_generator_cpu_percent: float | None = None


@dataclass(frozen=True, kw_only=True)
class OwnAppMeta(Record):
    """An own app (``--app``): its import string, interface, folder and the names (not
    values) of the environment variables it got."""

    target: str | None = None
    interface: str | None = None
    app_dir: str | None = None
    env: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ExpectMeta(Record):
    """What an own app's answer must be: HTTP status, body length (bytes) or a text it
    contains; ``None``: not checked."""

    status: int | None = None
    body_bytes: int | None = None
    contains: str | None = None


@dataclass(frozen=True, kw_only=True)
class ScenarioMeta(Record):
    """The workload as run: the scenario file's values and the sweep the CLI chose."""

    name: str | None = None
    description: str | None = None
    protocol: str | None = None
    method: str | None = None
    request_path: str | None = None
    params: Mapping[str, Any] = optional({})
    users: tuple[int, ...] = ()
    arrival_rates: tuple[float, ...] = ()
    warmup_s: float | None = None
    max_warmup_s: float | None = None
    steady: bool | None = None
    duration_s: float | None = None
    repeats: int | None = None
    slo: SloMeta = optional(SloMeta)
    app: OwnAppMeta = optional(OwnAppMeta)
    headers: tuple[str, ...] = optional(())
    body_bytes: int | None = optional()
    expect: ExpectMeta = optional(ExpectMeta)
    validity: ValidityMeta = optional(ValidityMeta)

    def params_text(self) -> str:
        """``"k=v,k2=v2"``, sorted by name ("" without parameters): what tells two
        workloads of one scenario apart in names, labels and history keys."""
        return ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))

    def label(self, name: str | None = None, unnamed: str = "") -> str:
        """``"io-heavy latency_ms=50"``: ``name`` (default: the scenario's, else
        ``unnamed``) and :meth:`params_text`."""
        name = name or self.name or unnamed
        text = self.params_text()
        return f"{name} {text}" if text else name


@dataclass(frozen=True, kw_only=True)
class WarmupMeta(Record):
    """How each level's warm-up ended: ``fixed`` (``s`` seconds) or ``steady``
    (harness.steady: between ``min_s`` and ``max_s``, with the detector's bounds)."""

    mode: str | None = None
    s: float | None = optional()
    min_s: float | None = optional()
    max_s: float | None = optional()
    drift_bound: float | None = optional()
    drift_floor_ms: float | None = optional()
    littles_law_tolerance: float | None = optional()
    eval_min_s: float | None = optional()
    eval_min_requests: int | None = optional()


# ------------------------------------------------------------------------ what was run

@dataclass(frozen=True, kw_only=True)
class ServerEntry(Record):
    """One server config of the run (harness.servers), with its command line
    (``port`` 0 and ``python`` as placeholders)."""

    name: str | None = None
    interface: str | None = None
    workers: int | None = None
    threads: int | None = None
    worker_connections: int | None = None
    argv: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class AppEntry(Record):
    """One app of the run (harness.stacks.AppSpec): ``raw``, a framework flavour or own."""

    name: str | None = None
    framework: str | None = None
    framework_version: str | None = None
    interfaces: tuple[str, ...] = ()
    targets: Mapping[str, str] = optional({})
    notes: str | None = None


@dataclass(frozen=True, kw_only=True)
class StackEntry(Record):
    """One (server config, app) pair; ``unsupported``: why it was not started ("")."""

    name: str | None = None
    server: str | None = None
    app: str | None = None
    interface: str | None = None
    target: str | None = None
    unsupported: str | None = None
    argv: tuple[str, ...] = ()


# ---------------------------------------------------------------------- where it ran

@dataclass(frozen=True, kw_only=True)
class CpusMeta(Record):
    """The CPU sets: the server's, the load generator's, the harness's own threads';
    ``shared``: the server and load sets overlap (one-core machine)."""

    server: tuple[int, ...] = ()
    load: tuple[int, ...] = ()
    harness: tuple[int, ...] = ()
    shared: bool | None = None


@dataclass(frozen=True, kw_only=True)
class MachineMeta(Record):
    """harness.machine.machine_info: CPU, memory (GiB), OS, kernel, governor, Python."""

    hostname: str | None = None
    cpu_model: str | None = None
    logical_cpus: int | None = None
    physical_cpus: int | None = None
    memory_gib: float | None = None
    os: str | None = None
    kernel: str | None = None
    cpu_governor: str | None = None
    python: str | None = None
    python_implementation: str | None = None

    def label(self, times: str = "×") -> str:
        """``"AMD EPYC ×2"``: the CPU model and logical CPUs, for grouping runs."""
        cpus = "?" if self.logical_cpus is None else self.logical_cpus
        return f"{self.cpu_model or 'unknown CPU'} {times}{cpus}"


@dataclass(frozen=True, kw_only=True)
class GitMeta(Record):
    """harness.machine.git_info: the commit benchmarked, uncommitted changes, the tree."""

    commit: str | None = None
    dirty: bool | None = None
    work_tree: str | None = optional()


@dataclass(frozen=True, kw_only=True)
class EngineMeta(Record):
    """The docker engine (harness.dockerhost.Endpoint.as_dict): its URL, where that came
    from, whether it is on this host, TLS, and the variables that reach it again."""

    url: str | None = None
    source: str | None = None
    local: bool | None = None
    tls: bool | None = None
    env: Mapping[str, str] = optional({})


@dataclass(frozen=True, kw_only=True)
class ResourceView(Record):
    """Where the server's figures come from (a backend's ``run_meta``): psutil on this
    host, or the engine's stats only, with the figures then missing and why."""

    psutil: bool | None = None
    source: str | None = None
    reason: str | None = optional()
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class HarnessProcess(Record):
    """The ``bench`` process that ran it (harness.procs.identity) and its host."""

    pid: int | None = None
    boot_id: str | None = optional()
    start_ticks: int | None = optional()
    create_time: float | None = optional()
    host: str | None = None

    def identity(self) -> dict[str, Any]:
        """The form harness.procs.same_process compares."""
        return self.to_dict()


@dataclass(frozen=True, kw_only=True)
class ChildrenMeta(Record):
    """The empty folder children run in (also their HOME) and the empty config files
    gunicorn and locust are given."""

    dir: str | None = None
    cwd: str | None = None
    home: str | None = None
    gunicorn_config: str | None = None
    locust_config: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class CpuLocksMeta(Record):
    """The per-CPU locks the run held (harness.cpulock) and how long it waited (s)."""

    folder: str | None = None
    cpus: tuple[int, ...] = ()
    waited_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class AgentsMeta(Record):
    """Load agents (``--load-agents``, harness.load): the master's ``HOST:PORT`` and each
    connected agent as the master saw it (index, host, pid, clock offset and its
    uncertainty and round trip in ms: harness.agents)."""

    master: str | None = None
    connected: tuple[Mapping[str, Any], ...] = ()


# -------------------------------------------------------------- components, deployments

@dataclass(frozen=True, kw_only=True)
class PostgresMeta(Record):
    """The PostgreSQL component (harness.postgres / harness.dockerdb ``info``): ``dir``
    is the cluster folder the harness made (removed after the run); the other keys it
    records (bindir, command settings, the docker container, ...) are in ``extra``."""

    dir: str | None = optional()
    host: str | None = optional()
    port: int | None = optional()
    os_user: str | None = optional()
    pid: int | None = optional()
    settings_note: str | None = optional()
    table: str | None = optional()
    rows: int | None = optional()
    settings: Mapping[str, Any] = optional({})
    version: str | None = optional()
    sampling: Mapping[str, Any] = optional({})
    activity_error: str | None = optional()


@dataclass(frozen=True, kw_only=True)
class UpstreamMeta(Record):
    """The upstream HTTP component (harness.upstream ``info``)."""

    url: str | None = None
    pid: int | None = None
    cpus: tuple[int, ...] = ()
    argv: tuple[str, ...] = ()
    startup_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class ComponentsMeta(Record):
    """The run's components (harness.realio.Components.info): names, drivers per
    interface, pool size per worker process, their CPUs and placement, the first error."""

    names: tuple[str, ...] = ()
    drivers: Mapping[str, str] = optional({})
    pool_size: int | None = None
    pool_scope: str | None = None
    cpus: tuple[int, ...] = ()
    cpus_shared_with_server: bool | None = None
    placement: str | None = None
    env: tuple[str, ...] = ()
    error: str | None = None
    postgres: PostgresMeta = optional(PostgresMeta)
    upstream: UpstreamMeta = optional(UpstreamMeta)


@dataclass(frozen=True, kw_only=True)
class DeploymentEntry(Record):
    """One server started (a backend's ``Deployment.info``), per stack and repeat. The
    local and docker backends share the first keys; the docker-only ones follow."""

    server: str | None = None
    app: str | None = optional()
    repeat: int | None = None
    backend: str | None = None
    port: int | None = None
    pid: int | None = optional()
    publish_ip: str | None = optional()
    target_host: str | None = optional()
    psutil_view: bool | None = optional()
    engine: str | None = optional()
    compose_project: str | None = optional()
    service: str | None = optional()
    container_id: str | None = optional()
    container_pid: int | None = optional()
    startup_s: float | None = None
    argv: tuple[str, ...] = optional(())
    image: str | None = optional()
    image_id: str | None = optional()
    image_key: str | None = optional()
    base_image: str | None = optional()
    base_image_id: str | None = optional()
    limits: Mapping[str, Any] = optional({})
    compose: Mapping[str, Any] = optional({})
    engine_version: str | None = optional()
    packages: Mapping[str, str] = optional({})
    state_dir: str | None = optional()
    user_namespace: str | None = optional()


@dataclass(frozen=True, kw_only=True)
class OracleMeta(Record):
    """``bench run --cross-check`` (harness.cross_check): wrk, its agreement tolerance
    (0..1) and timeout (s), and per trial id what it did or why it did not run
    (``{"reason": ...}`` plus harness.oracle.OracleResult.as_dict)."""

    tool: str | None = None
    path: str | None = None
    version: str | None = None
    tolerance: float | None = None
    timeout_s: float | None = None
    warmup: str | None = None
    trials: Mapping[str, Mapping[str, Any]] = optional({})

    def reasons(self) -> dict[str, str]:
        """trial_id -> the oracle's reason (why not checked, or wrk's errors)."""
        return {tid: str(entry.get("reason", "")) for tid, entry in self.trials.items()}


@dataclass(frozen=True, kw_only=True)
class CrashMeta(Record):
    """Written by harness.watchdog / ``bench clean`` when the harness died mid-run: who
    found it, when (ISO 8601 UTC), and what they stopped and removed."""

    detected_by: str | None = None
    detected_at: str | None = None
    reason: str | None = None
    stopped_groups: tuple[int, ...] = ()
    removed_containers: tuple[str, ...] = ()
    removed_networks: tuple[str, ...] = ()


# ------------------------------------------------------------------------------- the run

@dataclass(frozen=True, kw_only=True)
class RunMeta(Record):
    """run.json: what the run was, where and how it ran, and how it ended. ``trials``
    repeats trials.csv's rows (harness.trial.Trial columns; ``null`` for NaN) so run.json
    alone is a complete record. ``migrated_from``: the schema it was written in, set in
    memory by harness.results.load_run for older runs."""

    schema_version: int = 0
    run_id: str | None = None
    status: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    command: tuple[str, ...] = ()
    backend: str | None = None
    load_mode: str | None = None
    load_processes: int | None = None
    load_agents: int | None = optional()
    #: "step-up": a stack's next level adds users to the running ones (harness.plan
    #: RunPlan.steps_up); "fresh": users stopped and the server proven idle between levels.
    level_transition: str | None = optional()
    requests_kept: bool | None = None
    keep_alive: bool | None = None
    start_spread_s: float | None = None
    warmup: WarmupMeta = optional(WarmupMeta)
    scenario: ScenarioMeta = optional(ScenarioMeta)
    servers: tuple[ServerEntry, ...] = ()
    apps: tuple[AppEntry, ...] = ()
    stacks: tuple[StackEntry, ...] = ()
    cpus: CpusMeta = optional(CpusMeta)
    machine: MachineMeta = optional(MachineMeta)
    versions: Mapping[str, str | None] = optional({})
    git: GitMeta = field(default_factory=GitMeta)  # written even when all null (no checkout)
    trials: tuple[Mapping[str, Any], ...] = ()
    clock_origin_unix_s: float | None = optional()
    engine: EngineMeta = optional(EngineMeta)
    target_host: str | None = optional()
    resource_view: ResourceView = optional(ResourceView)
    harness: HarnessProcess = optional(HarnessProcess)
    process_groups_file: str | None = optional()
    children: ChildrenMeta = optional(ChildrenMeta)
    cpu_locks: CpuLocksMeta = optional(CpuLocksMeta)
    watchdog_error: str | None = optional()
    components: ComponentsMeta = optional(ComponentsMeta)
    deployments: tuple[DeploymentEntry, ...] = optional(())
    oracle: OracleMeta = optional(OracleMeta)
    agents: AgentsMeta = optional(AgentsMeta)
    analysis_error: str | None = optional()
    crash: CrashMeta = optional(CrashMeta)
    crash_reason: str | None = optional()
    migrated_from: int | None = optional()

    def with_deployment(self, info: Mapping[str, Any]) -> RunMeta:
        """A copy with one more started server (``info``: :class:`DeploymentEntry` keys)."""
        return self.replace(deployments=(*self.deployments, DeploymentEntry.from_dict(info)))
