"""The registry's namings by the kernel's rules (anonvma.live.registry.kernel_naming), on made-up maps.

Each case is a /proc/self/maps a process could have; the registry asks the model's
mm/madvise.c what naming a range does there. No kernel is needed: these run anywhere.
"""

from __future__ import annotations

import errno
from typing import List

from anonvma.live.registry.fileformat import Entry
from anonvma.live.registry.kernel_naming import rename, vma_count
from anonvma.procmaps.records import Vma

P = 4096
BASE = 0x7F0000000000


def anon(start_page: int, pages: int, perms: str = "rw-p", name: str = "") -> Vma:
    """A private anonymous VMA as maps shows it."""
    return Vma(BASE + start_page * P, BASE + (start_page + pages) * P, perms, 0, "00:00", 0, name)


def at(page: int) -> int:
    return BASE + page * P


def names(entries: List[Entry]) -> List[tuple]:
    return [((e.start - BASE) // P, (e.end - BASE) // P, e.name) for e in entries]


def test_the_map_count_limit_counts_vmas_after_the_splits_not_registrations():
    """Ten VMAs, vm.max_map_count 12: one name in the middle of a VMA splits it in three (12
    VMAs), a second one would need 14: EAGAIN (mm/mmap.c split_vma, made EAGAIN by
    madvise_vma_anon_name), though the registry would hold only two ranges."""
    maps = [anon(16 * i, 8) for i in range(10)]
    entries, error = rename(maps, [], at(2), at(4), "one", 12)
    assert (names(entries), error) == ([(2, 4, "one")], 0)
    assert vma_count(maps, entries) == 12
    again, error = rename(maps, entries, at(16 + 2), at(16 + 4), "two", 12)
    assert (again, error) == (entries, errno.EAGAIN)
    # at the start of a VMA one split is enough: 13 VMAs, still one too many
    assert rename(maps, entries, at(16), at(16 + 4), "two", 12) == (entries, errno.EAGAIN)
    assert rename(maps, entries, at(16), at(16 + 4), "two", 13)[1] == 0
    # a whole VMA needs no split at all
    whole, error = rename(maps, entries, at(16), at(16 + 8), "two", 12)
    assert (names(whole), error) == ([(2, 4, "one"), (16, 24, "two")], 0)


def test_clearing_splits_too_and_a_rename_that_merges_needs_no_room():
    maps = [anon(0, 8), anon(16, 8)]
    named, _ = rename(maps, [], at(0), at(8), "a", 100)
    assert vma_count(maps, named) == 2
    # clearing the middle of a named VMA splits it in three: no room for that at 2 VMAs
    assert rename(maps, named, at(2), at(4), None, 2) == (named, errno.EAGAIN)
    cleared, error = rename(maps, named, at(2), at(4), None, 4)
    assert (names(cleared), error) == ([(0, 2, "a"), (4, 8, "a")], 0)
    # naming the hole back merges the three pieces into one VMA: fine at any limit that holds them
    merged, error = rename(maps, cleared, at(2), at(4), "a", vma_count(maps, cleared))
    assert (names(merged), error) == ([(0, 8, "a")], 0)
    assert vma_count(maps, merged) == 2


def test_a_hole_is_enomem_after_every_mapped_part_is_named():
    maps = [anon(0, 2), anon(3, 2), anon(6, 1)]
    entries, error = rename(maps, [], at(0), at(8), "holey", 100)
    assert (names(entries), error) == ([(0, 2, "holey"), (3, 5, "holey"), (6, 7, "holey")], errno.ENOMEM)
    assert rename(maps, [], at(10), at(12), "nothing", 100) == ([], errno.ENOMEM)


def file_vma(start_page: int, pages: int, perms: str = "rw-p") -> Vma:
    return Vma(at(start_page), at(start_page + pages), perms, 0, "fe:01", 1234, "/usr/lib/x.so")


def shared_anon(start_page: int, pages: int) -> Vma:
    return Vma(at(start_page), at(start_page + pages), "rw-s", 0, "00:01", 5678, "/dev/zero (deleted)")


def test_file_backed_and_shared_memory_is_ebadf_with_the_parts_before_named():
    """6.1 mm/madvise.c madvise_vma_anon_name: a VMA with a vm_file (a file, or shmem for shared
    anonymous memory) cannot be named; the walk stops there."""
    for other in (file_vma(2, 2), shared_anon(2, 2)):
        maps = [anon(0, 2), other, anon(4, 2)]
        entries, error = rename(maps, [], at(0), at(6), "mixed", 100)
        assert (names(entries), error) == ([(0, 2, "mixed")], errno.EBADF), other.name


def special(start_page: int, pages: int, name: str) -> Vma:
    return Vma(at(start_page), at(start_page + pages), "r-xp", 0, "00:00", 0, name)


def test_a_special_mapping_is_named_only_whole_and_never_recorded():
    maps = [anon(0, 2), special(2, 2, "[vdso]"), anon(4, 2)]
    entries, error = rename(maps, [], at(0), at(6), "all", 100)
    assert (names(entries), error) == ([(0, 2, "all"), (4, 6, "all")], 0)  # maps shows [vdso] anyway
    # cutting it is special_mapping_split's EINVAL, after naming what comes before
    entries, error = rename(maps, [], at(0), at(3), "cut", 100)
    assert (names(entries), error) == ([(0, 2, "cut")], errno.EINVAL)
    assert rename(maps, [], at(3), at(6), "cut", 100) == ([], errno.EINVAL)


def test_a_new_name_splits_older_ones_across_vmas_and_none_clears():
    maps = [anon(0, 4), anon(4, 4, "r--p")]  # apart by permissions
    entries, _ = rename(maps, [], at(0), at(8), "a", 100)
    assert [(e.start, e.end, e.perms) for e in entries] == [(at(0), at(4), "rw-p"), (at(4), at(8), "r--p")]
    entries, _ = rename(maps, entries, at(3), at(5), "b", 100)
    assert names(entries) == [(0, 3, "a"), (3, 4, "b"), (4, 5, "b"), (5, 8, "a")]
    assert vma_count(maps, entries) == 4
    entries, _ = rename(maps, entries, at(0), at(8), None, 100)
    assert entries == []


def test_vsyscall_is_not_one_of_the_mms_vmas():
    vsyscall = Vma(0xFFFFFFFFFF600000, 0xFFFFFFFFFF601000, "--xp", 0, "00:00", 0, "[vsyscall]")
    maps: List[Vma] = [anon(0, 1), vsyscall]
    assert vma_count(maps, []) == 1
    assert rename(maps, [], 0xFFFFFFFFFF600000, 0xFFFFFFFFFF601000, "x", 100) == ([], errno.ENOMEM)


def test_namings_in_one_large_vma_agree_with_cut_and_insert_whatever_the_order():
    """In mapped private anonymous memory a naming is: the range's old names taken out, the new
    one put in (mm/madvise.c replace_anon_vma_name on each piece). The model, loaded with only
    the pieces around each range, must agree; and the VMA count is the number of runs."""
    import random

    from anonvma.live.registry.kernel_naming import cut_out, merged

    maps = [anon(0, 64), anon(64, 8, "r--p"), anon(100, 16)]
    rng = random.Random(20261207)
    entries: List[Entry] = []
    for _ in range(300):
        vma = rng.choice([maps[0], maps[0], maps[2]])
        first, pages = (vma.start - BASE) // P, (vma.end - vma.start) // P
        a = rng.randrange(first, first + pages)
        b = rng.randrange(a + 1, first + pages + 1)
        name = rng.choice(["x", "y", "z", None])
        expected = cut_out(entries, at(a), at(b))
        if name is not None:
            expected = merged(expected + [Entry(at(a), at(b), name, vma.perms)])
        entries, error = rename(maps, entries, at(a), at(b), name, 1 << 20)
        assert (entries, error) == (expected, 0)
        runs = 0
        for v in maps:
            cover = [next((e.name for e in entries if e.start <= addr < e.end), None)
                     for addr in range(v.start, v.end, P)]
            runs += 1 + sum(x != y for x, y in zip(cover, cover[1:], strict=False))
        assert vma_count(maps, entries) == runs
