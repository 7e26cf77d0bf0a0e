"""The VMA budget (map_count against vm.max_map_count) and ``show --merges`` (boundaries that exist
only because names differ): on hand-written smaps and maps files whose answer is known, on live
processes of this machine, and through a real Prometheus scrape.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from anonvma import releases
from anonvma.cli import main
from anonvma.model.kernel import get_kernel
from anonvma.procmaps.budget import Budget, map_count

from anonvma.procmaps.merges import name_boundaries
from anonvma.procmaps.parser import parse
from anonvma.procmaps.records import Registered
from anonvma import live
from procmaps_fixtures import spawned
from registry_helpers import Namer
from prometheus_helpers import free_port, prometheus_server, query, wait_for

#: a release of the table (tests name none themselves)
OLDEST = releases.names()[0]

PAGE = 4096
FLAGS = "rd wr mr mw me ac"
SHMEM_FLAGS = "rd wr sh mr mw me ms"
_FIELDS = ("Size", "KernelPageSize", "MMUPageSize", "Rss", "Pss", "Shared_Clean", "Shared_Dirty",
           "Private_Clean", "Private_Dirty", "Referenced", "Anonymous", "LazyFree", "AnonHugePages",
           "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb", "Private_Hugetlb", "Swap", "SwapPss",
           "Locked")


def header(start: int, pages: int, perms: str, name: str, offset: int = 0, dev: str = "00:00",
           inode: int = 0) -> str:
    line = f"{start:08x}-{start + pages * PAGE:08x} {perms} {offset:08x} {dev} {inode}"
    return (line + " " * max(1, 73 - len(line)) + name) if name else line


def entry(start: int, pages: int, name: str, perms: str = "rw-p", anon_pages: int = 0,
          flags: str = FLAGS, **where: object) -> str:
    """One smaps entry as 6.12 prints it, ``anon_pages`` of it faulted (Rss = Anonymous)."""
    kb = anon_pages * PAGE // 1024
    values = {"Size": pages * PAGE // 1024, "KernelPageSize": 4, "MMUPageSize": 4, "Rss": kb, "Pss": kb,
              "Private_Dirty": kb, "Referenced": kb, "Anonymous": kb}
    lines = [header(start, pages, perms, name, **where)]  # type: ignore[arg-type]
    lines += [f"{k}:{' ' * (16 - len(k))}{values.get(k, 0):>8} kB" for k in _FIELDS]
    lines += ["THPeligible:    0", f"VmFlags: {flags} "]
    return "\n".join(lines) + "\n"


def judged(text: str, linux: str = releases.DEFAULT):
    vmas, _ = parse(text)
    return name_boundaries(vmas, get_kernel(linux))


def verdicts(text: str, linux: str = releases.DEFAULT):
    return [(b.address, b.below, b.above, b.certain) for b in judged(text, linux).boundaries]


A = 0x7f0000000000


def test_two_adjacent_unfaulted_anon_vmas_with_different_names_are_one_certain_boundary():
    text = entry(A, 2, "[anon:a]") + entry(A + 2 * PAGE, 2, "[anon:b]")
    got = judged(text)
    assert verdicts(text) == [(A + 2 * PAGE, "[anon:a]", "[anon:b]", True)]
    assert (got.lower, got.upper) == (1, 1)
    assert got.per_name() == {"[anon:a]": (1, 1), "[anon:b]": (1, 1)}


def test_an_unnamed_neighbour_of_a_named_vma_is_a_boundary_too():
    assert verdicts(entry(A, 1, "") + entry(A + PAGE, 1, "[anon:a]")) == [(A + PAGE, "", "[anon:a]", True)]


def test_different_perms_keep_vmas_apart_whatever_their_names():
    assert verdicts(entry(A, 2, "[anon:a]") + entry(A + 2 * PAGE, 2, "[anon:b]", perms="r--p",
                                                     flags="rd mr mw me ac")) == []


def test_a_flag_only_vmflags_shows_keeps_vmas_apart():
    assert verdicts(entry(A, 2, "[anon:a]") + entry(A + 2 * PAGE, 2, "[anon:b]", flags=FLAGS + " dc")) == []


def test_soft_dirty_alone_does_not_keep_vmas_apart():
    # mm/vma.c is_mergeable_vma ignores VM_SOFTDIRTY
    assert verdicts(entry(A, 2, "[anon:a]") + entry(A + 2 * PAGE, 2, "[anon:b]", flags=FLAGS + " sd")) \
        == [(A + 2 * PAGE, "[anon:a]", "[anon:b]", True)]


def test_vmas_that_do_not_touch_have_no_boundary():
    assert verdicts(entry(A, 2, "[anon:a]") + entry(A + 3 * PAGE, 2, "[anon:b]")) == []


def test_equal_names_are_not_a_boundary_of_names():
    assert verdicts(entry(A, 2, "[anon:a]") + entry(A + 2 * PAGE, 2, "[anon:a]", flags=FLAGS + " dc")) == []


def shmem(start: int, pages: int, name: str, offset: int, inode: int = 4242) -> str:
    return entry(start, pages, name, perms="rw-s", flags=SHMEM_FLAGS, offset=offset, dev="00:01", inode=inode)


def test_shared_memory_with_contiguous_offsets_is_a_certain_boundary():
    text = shmem(A, 2, "[anon_shmem:a]", 0) + shmem(A + 2 * PAGE, 2, "[anon_shmem:b]", 2 * PAGE)
    assert verdicts(text) == [(A + 2 * PAGE, "[anon_shmem:a]", "[anon_shmem:b]", True)]


def test_file_backed_vmas_with_discontinuous_offsets_never_merge():
    text = shmem(A, 2, "[anon_shmem:a]", 0) + shmem(A + 2 * PAGE, 2, "[anon_shmem:b]", 5 * PAGE)
    assert verdicts(text) == []


def test_file_backed_vmas_of_two_files_never_merge():
    text = shmem(A, 2, "[anon_shmem:a]", 0) + shmem(A + 2 * PAGE, 2, "[anon_shmem:b]", 2 * PAGE, inode=4243)
    assert verdicts(text) == []


@pytest.mark.parametrize("linux", releases.names())
def test_both_faulted_is_only_possible_an_upper_bound(linux):
    text = entry(A, 2, "[anon:a]", anon_pages=2) + entry(A + 2 * PAGE, 2, "[anon:b]", anon_pages=1)
    got = judged(text, linux)
    (b,) = got.boundaries
    assert not b.certain and (got.lower, got.upper) == (0, 1)
    assert "their anon_vmas differ" in b.why
    assert got.per_name() == {"[anon:a]": (0, 1), "[anon:b]": (0, 1)}


@pytest.mark.parametrize("linux", releases.names())
def test_one_faulted_one_not_merges_unless_the_faulted_one_came_from_a_fork_or_moved(linux):
    # every release's is_mergeable_anon_vma lets an unfaulted VMA join a faulted one whose chain is
    # singular (and 7.3's lets a faulted one join an unfaulted one unless it is a fork child):
    # /proc cannot tell a fork child, nor a faulted VMA moved by mremap (its offset)
    for text in (entry(A, 2, "[anon:a]", anon_pages=1) + entry(A + 2 * PAGE, 2, "[anon:b]"),
                 entry(A, 2, "[anon:a]") + entry(A + 2 * PAGE, 2, "[anon:b]", anon_pages=1)):
        (b,) = judged(text, linux).boundaries
        assert not b.certain
        assert "anon_vma came from a fork" in b.why and "moved by mremap" in b.why
        assert "anon_vmas differ" not in b.why


def test_maps_input_leaves_flags_and_faults_open():
    text = (header(A, 2, "rw-p", "[anon:a]") + "\n" + header(A + 2 * PAGE, 2, "rw-p", "[anon:b]") + "\n"
            + header(A + 4 * PAGE, 2, "r--p", "[anon:c]") + "\n")
    got = judged(text)
    (b,) = got.boundaries  # r-- against rw-: apart for sure
    assert (b.address, b.certain) == (A + 2 * PAGE, False)
    assert "flags the perms do not show differ" in b.why


def test_special_mappings_never_merge():
    vvar = entry(A, 4, "[vvar]", perms="r--p", flags="rd mr pf io de dd")
    assert verdicts(vvar + entry(A + 4 * PAGE, 1, "[anon:x]", perms="r--p", flags="rd mr pf io de dd")) == []
    maps = header(A, 4, "r--p", "[vvar]") + "\n" + header(A + 4 * PAGE, 1, "r--p", "[anon:x]") + "\n"
    assert verdicts(maps) == []


def test_heap_and_stack_hide_their_names_so_no_boundary_is_claimed():
    assert verdicts(entry(A, 2, "[heap]") + entry(A + 2 * PAGE, 2, "[anon:a]")) == []


def test_each_boundary_counts_once_for_each_of_its_names():
    text = (entry(A, 1, "[anon:a]") + entry(A + PAGE, 1, "[anon:b]") + entry(A + 2 * PAGE, 1, "[anon:a]")
            + entry(A + 3 * PAGE, 1, "[anon:c]", anon_pages=1))
    got = judged(text)
    assert (got.lower, got.upper) == (2, 3)
    assert got.per_name() == {"[anon:a]": (2, 3), "[anon:b]": (2, 2), "[anon:c]": (0, 1)}


def test_map_count_leaves_out_the_gate_vma_and_the_registrys_parts():
    names = [("", 3), ("[anon:a]", 2), ("[vsyscall]", 1)]
    assert map_count(6, names, None) == 5
    reg = Registered("r", 2, 0, 0, frozenset({"[anon:a]"}), frozenset(), cut=1, parts=2)
    assert map_count(6, names, reg) == 4
    assert Budget(5, 65530).headroom == 65525 and Budget(5, None).headroom is None


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_show_merges_of_a_saved_file_lists_boundaries_and_names_as_json(capsys, tmp_path):
    path = tmp_path / "two.smaps"
    path.write_text(entry(A, 2, "[anon:a]") + entry(A + 2 * PAGE, 2, "[anon:b]", anon_pages=1)
                    + entry(A + 4 * PAGE, 2, "[anon:c]")
                    + entry(0xffffffffff600000, 1, "[vsyscall]", perms="--xp", flags="ex"))
    status, out, _ = run(capsys, "show", str(path), "--merges", "--json", "--linux", OLDEST)
    assert status == 0
    doc = json.loads(out)
    assert (doc["vmas"], doc["map_count"], doc["max_map_count"], doc["headroom"]) == (4, 3, None, None)
    m = doc["merges"]
    assert m["release"] == releases.resolve(OLDEST).name
    assert (m["lower"], m["upper"]) == (0, 2)
    assert [(b["address"], b["below"], b["above"], b["certain"]) for b in m["boundaries"]] == \
        [(A + 2 * PAGE, "[anon:a]", "[anon:b]", False), (A + 4 * PAGE, "[anon:b]", "[anon:c]", False)]
    assert {n["name"]: (n["lower"], n["upper"]) for n in m["names"]} == \
        {"[anon:a]": (0, 1), "[anon:b]": (0, 2), "[anon:c]": (0, 1)}
    status, out, _ = run(capsys, "show", str(path), "--merges")
    assert status == 0
    assert "map_count 3 of vm.max_map_count - (a file does not record it)" in out
    assert f"{A + 2 * PAGE:x}  possible  [anon:a] | [anon:b]" in out


@pytest.mark.parametrize("argv, said", [
    (["--linux", OLDEST], "--linux goes with --merges"),
    (["--merges", "--csv"], "--merges prints a table or JSON"),
    (["--merges", "--linux", "5.4"], "unknown Linux release"),
])
def test_show_refuses_merges_where_they_cannot_work(capsys, tmp_path, argv, said):
    path = tmp_path / "m.smaps"
    path.write_text(entry(A, 1, "[anon:a]"))
    status, out, err = run(capsys, "show", str(path), *argv)
    assert (status, out) == (2, "") and said in err


def test_show_merges_refuses_all(capsys):
    status, _, err = run(capsys, "show", "--all", "--merges")
    assert status == 2 and "--merges lists one map's boundaries" in err


#: A child with 40 mappings that cannot merge (alternating protections), then the JSON line.
CHILD = """
import json, mmap, sys, ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
base = libc.mmap(None, 80 * mmap.PAGESIZE, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
for i in range(0, 80, 2):
    libc.mprotect(base + i * mmap.PAGESIZE, mmap.PAGESIZE, mmap.PROT_READ)
print(json.dumps({"base": base}), flush=True)
sys.stdin.read()
"""


def kernel_map_count(pid: int) -> int:
    with open(f"/proc/{pid}/maps") as f:
        lines = f.read().splitlines()
    return sum(1 for line in lines if not line.endswith("[vsyscall]"))


def max_map_count() -> int:
    with open("/proc/sys/vm/max_map_count") as f:
        return int(f.read())


def test_show_of_a_live_process_gives_its_map_count_against_the_machines_limit(capsys):
    with spawned(CHILD) as (pid, _):
        limit_before = max_map_count()
        status, out, _ = run(capsys, "show", str(pid), "--json")
        limit_after = max_map_count()  # a benchmark may move the limit meanwhile
        assert status == 0
        doc = json.loads(out)
        count = kernel_map_count(pid)
        assert count > 80  # the 80 pages alone are 80 VMAs
        assert doc["map_count"] == count
        assert doc["max_map_count"] in (limit_before, limit_after)
        assert doc["headroom"] == doc["max_map_count"] - count
        status, out, _ = run(capsys, "show", str(pid))
        assert f"map_count {count} of vm.max_map_count " in out.splitlines()[0]


def test_show_by_process_has_map_count_and_headroom_columns(capsys, tmp_path):
    path = tmp_path / "saved.smaps"
    path.write_text(entry(A, 1, "[anon:a]") + entry(A + 2 * PAGE, 1, "[anon:b]"))
    with spawned(CHILD) as (pid, _):
        status, out, _ = run(capsys, "show", str(pid), str(path), "--by", "process", "--json")
        assert status == 0
        doc = json.loads(out)
        live, saved = sorted(doc["processes"], key=lambda p: p["pid"] is None)
        assert live["pid"] == pid and live["map_count"] == kernel_map_count(pid)
        assert live["headroom"] == live["max_map_count"] - live["map_count"]
        assert (saved["map_count"], saved["max_map_count"], saved["headroom"]) == (2, None, None)
        status, out, _ = run(capsys, "show", str(pid), str(path), "--by", "process")
        head, *rows = out.splitlines()[1:]
        assert head.split()[:4] == ["PID", "VMAS", "MAP_COUNT", "HEADROOM"]
        cells = {r.split()[0]: r.split() for r in rows}
        assert cells[str(pid)][2:4] == [str(live["map_count"]), str(live["headroom"])]
        assert cells["-"][2:4] == ["2", "-"]


@pytest.mark.skipif(live.supported(), reason="this kernel names memory: no registry to cut VMAs")
def test_boundaries_inside_a_kernel_vma_cut_by_the_registry_are_certain(capsys, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run_dir))
    with Namer() as child:
        base = child.run("""
base = syscalls.mmap(0, 8 * P, RW, ANON)
touch(base, 8)
live.set_anon_name(base + 2 * P, 4 * P, "mid", fallback=True)
result = base
""")
        status, out, _ = run(capsys, "show", str(child.pid), "--merges", "--json", "--match", "mid")
        kernel = kernel_map_count(child.pid)
    assert status == 0
    doc = json.loads(out)
    assert doc["map_count"] == kernel  # the three parts are one kernel VMA
    got = [(b["address"], b["below"], b["above"], b["certain"]) for b in doc["merges"]["boundaries"]]
    assert got == [(base + 2 * PAGE, "", "[anon:mid]", True), (base + 6 * PAGE, "[anon:mid]", "", True)]
    assert all("one kernel VMA cut by the registry's names" in b["why"] for b in doc["merges"]["boundaries"])


def test_prometheus_scrapes_map_count_and_max_map_count(prom, tmp_path):
    with spawned(CHILD) as (pid, _):
        port = free_port()
        exporter = subprocess.Popen([sys.executable, "-m", "anonvma", "export", "--listen",
                                     f"127.0.0.1:{port}", str(pid)], stderr=subprocess.PIPE, text=True)
        try:
            assert exporter.stderr.readline().startswith(f"serving http://127.0.0.1:{port}/metrics")
            with prometheus_server(prom[0], f"127.0.0.1:{port}", tmp_path) as base:
                got = wait_for("the child's map_count in Prometheus",
                               lambda: query(base, f'anonvma_process_map_count_used{{pid="{pid}"}}'), 90)
                assert len(got) == 1 and float(got[0]["value"][1]) == kernel_map_count(pid)
                with open(f"/proc/{pid}/comm") as f:
                    assert got[0]["metric"]["comm"] == f.read().strip()
                limit = query(base, "anonvma_map_count_limit")
                assert len(limit) == 1 and float(limit[0]["value"][1]) > 0
                headroom = query(base, "anonvma_map_count_limit - on() group_right "
                                       "anonvma_process_map_count_used")
                assert len(headroom) == 1
                assert float(headroom[0]["value"][1]) == float(limit[0]["value"][1]) - kernel_map_count(pid)
        finally:
            exporter.terminate()
            assert exporter.wait(timeout=30) == 0
            exporter.stderr.close()


def test_the_exported_text_has_one_map_count_series_per_process_without_per_process(tmp_path):
    out = tmp_path / "a.prom"
    with spawned(CHILD) as (pid, _):
        assert main(["export", "--textfile", str(out), str(pid), "--per-process"]) == 0
        text = out.read_text()
        count = kernel_map_count(pid)
    lines = [line for line in text.splitlines() if line.startswith("anonvma_process_map_count_used{")]
    assert len(lines) == 1 and lines[0].endswith(f" {float(count)}") and f'pid="{pid}"' in lines[0]
    assert any(line.startswith("anonvma_map_count_limit ") for line in text.splitlines())
    # the per-name family keeps its own name and labels
    assert any(line.startswith("anonvma_process_vmas{") and "name=" in line for line in text.splitlines())
    assert os.path.getsize(out) > 0
