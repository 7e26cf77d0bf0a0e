"""``--by cgroup`` and ``export --cgroup-label``: memory per memory cgroup, from /proc/PID/cgroup.

The live tests make two cgroups of their own under a parent of their own, in the hierarchy that
holds the memory controller (the v1 ``memory`` one where it is mounted, else cgroup2), start a
process in each holding a different amount of memory, and check the per-cgroup totals in
``show`` and through a real Prometheus; the groups are removed after. Without a mount, or
without the permission to make cgroups there, they skip saying which.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from anonvma.cli import main
from anonvma.procmaps import system
from anonvma.procmaps.cgroup import cgroup_of, memory_cgroup
from procmaps_fixtures import DATA
from prometheus_helpers import fetch, free_port, prometheus_server, query, wait_for

MIB = 1 << 20
ANDROID = os.path.join(DATA, "android-handwritten", "smaps")
#: A child that writes every page of ``MIB`` MiB it holds, says so, and waits for its stdin to close.
HOLDER = ("import sys\nb = bytearray({mib} << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"
          "print('ready', flush=True)\nsys.stdin.read()\n")


def test_the_memory_controllers_path_is_taken_v1_memory_first_else_v2():
    hybrid = "12:pids:/a\n4:memory:/pod/one\n1:name=systemd:/x\n0::/unified/path\n"
    assert memory_cgroup(hybrid) == "/pod/one"
    assert memory_cgroup("0::/kubepods/pod1/c2\n") == "/kubepods/pod1/c2"
    assert memory_cgroup("3:cpu,cpuacct:/a\n5:memory,hugetlb:/b\n") == "/b"
    assert memory_cgroup("3:cpu:/a\n") is None  # v1 without the memory controller, no v2
    assert memory_cgroup("") is None
    assert memory_cgroup("0::/gone (deleted)\n") == "/gone (deleted)"  # as the kernel prints it


def test_the_cgroup_of_a_process_that_is_gone_is_unknown_not_an_error(tmp_path):
    assert cgroup_of(os.getpid()) == memory_cgroup(Path(f"/proc/{os.getpid()}/cgroup").read_text())
    assert cgroup_of(2 ** 22 + 1) is None  # above pid_max: no such process
    (tmp_path / "7").mkdir()  # a /proc where the process's directory has no cgroup file
    assert cgroup_of(7, str(tmp_path)) is None


def test_a_saved_file_has_an_unknown_cgroup_shown_as_question_mark_and_null(capsys):
    assert main(["show", ANDROID, "self", "--by", "cgroup", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["cgroup"]: r for r in doc["cgroups"]}
    assert rows[None]["processes"] == 1  # the saved file
    assert rows[cgroup_of(os.getpid())]["processes"] == 1
    assert main(["show", ANDROID, "self", "--by", "cgroup"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[-1] == "CGROUP" and "?" in [line.split()[-1] for line in lines[2:]]
    assert main(["show", ANDROID, "self", "--by", "cgroup", "--csv"]) == 0
    rows_csv = capsys.readouterr().out.splitlines()
    assert rows_csv[0].startswith("cgroup,processes,count,size,rss,pss,")
    assert any(r.startswith(",1,") for r in rows_csv[1:])  # the unknown cgroup: empty


def test_by_cgroup_wants_several_processes(capsys):
    assert main(["show", "self", "--by", "cgroup"]) == 2
    assert "--by cgroup needs --all or several PID|FILEs" in capsys.readouterr().err


def _memory_mount() -> Tuple[Optional[str], str]:
    """(where the hierarchy that :func:`cgroup_of` reports is mounted, its root in the mount), or
    ``None`` and why there is none."""
    mine = Path("/proc/self/cgroup").read_text()
    v1 = any("memory" in line.split(":")[1].split(",") for line in mine.splitlines() if line.count(":") >= 2)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            fstype, options = fields[dash + 1], fields[dash + 3].split(",")
            if (v1 and fstype == "cgroup" and "memory" in options) or (not v1 and fstype == "cgroup2"):
                return fields[4], fields[3]
    return None, ("no cgroup v1 memory controller mounted (in /proc/self/mountinfo)" if v1 else
                  "no cgroup2 filesystem mounted (in /proc/self/mountinfo)")


@contextlib.contextmanager
def two_cgroups() -> Iterator[Tuple[List[str], List[str]]]:
    """Two new cgroups under a new parent: (their directories, their paths as /proc/PID/cgroup
    prints them); all three removed on leaving (their processes must have left or ended)."""
    mount, root = _memory_mount()
    if mount is None:
        pytest.skip(root)
    parent = os.path.join(mount, f"anonvma-test-{uuid.uuid4().hex[:8]}")
    try:
        os.mkdir(parent)
    except OSError as err:
        pytest.skip(f"cannot make a cgroup in {mount}: {err.strerror} (making cgroups needs write "
                    "permission there: root, or a delegated subtree)")
    dirs = [os.path.join(parent, leaf) for leaf in ("small", "large")]
    try:
        for d in dirs:
            os.mkdir(d)
        yield dirs, [os.path.join(root, os.path.relpath(d, mount)) for d in dirs]
    finally:
        for d in [*dirs, parent]:
            if os.path.isdir(d):
                os.rmdir(d)


@contextlib.contextmanager
def holders(dirs: List[str], mibs: List[int]) -> Iterator[List[int]]:
    """A child holding ``mibs[i]`` MiB in cgroup ``dirs[i]``, each; their pids."""
    procs = []
    try:
        for d, mib in zip(dirs, mibs, strict=True):
            p = subprocess.Popen([sys.executable, "-c", HOLDER.format(mib=mib), f"anonvma-cgroup-test-{mib}"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append(p)
            try:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(p.pid))
            except OSError as err:
                pytest.skip(f"cannot move a process into {d}: {err.strerror} (writing cgroup.procs "
                            "needs write permission on it and on the common ancestor's)")
            assert p.stdout.readline() == "ready\n"
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=30)
            p.stdout.close()


@pytest.fixture
def placed() -> Iterator[Dict[str, Any]]:
    """Two processes in two cgroups of their own: 8 MiB and 40 MiB."""
    with two_cgroups() as (dirs, paths), holders(dirs, [8, 40]) as pids:
        yield {"pids": pids, "paths": paths}


def test_two_processes_in_two_cgroups_are_summed_apart_by_their_memory(placed, capsys):
    small, large = placed["paths"]
    assert [cgroup_of(pid) for pid in placed["pids"]] == [small, large]
    assert main(["show", *map(str, placed["pids"]), "--by", "cgroup", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["cgroup"]: r for r in doc["cgroups"]}
    assert set(rows) == {small, large} and doc["by"] == "cgroup"
    assert rows[small]["processes"] == rows[large]["processes"] == 1
    # the same interpreter in each: the difference is the 32 MiB more the large one wrote
    grown = (rows[large]["uss"] - rows[small]["uss"]) * 1024
    assert 31 * MIB <= grown <= 33 * MIB, grown
    assert rows[large]["rss"] >= 40 * 1024 and rows[small]["rss"] >= 8 * 1024
    assert doc["total"]["uss"] == rows[small]["uss"] + rows[large]["uss"]


def test_show_all_by_cgroup_finds_them_among_every_process(placed, capsys):
    small, large = placed["paths"]
    assert main(["show", "--all", "--comm", "anonvma-cgroup-test-", "--by", "cgroup", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {r["cgroup"]: r["processes"] for r in doc["cgroups"]} == {small: 1, large: 1}
    sysmem = system.read_system(None, comm="anonvma-cgroup-test-", cgroups=True)
    want = dict(zip(placed["pids"], placed["paths"], strict=True))
    assert {p.pid: p.cgroup for p in sysmem.processes} == want


def test_export_labels_every_series_with_its_cgroup_through_prometheus(placed, tmp_path):
    paths, why = fetch()
    if paths is None:
        pytest.skip(why)
    small, large = placed["paths"]
    port = free_port()
    exporter = subprocess.Popen([sys.executable, "-m", "anonvma", "export", "--listen", f"127.0.0.1:{port}",
                                 *map(str, placed["pids"]), "--cgroup-label", "--category"],
                                stderr=subprocess.PIPE, text=True)
    try:
        assert exporter.stderr.readline().startswith(f"serving http://127.0.0.1:{port}/metrics")
        with prometheus_server(paths[0], f"127.0.0.1:{port}", tmp_path) as base:
            per = wait_for("the cgroups' series in Prometheus", lambda: query(
                base, 'sum by (cgroup) (anonvma_rss_bytes{job="anonvma"})'), 90)
            rss = {r["metric"]["cgroup"]: float(r["value"][1]) for r in per}
            assert set(rss) == {small, large}
            assert rss[large] - rss[small] >= 31 * MIB
            cats = query(base, 'sum by (cgroup) (anonvma_category_rss_bytes{job="anonvma"})')
            assert {r["metric"]["cgroup"]: float(r["value"][1]) for r in cats} == rss  # same memory
            unknown = query(base, f'anonvma_category_rss_bytes{{category="Unknown",cgroup="{large}"}}')
            assert float(unknown[0]["value"][1]) >= 40 * MIB  # the bytearray: plain anonymous memory
            procs = query(base, f'anonvma_processes{{cgroup="{small}"}}')
            assert {float(r["value"][1]) for r in procs} == {1.0}
    finally:
        exporter.terminate()
        assert exporter.wait(timeout=30) == 0
        exporter.stderr.close()


def test_a_process_in_another_pid_namespace_keeps_its_host_pid_and_its_cgroup(capsys):
    """The container case: a process that is pid 1 in its own PID namespace is read, shown and
    placed in its cgroup under the pid this /proc gives it."""
    try:
        outer = subprocess.Popen(["unshare", "--pid", "--fork", sys.executable, "-c",
                                  "import os, sys\nprint(os.getpid(), flush=True)\nsys.stdin.read()\n",
                                  "anonvma-pidns-test"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        pytest.skip("no unshare command (util-linux) to make a PID namespace")
    try:
        inside = outer.stdout.readline().strip()
        if not inside:
            pytest.skip(f"unshare --pid could not make a PID namespace: {outer.stderr.read().strip()}")
        assert inside == "1"
        children = Path(f"/proc/{outer.pid}/task/{outer.pid}/children").read_text().split()
        (host,) = map(int, children)
        mine = r"(?s)^\S*python\S* -c .*anonvma-pidns-test"  # the child, not the unshare that started it
        assert main(["show", "--all", "--comm", mine, "--by", "process", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert [p["pid"] for p in doc["processes"]] == [host]
        assert main(["show", "--all", "--comm", mine, "--by", "cgroup", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["cgroups"]
        assert [(r["cgroup"], r["processes"]) for r in rows] == [(cgroup_of(host), 1)]
    finally:
        outer.stdin.close()
        outer.wait(timeout=30)
        outer.stdout.close()
        outer.stderr.close()
