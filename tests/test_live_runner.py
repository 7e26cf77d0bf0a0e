"""The real-process runner on the running kernel, and the tools around differential tests."""

from __future__ import annotations

import gc
import weakref

import pytest

from anonvma.difftest.generate import HOST_KWARGS, PAGE, random_script
from anonvma.difftest.shrink import shrink, subset
from anonvma.live.runner import LiveSession, RunnerError, run_ops
from anonvma.ops import ARENA_BASE, parse_script, script_text
from anonvma.oracle.build import OracleBuildError, config_key, patch_strdup


def _run(text: str) -> list[dict]:
    return run_ops(parse_script(text))


def test_touch_of_unmapped_page_is_efault_and_touches_nothing():
    res = _run('{"op": "touch", "addr": 0}\n'
               '{"op": "mmap", "addr": 0, "len": 4096, "prot": "r"}\n'
               '{"op": "touch", "addr": 100, "write": true}\n'
               '{"op": "touch", "addr": 100, "write": false}\n'
               '{"op": "maps"}\n')
    assert res == [{"errno": "EFAULT"}, {"ret": 0}, {"errno": "EFAULT"}, {"ret": 0},
                   {"maps": ["0-1000 r--p"]}]


def test_fork_numbers_children_and_exit_reaps_them():
    res = _run('{"op": "mmap", "addr": 0, "len": 8192, "prot": "rw"}\n'
               '{"op": "fork"}\n{"op": "fork", "pid": 1}\n'
               '{"op": "munmap", "pid": 2, "addr": 0, "len": 4096}\n'
               '{"op": "exit", "pid": 1}\n'
               '{"op": "maps", "pid": 2}\n{"op": "maps"}\n')
    assert res == [{"ret": 0}, {"ret": 0, "child": 1}, {"ret": 0, "child": 2}, {"ret": 0}, {"ret": 0},
                   {"maps": ["1000-2000 rw-p"]}, {"maps": ["0-2000 rw-p"]}]


def test_file_mappings_are_reported_by_label_and_page_offset():
    res = _run('{"op": "mmap", "addr": 0, "len": 8192, "prot": "r", "file": "f0", "pgoff": 3}\n'
               '{"op": "mmap", "addr": 8192, "len": 4096, "prot": "rw", "share": "shared", "file": "f1"}\n'
               '{"op": "touch", "addr": 8192}\n'
               '{"op": "maps"}\n')
    assert res[-1] == {"maps": ["0-2000 r--p file:f0@3", "2000-3000 rw-s file:f1@0"]}


def test_mremap_result_is_an_arena_offset():
    res = _run('{"op": "mmap", "addr": 0, "len": 8192, "prot": "rw"}\n'
               '{"op": "mremap", "addr": 0, "len": 8192, "new_len": 8192, "flags": ["maymove", "fixed"], '
               '"new_addr": 65536}\n')
    assert res[-1] == {"ret": 0, "addr": 65536}


def test_worker_that_unmaps_its_own_code_is_a_runner_error_not_a_crash():
    huge = (1 << 47) - 2 * PAGE - ARENA_BASE  # everything from the arena to the top of user space
    with pytest.raises(RunnerError, match=r"process 0 .* killed by SIG"):
        _run(f'{{"op": "mmap", "addr": 0, "len": 4096, "prot": "rw"}}\n'
             f'{{"op": "munmap", "addr": 0, "len": {huge}}}\n{{"op": "maps"}}\n')
    # the runner is fine and runs the next script
    assert _run('{"op": "maps"}') == [{"maps": []}]


def test_dropping_a_fork_drops_its_process_and_renumbers_the_rest():
    ops = parse_script('{"op": "fork"}\n{"op": "fork"}\n{"op": "maps", "pid": 1}\n'
                       '{"op": "fork", "pid": 2}\n{"op": "maps", "pid": 3}\n{"op": "maps", "pid": 2}\n')
    kept, out = subset(ops, [1, 2, 3, 4, 5])  # without the first fork
    assert kept == [1, 3, 4, 5]
    assert [(op.op, op.pid) for op in out] == [("fork", 0), ("fork", 1), ("maps", 2), ("maps", 1)]


def test_shrinker_finds_the_minimal_failing_script_with_valid_pids():
    # a random script with forks whose process 0 lives to the end
    def forks_and_keeps_process_0(ops: list) -> bool:
        return any(op.op == "fork" for op in ops) and not any(op.op == "exit" and op.pid == 0 for op in ops)

    ops = next(ops for ops in (random_script(seed, length=40) for seed in range(7, 200))
               if forks_and_keeps_process_0(ops))
    ops = parse_script(script_text(ops) + '{"op": "fork"}\n')
    child = sum(op.op == "fork" for op in ops)
    ops = parse_script(script_text(ops) + f'{{"op": "name", "pid": {child}, "addr": 0, "len": 1, '
                                          '"name": "boom"}\n')

    def bad(batch):  # "fails" when a forked process names "boom"
        return [any(op.op == "name" and op.pid and op.args["name"] == "boom" for op in s) for s in batch]

    small = shrink(ops, bad)
    assert [op.op for op in small] == ["fork", "name"]
    assert small[1].pid == 1
    parse_script(script_text(small))


def test_strdup_patch_changes_exactly_the_dup_line_and_refuses_other_sources():
    text = ("static inline void dup_anon_vma_name(struct vm_area_struct *orig_vma,\n"
            "\t\t\t\t     struct vm_area_struct *new_vma)\n{\n"
            "\tstruct anon_vma_name *anon_name = anon_vma_name(orig_vma);\n\n"
            "\tif (anon_name)\n"
            "\t\tnew_vma->anon_name = anon_vma_name_reuse(anon_name);\n}\n")
    patched = patch_strdup(text)
    assert "anon_vma_name_alloc(anon_name->name)" in patched
    assert "anon_vma_name_reuse" not in patched
    with pytest.raises(OracleBuildError, match="found 0"):
        patch_strdup(patched)
    assert config_key("refcount") != config_key("strdup")


def test_lock_advice_and_mmap_flags_split_and_merge_on_the_running_kernel():
    """The VM-flag ops reach the kernel: each splits a VMA, undoing it merges it back (nothing
    here is faulted in, so this holds on every kernel generation); the errnos are the kernel's."""
    res = _run('{"op": "mmap", "addr": 0, "len": 16384, "prot": "rw"}\n'
               '{"op": "mlock", "addr": 4096, "len": 4096, "onfault": true}\n'
               '{"op": "madvise", "addr": 8192, "len": 4096, "advice": "random"}\n'
               '{"op": "madvise", "addr": 12288, "len": 4096, "advice": "sequential"}\n'
               '{"op": "maps"}\n'
               '{"op": "madvise", "addr": 4096, "len": 4096, "advice": "dontneed"}\n'
               '{"op": "munlock", "addr": 0, "len": 16384}\n'
               '{"op": "madvise", "addr": 0, "len": 16384, "advice": "normal"}\n'
               '{"op": "maps"}\n'
               '{"op": "mmap", "addr": 16384, "len": 4096, "prot": "rw", "noreserve": true}\n'
               '{"op": "mmap", "addr": 20480, "len": 4096, "prot": "", "populate": true}\n'
               '{"op": "mlock", "addr": 20480, "len": 4096}\n'
               '{"op": "mlock", "addr": 24576, "len": 4096}\n'
               '{"op": "maps"}\n')
    assert res == [{"ret": 0}, {"ret": 0}, {"ret": 0}, {"ret": 0},
                   {"maps": ["0-1000 rw-p", "1000-2000 rw-p", "2000-3000 rw-p", "3000-4000 rw-p"]},
                   {"errno": "EINVAL"}, {"ret": 0}, {"ret": 0}, {"maps": ["0-4000 rw-p"]},
                   {"ret": 0}, {"ret": 0}, {"errno": "ENOMEM"}, {"errno": "ENOMEM"},
                   {"maps": ["0-4000 rw-p", "4000-5000 rw-p", "5000-6000 ---p"]}]


def _smaps_entry(addr: int) -> dict[str, str]:
    """The /proc/self/smaps fields of the VMA starting at ``addr``."""
    fields: dict[str, str] = {}
    with open("/proc/self/smaps") as f:
        entries = f.read().split("\n")
    on = False
    for line in entries:
        head = line.split(" ", 1)[0]
        if "-" in head and ":" not in head:
            lo, hi = (int(x, 16) for x in head.split("-"))
            on = lo <= addr < hi  # the mapping may have merged into a neighbour
        elif on and ":" in line:
            key, _, val = line.partition(":")
            fields[key] = val.strip()
    return fields


def test_mlock2_onfault_locks_without_faulting_and_mlock_populates():
    from anonvma.live import syscalls as s

    size = 4 * s.PAGE_SIZE
    addr = s.mmap(0, size, s.PROT_READ | s.PROT_WRITE, s.MAP_PRIVATE | s.MAP_ANONYMOUS)
    try:
        s.mlock2(addr, size, s.MLOCK_ONFAULT)
        entry = _smaps_entry(addr)
        assert "lo" in entry["VmFlags"].split() and entry["Rss"] == "0 kB"
        s.mlock(addr, size)
        entry = _smaps_entry(addr)
        assert entry["Rss"] == entry["Locked"] == f"{size >> 10} kB"
        s.munlock(addr, size)
        assert "lo" not in _smaps_entry(addr)["VmFlags"].split()
        with pytest.raises(OSError) as info:
            s.mlock2(addr, size, 0x80)  # only MLOCK_ONFAULT is a valid flag
        assert info.value.errno == 22
    finally:
        s.munmap(addr, size)


FORKING = ('{"op": "mmap", "addr": 0, "len": 8192, "prot": "rw"}\n{"op": "fork"}\n'
           '{"op": "touch", "pid": 1, "addr": 0}\n{"op": "exit", "pid": 1}\n{"op": "maps"}\n')


def test_the_runner_leaves_the_garbage_collector_as_it_found_it():
    """A long-lived runner (a difftest, a guest) keeps collecting: nothing frozen, nothing disabled."""
    before = (gc.isenabled(), gc.get_freeze_count())
    for _ in range(3):
        _run(FORKING)
    with LiveSession() as session:
        for _ in range(3):
            session.run(parse_script(FORKING))
    assert (gc.isenabled(), gc.get_freeze_count()) == before

    class Node:
        pass

    cycle = Node()
    cycle.self = cycle  # type: ignore[attr-defined]
    alive = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert alive() is None  # the collector still reaches objects made after the runs


def test_a_session_gives_every_script_the_results_of_a_fresh_process():
    """Process 0 is reused between scripts (arena unmapped): results as if each ran alone."""
    scripts = [random_script(seed, **HOST_KWARGS) for seed in range(300, 340)]
    alone = []
    for ops in scripts:
        try:
            alone.append(run_ops(ops))
        except RunnerError as exc:
            alone.append(str(exc))
    together = []
    with LiveSession() as session:
        for ops in scripts:
            try:
                together.append(session.run(ops))
            except RunnerError as exc:
                together.append(str(exc))
    assert together == alone
    assert any(op.op == "exit" and op.pid == 0 for ops in scripts for op in ops)  # process 0 replaced


def test_a_session_survives_a_script_that_kills_process_0():
    huge = (1 << 47) - 2 * PAGE - ARENA_BASE
    with LiveSession() as session:
        with pytest.raises(RunnerError, match="process 0"):
            session.run(parse_script(f'{{"op": "munmap", "addr": 0, "len": {huge}}}\n{{"op": "maps"}}\n'))
        assert session.run(parse_script(FORKING))[-1] == {"maps": ["0-2000 rw-p"]}
