"""Edge cases and rules of PR_SET_VMA_ANON_NAME in Linux 6.1 (KERNEL-NOTES 1.2-1.8, 1.10, 1.11).

Every expected outcome here was checked on the Linux 6.1 UML oracle (ops scripts, and for the
map-count limit a script that set vm.max_map_count to the process's own count + 0/1). Each test
runs under both name strategies and ends with the invariant checker.
"""

from __future__ import annotations

import pytest
from model_helpers import OLDEST, P, both_strategies, check, errno_of, layout, pg

from anonvma import releases
from anonvma.model.bugs import HistoricBugs
from anonvma.model import Mm
from anonvma.model.names import NameCounters
from anonvma.model.task_mmu import NAME_COLUMN

pytestmark = both_strategies

U64 = (1 << 64) - 1


def _names(mm: Mm) -> list:
    return [v.anon_name for v in mm.vmas]


# -- 1.2 argument handling, in order ------------------------------------------------------------

def test_size_not_page_multiple_is_rounded_up(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 4 * P, "rw")
    mm.set_anon_name(pg(0), 1, "x")
    mm.set_anon_name(pg(2), P + 1, "y")
    assert layout(mm) == ["0-1000 rw-p [anon:x]", "1000-2000 rw-p", "2000-4000 rw-p [anon:y]"]
    check(mm)


def test_size_zero_is_a_no_op_only_after_the_name_and_address_are_valid(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(2), P, "rw")
    assert errno_of(mm.set_anon_name, pg(2), 0, "a$") == "EINVAL"  # name first
    assert errno_of(mm.set_anon_name, pg(2) + 1, 0, "ok") == "EINVAL"  # then alignment
    assert errno_of(mm.set_anon_name, pg(0), 0, "ok") == "OK"  # unmapped, but nothing to do
    assert errno_of(mm.set_anon_name, pg(2), 0, "ok") == "OK"
    assert layout(mm) == ["2000-3000 rw-p"]
    assert mm.strategy.total.live == 0
    check(mm)


def test_size_overflowing_when_rounded_or_wrapping_is_einval(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), P, "rw")
    assert errno_of(mm.set_anon_name, 0, U64, "w") == "EINVAL"  # rounds to 0
    assert errno_of(mm.set_anon_name, U64 + 1 - P, 2 * P, "w") == "EINVAL"  # end < addr
    assert errno_of(mm.set_anon_name, 0, U64, "w$") == "EINVAL"
    assert layout(mm) == ["0-1000 rw-p"]
    check(mm)


def test_79_char_name_is_accepted_and_80_is_einval(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 2 * P, "rw")
    mm.set_anon_name(pg(0), P, "a" * 79)
    assert errno_of(mm.set_anon_name, pg(1), P, "b" * 80) == "EINVAL"
    assert layout(mm) == ["0-1000 rw-p [anon:" + "a" * 79 + "]", "1000-2000 rw-p"]
    check(mm)


@pytest.mark.parametrize("bad", ["a\\b", "a`b", "a$b", "a[b", "a]b", "a\x7f", "\x1f", "\xe9", "tab\t"])
def test_forbidden_name_chars_are_einval(strategy, bad):
    mm = Mm(strategy)
    mm.mmap(pg(0), P, "rw")
    assert errno_of(mm.set_anon_name, pg(0), P, bad) == "EINVAL"
    assert layout(mm) == ["0-1000 rw-p"]
    assert mm.strategy.total.allocs == 0  # rejected before any allocation
    check(mm)


def test_all_other_printable_chars_and_space_are_allowed(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 2 * P, "rw")
    mm.set_anon_name(pg(0), P, " glibc: x")
    mm.set_anon_name(pg(1), P, "~ !#%&'()*+,-./:;<=>?@^_{|}")
    assert layout(mm) == ["0-1000 rw-p [anon: glibc: x]",
                          "1000-2000 rw-p [anon:~ !#%&'()*+,-./:;<=>?@^_{|}]"]
    check(mm)


def test_name_is_validated_before_the_address(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(2), P, "rw", file="f")
    # a bad name wins over a hole (ENOMEM) and over a file VMA (EBADF)
    assert errno_of(mm.set_anon_name, pg(0), P, "a$") == "EINVAL"
    assert errno_of(mm.set_anon_name, pg(2), P, "bad[") == "EINVAL"
    assert errno_of(mm.set_anon_name, pg(2), P, "good") == "EBADF"
    check(mm)


def test_empty_name_shows_anon_colon_and_never_merges_with_unnamed(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 4 * P, "rw")
    mm.set_anon_name(pg(0), 2 * P, "")
    assert layout(mm) == ["0-2000 rw-p [anon:]", "2000-4000 rw-p"]
    mm.set_anon_name(pg(2), 2 * P, "")
    assert layout(mm) == ["0-4000 rw-p [anon:]"]
    mm.set_anon_name(pg(0), 4 * P, None)
    assert layout(mm) == ["0-4000 rw-p"]
    assert mm.strategy.total.live == 0
    check(mm)


# -- 1.3 the range walk -------------------------------------------------------------------------

def test_addr_0_huge_size_renames_every_anon_vma_up_to_the_first_file_vma(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 2 * P, "rw")
    mm.mmap(pg(3), 2 * P, "r")
    mm.mmap(pg(6), P, "rw", file="f")
    mm.mmap(pg(8), 2 * P, "rw")
    assert errno_of(mm.set_anon_name, 0, U64 + 1 - P, "all") == "EBADF"
    assert layout(mm) == ["0-2000 rw-p [anon:all]", "3000-5000 r--p [anon:all]",
                          "6000-7000 rw-p file:f@0", "8000-a000 rw-p"]
    check(mm)


def test_addr_0_huge_size_without_file_vma_renames_all_and_reports_the_holes(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 2 * P, "rw")
    mm.mmap(pg(3), 2 * P, "r")
    assert errno_of(mm.set_anon_name, 0, U64 + 1 - P, "all") == "ENOMEM"
    assert layout(mm) == ["0-2000 rw-p [anon:all]", "3000-5000 r--p [anon:all]"]
    check(mm)


def test_range_inside_a_hole_is_enomem_and_changes_nothing(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(2), 2 * P, "rw")
    mm.mmap(pg(5), 2 * P, "rw")
    before = mm.maps()
    assert errno_of(mm.set_anon_name, pg(4), P, "z") == "ENOMEM"  # between two VMAs
    assert errno_of(mm.set_anon_name, pg(8), P, "z") == "ENOMEM"  # after the last one
    assert errno_of(mm.set_anon_name, pg(0), P, "z") == "ENOMEM"  # before the first
    assert mm.maps() == before
    assert mm.strategy.total.live == 0
    check(mm)


def test_holes_give_enomem_but_every_mapped_part_is_renamed(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(2), 2 * P, "rw")
    mm.mmap(pg(5), 2 * P, "rw")
    assert errno_of(mm.set_anon_name, pg(0), 8 * P, "h") == "ENOMEM"
    assert layout(mm) == ["2000-4000 rw-p [anon:h]", "5000-7000 rw-p [anon:h]"]
    check(mm)


def test_file_vma_stops_the_walk_with_ebadf_keeping_earlier_work(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 2 * P, "rw")
    mm.mmap(pg(2), 2 * P, "rw", file="f")
    mm.mmap(pg(4), 2 * P, "rw")
    assert errno_of(mm.set_anon_name, pg(1), 5 * P, "e") == "EBADF"
    assert layout(mm) == ["0-1000 rw-p", "1000-2000 rw-p [anon:e]", "2000-4000 rw-p file:f@0",
                          "4000-6000 rw-p"]
    check(mm)


def test_shared_anonymous_mapping_is_ebadf(strategy):
    mm = Mm(strategy, linux=OLDEST)
    mm.mmap(pg(8), 2 * P, "rw", shared=True)
    assert errno_of(mm.set_anon_name, pg(8), 2 * P, "e") == "EBADF"
    assert layout(mm) == ["8000-a000 rw-s shmem"]
    assert mm.strategy.total.live == 0
    check(mm)


# -- 1.4 per-VMA update: early no-op, merge, split -----------------------------------------------

def _two_mergeable_but_separate(mm: Mm, name):
    """P = [0, 2) and V = [2, 4), same flags, same anon_vma, same name, yet two VMAs: V was
    faulted while P was not (no merge into an unfaulted VMA), then P reused V's anon_vma."""
    if name is None:
        mm.mmap(pg(0), 4 * P, "rw")
        mm.set_anon_name(pg(2), 2 * P, "t")
        mm.fault(pg(2))
        mm.set_anon_name(pg(2), 2 * P, None)
    else:
        mm.mmap(pg(0), 2 * P, "rw")
        mm.set_anon_name(pg(0), 2 * P, name)
        mm.mmap(pg(2), 2 * P, "rw")
        mm.fault(pg(2))
        mm.set_anon_name(pg(2), 2 * P, name)
    mm.fault(pg(0))  # find_mergeable_anon_vma: P reuses V's anon_vma
    p, v = mm.vmas
    assert p.anon_vma is v.anon_vma is not None


def test_renaming_to_the_same_string_is_a_no_op_even_when_a_merge_is_possible(strategy):
    mm = Mm(strategy)
    _two_mergeable_but_separate(mm, "x")
    objs = _names(mm)
    counters = mm.strategy.total.as_dict()
    mm.set_anon_name(pg(2), 2 * P, "x")
    mm.set_anon_name(pg(0), 4 * P, "x")
    assert layout(mm) == ["0-2000 rw-p [anon:x]", "2000-4000 rw-p [anon:x]"]
    assert all(a is b for a, b in zip(_names(mm), objs, strict=True))  # old objects kept
    after = mm.strategy.total.as_dict()
    assert after["live"] == counters["live"] and after["allocs"] == counters["allocs"] + 2
    # a different name and back does go through vma_merge: now they merge
    mm.set_anon_name(pg(2), 2 * P, "y")
    assert layout(mm) == ["0-2000 rw-p [anon:x]", "2000-4000 rw-p [anon:y]"]
    mm.set_anon_name(pg(2), 2 * P, "x")
    assert layout(mm) == ["0-4000 rw-p [anon:x]"]
    assert mm.vmas[0].anon_name is objs[0]  # the survivor keeps its own object
    check(mm)


def test_clearing_an_unnamed_vma_is_a_no_op_even_when_a_merge_is_possible(strategy):
    mm = Mm(strategy)
    _two_mergeable_but_separate(mm, None)
    mm.set_anon_name(pg(0), 4 * P, None)
    assert layout(mm) == ["0-2000 rw-p", "2000-4000 rw-p"]
    mm.set_anon_name(pg(2), 2 * P, "t")
    mm.set_anon_name(pg(2), 2 * P, None)
    assert layout(mm) == ["0-4000 rw-p"]
    check(mm)


def test_rename_interior_splits_into_three_sharing_the_old_name(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 6 * P, "rw")
    mm.set_anon_name(pg(0), 6 * P, "p")
    mm.set_anon_name(pg(2), 2 * P, "q")
    assert layout(mm) == ["0-2000 rw-p [anon:p]", "2000-4000 rw-p [anon:q]", "4000-6000 rw-p [anon:p]"]
    assert [v.pgoff for v in mm.vmas] == [pg(0) // P, pg(2) // P, pg(4) // P]
    outer = mm.vmas[0].anon_name
    if strategy == "refcount":
        assert outer is mm.vmas[2].anon_name and outer is not None and outer.refcount == 2
    else:
        assert outer is not mm.vmas[2].anon_name
    check(mm)


@pytest.mark.parametrize("target,expected", [
    # case 6: P and X both compatible: P absorbs V and X
    ("both", ["0-6000 rw-p [anon:p]"]),
    # case 7: only P compatible
    ("prev", ["0-4000 rw-p [anon:p]", "4000-6000 rw-p [anon:r]"]),
    # case 8: only X compatible: X grows down over V, X's struct survives
    ("next", ["0-2000 rw-p [anon:r]", "2000-6000 rw-p [anon:p]"]),
])
def test_renaming_a_whole_vma_merges_like_vma_merge_cases_6_7_8(strategy, target, expected):
    mm = Mm(strategy)
    names = {"both": ("p", "q", "p"), "prev": ("p", "q", "r"), "next": ("r", "q", "p")}[target]
    for i, name in enumerate(names):
        mm.mmap(pg(2 * i), 2 * P, "rw")
        mm.set_anon_name(pg(2 * i), 2 * P, name)
    survivor = {"both": 0, "prev": 0, "next": 2}[target]
    survivor_name = mm.vmas[survivor].anon_name
    mm.set_anon_name(pg(2), 2 * P, "p")
    assert layout(mm) == expected
    # the surviving struct keeps its own name object; the others' objects are dropped
    (merged,) = [v for v in mm.vmas if v.anon_name is not None and v.anon_name.name == "p"]
    assert merged.anon_name is survivor_name
    assert mm.map_count == len(expected)
    check(mm)


def test_renaming_a_prefix_or_suffix_moves_the_boundary_cases_5_and_4(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 6 * P, "rw")
    mm.set_anon_name(pg(0), 6 * P, "p")
    mm.set_anon_name(pg(2), 2 * P, "q")
    mm.set_anon_name(pg(0), 3 * P, "q")  # [0,2) joins next, then [2,3) is already q
    assert layout(mm) == ["0-4000 rw-p [anon:q]", "4000-6000 rw-p [anon:p]"]
    mm.set_anon_name(pg(0), P, "p")  # prefix of V, no compatible prev: split
    mm.set_anon_name(pg(3), P, "p")  # suffix of V, next compatible: case 4
    assert layout(mm) == ["0-1000 rw-p [anon:p]", "1000-3000 rw-p [anon:q]", "3000-6000 rw-p [anon:p]"]
    mm.set_anon_name(pg(1), P, "p")  # prefix of V, prev compatible: case 5
    assert layout(mm) == ["0-2000 rw-p [anon:p]", "2000-3000 rw-p [anon:q]", "3000-6000 rw-p [anon:p]"]
    check(mm)


def test_multi_vma_range_with_equal_properties_collapses_into_one(strategy):
    mm = Mm(strategy)
    for i, name in enumerate(("a", "b", "c", "d")):
        mm.mmap(pg(2 * i), 2 * P, "rw")
        mm.set_anon_name(pg(2 * i), 2 * P, name)
    assert mm.map_count == 4
    mm.set_anon_name(pg(0), 8 * P, "all")
    assert layout(mm) == ["0-8000 rw-p [anon:all]"]
    assert mm.strategy.total.live == 1
    check(mm)


# -- 1.10 map-count limit: EAGAIN, and EAGAIN vs ENOMEM ------------------------------------------

def _limited(strategy: str, spare: int) -> Mm:
    """[0, 8) named "old" and [10, 12) unnamed, with max_map_count = map_count + spare."""
    mm = Mm(strategy, max_map_count=2 + spare)
    mm.mmap(pg(0), 8 * P, "rw")
    mm.set_anon_name(pg(0), 8 * P, "old")
    mm.mmap(pg(10), 2 * P, "rw")
    assert mm.map_count == 2
    return mm


@pytest.mark.parametrize("addr,length,why", [
    (2, 2, "interior"), (0, 2, "prefix"), (4, 4, "suffix"),
    (9, 2, "hole then a split"), (4, 6, "a split then a hole"),
])
def test_at_the_map_count_limit_a_needed_split_is_eagain_before_any_change(strategy, addr, length, why):
    mm = _limited(strategy, 0)
    before = mm.maps()
    assert errno_of(mm.set_anon_name, pg(addr), length * P, "new") == "EAGAIN", why
    assert mm.maps() == before and mm.map_count == 2
    check(mm)


def test_at_the_map_count_limit_renaming_whole_vmas_still_works(strategy):
    mm = _limited(strategy, 0)
    mm.set_anon_name(pg(0), 8 * P, "new")
    assert errno_of(mm.set_anon_name, pg(0), 12 * P, "new") == "ENOMEM"  # a hole, no split
    assert layout(mm) == ["0-8000 rw-p [anon:new]", "a000-c000 rw-p [anon:new]"]
    check(mm)


def test_one_below_the_limit_interior_rename_keeps_the_first_split_and_is_eagain(strategy):
    mm = _limited(strategy, 1)
    assert errno_of(mm.set_anon_name, pg(2), 2 * P, "new") == "EAGAIN"
    assert layout(mm) == ["0-2000 rw-p [anon:old]", "2000-8000 rw-p [anon:old]", "a000-c000 rw-p"]
    assert mm.map_count == 3
    check(mm)


def test_one_below_the_limit_prefix_rename_needs_one_split_and_works(strategy):
    mm = _limited(strategy, 1)
    mm.set_anon_name(pg(0), 2 * P, "new")
    assert layout(mm) == ["0-2000 rw-p [anon:new]", "2000-8000 rw-p [anon:old]", "a000-c000 rw-p"]
    check(mm)


@pytest.mark.parametrize("addr,length", [(9, 2), (4, 6)])
def test_one_below_the_limit_holes_give_enomem_after_renaming(strategy, addr, length):
    mm = _limited(strategy, 1)
    assert errno_of(mm.set_anon_name, pg(addr), length * P, "new") == "ENOMEM"
    assert mm.map_count == 3
    check(mm)


# -- 1.5 / 1.11: new mappings, invisible flags ----------------------------------------------------

def test_new_mapping_never_merges_into_a_named_neighbour(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(2), 2 * P, "rw")
    mm.set_anon_name(pg(2), 2 * P, "n")
    mm.mmap(pg(4), 2 * P, "rw")  # after it
    mm.mmap(pg(0), 2 * P, "rw")  # before it
    assert layout(mm) == ["0-2000 rw-p", "2000-4000 rw-p [anon:n]", "4000-6000 rw-p"]
    mm.set_anon_name(pg(0), 6 * P, "n")
    assert layout(mm) == ["0-6000 rw-p [anon:n]"]
    check(mm)


def test_new_mapping_between_two_faulted_vmas_extends_next_first(strategy):
    mm = Mm(strategy, linux=OLDEST)
    for page in (20, 22):  # each gets its own anon_vma (no adjacent VMA to reuse one from)
        mm.mmap(pg(page), P, "rw")
        mm.fault(pg(page))
    mm.mmap(pg(21), P, "rw")
    assert layout(mm) == ["14000-15000 rw-p", "15000-17000 rw-p"]  # 6.12 gives 14000-16000
    check(mm)


def test_naming_between_two_faulted_vmas_merges_prev_first(strategy):
    mm = Mm(strategy)
    for page in (20, 22, 21):
        mm.mmap(pg(page), P, "rw")
        if page != 21:
            mm.fault(pg(page))
        mm.set_anon_name(pg(page), P, "p")
    assert layout(mm) == ["14000-16000 rw-p [anon:p]", "16000-17000 rw-p [anon:p]"]
    check(mm)


@pytest.mark.parametrize("name", [None, "n"])
def test_vm_account_kept_after_write_removal_blocks_merges_until_both_have_it(strategy, name):
    mm = Mm(strategy, linux=OLDEST)
    mm.mmap(pg(0), 2 * P, "r")
    mm.mmap(pg(2), 2 * P, "rw")
    if name is not None:
        mm.set_anon_name(pg(0), 2 * P, name)
        mm.set_anon_name(pg(2), 2 * P, name)
    mm.mprotect(pg(2), 2 * P, "r")
    tag = "" if name is None else f" [anon:{name}]"
    assert layout(mm) == ["0-2000 r--p" + tag, "2000-4000 r--p" + tag]
    mm.mprotect(pg(0), 2 * P, "rw")
    mm.mprotect(pg(0), 2 * P, "r")
    assert layout(mm) == ["0-4000 r--p" + tag]
    check(mm)


def test_munmap_of_part_of_a_named_vma_drops_only_that_piece(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 4 * P, "rw")
    mm.set_anon_name(pg(0), 4 * P, "m")
    mm.munmap(pg(1), 2 * P)
    assert layout(mm) == ["0-1000 rw-p [anon:m]", "3000-4000 rw-p [anon:m]"]
    assert mm.strategy.total.live == (1 if strategy == "refcount" else 2)
    check(mm)


# -- 1.8 refcount lifecycle ----------------------------------------------------------------------

def test_one_prctl_without_merge_leaves_one_reference_and_with_merge_frees_its_object(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 2 * P, "rw")
    mm.set_anon_name(pg(0), 2 * P, "a")
    obj = mm.vmas[0].anon_name
    assert obj is not None and obj.refcount == 1 and mm.strategy.total.live == 1
    mm.mmap(pg(2), 2 * P, "rw")
    allocs, frees = mm.strategy.total.allocs, mm.strategy.total.frees
    mm.set_anon_name(pg(2), 2 * P, "a")  # merges into [0, 2): its object is never adopted
    assert layout(mm) == ["0-4000 rw-p [anon:a]"]
    assert mm.vmas[0].anon_name is obj and obj.refcount == 1
    assert (mm.strategy.total.allocs, mm.strategy.total.frees) == (allocs + 1, frees + 1)
    check(mm)


# -- 1.7 fork ------------------------------------------------------------------------------------

def test_fork_shares_name_objects_under_refcount_and_copies_them_under_strdup(strategy):
    mm = Mm(strategy)
    names = ["first", "second-name", "x" * 79]
    for i, name in enumerate(names):
        mm.mmap(pg(2 * i), P, "rw")
        mm.set_anon_name(pg(2 * i), P, name)
    mm.mmap(pg(10), P, "rw")  # unnamed: costs nothing
    before = NameCounters(**{k: v for k, v in mm.strategy.total.as_dict().items() if k != "live"})
    child = mm.fork()
    cost = child.name_counters
    assert layout(child) == layout(mm)
    if strategy == "refcount":
        assert (cost.allocs, cost.bytes_copied, cost.gets) == (0, 0, 3)
        assert all(c.anon_name is p.anon_name for c, p in zip(child.vmas, mm.vmas, strict=True))
        assert all(v.anon_name is None or v.anon_name.refcount == 2 for v in mm.vmas)
    else:
        assert (cost.allocs, cost.bytes_copied, cost.gets) == (3, sum(len(n) + 1 for n in names), 0)
        assert all(c.anon_name is not p.anon_name for c, p in zip(child.vmas, mm.vmas, strict=True)
                   if c.anon_name is not None)
    assert mm.strategy.total.minus(before).allocs == cost.allocs
    check(mm, child)
    child.exit()
    assert mm.strategy.total.live == 3
    check(mm)
    mm.exit()
    assert mm.strategy.total.live == 0


def test_fork_skips_dontcopy_vmas_taking_no_reference(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 3 * P, "rw")
    mm.set_anon_name(pg(0), 3 * P, "d")
    mm.madvise(pg(1), P, "dontfork")
    assert layout(mm) == ["0-1000 rw-p [anon:d]", "1000-2000 rw-p [anon:d]", "2000-3000 rw-p [anon:d]"]
    child = mm.fork()
    assert layout(child) == ["0-1000 rw-p [anon:d]", "2000-3000 rw-p [anon:d]"]
    assert child.name_counters.gets + child.name_counters.allocs == 2
    check(mm, child)
    mm.madvise(pg(1), P, "dofork")
    assert layout(mm) == ["0-3000 rw-p [anon:d]"]
    check(mm, child)


def test_wipeonfork_vma_keeps_its_name_but_the_child_copy_is_unfaulted(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 2 * P, "rw")
    mm.set_anon_name(pg(0), 2 * P, "w")
    mm.fault(pg(0))
    mm.madvise(pg(0), 2 * P, "wipeonfork")
    child = mm.fork()
    assert layout(child) == ["0-2000 rw-p [anon:w]"]
    (vma,) = child.vmas
    assert vma.anon_vma is None and not child.ptes
    assert "\nRss:                   0 kB\n" in child.smaps()
    # still VM_WIPEONFORK in the child, so a new same-named neighbour stays apart
    child.mmap(pg(2), P, "rw")
    child.set_anon_name(pg(2), P, "w")
    assert layout(child) == ["0-2000 rw-p [anon:w]", "2000-3000 rw-p [anon:w]"]
    check(mm, child)


@pytest.mark.parametrize("name", [None, "q"])
def test_forked_faulted_vma_refuses_merges_that_need_the_null_anon_vma_shortcut(strategy, name):
    mm = Mm(strategy)
    mm.mmap(pg(0), 2 * P, "rw")
    if name:
        mm.set_anon_name(pg(0), 2 * P, name)
    mm.fault(pg(0))
    child = mm.fork()
    for m in (child, mm):  # the same steps in the child, then in the parent
        m.mmap(pg(2), 2 * P, "rw")
        if name:
            m.set_anon_name(pg(2), 2 * P, name)
    tag = "" if name is None else f" [anon:{name}]"
    assert layout(child) == ["0-2000 rw-p" + tag, "2000-4000 rw-p" + tag]
    assert layout(mm) == ["0-4000 rw-p" + tag]
    # the child's own faulted VMAs (singular chain) still merge
    child.mmap(pg(8), 2 * P, "rw")
    child.fault(pg(8))
    if name:
        child.set_anon_name(pg(8), 2 * P, name)
    child.mmap(pg(10), P, "rw")
    if name:
        child.set_anon_name(pg(10), P, name)
    assert layout(child)[-1] == "8000-b000 rw-p" + tag
    check(mm, child)


# -- 1.8 saturation ------------------------------------------------------------------------------

def test_refcount_saturation_makes_fresh_copies_and_everything_is_freed_at_exit(strategy):
    mm = Mm(strategy, refcount_max=3)
    mm.mmap(pg(0), 8 * P, "rw")
    mm.set_anon_name(pg(0), 8 * P, "sat")
    for page in range(1, 8):  # odd pages read-only: every split dups the name
        mm.mprotect(pg(page), P, "r" if page % 2 else "rw")
    assert mm.map_count == 8
    objs = {id(v.anon_name): v.anon_name for v in mm.vmas}
    if strategy == "refcount":
        # at the limit each dup made a fresh copy: never above 3 references, 8 in all
        assert all(o is not None and o.refcount <= 3 for o in objs.values())
        assert sum(o.refcount for o in objs.values()) == 8 and 3 <= len(objs) < 8
    else:
        assert len(objs) == 8
    assert mm.strategy.total.live == len(objs)
    check(mm)
    children = [mm.fork(), mm.fork()]
    check(mm, *children)
    if strategy == "refcount":
        assert all(v.anon_name is not None and v.anon_name.refcount <= 3
                   for m in (mm, *children) for v in m.vmas)
    total = mm.strategy.total
    assert total.allocs - total.frees == total.live == len(mm.strategy.live)
    for m in (*children, mm):
        m.exit()
    assert mm.strategy.total.live == 0 and not mm.strategy.live and mm.machine.mms == []
    check(mm)


def test_saturated_rename_adopts_a_fresh_copy(strategy):
    mm = Mm(strategy, refcount_max=2)
    mm.mmap(pg(0), 4 * P, "rw")
    for page in range(0, 4, 2):
        mm.mmap(pg(page), P, "rw")
    mm.mprotect(pg(1), P, "r")
    mm.mprotect(pg(3), P, "r")
    mm.set_anon_name(pg(0), P, "s")
    mm.set_anon_name(pg(2), P, "s")
    assert layout(mm) == ["0-1000 rw-p [anon:s]", "1000-2000 r--p", "2000-3000 rw-p [anon:s]",
                          "3000-4000 r--p"]
    a, b = mm.vmas[0].anon_name, mm.vmas[2].anon_name
    assert a is not b and a is not None and b is not None and a.refcount == b.refcount == 1
    check(mm)


# -- 1.9 /proc rendering -------------------------------------------------------------------------

def test_maps_pads_the_name_to_column_73_and_ends_unnamed_lines_with_a_space(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), P, "rw")
    mm.mmap(pg(2), P, "rw")
    mm.set_anon_name(pg(2), P, "pad")
    unnamed, named = mm.maps().splitlines()
    assert unnamed == "4000000000-4000001000 rw-p 00000000 00:00 0 "
    assert NAME_COLUMN == 72 and named.index("[anon:pad]") == 73
    assert named[:73] == "4000002000-4000003000 rw-p 00000000 00:00 0".ljust(73)
    low = Mm(strategy)
    low.mmap(0x10000, P, "rw")
    low.set_anon_name(0x10000, P, "low")
    assert low.maps() == "00010000-00011000 rw-p 00000000 00:00 0" + " " * 34 + "[anon:low]\n"
    check(mm, low)


def _smaps_fields(text: str) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = []
    for line in text.splitlines():
        key, sep, val = line.partition(":")
        if sep and " " not in key:
            entries[-1][key] = val.strip()
        else:
            entries.append({"header": line})
    return entries


def test_smaps_header_is_the_maps_line_and_counts_follow_faults_and_fork(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 4 * P, "rw")
    mm.set_anon_name(pg(0), 2 * P, "sm")
    for page in (0, 1, 2):
        mm.fault(pg(page))
    mm.fault(pg(3), write=False)  # the zero page: not in Rss
    entries = _smaps_fields(mm.smaps())
    assert [e["header"] for e in entries] == mm.maps().splitlines()
    assert [(e["Size"], e["Rss"], e["Pss"], e["Private_Dirty"]) for e in entries] == [
        ("8 kB", "8 kB", "8 kB", "8 kB"), ("8 kB", "4 kB", "4 kB", "4 kB")]
    child = mm.fork()
    for m in (mm, child):
        entries = _smaps_fields(m.smaps())
        assert [e["header"] for e in entries] == m.maps().splitlines()
        assert [(e["Rss"], e["Pss"], e["Shared_Dirty"], e["Private_Dirty"]) for e in entries] == [
            ("8 kB", "4 kB", "8 kB", "0 kB"), ("4 kB", "2 kB", "4 kB", "0 kB")]
    child.fault(pg(0))  # COW break: the child's copy is private, the parent's page too
    parent_first = _smaps_fields(mm.smaps())[0]
    child_first = _smaps_fields(child.smaps())[0]
    assert (parent_first["Pss"], parent_first["Private_Dirty"]) == ("6 kB", "4 kB")
    assert (child_first["Pss"], child_first["Private_Dirty"]) == ("6 kB", "4 kB")
    check(mm, child)


def test_an_mm_joining_a_machine_refuses_the_arguments_the_machine_decides(strategy: str):
    """strategy, linux, refcount_max, commit_limit_pages and bugs are the machine's: an Mm that
    joins one would ignore them, so passing them is an error; its own limits it takes."""
    parent = Mm(strategy, releases.RELEASES[0].name)
    for given in ({"strategy": strategy}, {"linux": releases.DEFAULT}, {"refcount_max": 3},
                  {"commit_limit_pages": 10}, {"bugs": HistoricBugs(no_transient_name_ref=True)}):
        with pytest.raises(TypeError, match=next(iter(given))):
            Mm(machine=parent.machine, **given)  # type: ignore[arg-type]
    child = Mm(machine=parent.machine, max_map_count=7, task_size=1 << 40)
    assert (child.max_map_count, child.task_size, child.strategy) == (7, 1 << 40, parent.strategy)
