"""What the differential scripts reach (``python -m anonvma.difftest --coverage``), the observer
that tells what each op did, and the ops-format fields added to reach more (``max_map_count``,
``readonly``) on the runners that run on this machine (the oracle's are in the curated scripts
tests/scripts/<release>/cov_*, compared by test_oracle_diff.py)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from anonvma import releases
from anonvma.difftest.coverage import OutcomeObserver
from anonvma.difftest.generate import CHUNK, CROWD_EVERY, FAR, FILE_PAGES, REACH, WINDOW, random_script
from anonvma.live import syscalls
from anonvma.model.mm import DEFAULT_MAX_MAP_COUNT, Mm
from anonvma.model.replay import UML_TASK_SIZE, run_ops
from anonvma.ops import ARENA_BASE, MAP_COUNT_OPS, OPS, ScriptError, format_result, parse_script, script_text

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).parent / "scripts"
SEED = int(os.environ.get("ANONVMA_DIFF_SEED") or random.SystemRandom().randrange(10**9))
P = 4096


# -- the report ------------------------------------------------------------------------------------

def test_coverage_reaches_95_percent_of_branches_explains_the_rest_and_fills_every_row() -> None:
    """The 2,000 scripts of a test run, on every release and both strategies."""
    res = subprocess.run([sys.executable, "-m", "anonvma.difftest", "--coverage", "--count", "2000",
                          "--seed", str(SEED)], cwd=REPO, capture_output=True, text=True)
    where = f"(seed {SEED}; repeat with ANONVMA_DIFF_SEED={SEED})"
    out = res.stdout.splitlines()
    summary = [f"{a}\n{b}" for a, b in zip(out, out[1:], strict=False)
               if "branch coverage" in a or "GAP" in b or "never" in a or "not in ROWS" in a
               or "STALE" in a]
    assert res.returncode == 0, "\n".join([where, *summary, res.stderr[-3000:]])
    figures = dict(re.findall(r"Linux (\S+): branch coverage of anonvma.model (\S+)%", res.stdout))
    assert set(figures) == set(releases.names()), res.stdout[:2000]
    assert all(float(pct) >= 95.0 for pct in figures.values()), (figures, where)
    assert "GAP" not in res.stdout and "<- never" not in res.stdout, where
    assert "STALE" not in res.stdout, where  # every UNREACHABLE entry still explains a branch
    for row in ("moved with DONTUNMAP", "copy merged into its source", "moved onto its own VMA"):
        counts = re.search(rf"mremap\s+{re.escape(row)}\s+(\d+)", res.stdout)
        assert counts is not None and int(counts.group(1)) > 0, (row, where)


def test_coverage_refuses_a_count_of_zero() -> None:
    res = subprocess.run([sys.executable, "-m", "anonvma.difftest", "--coverage", "--count", "0"],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 2 and "--count >= 1" in res.stderr


# -- the observer ------------------------------------------------------------------------------------

def per_op(text: str, **kwargs: Any) -> list[set[str]]:
    """The outcomes the observer counts for each op of a script."""
    seen = OutcomeObserver()
    log: list[set[str]] = []

    def watch(*args: Any) -> None:
        before = Counter(seen.counts)
        seen(*args)
        log.append({row for (_, row) in seen.counts - before})

    run_ops(parse_script(text), observe=watch, **kwargs)
    return log


def lines(*objs: str) -> str:
    return "".join(o + "\n" for o in objs)


@pytest.mark.parametrize("linux", releases.names())
def test_observer_tells_merges_with_prev_next_both_or_neither_and_splits(linux: str) -> None:
    got = per_op(lines('{"op": "mmap", "addr": 0, "len": 4096, "prot": "rw"}',
                       '{"op": "mmap", "addr": 8192, "len": 4096, "prot": "rw"}',
                       '{"op": "mmap", "addr": 4096, "len": 4096, "prot": "rw"}',
                       '{"op": "mmap", "addr": 12288, "len": 4096, "prot": "rw"}',
                       '{"op": "mmap", "addr": 32768, "len": 4096, "prot": "rw"}',
                       '{"op": "mprotect", "addr": 4096, "len": 4096, "prot": "r"}',
                       '{"op": "mprotect", "addr": 4096, "len": 4096, "prot": "rw"}',
                       '{"op": "mprotect", "addr": 40960, "len": 4096, "prot": "r"}'), linux=linux)
    assert got[0] == {"ok", "merge: neither"}
    assert got[1] == {"ok", "merge: neither"}
    assert got[2] == {"ok", "merge: both"}
    assert got[3] == {"ok", "merge: prev"}
    assert got[5] == {"ok", "split", "merge: neither"}
    assert got[6] == {"ok", "merge: both"}
    assert got[7] == {"ENOMEM"}


def test_observer_tells_the_kinds_of_mremap() -> None:
    def kinds(*ops: str, linux: str = releases.DEFAULT) -> set[str]:
        return per_op(lines('{"op": "mmap", "addr": 0, "len": 24576, "prot": "rw"}', *ops), linux=linux)[-1]

    def remap(old: int, new: int, addr: int = 0, flags: tuple[str, ...] = (), **dst: int) -> str:
        obj = {"op": "mremap", "addr": addr, "len": old, "new_len": new, "flags": list(flags), **dst}
        return json.dumps(obj)

    fixed = ("maymove", "fixed")
    assert "in place, same size" in kinds(remap(4096, 4096))
    assert {"shrunk in place", "split"} <= kinds(remap(24576, 8192))
    assert "grown in place" in kinds(remap(24576, 32768))
    # an unfaulted range moved with DONTUNMAP onto the end of its own VMA: the copy merges back
    # into its source on the oldest release (copy_vma_merges_any) and not on its stable update
    dontunmap = remap(8192, 8192, flags=(*fixed, "dontunmap"), new_addr=16384)
    onto = kinds(dontunmap, linux=releases.RELEASES[0].name)
    assert {"moved", "moved onto its own VMA", "moved with DONTUNMAP", "copy merged into its source"} <= onto
    newer = kinds(dontunmap, linux=releases.newest_in(releases.RELEASES[0].series).name)
    assert {"moved", "moved onto its own VMA", "moved with DONTUNMAP"} <= newer
    assert "copy merged into its source" not in newer
    assert "moved next to its source" in kinds(remap(8192, 8192, 16384, fixed, new_addr=24576))
    dup = per_op(lines('{"op": "mmap", "addr": 0, "len": 8192, "prot": "rw", "share": "shared"}',
                       remap(0, 4096, flags=fixed, new_addr=65536)))[-1]
    assert {"moved", "duplicated (old_len 0)"} <= dup


@pytest.mark.parametrize("strategy, how", [("refcount", "name shared"), ("strdup", "name copied")])
def test_observer_tells_names_shared_copied_and_freed(strategy: str, how: str) -> None:
    got = per_op(lines('{"op": "mmap", "addr": 0, "len": 12288, "prot": "rw"}',
                       '{"op": "name", "addr": 0, "len": 12288, "name": "a"}',
                       '{"op": "mprotect", "addr": 4096, "len": 4096, "prot": "r"}',
                       '{"op": "munmap", "addr": 0, "len": 12288}'), strategy=strategy)
    assert "name shared" not in got[1] and "name copied" not in got[1]  # the prctl's own copy
    assert how in got[2]
    assert "name freed" in got[3]


def test_observer_tells_fork_depth() -> None:
    got = per_op(lines('{"op": "fork"}', '{"op": "fork", "pid": 1}', '{"op": "fork", "pid": 2}',
                       '{"op": "fork"}'))
    assert got == [{"depth 1"}, {"depth 2"}, {"depth 3+"}, {"depth 1"}]


# -- the generator -----------------------------------------------------------------------------------

def _changes_nothing_past_reach(op: Any) -> bool:
    """The module doc of anonvma.difftest.generate: a range past REACH fails at once or stops at
    the first hole."""
    a = op.args
    end = a.get("addr", 0) + a.get("len", 0)
    if op.op in ("mprotect", "mlock", "munlock"):  # walk up to the first hole, below REACH
        return True
    if op.op in ("madvise", "name"):
        return end <= REACH or ARENA_BASE + end > (1 << 64) - 1
    if op.op == "mmap":
        rounded = (a["len"] + P - 1) & ~(P - 1) & ((1 << 64) - 1)
        return end <= REACH or rounded == 0 or rounded > UML_TASK_SIZE
    if op.op == "munmap":
        return end <= REACH or a["len"] > UML_TASK_SIZE
    if op.op == "mremap":
        new_end = a.get("new_addr", a["addr"]) + a["new_len"]
        return end <= REACH and (new_end <= REACH or a["new_len"] > 200 << 30)
    return True


def test_random_scripts_stay_where_a_real_process_survives_them() -> None:
    for seed in range(SEED, SEED + 300):
        ops = random_script(seed)
        assert script_text(ops) == script_text(random_script(seed))
        for op in ops:
            assert _changes_nothing_past_reach(op), (seed, op.to_json())
            if op.op == "touch":
                assert op.args["addr"] < WINDOW, (seed, op.to_json())
            a = op.args
            if op.op == "mmap" and "file" in a and a["addr"] < FAR and a["len"] < REACH:
                # a touch past the end of the file would be SIGBUS (a huge pgoff fails: EOVERFLOW)
                pages = -(-a["len"] // P)
                assert a["pgoff"] + pages <= FILE_PAGES or a["pgoff"] > 1 << 50, (seed, op.to_json())
            if op.op == "mremap" and op.args["flags"] and "fixed" not in op.args["flags"]:
                assert op.args["flags"] in (["maymove"], ["dontunmap"]), (seed, op.to_json())


def test_no_random_script_touches_a_guard_marker() -> None:
    """A touch of a page MADV_GUARD_INSTALL marked is SIGSEGV: every script removes the markers
    (or unmaps the pages) first. Markers are followed per process: install marks the range,
    remove, munmap and a new mapping over it clear it, fork copies them (fork copies the page
    tables of VMAs with guards); nothing moves a marked page before it is cleared."""
    for seed in range(SEED, SEED + 3000):
        marked: dict[int, set[int]] = {0: set()}
        for op in random_script(seed):
            a, pages = op.args, marked.setdefault(op.pid, set())
            if op.op in ("madvise", "munmap", "mmap") and a.get("len", 0) < WINDOW:
                span = range(a["addr"] // P, -(-(a["addr"] + a["len"]) // P))
                if op.op == "madvise" and a["advice"] == "guard_install":
                    pages.update(span)
                elif op.op != "madvise" or a["advice"] == "guard_remove":
                    pages.difference_update(span)
            elif op.op == "fork":
                marked[max(marked) + 1] = set(pages)
            elif op.op == "touch":
                assert a["addr"] // P not in pages, (seed, op.to_json())


def test_what_the_running_kernel_gets_needs_no_oracle() -> None:
    """limits=False: no max_map_count field, no request past the oracle's RAM; names and mremap off."""
    for seed in range(SEED, SEED + 300):
        for op in random_script(seed, names=False, mremap=False, limits=False):
            assert "max_map_count" not in op.args and op.op not in ("name", "mremap"), op.to_json()
            if op.op == "mmap":
                assert op.args["len"] < 1 << 30 or op.args["len"] > UML_TASK_SIZE, op.to_json()


def test_a_crowd_fills_more_than_one_chunk_of_the_index() -> None:
    seed = CROWD_EVERY * (SEED // CROWD_EVERY) + CROWD_EVERY // 2
    mms: dict[int, Mm] = {}
    ops = random_script(seed)
    peak = 0

    def watch(op: Any, res: Any, mm: Mm, state: Any) -> None:
        nonlocal peak
        peak = max(peak, mm.map_count)

    run_ops(ops, mms=mms, observe=watch, check=True)
    assert peak > 3 * CHUNK
    assert len(random_script(seed, scenarios=False)) < 3 * CHUNK


# -- the ops-format additions ----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MAP_COUNT_OPS))
def test_max_map_count_is_a_field_of_every_op_that_can_add_a_vma(name: str) -> None:
    extra = {"mmap": {"prot": "r"}, "mprotect": {"prot": "r"}, "madvise": {"advice": "random"},
             "name": {"name": "x"}, "mremap": {"new_len": 4096, "flags": []}}.get(name, {})
    obj = {"op": name, "addr": 0, "len": 4096, **extra, "max_map_count": 7}
    (op,) = parse_script(json.dumps(obj) + "\n")
    assert op.args["max_map_count"] == 7
    assert parse_script(script_text([op]))[0].args == op.args


@pytest.mark.parametrize("bad", [
    '{"op": "touch", "addr": 0, "max_map_count": 3}', '{"op": "fork", "max_map_count": 3}',
    '{"op": "munmap", "addr": 0, "len": 1, "max_map_count": -1}',
    '{"op": "munmap", "addr": 0, "len": 1, "max_map_count": 2147483648}',
    '{"op": "munmap", "addr": 0, "len": 1, "max_map_count": true}',
    '{"op": "mmap", "addr": 0, "len": 1, "prot": "r", "readonly": true}',
    '{"op": "mmap", "addr": 0, "len": 1, "prot": "r", "file": "f", "readonly": 1}'])
def test_broken_limit_and_readonly_fields_are_refused(bad: str) -> None:
    with pytest.raises(ScriptError, match="line 1"):
        parse_script(bad + "\n")
    assert set(OPS) >= MAP_COUNT_OPS


def test_the_model_honours_max_map_count_for_one_op_only() -> None:
    mms: dict[int, Mm] = {}
    got = run_ops(parse_script(lines(
        '{"op": "mmap", "addr": 0, "len": 12288, "prot": "rw"}',
        '{"op": "mprotect", "addr": 4096, "len": 4096, "prot": "r", "max_map_count": 1}',
        '{"op": "mprotect", "addr": 4096, "len": 4096, "prot": "r"}')), mms=mms)
    assert got == [{"ret": 0}, {"errno": "ENOMEM"}, {"ret": 0}]
    assert mms[0].max_map_count == DEFAULT_MAX_MAP_COUNT


def test_setting_max_map_count_is_refused_outside_a_uml_guest() -> None:
    if syscalls.in_uml_guest():
        pytest.skip("this test runs on a machine whose vm.max_map_count is machine-wide; this is a UML guest")
    before = Path(syscalls.MAX_MAP_COUNT_SYSCTL).read_text()
    with pytest.raises(syscalls.SysctlRefused, match="User-Mode Linux"):
        syscalls.set_max_map_count(10)
    assert Path(syscalls.MAX_MAP_COUNT_SYSCTL).read_text() == before


def test_the_running_kernel_refuses_scripts_that_set_max_map_count(tmp_path: Path) -> None:
    from anonvma.difftest.compare import host_backend

    if syscalls.in_uml_guest():
        pytest.skip("inside a UML guest the running kernel honours max_map_count")
    script = tmp_path / "limit.jsonl"
    script.write_text(lines('{"op": "mmap", "addr": 0, "len": 4096, "prot": "rw"}',
                            '{"op": "mmap", "addr": 8192, "len": 4096, "prot": "r", "max_map_count": 1}'))
    before = Path(syscalls.MAX_MAP_COUNT_SYSCTL).read_text()
    res = subprocess.run([sys.executable, "-m", "anonvma", "replay", "--kernel", str(script)], cwd=REPO,
                         capture_output=True, text=True)
    assert res.returncode == 1 and res.stdout == ""
    assert "line 2: the max_map_count field runs only in the oracle" in res.stderr
    (outcome,) = host_backend()([parse_script(script.read_text())])
    assert outcome.results is None and "machine-wide" in (outcome.error or "")
    assert Path(syscalls.MAX_MAP_COUNT_SYSCTL).read_text() == before


@pytest.mark.parametrize("name, shows", [("cov_readonly_descriptor", '{"errno": "EACCES"}'),
                                         ("cov_shmem_grown_past_its_file", '{"errno": "EFAULT"}')])
def test_curated_scripts_on_the_running_kernel_match_the_model(name: str, shows: str) -> None:
    """The host kernel has the same VM_MAY* rules and file sizes (a read-only descriptor; a touch
    past a file's end is refused with EFAULT, not run into SIGBUS); maps compare coalesced (the
    host may merge more than 6.1)."""
    from anonvma.difftest.compare import coalesced_maps, host_backend, model_lines
    from anonvma.model.mm import TASK_SIZE

    ops = parse_script((SCRIPTS / f"{name}.jsonl").read_text())
    (outcome,) = host_backend()([ops])
    assert outcome.results is not None, outcome.error
    kernel = [format_result(r) for r in outcome.results]
    assert coalesced_maps(kernel) == coalesced_maps(model_lines(ops, task_size=TASK_SIZE))
    assert shows in kernel
