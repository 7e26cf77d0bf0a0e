"""Splitting and merging VMAs (6.1 mm/mmap.c; 6.12 mm/vma.c keeps the same rules), names included.

Merges compare names by string (anon_vma_name_eq) but keep object identity: the surviving
VMA keeps its own name object and every VMA freed by a merge drops its reference. Hot path
(every syscall that changes flags or names): written for speed, with the kernel's structure.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Optional

from anonvma.model.names import AnonVmaName, anon_vma_name_eq
from anonvma.model.vma import PAGE_SHIFT, VM_ACCESS_FLAGS, VM_SPECIAL, AnonVma, File, Vma

if TYPE_CHECKING:
    from anonvma.model.mm import Mm


def is_mergeable_vma(vma: Vma, file: Optional[File], flags: int,
                     anon_name: Optional[AnonVmaName]) -> bool:
    """is_mergeable_vma: equal flags and file, no ->close, equal names (by string)."""
    return vma.flags == flags and vma.file is file and anon_vma_name_eq(vma.anon_name, anon_name)


def is_mergeable_anon_vma(anon_vma1: Optional[AnonVma], anon_vma2: Optional[AnonVma],
                          vma: Optional[Vma]) -> bool:
    """is_mergeable_anon_vma: the NULL shortcut needs ``vma``'s chain to be singular (a fork
    child's chains never are; an unfaulted VMA's is empty, so then both must be NULL)."""
    if (anon_vma1 is None or anon_vma2 is None) and (vma is None or vma.anon_chain == 1):
        return True
    return anon_vma1 is anon_vma2


def can_vma_merge_before(vma: Vma, flags: int, anon_vma: Optional[AnonVma], file: Optional[File],
                         pgoff: int, anon_name: Optional[AnonVmaName]) -> bool:
    """A range ending where ``vma`` starts (file offset ``pgoff`` + its length) may join it."""
    return (is_mergeable_vma(vma, file, flags, anon_name)
            and is_mergeable_anon_vma(anon_vma, vma.anon_vma, vma) and vma.pgoff == pgoff)


def can_vma_merge_after(vma: Vma, flags: int, anon_vma: Optional[AnonVma], file: Optional[File],
                        pgoff: int, anon_name: Optional[AnonVmaName]) -> bool:
    """A range starting where ``vma`` ends, at file offset ``pgoff``, may join it."""
    return (is_mergeable_vma(vma, file, flags, anon_name)
            and is_mergeable_anon_vma(anon_vma, vma.anon_vma, vma)
            and vma.pgoff + ((vma.end - vma.start) >> PAGE_SHIFT) == pgoff)


def anon_vma_compatible(a: Vma, b: Vma) -> bool:
    """anon_vma_compatible: adjacent, same file, flags differ only in access bits,
    pgoff-linear. Names are not looked at."""
    return (a.end == b.start and a.file is b.file
            and not (a.flags ^ b.flags) & ~VM_ACCESS_FLAGS
            and b.pgoff == a.pgoff + ((b.start - a.start) >> PAGE_SHIFT))


def _anon_vma_of(importer: Vma, exporters: tuple[Vma, ...]) -> tuple[Optional[AnonVma], int]:
    """__vma_adjust / dup_anon_vma: a survivor without anon_vma takes the first exporter's."""
    if importer.anon_vma is None:
        for exporter in exporters:
            if exporter.anon_vma is not None:
                return exporter.anon_vma, exporter.anon_chain
    return importer.anon_vma, importer.anon_chain


def _grown(survivor: Vma, start: int, end: int, pgoff: int, absorbed: tuple[Vma, ...]) -> Vma:
    """The survivor of a merge over [start, end), with an anon_vma taken from what it absorbed."""
    anon_vma, chain = _anon_vma_of(survivor, absorbed)
    return Vma(start, end, survivor.flags, pgoff, survivor.file, anon_vma, chain, survivor.anon_name)


def vma_merge(mm: "Mm", prev: Optional[Vma], addr: int, end: int, flags: int,
              anon_vma: Optional[AnonVma], file: Optional[File], pgoff: int,
              anon_name: Optional[AnonVmaName]) -> Optional[Vma]:
    """vma_merge: try to join [addr, end) to ``prev`` and/or the next VMA.

    [addr, end) is either a hole (mremap, and 6.12's new mappings) or lies inside one VMA
    (mprotect, madvise, naming). Prev is tried first; both merge only when their anon_vmas are
    compatible (prev wins otherwise). The survivor keeps its own name object.
    :return: the VMA now covering [addr, end), or None when nothing merged.
    """
    if flags & VM_SPECIAL:
        return None
    pglen = (end - addr) >> PAGE_SHIFT
    index = mm.index
    nxt = index.find_vma(prev.end if prev is not None else 0)
    mid = nxt
    if nxt is not None and nxt.end == end:  # cases 6, 7, 8
        nxt = index.find_vma(end)

    merge_prev = (prev is not None and prev.end == addr
                  and can_vma_merge_after(prev, flags, anon_vma, file, pgoff, anon_name))
    merge_next = (nxt is not None and end == nxt.start
                  and can_vma_merge_before(nxt, flags, anon_vma, file, pgoff + pglen, anon_name))
    # mid is an existing VMA overlapping [addr, end) (mprotect-style cases 4-8), or not (1-3).
    overlapped = mid is not None and mid.start < end

    if merge_prev and merge_next and is_mergeable_anon_vma(
            prev.anon_vma, nxt.anon_vma, None):  # type: ignore[union-attr]  # cases 1, 6
        assert prev is not None and nxt is not None and mid is not None
        removed = (mid, nxt) if overlapped else (nxt,)
        merged = _grown(prev, prev.start, nxt.end, prev.pgoff, removed)
        for vma in removed:
            mm.remove_vma(vma)
        index.replace(prev, merged)
        return merged
    if merge_prev:  # cases 2, 5, 7
        assert prev is not None
        if overlapped:
            assert mid is not None
            merged = _grown(prev, prev.start, end, prev.pgoff, (mid,))
            if mid.end == end:  # case 7
                mm.remove_vma(mid)
            else:  # case 5: mid keeps its tail
                tail = mid.pgoff + ((end - mid.start) >> PAGE_SHIFT)
                index.replace(mid, mid.with_range(end, mid.end, tail))
        else:
            merged = prev.with_range(prev.start, end, prev.pgoff)
        index.replace(prev, merged)
        return merged
    if merge_next:
        assert nxt is not None
        if prev is not None and addr < prev.end:  # case 4: prev gives its tail to next
            merged = _grown(nxt, addr, nxt.end, nxt.pgoff - pglen, (prev,))
            index.replace(prev, prev.with_range(prev.start, addr, prev.pgoff))
        elif overlapped:  # case 8: next grows down over mid, mid is freed
            assert mid is not None
            merged = _grown(nxt, addr, nxt.end, nxt.pgoff - pglen, (mid,))
            mm.remove_vma(mid)
        else:  # case 3
            merged = nxt.with_range(addr, nxt.end, nxt.pgoff - pglen)
        index.replace(nxt, merged)
        return merged
    return None


def split_vma_at(mm: "Mm", vma: Vma, addr: int) -> tuple[Vma, Vma]:
    """__split_vma: cut ``vma`` at ``addr`` into (below, above); the copy shares the name (dup).

    The kernel keeps one struct and vm_area_dup's the other; which one is the copy does not
    show (both hold the name, the copy through dup_anon_vma_name), so the part above is it.
    anon_vma and its chain are cloned; pgoff stays linear.
    """
    name = vma.anon_name
    above_name = mm.strategy.dup(name, mm.name_counters) if name is not None else None
    below = Vma(vma.start, addr, vma.flags, vma.pgoff, vma.file, vma.anon_vma, vma.anon_chain, name)
    above = Vma(addr, vma.end, vma.flags, vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT), vma.file,
                vma.anon_vma, vma.anon_chain, above_name)
    mm.index.replace(vma, below, above)
    return below, above


def split_vma(mm: "Mm", vma: Vma, addr: int) -> tuple[Vma, Vma]:
    """split_vma: __split_vma behind the map-count limit.

    :raises OSError: ENOMEM when the mm already has max_map_count VMAs.
    """
    if len(mm.index) >= mm.max_map_count:
        raise OSError(errno.ENOMEM, "split would exceed max_map_count")
    return split_vma_at(mm, vma, addr)
