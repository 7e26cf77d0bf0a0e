"""The anonymous page offset (7.3 mm/vma.c needs_adjacent_anon_pgoff, vma_start_anon_pgoff):
how every VMA's is kept, and where 7.3 merges and anon_vma reuse look at it. What real kernels
print for the same steps is in tests/scripts/rel_private_file_moved_faulted.jsonl."""

from __future__ import annotations

import pytest

from anonvma import releases
from anonvma.model import Mm
from anonvma.model.check import InvariantError, check_machine
from anonvma.model.kernel import get_kernel
from anonvma.model.merge import anon_pgoff_of_private_files
from anonvma.model.vma import PAGE_SHIFT
from model_helpers import P, both_strategies, pg

pytestmark = both_strategies

#: every release, and whether its merges compare the anonymous page offset
COMPARED = [(r, get_kernel(r).needs_adjacent_anon_pgoff is anon_pgoff_of_private_files)
            for r in releases.names()]
#: a release that compares it (the offsets are kept on every release, seen only there)
NEW = next(r for r, compared in COMPARED if compared)


def _vma(mm: Mm, page: int):  # type: ignore[no-untyped-def]
    vma = mm.find_vma(pg(page))
    assert vma is not None and vma.start <= pg(page)
    return vma


def _faulted_file_page_moved(mm: Mm) -> None:
    """File page 0 mapped private at page 40, written, moved to page 2 (keeping page 40's
    anonymous offset)."""
    mm.mmap(pg(40), P, "rw", file="f", pgoff=0)
    mm.fault(pg(40))
    mm.mremap(pg(40), P, P, ("maymove", "fixed"), pg(2))


def test_a_new_mapping_takes_its_page_number_and_splits_stay_linear(strategy: str):
    mm = Mm(strategy, NEW)
    mm.mmap(pg(4), 4 * P, "rw", file="f", pgoff=7)
    mm.mprotect(pg(5), P, "r")
    assert [(v.pgoff, v.anon_pgoff) for v in mm.vmas] == [
        (7, pg(4) >> PAGE_SHIFT), (8, pg(5) >> PAGE_SHIFT), (9, pg(6) >> PAGE_SHIFT)]
    check_machine(mm.machine)


@pytest.mark.parametrize("faulted", [False, True])
def test_a_faulted_move_keeps_its_anonymous_offset_an_unfaulted_one_starts_afresh(strategy: str,
                                                                                  faulted: bool):
    mm = Mm(strategy, NEW)
    mm.mmap(pg(40), P, "rw", file="f", pgoff=0)
    if faulted:
        mm.fault(pg(40))
    mm.mremap(pg(40), P, P, ("maymove", "fixed"), pg(2))
    moved = _vma(mm, 2)
    assert moved.pgoff == 0  # the file offset always goes along
    assert moved.anon_pgoff == (pg(40) if faulted else pg(2)) >> PAGE_SHIFT
    check_machine(mm.machine)


def test_an_emptied_dontunmap_source_starts_afresh(strategy: str):
    mm = Mm(strategy, NEW)
    _faulted_file_page_moved(mm)
    mm.mremap(pg(2), P, P, ("maymove", "fixed", "dontunmap"), pg(20))
    source = _vma(mm, 2)
    assert source.anon_vma is None and source.pgoff == 0
    assert source.anon_pgoff == pg(2) >> PAGE_SHIFT
    assert _vma(mm, 20).anon_pgoff == pg(40) >> PAGE_SHIFT
    check_machine(mm.machine)


@pytest.mark.parametrize("linux, compared", COMPARED)
def test_a_faulted_private_file_vma_moved_away_no_longer_takes_its_file_neighbour(
        strategy: str, linux: str, compared: bool):
    """6.12 merges the new neighbour into the faulted VMA (its file offsets run on); 7.3 does
    not, the anonymous offsets do not: the moved VMA kept those of page 40."""
    merged = not compared
    mm = Mm(strategy, linux)
    _faulted_file_page_moved(mm)
    mm.mmap(pg(3), P, "rw", file="f", pgoff=1)
    assert [(v.start, v.end) for v in mm.vmas] == (
        [(pg(2), pg(4))] if merged else [(pg(2), pg(3)), (pg(3), pg(4))])
    check_machine(mm.machine)


def test_moved_back_it_merges_again(strategy: str):
    mm = Mm(strategy, NEW)
    _faulted_file_page_moved(mm)
    mm.mremap(pg(2), P, P, ("maymove", "fixed"), pg(40))
    mm.mmap(pg(41), P, "rw", file="f", pgoff=1)
    assert [(v.start, v.end) for v in mm.vmas] == [(pg(40), pg(42))]
    check_machine(mm.machine)


@pytest.mark.parametrize("linux, compared", COMPARED)
def test_a_fault_reuses_a_neighbours_anon_vma_only_where_the_anonymous_offsets_run_on(
        strategy: str, linux: str, compared: bool):
    """find_mergeable_anon_vma: anon_vma_compatible ignores access flags (rw beside rwx) and,
    on 7.3, also asks for contiguous anonymous offsets."""
    shared = not compared
    mm = Mm(strategy, linux)
    _faulted_file_page_moved(mm)
    mm.mmap(pg(3), P, "rwx", file="f", pgoff=1)
    mm.fault(pg(3))
    assert (_vma(mm, 3).anon_vma is _vma(mm, 2).anon_vma) is shared
    check_machine(mm.machine)


def test_anonymous_memory_has_no_second_offset(strategy: str):
    """For anonymous VMAs the two offsets are one; the invariant checker holds the model to it."""
    mm = Mm(strategy, NEW)
    mm.mmap(pg(40), P, "rw")
    mm.fault(pg(40))
    mm.mremap(pg(40), P, P, ("maymove", "fixed"), pg(2))
    moved = _vma(mm, 2)
    assert moved.pgoff == moved.anon_pgoff == pg(40) >> PAGE_SHIFT
    mm.index.replace(moved, moved.with_offsets(moved.pgoff, moved.pgoff + 1))
    with pytest.raises(InvariantError, match="anonymous page offset"):
        check_machine(mm.machine)
