"""harness.machine: CPU lists are parsed and checked against the CPUs usable here (ranges
as intervals, every missing one named), the default server/load split, the git state of
the code measured (commit, dirty, work tree; nulls outside git), and the machine facts a
run records."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import psutil
import pytest

from harness import procs
from harness.errors import UserError
from harness.machine import (
    PACKAGES,
    default_cpu_sets,
    git_info,
    machine_info,
    package_versions,
    parse_cpus,
    require_disjoint,
)

USABLE = sorted(os.sched_getaffinity(0))
TOP = USABLE[-1]


def test_cpu_lists_are_parsed_sorted_and_without_repeats() -> None:
    assert parse_cpus(f" {TOP} ,{USABLE[0]},{TOP}", "--load-cpus") == sorted({USABLE[0], TOP})
    assert parse_cpus(f"{USABLE[0]}-{TOP}", "--server-cpus") == USABLE
    for bad in ("", "a", "1-", "-1", "3-1", "0,,1", "1.5"):
        with pytest.raises(UserError) as caught:
            parse_cpus(bad, "--server-cpus")
        assert str(caught.value) == (f"--server-cpus {bad!r}: expected CPU numbers like 0 "
                                     "or 0,1 or 0-3")


def test_missing_cpus_are_named_as_ranges_and_counted_past_eight() -> None:
    usable = ",".join(map(str, USABLE))
    with pytest.raises(UserError) as caught:
        parse_cpus(f"{USABLE[0]},{TOP + 1}-{TOP + 3},{TOP + 5}", "--load-cpus")
    assert str(caught.value).endswith(f": CPU {TOP + 1}-{TOP + 3}, {TOP + 5} not available "
                                      f"here (usable: {usable})")
    # ten separate missing CPUs: eight shown, the other two counted
    missing = [TOP + 2 * i for i in range(1, 11)]
    with pytest.raises(UserError) as caught:
        parse_cpus(",".join(map(str, missing)), "--server-cpus")
    shown = ", ".join(map(str, missing[:8]))
    assert f"CPU {shown} and 2 more not available" in str(caught.value)


def test_default_split_gives_the_load_the_last_cpu() -> None:
    assert default_cpu_sets({3, 0, 2, 1}) == ([0, 1, 2], [3])
    assert default_cpu_sets({5, 7}) == ([5], [7])
    assert default_cpu_sets({4}) == ([4], [4])  # one CPU: shared, the caller warns
    server, load = default_cpu_sets()  # this machine's own CPUs, each used once
    assert sorted({*server, *load}) == USABLE


@pytest.mark.skipif(len(USABLE) < 2, reason="one usable CPU: sharing it is allowed")
def test_overlapping_server_and_load_cpus_are_refused() -> None:
    require_disjoint(USABLE[:-1], USABLE[-1:])
    with pytest.raises(UserError, match=rf"overlap on CPU {TOP}: the load generator"):
        require_disjoint(USABLE, [TOP])


def _git(repo: Path, *args: str) -> None:
    procs.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
               "-c", "commit.gpgsign=false", *args], cwd=repo, timeout_s=20, check=True)


def test_git_info_follows_commits_and_tracked_changes(tmp_path: Path) -> None:
    outside = procs.run(["git", "rev-parse"], cwd=tmp_path, timeout_s=20).returncode != 0
    if outside:  # a temp folder that is in no repository
        assert git_info(tmp_path) == {"commit": None, "dirty": None, "work_tree": None}
    repo = tmp_path / "project"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    assert git_info(repo) == {"commit": None, "dirty": False, "work_tree": str(repo.resolve())}
    (repo / "app.py").write_text("x = 1\n")
    _git(repo, "add", "app.py")
    _git(repo, "commit", "-q", "-m", "first")
    head = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    assert git_info(repo) == {"commit": head, "dirty": False, "work_tree": str(repo.resolve())}
    (repo / "notes.txt").write_text("untracked files do not make it dirty\n")
    assert git_info(repo)["dirty"] is False
    (repo / "app.py").write_text("x = 2\n")
    assert git_info(repo)["dirty"] is True


def test_machine_facts_and_package_versions_match_their_sources() -> None:
    info = machine_info()
    assert info["logical_cpus"] == os.cpu_count()
    meminfo = Path("/proc/meminfo").read_text().split()
    total_kib = int(meminfo[meminfo.index("MemTotal:") + 1])
    assert info["memory_gib"] == pytest.approx(total_kib / 2**20, abs=0.01)
    assert info["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert info["kernel"] == os.uname().release and info["hostname"] == platform.node()
    assert info["physical_cpus"] == psutil.cpu_count(logical=False)
    versions = package_versions()
    assert tuple(versions) == PACKAGES
    assert versions["pandas"] == pd.__version__ == metadata.version("pandas")
    assert versions["psutil"] == psutil.__version__
