"""Splitting and merging VMAs the way Linux 6.1 does (mm/mmap.c), names included.

Merges compare names by string (anon_vma_name_eq) but keep object identity: the surviving
VMA keeps its own name object and every VMA freed by a merge drops its reference.
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
    """mm/mmap.c is_mergeable_vma: equal flags and file, no ->close, equal names (by string)."""
    return vma.flags == flags and vma.file is file and anon_vma_name_eq(vma.anon_name, anon_name)


def is_mergeable_anon_vma(anon_vma1: Optional[AnonVma], anon_vma2: Optional[AnonVma],
                          vma: Optional[Vma]) -> bool:
    """mm/mmap.c is_mergeable_anon_vma: the NULL shortcut needs ``vma``'s chain to be singular."""
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
    """mm/mmap.c anon_vma_compatible: adjacent, same file, flags differ only in access bits,
    pgoff-linear. Names are not looked at."""
    return (a.end == b.start and a.file is b.file
            and not (a.flags ^ b.flags) & ~VM_ACCESS_FLAGS
            and b.pgoff == a.pgoff + ((b.start - a.start) >> PAGE_SHIFT))


def _import_anon_vma(importer: Vma, exporters: list[Vma]) -> None:
    """__vma_adjust: a survivor without anon_vma takes the first exporter's (anon_vma_clone)."""
    if importer.anon_vma is not None:
        return
    for exporter in exporters:
        if exporter.anon_vma is not None:
            importer.anon_vma = exporter.anon_vma
            importer.anon_chain = exporter.anon_chain
            return


def vma_merge(mm: "Mm", prev: Optional[Vma], addr: int, end: int, flags: int,
              anon_vma: Optional[AnonVma], file: Optional[File], pgoff: int,
              anon_name: Optional[AnonVmaName]) -> Optional[Vma]:
    """mm/mmap.c vma_merge (6.1): try to join [addr, end) to ``prev`` and/or the next VMA.

    [addr, end) is either a hole (mremap/brk) or lies inside one VMA (mprotect, madvise, naming).
    Prev is tried first; both merge only when their anon_vmas are compatible (prev wins otherwise).
    :return: the VMA now covering [addr, end), or None when nothing merged.
    """
    if flags & VM_SPECIAL:
        return None
    pglen = (end - addr) >> PAGE_SHIFT
    index = mm.index
    nxt = index.find_vma(prev.end if prev is not None else 0)
    mid = nxt
    if nxt is not None and nxt.end == end:  # cases 6, 7, 8
        nxt = index.find_vma(nxt.end)

    merge_prev = (prev is not None and prev.end == addr
                  and can_vma_merge_after(prev, flags, anon_vma, file, pgoff, anon_name))
    merge_next = (nxt is not None and end == nxt.start
                  and can_vma_merge_before(nxt, flags, anon_vma, file, pgoff + pglen, anon_name))
    # mid is an existing VMA overlapping [addr, end) (mprotect-style cases 4-8), or not (1-3).
    overlapped = mid is not None and mid.start < end

    if merge_prev and merge_next and is_mergeable_anon_vma(prev.anon_vma, nxt.anon_vma, None):  # type: ignore[union-attr]
        assert prev is not None and nxt is not None
        removed = [mid, nxt] if overlapped else [nxt]  # cases 6 / 1
        _import_anon_vma(prev, removed)  # type: ignore[arg-type]
        new_end = nxt.end
        for vma in removed:  # out of the index before prev grows over them
            mm.remove_vma(vma)  # type: ignore[arg-type]
        prev.end = new_end
        return prev
    if merge_prev:
        assert prev is not None
        if overlapped:
            assert mid is not None
            _import_anon_vma(prev, [mid])
            if mid.end == end:  # case 7
                mm.remove_vma(mid)
            else:  # case 5: mid keeps its tail
                mid.pgoff += (end - mid.start) >> PAGE_SHIFT
                mid.start = end
        prev.end = end
        return prev  # case 2 when nothing overlapped
    if merge_next:
        assert nxt is not None
        if prev is not None and addr < prev.end:  # case 4: prev gives its tail to next
            _import_anon_vma(nxt, [prev])
            prev.end = addr
        elif overlapped:  # case 8: next grows down over mid, mid is freed
            assert mid is not None
            _import_anon_vma(nxt, [mid])
            mm.remove_vma(mid)
        nxt.start = addr
        nxt.pgoff -= pglen
        return nxt
    return None


def split_vma_at(mm: "Mm", vma: Vma, addr: int, new_below: bool) -> Vma:
    """mm/mmap.c __split_vma: cut ``vma`` at ``addr``; the new piece shares the name (dup).

    With ``new_below`` the new VMA is the part below ``addr``, else the part above; ``vma``
    keeps the other part. anon_vma and its chain are cloned; pgoff stays linear.
    :return: the new VMA.
    """
    new = vma.copy()
    if vma.anon_name is not None:
        new.anon_name = mm.strategy.dup(vma.anon_name, mm.name_counters)
    if new_below:
        new.end = addr
        vma.pgoff += (addr - vma.start) >> PAGE_SHIFT
        vma.start = addr
    else:
        new.start = addr
        new.pgoff += (addr - vma.start) >> PAGE_SHIFT
        vma.end = addr
    mm.index.insert(new)
    return new


def split_vma(mm: "Mm", vma: Vma, addr: int, new_below: bool) -> Vma:
    """mm/mmap.c split_vma: __split_vma behind the map-count limit.

    :raises OSError: ENOMEM when the mm already has max_map_count VMAs.
    """
    if len(mm.index) >= mm.max_map_count:
        raise OSError(errno.ENOMEM, "split would exceed max_map_count")
    return split_vma_at(mm, vma, addr, new_below)
