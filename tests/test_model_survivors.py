"""Behaviours of the name-handling core that no test pinned down until mutation testing
(mutmut over model/names.py, merge.py, fork.py, mremap.py, madvise.py, mprotect.py; see
pyproject.toml) showed mutants surviving. Each test names the kernel rule it holds the model to.
"""

from __future__ import annotations

import errno
import random

import pytest
from model_helpers import P, both_strategies, check, errno_of, pg

from anonvma.model import Mm
from anonvma.model.merge import (anon_vma_target_singular, can_vma_merge_after, can_vma_merge_before,
                                 is_mergeable_anon_vma, split_vma)
from anonvma.model.names import (AnonVmaName, NameCounters, UseAfterFree,
                                 anon_vma_name_eq, make_strategy)
from anonvma.model.vma import (VM_DONTCOPY, VM_DONTEXPAND, VM_IO, VM_LOCKED, VM_MAYWRITE, VM_PFNMAP, VM_WRITE,
                               ZERO_PAGE, AnonVma, Vma)

U64 = (1 << 64) - 1

pytestmark = both_strategies


# -- names.py: every use of a freed object is reported as such ---------------------------------------

@pytest.mark.parametrize("use", ["get", "put", "reuse", "dup", "adopt", "put_vmas", "eq"])
def test_every_use_of_a_freed_name_is_a_use_after_free(strategy: str, use: str):
    s = make_strategy(strategy)
    counters = NameCounters()
    obj = s.alloc("gone", counters)
    s.put(obj, counters)
    assert obj.freed and obj.refcount == 0 and obj not in s.live
    calls = {"get": lambda: s.get(obj, counters), "put": lambda: s.put(obj, counters),
             "reuse": lambda: s.reuse(obj, counters), "dup": lambda: s.dup(obj, counters),
             "adopt": lambda: s.adopt(obj, counters),
             "put_vmas": lambda: s.put_vmas([Vma(0, P, 0, 0, anon_name=obj)], counters),
             "eq": lambda: anon_vma_name_eq(AnonVmaName("gone"), obj)}
    with pytest.raises(UseAfterFree, match=r"use after free of <AnonVmaName 'gone' freed at 0x"):
        calls[use]()
    assert counters.frees == 1 and counters.puts == 1  # the bad use counted nothing


def test_name_repr_says_string_state_and_address(strategy: str):
    obj = AnonVmaName("heap")
    assert repr(obj) == f"<AnonVmaName 'heap' ref=1 at {id(obj):#x}>"
    obj.refcount, obj.freed = 0, True
    assert repr(obj) == f"<AnonVmaName 'heap' freed at {id(obj):#x}>"


def test_counters_as_dict_include_live_objects(strategy: str):
    c = NameCounters(allocs=5, bytes_allocated=40, bytes_copied=44, gets=3, puts=4, frees=2)
    assert c.as_dict() == {"allocs": 5, "bytes_allocated": 40, "bytes_copied": 44, "gets": 3, "puts": 4,
                           "frees": 2, "live": 3}
    assert c.minus(NameCounters(1, 1, 1, 1, 1, 1)).plus(NameCounters(1, 1, 1, 1, 1, 1)) == c


def test_strategies_count_each_get_put_and_byte(strategy: str):
    s = make_strategy(strategy)
    c = NameCounters()
    a, b = s.alloc("ab", c), s.alloc("cde", c)
    assert (c.allocs, c.bytes_allocated, c.bytes_copied) == (2, 7, 7)
    s.get(a, c)
    s.get(a, c)
    assert (c.gets, a.refcount) == (2, 3)
    s.put(a, c)
    s.put(a, c)
    assert (c.puts, c.frees, a.refcount, a.freed) == (2, 0, 1, False)
    b_copy = s.reuse(b, c)
    s.reuse(b, c)
    assert b_copy is b and (c.gets, b.refcount) == (4, 3)
    # exit drops every VMA's reference at once: one put each, a free for each last one
    vmas = [Vma(0, P, 0, 0, anon_name=a), Vma(P, 2 * P, 0, 0), Vma(2 * P, 3 * P, 0, 0, anon_name=b),
            Vma(3 * P, 4 * P, 0, 0, anon_name=b)]
    s.put_vmas(vmas, c)
    assert (c.puts, c.frees) == (5, 1) and a.freed and a.refcount == 0 and a not in s.live
    assert (b.refcount, b.freed) == (1, False) and s.live == {b}
    s.put_vmas(vmas[2:3], c)
    assert (c.puts, c.frees, b.refcount, b.freed) == (6, 2, 0, True) and not s.live


def test_make_strategy_passes_every_setting_and_refuses_other_kinds(strategy: str):
    s = make_strategy(strategy, 7, saturation_guard=False)
    assert (s.kind, s.refcount_max, s.saturation_guard) == (strategy, 7, False)
    assert type(s)().saturation_guard is True  # the fix is in unless switched off
    with pytest.raises(ValueError, match="^unknown name strategy 'kref': use 'refcount' or 'strdup'$"):
        make_strategy("kref")


def test_a_strategy_made_directly_has_the_saturation_guard(strategy: str):
    s = type(make_strategy(strategy))(refcount_max=2)
    c = NameCounters()
    obj = s.alloc("x", c)
    s.get(obj, c)  # two holders: at the limit
    assert s.reuse(obj, c) is not obj and obj.refcount == 2


def test_strategies_count_each_step(strategy: str):
    s = make_strategy(strategy)
    c = NameCounters()
    s.track(c)
    obj = s.alloc("abc", c)
    assert (c.allocs, c.bytes_allocated, c.bytes_copied) == (1, 4, 4)
    copy = s.dup(obj, c)
    if strategy == "refcount":
        assert copy is obj and obj.refcount == 2 and (c.allocs, c.gets) == (1, 1)
    else:
        assert copy is not obj and copy.name == "abc" and (c.allocs, c.bytes_copied, c.gets) == (2, 8, 0)
    s.put(copy, c)
    s.put(obj, c)
    assert (c.puts, c.frees) == (2, 1 if strategy == "refcount" else 2) and not s.live and s.total == c
    s.retire(c)
    assert s.total == c  # an exited mm's costs stay in the total


# -- merge.py: the reference versions agree with the hand-inlined hot path -----------------------------

def is_mergeable_vma(vma, file, flags, anon_name):
    """The kernel's is_mergeable_vma, the reference for the hand-inlined checks: equal flags and
    file, equal names (by string)."""
    return vma.flags == flags and vma.file is file and anon_vma_name_eq(vma.anon_name, anon_name)


def test_is_mergeable_vma_and_anon_vma_together_are_the_inlined_checks(strategy: str):
    """can_vma_merge_before/after inline is_mergeable_vma, is_mergeable_anon_vma and the pgoff rule,
    and the anonymous pgoff rule when one is given (None: not compared)."""
    rng = random.Random(12)
    files = [None, object(), object()]
    anon_vmas = [None, AnonVma(), AnonVma()]
    names = [None, AnonVmaName("a"), AnonVmaName("a"), AnonVmaName("b")]
    for _ in range(3000):
        anon = rng.choice(anon_vmas)
        vma = Vma(0, P, rng.choice((0x73, 0x71)), rng.choice((0, 5)), rng.choice(files), anon,  # type: ignore[arg-type]
                  0 if anon is None else rng.choice((1, 2)), rng.choice(names), rng.choice((0, 5)))
        flags, file, theirs, name = rng.choice((0x73, 0x71)), rng.choice(files), rng.choice(anon_vmas), \
            rng.choice(names)
        pgoff = rng.choice((0, 1, 5, 6))
        anon_pgoff = rng.choice((None, 0, 1, 5, 6))
        expected = (is_mergeable_vma(vma, file, flags, name)
                    and is_mergeable_anon_vma(theirs, vma.anon_vma, vma))
        rule = anon_vma_target_singular
        before = can_vma_merge_before(vma, flags, theirs, file, pgoff, anon_pgoff, name,  # type: ignore[arg-type]
                                      rule)
        after = can_vma_merge_after(vma, flags, theirs, file, pgoff, anon_pgoff, name,  # type: ignore[arg-type]
                                    rule)
        assert before == (expected and pgoff == vma.pgoff
                          and anon_pgoff in (None, vma.anon_pgoff))
        assert after == (expected and pgoff == vma.pgoff + 1
                         and anon_pgoff in (None, vma.anon_pgoff + 1))


def test_an_interior_change_needs_room_for_exactly_two_more_vmas(strategy: str):
    """vma_modify: splitting both ends needs map_count + 1 < max_map_count (two splits)."""
    for limit, expected in ((3, "OK"), (2, "ENOMEM")):
        mm = Mm(strategy, max_map_count=limit)
        mm.mmap(pg(0), 3 * P, "rw")
        assert errno_of(mm.mprotect, pg(1), P, "r") == expected
        assert mm.map_count == (3 if expected == "OK" else 2)
        check(mm)


def test_split_vma_refuses_at_the_map_count_limit(strategy: str):
    mm = Mm(strategy, max_map_count=2)
    mm.mmap(pg(0), 4 * P, "rw")
    mm.set_anon_name(pg(0), 4 * P, "s")
    below, above = split_vma(mm, mm.vmas[0], pg(1))
    assert (below.start, below.end, above.start, above.end) == (pg(0), pg(1), pg(1), pg(4))
    assert above.pgoff == below.pgoff + 1 and above.anon_name.name == "s"
    with pytest.raises(OSError) as exc:
        split_vma(mm, above, pg(2))
    assert exc.value.errno == errno.ENOMEM and mm.map_count == 2
    check(mm)


# -- madvise.py ------------------------------------------------------------------------------------------

def test_eagain_at_the_map_count_limit_says_why(strategy: str):
    mm = Mm(strategy, max_map_count=1)
    mm.mmap(pg(0), 3 * P, "rw")
    for call in (lambda: mm.set_anon_name(pg(1), P, "x"), lambda: mm.madvise(pg(1), P, "dontfork")):
        with pytest.raises(OSError) as exc:
            call()
        assert exc.value.errno == errno.EAGAIN and "max_map_count" in exc.value.strerror
    check(mm)


# -- mremap.py -------------------------------------------------------------------------------------------

TOP = 64 * P  # a small TASK_SIZE for the tests below


@pytest.mark.parametrize("start, pages, grow, expected", [
    (TOP - 2 * P, 1, 1, "OK"),       # ends exactly at TASK_SIZE: allowed
    (TOP - P, 1, 1, "ENOMEM"),       # would end above it
    (0, 63, 1, "OK"),                # the whole of user space
    (0, 64, 1, "ENOMEM"),            # longer than user space
])
def test_growing_in_place_stops_at_task_size(strategy: str, start: int, pages: int, grow: int, expected: str):
    """mm/mremap.c vma_expandable: get_unmapped_area(MAP_FIXED) refuses what ends above TASK_SIZE."""
    mm = Mm(strategy, task_size=TOP)
    mm.mmap(start, pages * P, "rw")
    assert errno_of(mm.mremap, start, pages * P, (pages + grow) * P) == expected
    assert mm.vmas[0].end == start + (pages + grow if expected == "OK" else pages) * P
    check(mm)


def test_a_move_without_a_fixed_address_goes_to_the_highest_gap(strategy: str):
    """get_unmapped_area searches top-down: the highest gap below TASK_SIZE that fits."""
    mm = Mm(strategy, task_size=TOP)
    mm.mmap(TOP - 2 * P, P, "rw")  # the top page stays free: too small for 3 pages, enough for 1
    mm.mmap(0, 2 * P, "rw")
    mm.mmap(2 * P, P, "r")  # blocks growth in place
    mm.set_anon_name(0, 2 * P, "mv")
    assert mm.mremap(0, 2 * P, 3 * P, ["maymove"]) == TOP - 5 * P
    assert [(v.start, v.end) for v in mm.vmas] == [(2 * P, 3 * P), (TOP - 5 * P, TOP - 2 * P),
                                                   (TOP - 2 * P, TOP - P)]
    assert mm.find_vma(TOP - 5 * P).anon_name.name == "mv"
    assert mm.mremap(2 * P, P, P, ["maymove", "dontunmap"]) == TOP - P
    assert mm.find_vma(0) is None
    mm.mmap(0, P, "rx")  # a move without MREMAP_FIXED unmaps nothing at the destination
    assert mm.mremap(TOP - 5 * P, P, P, ["maymove", "dontunmap"]) == TOP - 6 * P
    assert mm.find_vma(0).end == P
    full = Mm(strategy, task_size=4 * P)
    full.mmap(0, 2 * P, "rw")
    full.mmap(2 * P, 2 * P, "r")
    assert errno_of(full.mremap, 0, 2 * P, 3 * P, ["maymove"]) == "ENOMEM"
    bottom = Mm(strategy, task_size=4 * P)  # the only gap fits exactly, at address 0
    bottom.mmap(2 * P, P, "rw")
    bottom.mmap(3 * P, P, "r")
    assert bottom.mremap(2 * P, P, 2 * P, ["maymove"]) == 0
    check(mm, full, bottom)


def test_pages_move_with_the_mapping(strategy: str):
    """move_page_tables: the same pages, accessed bits included, now at the new address."""
    mm = Mm(strategy)
    mm.mmap(pg(0), 3 * P, "rw")
    mm.fault(pg(0))
    mm.fault(pg(2))
    pages = [mm.ptes[pg(0) >> 12], mm.ptes[pg(2) >> 12]]
    mm.mremap(pg(0), 3 * P, 3 * P, ["maymove", "fixed"], pg(100))
    assert not any(pg(0) >> 12 <= vpn < pg(3) >> 12 for vpn in mm.ptes)
    assert [mm.ptes[pg(100) >> 12], mm.ptes[pg(102) >> 12]] == pages
    assert {pg(100) >> 12, pg(102) >> 12} <= mm.young and len(mm.ptes) == 2
    assert not any(pg(0) >> 12 <= vpn < pg(3) >> 12 for vpn in mm.young)
    mm.fault(pg(102))  # already its own page: written in place, no new page
    assert mm.ptes[pg(102) >> 12] is pages[1]
    check(mm)


@pytest.mark.parametrize("new_addr, pages, expected", [
    (TOP - 2 * P, 2, "OK"),        # ends exactly at TASK_SIZE
    (TOP - P, 2, "EINVAL"),        # ends above it
    (0, 65, "EINVAL"),             # longer than user space
])
def test_a_fixed_move_must_end_within_task_size(strategy: str, new_addr: int, pages: int, expected: str):
    """mm/mremap.c mremap_to: EINVAL when new_len > TASK_SIZE or new_addr > TASK_SIZE - new_len.
    (A new length of exactly TASK_SIZE cannot pass: it overlaps the source, wherever that is.)"""
    mm = Mm(strategy, task_size=TOP)
    mm.mmap(10 * P, P, "rw")
    assert errno_of(mm.mremap, 10 * P, P, pages * P, ["maymove", "fixed"], new_addr) == expected
    assert [(v.start, v.end) for v in mm.vmas] == ([(new_addr, new_addr + pages * P)] if expected == "OK"
                                                   else [(10 * P, 11 * P)])
    check(mm)


def test_the_map_count_headroom_of_a_move(strategy: str):
    """move_vma refuses at max_map_count - 3 VMAs; mremap_to (fixed) already at map_count + 2."""
    for count, expected in ((5, "ENOMEM"), (4, "OK")):
        mm = Mm(strategy, max_map_count=8)
        mm.mmap(pg(0), P, "rw")
        mm.mmap(pg(1), P, "r")  # blocks growth in place
        for i in range(count - 2):
            mm.mmap(pg(4 + 2 * i), P, "rw")
        assert mm.map_count == count
        assert errno_of(mm.mremap, pg(0), P, 2 * P, ["maymove"]) == expected  # blocked in place: moves
        check(mm)
    for count, expected in ((3, "ENOMEM"), (2, "OK")):
        mm = Mm(strategy, max_map_count=8)
        for i in range(count):
            mm.mmap(pg(2 * i), P, "rw")
        assert errno_of(mm.mremap, pg(0), P, P, ["maymove", "fixed"], pg(40)) == expected
        check(mm)


def test_commit_charged_by_a_move(strategy: str):
    """move_vma charges VM_ACCOUNT mappings the growth (new_len - old_len), or with
    MREMAP_DONTUNMAP the whole new length; mappings without VM_ACCOUNT are never charged.
    The model's commit check refuses a single request above the limit (4 pages here)."""
    mm = Mm(strategy, commit_limit_pages=4)
    mm.mmap(pg(0), 3 * P, "rw")
    mm.mmap(pg(3), 2 * P, "rw")  # one 5-page VMA, each mmap charged below the limit
    assert len(mm.vmas) == 1
    assert errno_of(mm.mremap, pg(0), 5 * P, 6 * P, ["maymove", "fixed"], pg(20)) == "OK"  # charges 1
    assert errno_of(mm.mremap, pg(20), 6 * P, 6 * P, ["maymove", "fixed", "dontunmap"], pg(40)) == "ENOMEM"
    assert errno_of(mm.mremap, pg(20), 3 * P, 3 * P, ["maymove", "fixed", "dontunmap"], pg(40)) == "OK"
    assert errno_of(mm.mremap, pg(23), 3 * P, 8 * P, ["maymove", "fixed"], pg(60)) == "ENOMEM"  # 5 > 4
    mm.mmap(pg(80), 2 * P, "r")  # not accountable: moving it grows it for free
    assert errno_of(mm.mremap, pg(80), 2 * P, 8 * P, ["maymove", "fixed"], pg(100)) == "OK"
    check(mm)


def test_a_dontunmap_move_that_merges_just_below_its_source_still_unlinks_the_source(strategy: str):
    """copy_vma treats the merged destination as the source only when the source starts inside
    it (vma_start < new_vma->vm_end): a destination ending where the source starts is not it,
    so move_vma unlinks the source's anon_vma (its pages went with the move)."""
    mm = Mm(strategy)
    mm.mmap(pg(3), 2 * P, "rw")
    mm.fault(pg(3))  # one anon_vma for [3, 5)
    mm.mremap(pg(4), P, P, ["maymove", "fixed"], pg(10))
    mm.mremap(pg(10), P, P, ["maymove", "fixed"], pg(5))  # [5, 6) now has the page offset of 4
    anon_vma = mm.find_vma(pg(3)).anon_vma
    assert mm.find_vma(pg(5)).anon_vma is anon_vma
    mm.mremap(pg(5), P, P, ["maymove", "fixed", "dontunmap"], pg(4))
    merged, source = mm.find_vma(pg(3)), mm.find_vma(pg(5))
    assert (merged.start, merged.end, merged.anon_vma) == (pg(3), pg(5), anon_vma)  # merged with prev
    assert (source.start, source.end, source.anon_vma, source.anon_chain) == (pg(5), pg(6), None, 0)
    check(mm)


# -- every error says what was wrong (each reachable raise of the six files, errno and text) ---------------

def _mm(strategy: str, *maps: tuple[int, int, str], **kwargs: int) -> Mm:
    mm = Mm(strategy, **kwargs)  # type: ignore[arg-type]
    for page, pages, prot in maps:
        mm.mmap(pg(page), pages * P, prot)
    return mm


ERRORS = {
    # merge.py vma_modify, split_vma
    "split at the limit": (lambda s: _mm(s, (0, 3, "rw"), max_map_count=1).mprotect(pg(1), P, "r"),
                           errno.ENOMEM, "split would exceed max_map_count"),
    "second split at the limit": (lambda s: _mm(s, (0, 3, "rw"), max_map_count=2).mprotect(pg(1), P, "r"),
                                  errno.ENOMEM, "split would exceed max_map_count"),
    # mremap.py
    "fixed without maymove": (lambda s: _mm(s, (0, 1, "rw")).mremap(pg(0), P, P, ["fixed"], pg(9)),
                              errno.EINVAL, "MREMAP_FIXED needs MREMAP_MAYMOVE"),
    "dontunmap resizing": (lambda s: _mm(s, (0, 1, "rw")).mremap(pg(0), P, 2 * P, ["maymove", "dontunmap"]),
                           errno.EINVAL, "MREMAP_DONTUNMAP needs MREMAP_MAYMOVE and an unchanged size"),
    "dontunmap without maymove": (lambda s: _mm(s, (0, 1, "rw")).mremap(pg(0), P, P, ["dontunmap"], pg(9)),
                                  errno.EINVAL,
                                  "MREMAP_DONTUNMAP needs MREMAP_MAYMOVE and an unchanged size"),
    "mremap unaligned": (lambda s: _mm(s, (0, 1, "rw")).mremap(pg(0) + 1, P, P),
                         errno.EINVAL, f"address {pg(0) + 1:#x} is not page-aligned"),
    "mremap to length 0": (lambda s: _mm(s, (0, 1, "rw")).mremap(pg(0), P, 0),
                           errno.EINVAL, "new length is 0"),
    "mremap of a hole": (lambda s: _mm(s, (0, 1, "rw")).mremap(pg(5), P, P),
                         errno.EFAULT, f"{pg(5):#x} is not mapped"),
    "grow without maymove": (lambda s: _mm(s, (0, 1, "rw"), (1, 1, "r")).mremap(pg(0), P, 2 * P),
                             errno.ENOMEM, "cannot grow in place and MREMAP_MAYMOVE is not set"),
    "duplicate private": (lambda s: _mm(s, (0, 1, "rw")).mremap(pg(0), 0, P, ["maymove"]),
                          errno.EINVAL, "a private mapping cannot be duplicated with old_len 0"),
    "old range too long": (lambda s: _mm(s, (0, 1, "rw")).mremap(pg(0), 2 * P, 3 * P, ["maymove"]),
                           errno.EFAULT, "the old range spans more than one mapping"),
    "no room to move": (lambda s: _low(s).mremap(P, P, 2 * P, ["maymove"]),
                        errno.ENOMEM, "no free range for the move"),
    "fixed unaligned": (lambda s: _mm(s, (0, 1, "rw")).mremap(pg(0), P, P, ["maymove", "fixed"], pg(9) + 8),
                        errno.EINVAL, f"new address {pg(9) + 8:#x} is not page-aligned"),
    "fixed above task size": (lambda s: _mm(s, (0, 1, "rw"), task_size=pg(4)).mremap(
        pg(0), P, P, ["maymove", "fixed"], pg(4)), errno.EINVAL, "new range ends above TASK_SIZE"),
    "fixed as long as user space": (lambda s: _low(s).mremap(P, P, 2 * P, ["maymove", "fixed"], 0),
                                    errno.EINVAL, "old and new ranges overlap"),
    "fixed overlapping": (lambda s: _mm(s, (0, 2, "rw")).mremap(pg(1), P, 2 * P, ["maymove", "fixed"], pg(0)),
                          errno.EINVAL, "old and new ranges overlap"),
    "fixed near the limit": (lambda s: _mm(s, (0, 1, "rw"), max_map_count=5).mremap(
        pg(0), P, P, ["maymove", "fixed"], pg(9)), errno.ENOMEM, "too close to max_map_count to move"),
    "move near the limit": (lambda s: _mm(s, (0, 1, "rw"), (1, 1, "r"), max_map_count=5).mremap(
        pg(0), P, 2 * P, ["maymove"]), errno.ENOMEM, "too close to max_map_count to move"),
    # madvise.py
    "madvise of a hole at the end": (lambda s: _mm(s, (0, 1, "rw")).madvise(pg(5), P, "dontfork"),
                                     errno.ENOMEM, f"{pg(5):#x} is not mapped"),
    "madvise over a hole": (lambda s: _mm(s, (0, 1, "rw"), (2, 1, "rw")).madvise(pg(0), 3 * P, "dontfork"),
                            errno.ENOMEM, "part of the range is not mapped"),
    "naming a file mapping": (lambda s: _file(s).set_anon_name(pg(0), P, "x"),
                              errno.EBADF, f"{pg(0):#x}: this mapping cannot be named"),
    "dontneed on locked memory": (lambda s: _locked(s).madvise(pg(0), P, "dontneed"),
                                  errno.EINVAL, f"{pg(0):#x}: MADV_DONTNEED on locked memory"),
    "wipeonfork on a file": (lambda s: _file(s).madvise(pg(0), P, "wipeonfork"),
                             errno.EINVAL, "MADV_WIPEONFORK needs private anonymous memory"),
    "unknown advice": (lambda s: _mm(s, (0, 1, "rw")).madvise(pg(0), P, "hugepage"),
                       errno.EINVAL, "unknown advice 'hugepage'"),
    # mprotect.py
    "mprotect unaligned": (lambda s: _mm(s, (0, 1, "rw")).mprotect(pg(0) + 5, P, "r"),
                           errno.EINVAL, f"address {pg(0) + 5:#x} is not page-aligned"),
    "mprotect overflowing": (lambda s: _mm(s, (0, 1, "rw")).mprotect(pg(0), (1 << 64) - pg(0), "r"),
                             errno.ENOMEM, "mprotect range overflows"),
    "mprotect length rounding to 0": (lambda s: _mm(s, (0, 1, "rw")).mprotect(pg(0), (1 << 64) - 1, "r"),
                                      errno.ENOMEM, "mprotect range overflows"),
    "mprotect of a hole": (lambda s: _mm(s, (1, 1, "rw")).mprotect(pg(0), 2 * P, "r"),
                           errno.ENOMEM, f"{pg(0):#x} is not mapped"),
    "mprotect over a hole": (lambda s: _mm(s, (0, 1, "rw"), (2, 1, "rw")).mprotect(pg(0), 3 * P, "r"),
                             errno.ENOMEM, f"{pg(1):#x} is not mapped"),
}


def _low(strategy: str) -> Mm:
    mm = Mm(strategy, task_size=2 * P)
    mm.mmap(P, P, "rw")
    return mm


def _file(strategy: str) -> Mm:
    mm = Mm(strategy)
    mm.mmap(pg(0), P, "rw", file="f")
    return mm


def _locked(strategy: str) -> Mm:
    mm = _mm(strategy, (0, 1, "rw"))
    mm.mlock(pg(0), P)
    return mm


def _split_vma_at_the_limit(strategy: str) -> None:
    mm = _mm(strategy, (0, 3, "rw"), max_map_count=1)
    split_vma(mm, mm.vmas[0], pg(1))


ERRORS["split_vma at the limit"] = (_split_vma_at_the_limit, errno.ENOMEM, "split would exceed max_map_count")


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_each_error_has_its_errno_and_says_what_was_wrong(strategy: str, case: str):
    call, code, message = ERRORS[case]
    with pytest.raises(OSError) as exc:
        call(strategy)
    assert (exc.value.errno, exc.value.strerror) == (code, message)


def test_growing_a_locked_vma_populates_only_its_new_part(strategy: str):
    """mremap: a VM_LOCKED mapping that grew has the growth faulted in (mm_populate);
    an unlocked one has nothing faulted in, and the next VMA is never touched."""
    mm = Mm(strategy)
    mm.mmap(pg(0), P, "rw")
    mm.mmap(pg(4), 2 * P, "rw")
    mm.mremap(pg(0), P, 2 * P)
    assert not mm.ptes
    mm.mlock(pg(0), 2 * P)
    assert sorted(mm.ptes) == [pg(0) >> 12, pg(1) >> 12]
    mm.mremap(pg(0), 2 * P, 3 * P)
    assert sorted(mm.ptes) == [pg(0) >> 12, pg(1) >> 12, pg(2) >> 12]
    check(mm)


def test_mprotect_write_faults_a_locked_vma_only_when_it_becomes_writable(strategy: str):
    """mprotect_fixup populates when (old & (WRITE|SHARED|LOCKED)) == LOCKED and the new flags
    have WRITE: a locked read-only VMA made writable has its pages write-faulted (COW from the
    zero page); a locked VMA that was writable already keeps its pages, even COW-shared ones."""
    mm = Mm(strategy)
    mm.mmap(pg(0), 2 * P, "r")
    mm.mlock(pg(0), 2 * P)
    assert len(mm.ptes) == 2 and all(p is ZERO_PAGE for p in mm.ptes.values())
    mm.mprotect(pg(0), 2 * P, "rw")
    assert len(mm.ptes) == 2 and all(p.anon and p.dirty for p in mm.ptes.values())
    child = mm.fork()
    pages = dict(mm.ptes)
    assert all(p.mapcount == 2 for p in pages.values())
    mm.mprotect(pg(0), 2 * P, "rwx")
    assert mm.ptes == pages and all(p.mapcount == 2 for p in pages.values())
    never = Mm(strategy)  # locked, but PROT_NONE could not be populated; made readable, still not
    never.mmap(pg(0), P, "")
    assert errno_of(never.mlock, pg(0), P) == "ENOMEM" and never.vmas[0].flags & VM_LOCKED
    never.mprotect(pg(0), P, "r")
    assert not never.ptes
    shared = Mm(strategy)
    shared.mmap(pg(0), P, "r", shared=True)
    shared.mlock(pg(0), P)
    shared.mprotect(pg(0), P, "rw")
    assert [p.dirty for p in shared.ptes.values()] == [False]
    check(mm, child, never, shared)


# -- fork.py -----------------------------------------------------------------------------------------------

def test_a_child_inherits_its_parents_limits(strategy: str):
    mm = Mm(strategy, max_map_count=2, task_size=pg(8))
    mm.mmap(pg(0), 3 * P, "rw")
    child = mm.fork()
    assert (child.max_map_count, child.task_size) == (2, pg(8))
    assert errno_of(child.mprotect, pg(1), P, "r") == "ENOMEM"
    assert errno_of(child.mmap, pg(8), P, "rw") == "ENOMEM"
    check(mm, child)


def test_fork_shares_plain_vma_values_and_builds_the_others(strategy: str):
    """dup_mmap in the model: a VMA that is the same in the child is the same value (each holder
    owns its name reference); faulted, locked and wiped ones are new values."""
    mm = Mm(strategy)
    for page, prot in ((0, "rw"), (2, "r"), (4, "rw"), (6, "rw")):
        mm.mmap(pg(page), P, prot)
        mm.set_anon_name(pg(page), P, "plain")
    mm.fault(pg(4))
    mm.mlock(pg(6), P, onfault=True)
    child = mm.fork()
    same = [c is p for c, p in zip(child.vmas, mm.vmas, strict=True)]
    assert same == [strategy == "refcount", strategy == "refcount", False, False]
    assert child.vmas[1].file is None and child.vmas[2].anon_chain == 2
    check(mm, child)


def test_fork_counts_every_reference_it_takes(strategy: str):
    """gets from the inline path (plain VMAs) and from dup (a faulted VMA) add up."""
    mm = Mm(strategy)
    mm.mmap(pg(0), P, "rw")
    mm.mmap(pg(2), P, "rw")
    mm.set_anon_name(pg(0), P, "n")
    mm.set_anon_name(pg(2), P, "n")
    mm.fault(pg(2))
    child = mm.fork()
    c = child.name_counters
    assert (c.gets, c.allocs) == ((2, 0) if strategy == "refcount" else (0, 2))
    check(mm, child)


def test_fork_reports_a_freed_name_still_held_by_a_vma(strategy: str):
    """A name freed under a VMA (a refcount bug) is a use after free when fork shares it."""
    mm = Mm(strategy)
    mm.mmap(pg(0), P, "rw")
    mm.set_anon_name(pg(0), P, "n")
    obj = mm.vmas[0].anon_name
    obj.refcount, obj.freed = 0, True
    with pytest.raises(UseAfterFree):
        mm.fork()


# -- rules for mappings no op of the model creates (drivers' VM_IO/VM_PFNMAP/VM_DONTEXPAND, a
#    read-only file's missing VM_MAYWRITE, file offsets near 2**64): built directly --------------------

def _special(strategy: str, pages: int = 1, set_flags: int = 0, clear_flags: int = 0, pgoff: int = -1) -> Mm:
    """An mm whose one VMA at pg(0) was made with other flags (or page offset) than mmap gives."""
    mm = _mm(strategy, (0, pages, "rw"))
    v = mm.vmas[0]
    flags = (v.flags | set_flags) & ~clear_flags
    mm.index.replace(v, Vma(v.start, v.end, flags, v.pgoff if pgoff < 0 else pgoff))
    return mm


def test_madvise_dofork_refuses_io_mappings(strategy: str):
    mm = _special(strategy, set_flags=VM_IO)
    mm.madvise(pg(0), P, "dontfork")  # allowed: VM_IO mappings may be left out of a fork
    assert mm.vmas[0].flags & VM_DONTCOPY
    with pytest.raises(OSError) as exc:
        mm.madvise(pg(0), P, "dofork")
    assert (exc.value.errno, exc.value.strerror) == (errno.EINVAL, "MADV_DOFORK on a VM_IO mapping")
    assert mm.vmas[0].flags & VM_DONTCOPY


@pytest.mark.parametrize("flag", [VM_DONTEXPAND, VM_PFNMAP])
def test_mremap_refuses_to_resize_or_dontunmap_pfn_and_dontexpand_mappings(strategy: str, flag: int):
    mm = _special(strategy, set_flags=flag)
    with pytest.raises(OSError) as exc:
        mm.mremap(pg(0), P, P, ["maymove", "fixed", "dontunmap"], pg(9))
    assert (exc.value.errno, exc.value.strerror) == (
        errno.EINVAL, "MREMAP_DONTUNMAP on a VM_DONTEXPAND/VM_PFNMAP mapping")
    with pytest.raises(OSError) as exc:
        mm.mremap(pg(0), P, 2 * P)
    assert (exc.value.errno, exc.value.strerror) == (errno.EFAULT, "mapping may not be resized")
    assert mm.mremap(pg(0), P, P, ["maymove", "fixed"], pg(9)) == pg(9)  # a plain move is allowed


def test_an_io_mapping_cannot_grow_in_place(strategy: str):
    """vma_merge never merges VM_SPECIAL VMAs, so mremap's expansion of one fails."""
    mm = _special(strategy, set_flags=VM_IO)
    with pytest.raises(OSError) as exc:
        mm.mremap(pg(0), P, 2 * P)
    assert (exc.value.errno, exc.value.strerror) == (errno.ENOMEM, "cannot expand the mapping in place")


def test_mprotect_refuses_a_protection_the_mapping_may_not_have(strategy: str):
    mm = _special(strategy, clear_flags=VM_MAYWRITE | VM_WRITE)  # as a read-only file gives
    with pytest.raises(OSError) as exc:
        mm.mprotect(pg(0), P, "rw")
    assert (exc.value.errno, exc.value.strerror) == (errno.EACCES, "mapping may not get that protection")
    mm.mprotect(pg(0), P, "rx")  # what VM_MAY* allow is fine


@pytest.mark.parametrize("pgoff, expected", [(U64 - 3, "OK"), (U64 - 1, "EINVAL")])
def test_mremap_refuses_a_file_offset_that_would_wrap(strategy: str, pgoff: int, expected: str):
    """vma_to_resize: the offset of the resized part plus its new length may not pass 2**64 pages."""
    mm = _special(strategy, pages=2, pgoff=pgoff)
    assert errno_of(mm.mremap, pg(1), P, 2 * P) == expected  # offset pgoff + 1, two pages
    if expected == "EINVAL":
        with pytest.raises(OSError) as exc:
            mm.mremap(pg(1), P, 2 * P)
        assert exc.value.strerror == "file offset overflows"


def test_mremap_of_an_address_no_vma_holds_is_efault(strategy: str):
    """vma_to_resize: no VMA at addr (in a hole, or past the last VMA) is EFAULT, and nothing changes."""
    mm = Mm(strategy)
    mm.mmap(pg(0), 2 * P, "rw")
    mm.mmap(pg(4), 2 * P, "r")
    before = [(v.start, v.end, v.flags) for v in mm.vmas]
    for addr, flags in ((pg(2), ()), (pg(8), ("maymove",)), (pg(3), ("maymove", "fixed"))):
        with pytest.raises(OSError) as exc:
            mm.mremap(addr, P, 2 * P, flags, pg(16) if "fixed" in flags else None)
        assert exc.value.errno == errno.EFAULT and f"{addr:#x} is not mapped" in str(exc.value)
    assert [(v.start, v.end, v.flags) for v in mm.vmas] == before
    check(mm)
