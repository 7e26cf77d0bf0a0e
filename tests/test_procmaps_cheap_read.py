"""Reading only what is needed: maps before smaps under --match, smaps_rollup for totals, PROCMAP_QUERY.

Real processes of this machine (an idle child, a child naming memory through its anonvma
registry) and real files (a procfs tree of regular files, on which the ioctl is missing and whose
smaps cannot be read).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from anonvma.cli import main
from anonvma.procmaps import registered
from anonvma.procmaps.group import group, matched
from anonvma.procmaps.procmap_query import Lister, maps_vmas, query_vmas
from anonvma.procmaps.system import by_name, read_system
from registry_helpers import Namer

DATA = Path(__file__).parent / "data" / "procmaps"
ANON = r"^\[anon:"
#: An idle child: a few mappings of alternating protection (so they do not merge), then sleep.
IDLE = r"""
import mmap, sys, time
P = mmap.PAGESIZE
m = mmap.mmap(-1, 64 * P)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
base = ctypes.addressof(ctypes.c_char.from_buffer(m))
for i in range(0, 64, 2):
    libc.mprotect(base + i * P, P, 1)
m[P:2 * P] = b"x" * P
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def idle() -> Iterator[int]:
    """The pid of an idle child that names nothing."""
    proc = subprocess.Popen([sys.executable, "-c", IDLE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def named(tmp_path, monkeypatch) -> Iterator[int]:
    """The pid of a child that names 16 pages ``cache`` through its anonvma registry, kept in a
    runtime directory of our own (XDG_RUNTIME_DIR: the readers see our children's alone)."""
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    with Namer() as child:
        child.run("m = live.named_mmap(16 * P, 'cache', fallback=True); m[:] = b'c' * len(m)")
        yield child.pid


def _fake_procfs(root: Path) -> Path:
    """A procfs tree of regular files: pid 100 maps nothing named (our own maps, saved) and its
    smaps is a directory (reading it fails, EISDIR); pid 200 is the saved Android sample."""
    own = Path("/proc/self/maps").read_bytes()
    (root / "100").mkdir(parents=True)
    (root / "100" / "maps").write_bytes(own)
    (root / "100" / "smaps").mkdir()
    android = (DATA / "android-handwritten" / "smaps").read_bytes()
    (root / "200").mkdir()
    (root / "200" / "smaps").write_bytes(android)
    (root / "200" / "maps").write_bytes(b"".join(
        line + b"\n" for line in android.split(b"\n") if line[:1].isalnum() and b" " in line.split(b":")[0]))
    return root


def test_a_process_that_matches_nothing_is_not_read_through_smaps(tmp_path):
    procfs = str(_fake_procfs(tmp_path / "proc"))
    full = read_system(procfs=procfs, registries=False)
    assert full.skipped["unreadable"] == 1 and [p.pid for p in full.processes] == [200]  # smaps fails
    cheap = read_system(procfs=procfs, registries=False, match=ANON)
    assert cheap.skipped == {"denied": 0, "exited": 0, "unreadable": 0}
    assert [(p.pid, len(p.groups), p.total.count) for p in cheap.processes][0] == (100, 0, 0)
    assert cheap.reads == {"smaps": 1, "rollup": 0, "maps": 1}
    assert cheap.listing == {"procmap_query": 0, "maps": 2}  # regular files: ENOTTY, then maps text
    android = read_system([str(DATA / "android-handwritten" / "smaps")], match=ANON)
    assert cheap.processes[1].groups == android.processes[0].groups


def test_the_ioctl_is_missing_on_a_file_that_is_not_procfs_and_maps_text_is_read(tmp_path):
    procfs = _fake_procfs(tmp_path / "proc")
    fd = os.open(procfs / "100" / "maps", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as err:
            query_vmas(fd)
        assert err.value.errno == errno.ENOTTY
    finally:
        os.close(fd)
    listed = Lister(str(procfs)).list_vmas(100)
    assert listed.how == "maps"
    assert listed.vmas == maps_vmas((procfs / "100" / "maps").read_bytes()) and listed.vmas


def test_procmap_query_lists_what_maps_text_shows_on_a_live_process(idle):
    query, text = Lister(), Lister(query=False)
    by_ioctl = query.list_vmas(idle)
    if by_ioctl.how != "procmap_query":
        pytest.skip("this kernel has no PROCMAP_QUERY (Linux 6.11+): maps text was read")
    by_text = text.list_vmas(idle)
    assert by_text.how == "maps"
    assert by_ioctl.vmas == by_text.vmas
    assert len(by_ioctl.vmas) > 64  # the child's 64 pages of alternating protection are apart


def test_a_kernel_thread_lists_no_vma_either_way():
    kthreadd = 2
    if not os.path.exists("/proc/2") or Path("/proc/2/comm").read_text().strip() != "kthreadd":
        pytest.skip("pid 2 is not kthreadd here (another pid namespace)")
    assert Lister().list_vmas(kthreadd).vmas == [] == Lister(query=False).list_vmas(kthreadd).vmas


def _full(pid: int, match):
    """One process read the way read_system read every process before: its whole smaps, its
    registry applied, then matched and grouped."""
    return group(matched(registered.tally(pid), match), "name")


def test_results_under_match_equal_a_full_read_of_the_same_live_processes(idle, named):
    system = read_system([idle, named], match=ANON)
    assert system.reads == {"smaps": 1, "rollup": 0, "maps": 1}  # the registry's child is read whole
    got = {p.pid: p for p in system.processes}
    assert got[idle].groups == _full(idle, ANON) == []
    assert got[named].groups == _full(named, ANON)
    assert [g.key for g in by_name(system)] == ["[anon:cache]"]
    assert got[idle].total == got[idle].total._replace(count=0, size=0, pss=0, processes=0)


def test_show_all_says_how_it_read_on_stderr_and_in_json(capsys, idle, named):
    assert main(["show", str(idle), str(named), "--by", "process", "--match", ANON, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["reads"] == {"smaps": 1, "rollup": 0, "maps": 1}
    assert sum(doc["listed"].values()) == 1
    assert main(["show", str(idle), str(named), "--by", "process"]) == 0
    out = capsys.readouterr()
    assert out.err.startswith("read: 1 smaps, 1 smaps_rollup, 0 maps only (VMAs listed first: 1 by ")
    assert "read:" not in out.out


def test_rollup_totals_equal_the_sum_of_smaps_of_an_idle_process(idle):
    for _ in range(5):  # a shared page's sharers may change between the two reads: read again
        rolled = read_system([idle], totals=True)
        summed = read_system([idle])
        r, s = rolled.processes[0].total, summed.processes[0].total
        if (r.shared_clean, r.shared_dirty) == (s.shared_clean, s.shared_dirty):
            break
    assert rolled.reads == {"smaps": 0, "rollup": 1, "maps": 0}
    assert summed.reads == {"smaps": 1, "rollup": 0, "maps": 0}
    for field in ("count", "size", "rss", "shared_clean", "shared_dirty", "private_clean",
                  "private_dirty", "swap", "processes", "measured"):
        assert getattr(r, field) == getattr(s, field), field
    # fs/proc/task_mmu.c: smaps rounds each VMA's PSS down to a kB, the rollup rounds the sum once
    assert 0 <= r.pss - s.pss < r.count and 0 <= r.swap_pss - s.swap_pss < r.count


def test_export_counts_the_reads_by_how(tmp_path, idle, named):
    out = tmp_path / "m.prom"
    assert main(["export", str(idle), str(named), "--match", ANON, "--textfile", str(out)]) == 0
    reads = {s.labels["how"]: s.value for fam in text_string_to_metric_families(out.read_text())
             if fam.name == "anonvma_scrape_reads" for s in fam.samples}
    assert reads == {"smaps": 1.0, "rollup": 0.0, "maps": 1.0}


def test_record_says_how_each_sample_read(tmp_path, idle):
    out = tmp_path / "r.jsonl"
    assert main(["record", str(idle), "--match", ANON, "--interval", "0.1", "--duration", "0.05",
                 "-o", str(out)]) == 0
    sample = json.loads(out.read_text().splitlines()[1])
    assert sample["reads"] == {"smaps": 0, "rollup": 0, "maps": 1}


def test_a_fake_procfs_without_smaps_rollup_is_read_through_smaps(tmp_path):
    procfs = _fake_procfs(tmp_path / "proc")
    shutil.rmtree(procfs / "100")
    system = read_system(procfs=str(procfs), registries=False, totals=True)
    assert system.reads == {"smaps": 1, "rollup": 0, "maps": 0}
