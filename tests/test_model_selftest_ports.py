"""Userspace test suites about PR_SET_VMA_ANON_NAME, ported to the model (KERNEL-NOTES 3.1, 3.3, 3.4).

Outcomes were checked on the Linux 6.1 UML oracle. Every test runs under both name strategies
and ends with the invariant checker.
"""

import re

from model_helpers import P, both_strategies, check, errno_of, layout, pg

from anonvma.model import Mm

pytestmark = both_strategies

# -- tools/testing/selftests/prctl/set-anon-vma-name-test.c ------------------------------------

AREA_SIZE = 1024
#: the selftest's sscanf("%lx-%lx %7s %lx %u:%u %u %s")
SSCANF = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{1,7}) ([0-9a-f]+) (\d+):(\d+) (\d+)\s+(\S+)")


def _selftest_fixture(strategy: str) -> tuple[Mm, int]:
    mm = Mm(strategy)
    return mm, mm.mmap(pg(0), AREA_SIZE, "rw")


def test_selftest_rename_1024_bytes_shows_goodname_at_the_mapping_start(strategy):
    mm, ptr = _selftest_fixture(strategy)
    mm.set_anon_name(ptr, AREA_SIZE, "goodname")
    found = [m for m in map(SSCANF.match, mm.maps().splitlines())
             if m and int(m[1], 16) == ptr and m[8] == "[anon:goodname]"]
    assert len(found) == 1
    assert layout(mm) == ["0-1000 rw-p [anon:goodname]"]  # 1024 bytes round up to the page
    check(mm)


def test_selftest_bad_name_with_control_char_is_einval_and_changes_nothing(strategy):
    mm, ptr = _selftest_fixture(strategy)
    assert errno_of(mm.set_anon_name, ptr, AREA_SIZE, "badname\x01") == "EINVAL"
    assert layout(mm) == ["0-1000 rw-p"]
    assert mm.strategy.total.live == 0
    check(mm)


def test_selftest_non_anon_quirk_unaligned_address_is_einval(strategy):
    # The selftest's "non-anonymous" VMA is mmap(fd 0) == MAP_FAILED == (void *)-1: an unaligned address.
    mm, ptr = _selftest_fixture(strategy)
    assert errno_of(mm.set_anon_name, (1 << 64) - 1, AREA_SIZE, "goodname") == "EINVAL"
    assert errno_of(mm.set_anon_name, ptr + 1, AREA_SIZE, "goodname") == "EINVAL"
    assert layout(mm) == ["0-1000 rw-p"]
    check(mm)


def test_selftest_non_anon_file_backed_vma_is_ebadf(strategy):
    mm, _ = _selftest_fixture(strategy)
    mm.mmap(pg(2), AREA_SIZE, "rw", file="f")
    assert errno_of(mm.set_anon_name, pg(2), AREA_SIZE, "goodname") == "EBADF"
    assert layout(mm) == ["0-1000 rw-p", "2000-3000 rw-p file:f@0"]
    assert mm.strategy.total.live == 0
    check(mm)


# -- bionic tests/sys_prctl_test.cpp TEST(sys_prctl, bug_20017123) -----------------------------

def test_bionic_naming_across_prot_none_page_names_both_vmas_sorted_and_disjoint(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(16), 3 * P, "rw")
    mm.mprotect(pg(16), P, "")
    mm.set_anon_name(pg(16), 3 * P, "anonymous map space")
    assert layout(mm) == ["10000-11000 ---p [anon:anonymous map space]",
                          "11000-13000 rw-p [anon:anonymous map space]"]
    prev_end = 0
    for line in mm.maps().splitlines():
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        assert lo >= prev_end and lo < hi
        prev_end = hi
    check(mm)


# -- glibc elf/tst-decorate-maps.c ------------------------------------------------------------

def test_glibc_name_with_leading_space_shows_verbatim(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(0), 64 * P, "rw")  # malloc(256 KiB) above mmap_threshold
    mm.set_anon_name(pg(0), 64 * P - 100, " glibc: malloc")  # rounds up
    assert layout(mm) == ["0-40000 rw-p [anon: glibc: malloc]"]
    assert mm.maps().endswith(" [anon: glibc: malloc]\n")
    check(mm)


def test_glibc_thread_stack_named_up_to_guard_page_splits_and_clears_back(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(32), 8 * P, "rw")  # a stack whose guard page is not yet a separate VMA
    mm.set_anon_name(pg(33), 7 * P, " glibc: pthread stack: 7")
    assert layout(mm) == ["20000-21000 rw-p", "21000-28000 rw-p [anon: glibc: pthread stack: 7]"]
    mm.set_anon_name(pg(33), 7 * P, None)  # thread exit: glibc clears the name
    assert layout(mm) == ["20000-28000 rw-p"]
    assert mm.strategy.total.live == 0
    check(mm)


def test_glibc_thread_stack_with_prot_none_guard_leaves_guard_unnamed(strategy):
    mm = Mm(strategy)
    mm.mmap(pg(32), 8 * P, "rw")
    mm.mprotect(pg(32), P, "")  # setup_stack_prot
    mm.set_anon_name(pg(33), 7 * P, " glibc: pthread stack: 7")
    assert layout(mm) == ["20000-21000 ---p", "21000-28000 rw-p [anon: glibc: pthread stack: 7]"]
    check(mm)


def test_glibc_decorate_maps_counts_stacks_arenas_and_malloc(strategy):
    mm = Mm(strategy)
    addr = 0
    stacks = []

    def region(pages: int) -> int:
        nonlocal addr
        start = pg(addr)
        addr += pages + 1  # keep a hole so nothing merges
        mm.mmap(start, pages * P, "rw")
        return start

    mm.set_anon_name(region(64), 64 * P, " glibc: malloc")
    for _ in range(7):  # arena heaps: only the RW part is named
        heap = region(16)
        mm.mprotect(heap + 4 * P, 12 * P, "")
        mm.set_anon_name(heap, 4 * P, " glibc: malloc arena")
    for tid in range(8):
        stack = region(8)
        mm.mprotect(stack, P, "")
        mm.set_anon_name(stack + P, 7 * P, f" glibc: pthread stack: {100 + tid}")
        stacks.append(stack)
    for tid in range(2):
        mm.set_anon_name(region(8), 8 * P, f" glibc: pthread user stack: {200 + tid}")
    text = mm.maps()
    assert text.count("[anon: glibc: pthread stack:") == 8
    assert text.count("[anon: glibc: pthread user stack:") == 2
    assert text.count("[anon: glibc: malloc arena]") == 7
    assert text.count("[anon: glibc: malloc]") == 1
    check(mm)
    for stack in stacks:  # threads joined: stacks cached, names cleared
        mm.set_anon_name(stack + P, 7 * P, None)
    text = mm.maps()
    assert text.count("[anon: glibc: pthread stack:") == 0
    assert text.count("[anon: glibc: malloc arena]") == 7
    assert text.count("[anon: glibc: malloc]") == 1
    check(mm)
