"""Splitting and merging VMAs (6.1 mm/mmap.c; 6.12 mm/vma.c keeps the same rules), names included.

Merges compare names by string (anon_vma_name_eq) but keep object identity: the surviving
VMA keeps its own name object and every VMA freed by a merge drops its reference. Hot path
(every syscall that changes flags or names): written for speed, with the kernel's structure.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Callable, Optional

from anonvma.model.kernel import rule
from anonvma.model.names import AnonVmaName, anon_vma_name_eq
from anonvma.model.vma import (PAGE_SHIFT, VM_ACCESS_FLAGS, VM_MAYBE_GUARD, VM_MAYWRITE, VM_SHARED,
                               VM_SPECIAL, AnonVma, File, Vma)

if TYPE_CHECKING:
    from anonvma.model.mm import Mm

#: include/linux/mm.h VMA_STICKY_FLAGS (6.19+; the oracle has no CONFIG_MEM_SOFT_DIRTY): ignored
#: when flags are compared for a merge, OR-ed into the merged VMA. Only 6.19+ ever sets
#: VM_MAYBE_GUARD (madvise_guard_install), so older releases never see a difference.
VM_STICKY = VM_MAYBE_GUARD

#: (target, the range's anon_vma, the chain length of the VMA it comes from) -> whether the
#: anon_vmas allow the merge, once they are not the same object.
AnonVmaRule = Callable[[Vma, Optional[AnonVma], int], bool]


def is_mergeable_anon_vma(anon_vma1: Optional[AnonVma], anon_vma2: Optional[AnonVma],
                          vma: Optional[Vma]) -> bool:
    """is_mergeable_anon_vma: the NULL shortcut needs ``vma``'s chain to be singular (a fork
    child's chains never are; an unfaulted VMA's is empty, so then both must be NULL)."""
    if (anon_vma1 is None or anon_vma2 is None) and (vma is None or vma.anon_chain == 1):
        return True
    return anon_vma1 is anon_vma2


@rule("mm/vma.c is_mergeable_anon_vma", "",
      "a NULL anon_vma on either side merges only into a target whose chain is singular", "before 5.17")
def anon_vma_target_singular(target: Vma, anon_vma: Optional[AnonVma], src_chain: int) -> bool:
    """Different anon_vmas merge when one is NULL and the target's chain is singular: an
    unfaulted target (empty chain) takes only an unfaulted range."""
    return (anon_vma is None or target.anon_vma is None) and target.anon_chain == 1


@rule("mm/vma.c is_mergeable_anon_vma, vma_is_fork_child", "",
      "mm/vma: a faulted range may merge into an unfaulted VMA unless it comes from a fork child",
      "6.18")
def anon_vma_unless_fork_child(target: Vma, anon_vma: Optional[AnonVma], src_chain: int) -> bool:
    """Three cases: an unfaulted target takes a faulted range (dup_anon_vma) unless the VMA
    the range comes from (the VMA changed, or an mremap source) is a fork child (its chain is
    not singular); a faulted target takes an unfaulted range unless it is a fork child; two
    anon_vmas must be the same. (The host's 6.18.44 already behaves so: KERNEL-NOTES §7 R9.)"""
    if target.anon_vma is None:
        return src_chain == 1
    return anon_vma is None and target.anon_chain == 1


@rule("mm/vma.c can_vma_merge_before, can_vma_merge_after", "",
      "merges of private file mappings compare only their file page offsets", "before 5.17")
def anon_pgoff_not_compared(flags: int, file: Optional[File]) -> bool:
    """No VMA has an anonymous page offset of its own: the file offset is all a merge compares."""
    return False


@rule("mm/vma.c needs_adjacent_anon_pgoff", "",
      "mm: private file mappings carry an anonymous page offset of their own, which merges "
      "must find contiguous", "7.3")
def anon_pgoff_of_private_files(flags: int, file: Optional[File]) -> bool:
    """A copy-on-write file mapping (a file, VM_MAYWRITE without VM_SHARED) merges only where
    the anonymous offsets run on too: a faulted one moved elsewhere keeps the old ones, so it
    no longer merges with neighbours its file offsets would join."""
    return file is not None and flags & (VM_SHARED | VM_MAYWRITE) == VM_MAYWRITE


def merge_anon_pgoff(mm: "Mm", flags: int, file: Optional[File], anon_pgoff: int) -> Optional[int]:
    """The anonymous offset a merge of a range with ``flags`` and ``file`` must find contiguous,
    or None when the release's needs_adjacent_anon_pgoff says it is not compared."""
    return anon_pgoff if mm.kernel.needs_adjacent_anon_pgoff(flags, file) else None


def can_vma_merge_before(vma: Vma, flags: int, anon_vma: Optional[AnonVma], file: Optional[File],
                         pgoff: int, anon_pgoff: Optional[int], anon_name: Optional[AnonVmaName],
                         anon_ok: AnonVmaRule, src_chain: int = 1) -> bool:
    """A range ending where ``vma`` starts (file offset ``pgoff`` + its length) may join it:
    is_mergeable_vma (sticky flags ignored), the release's is_mergeable_anon_vma (``anon_ok``;
    ``src_chain``: the chain of the VMA the range's anon_vma comes from, 1 when none), the
    pgoff rule and, unless ``anon_pgoff`` is None (:func:`merge_anon_pgoff`), the same for the
    anonymous offset ``anon_pgoff`` + the range's length (hot path: inlined by hand)."""
    if (vma.flags ^ flags) & ~VM_STICKY or vma.file is not file or vma.pgoff != pgoff:
        return False
    if anon_pgoff is not None and vma.anon_pgoff != anon_pgoff:
        return False
    name = vma.anon_name
    if name is not anon_name and not anon_vma_name_eq(name, anon_name):
        return False
    return anon_vma is vma.anon_vma or anon_ok(vma, anon_vma, src_chain)


def can_vma_merge_after(vma: Vma, flags: int, anon_vma: Optional[AnonVma], file: Optional[File],
                        pgoff: int, anon_pgoff: Optional[int], anon_name: Optional[AnonVmaName],
                        anon_ok: AnonVmaRule, src_chain: int = 1) -> bool:
    """A range starting where ``vma`` ends, at file offset ``pgoff`` and anonymous offset
    ``anon_pgoff``, may join it (as above)."""
    pages = (vma.end - vma.start) >> PAGE_SHIFT
    if ((vma.flags ^ flags) & ~VM_STICKY or vma.file is not file or vma.pgoff + pages != pgoff
            or anon_pgoff is not None and vma.anon_pgoff + pages != anon_pgoff):
        return False
    name = vma.anon_name
    if name is not anon_name and not anon_vma_name_eq(name, anon_name):
        return False
    return anon_vma is vma.anon_vma or anon_ok(vma, anon_vma, src_chain)


def anon_vma_compatible(a: Vma, b: Vma, anon_pgoff: bool) -> bool:
    """anon_vma_compatible: adjacent, same file, flags differ only in access bits (and sticky
    ones), pgoff-linear, and anonymous-pgoff-linear where the release compares that
    (``anon_pgoff``). Names are not looked at."""
    return (a.end == b.start and a.file is b.file
            and not (a.flags ^ b.flags) & ~(VM_ACCESS_FLAGS | VM_STICKY)
            and b.pgoff == a.pgoff + ((b.start - a.start) >> PAGE_SHIFT)
            and (not anon_pgoff or b.anon_pgoff == a.anon_pgoff_at(b.start)))


def _grown(survivor: Vma, start: int, end: int, pgoff: int, absorbed: tuple[Vma, ...]) -> Vma:
    """The survivor of a merge over [start, end); without an anon_vma of its own it takes the
    first absorbed VMA's (__vma_adjust / dup_anon_vma)."""
    anon_vma, chain = survivor.anon_vma, survivor.anon_chain
    if anon_vma is None:
        for exporter in absorbed:
            if exporter.anon_vma is not None:
                anon_vma, chain = exporter.anon_vma, exporter.anon_chain
                break
    return Vma(start, end, survivor.flags, pgoff, survivor.file, anon_vma, chain, survivor.anon_name,
               survivor.anon_pgoff_at(start))


def vma_merge(mm: "Mm", prev: Optional[Vma], addr: int, end: int, flags: int,
              anon_vma: Optional[AnonVma], file: Optional[File], pgoff: int, anon_pgoff: int,
              anon_name: Optional[AnonVmaName], src_chain: int = 1) -> Optional[Vma]:
    """vma_merge: try to join [addr, end) (file offset ``pgoff``, anonymous offset
    ``anon_pgoff``) to ``prev`` and/or the next VMA.

    [addr, end) is either a hole (mremap, and 6.12's new mappings) or lies inside one VMA
    (mprotect, madvise, naming). Prev is tried first; both merge only when their anon_vmas are
    compatible (prev wins otherwise). The survivor keeps its own name object; it takes the
    range's anon_vma when it has none (dup_anon_vma: ``src_chain`` is the chain of the VMA the
    anon_vma comes from) and the sticky flags of every VMA it absorbed (6.19+).
    :return: the VMA now covering [addr, end), or None when nothing merged.
    """
    if flags & VM_SPECIAL:
        return None
    if prev is not None and end < prev.end:
        return None  # strictly inside prev: no neighbour touches it (6.12 checks this first)
    index = mm.index
    nxt = index.find_vma(prev.end if prev is not None else 0)
    mid = nxt
    if nxt is not None and nxt.end == end:  # cases 6, 7, 8
        nxt = index.find_vma(end)
    pglen = (end - addr) >> PAGE_SHIFT

    anon_ok = mm.kernel.is_mergeable_anon_vma
    anon_off = None if file is None else merge_anon_pgoff(mm, flags, file, anon_pgoff)  # hot path
    merge_prev = (prev is not None and prev.end == addr
                  and can_vma_merge_after(prev, flags, anon_vma, file, pgoff, anon_off, anon_name,
                                          anon_ok, src_chain))
    merge_next = (nxt is not None and end == nxt.start
                  and can_vma_merge_before(nxt, flags, anon_vma, file, pgoff + pglen,
                                           None if anon_off is None else anon_off + pglen,
                                           anon_name, anon_ok, src_chain))
    # mid is an existing VMA overlapping [addr, end) (mprotect-style cases 4-8), or not (1-3).
    overlapped = mid is not None and mid.start < end

    if merge_prev and merge_next and is_mergeable_anon_vma(
            prev.anon_vma, nxt.anon_vma, None):  # type: ignore[union-attr]  # cases 1, 6
        assert prev is not None and nxt is not None and mid is not None
        removed = (mid, nxt) if overlapped else (nxt,)
        merged = _grown(prev, prev.start, nxt.end, prev.pgoff, removed)
        index.splice(prev, 1 + len(removed), (merged,))
        mm.strategy.put_vmas(removed, mm.name_counters)  # vm_area_free of each
        return settle_merge(mm, merged, flags | prev.flags | nxt.flags, anon_vma, src_chain)
    if merge_prev:  # cases 2, 5, 7
        assert prev is not None
        if not overlapped:  # case 2
            merged = prev.with_range(prev.start, end, prev.pgoff)
            index.replace(prev, merged)
        else:
            assert mid is not None
            merged = _grown(prev, prev.start, end, prev.pgoff, (mid,))
            if mid.end == end:  # case 7
                index.splice(prev, 2, (merged,))
                mm.strategy.put_vmas((mid,), mm.name_counters)
            else:  # case 5: mid keeps its tail
                tail = mid.pgoff + ((end - mid.start) >> PAGE_SHIFT)
                index.splice(prev, 2, (merged, mid.with_range(end, mid.end, tail)))
        return settle_merge(mm, merged, flags | prev.flags, anon_vma, src_chain)
    if merge_next:
        assert nxt is not None
        merged = nxt.with_range(addr, nxt.end, nxt.pgoff - pglen)
        if prev is not None and addr < prev.end:  # case 4: prev gives its tail to next
            merged = _grown(nxt, addr, nxt.end, nxt.pgoff - pglen, (prev,))
            index.splice(prev, 2, (prev.with_range(prev.start, addr, prev.pgoff), merged))
        elif overlapped:  # case 8: next grows down over mid, mid is freed
            assert mid is not None
            merged = _grown(nxt, addr, nxt.end, nxt.pgoff - pglen, (mid,))
            index.splice(mid, 2, (merged,))
            mm.strategy.put_vmas((mid,), mm.name_counters)
        else:  # case 3
            index.replace(nxt, merged)
        return settle_merge(mm, merged, flags | nxt.flags, anon_vma, src_chain)
    return None


def settle_merge(mm: "Mm", merged: Vma, flags: int, anon_vma: Optional[AnonVma], src_chain: int) -> Vma:
    """The merged VMA's last touches: the sticky bits of ``flags`` (the range's and the
    neighbours' it absorbed; vma_set_flags_mask), and the range's anon_vma when it has none
    (only a 6.18+ merge of a faulted range into an unfaulted VMA gets here with one)."""
    settled = merged
    sticky = flags & VM_STICKY & ~merged.flags
    if sticky:
        settled = settled.with_flags(settled.flags | sticky)
    if settled.anon_vma is None and anon_vma is not None:
        settled = settled.with_anon_vma(anon_vma, src_chain or 1)
    if settled is not merged:
        mm.index.replace(merged, settled)
    return settled


def vma_modify_flags(mm: "Mm", prev: Optional[Vma], vma: Vma, start: int, end: int,
                     new_flags: int) -> Vma:
    """6.12 vma_modify_flags: [start, end) of ``vma`` with new flags, its name kept (mprotect,
    mlock, mseal, and madvise on VMAs that cannot be named); see :func:`vma_modify`."""
    return vma_modify(mm, prev, vma, start, end, new_flags, vma.anon_name, False)


def vma_modify_flags_name(mm: "Mm", prev: Optional[Vma], vma: Vma, start: int, end: int,
                          new_flags: int, anon_name: Optional[AnonVmaName]) -> Vma:
    """6.12 vma_modify_flags_name: [start, end) of ``vma`` with new flags and the name
    ``anon_name`` (madvise_update_vma on VMAs that can be named: naming, and flag advice,
    whose name is the VMA's own); see :func:`vma_modify`."""
    return vma_modify(mm, prev, vma, start, end, new_flags, anon_name, True)


def vma_modify(mm: "Mm", prev: Optional[Vma], vma: Vma, start: int, end: int, new_flags: int,
               anon_name: Optional[AnonVmaName], set_name: bool) -> Vma:
    """6.12 vma_modify (6.1: the same steps in mprotect_fixup and madvise_update_vma): give
    [start, end) of ``vma`` new flags (and, with ``set_name``, the name ``anon_name``), merging
    it into a neighbour when it can, else splitting it off; returns the VMA now covering it.
    Callers use the two entry points above, as the kernel's do.

    Each split is refused at max_map_count (ENOMEM); when the second is refused the first
    stays. The split-off pieces share (refcount) or copy (strdup) the old name before the
    middle gives it up (replace_anon_vma_name). Hot path: both splits are one index update.
    """
    # a range touching neither end of the VMA cannot merge (vma_merge_existing_range's first test)
    merged = vma_merge(mm, prev, start, end, new_flags, vma.anon_vma, vma.file,
                       vma.pgoff + ((start - vma.start) >> PAGE_SHIFT), vma.anon_pgoff_at(start),
                       anon_name, vma.anon_chain) if start == vma.start or end == vma.end else None
    if merged is not None:
        if set_name:  # the survivor's own name object stays: equal strings by construction
            replace_anon_vma_name(mm, merged.anon_name, anon_name)
        return merged
    below, above = start != vma.start, end != vma.end
    count, limit = mm.index.count, mm.max_map_count
    if below or above:
        if count >= limit:
            raise OSError(errno.ENOMEM, "split would exceed max_map_count")
        if below and above and count + 1 >= limit:
            split_vma_at(mm, vma, start)  # the first split stays
            raise OSError(errno.ENOMEM, "split would exceed max_map_count")
    name = vma.anon_name
    strategy, counters = mm.strategy, mm.name_counters
    pieces = []
    if below:
        pieces.append(Vma(vma.start, start, vma.flags, vma.pgoff, vma.file, vma.anon_vma,
                          vma.anon_chain, strategy.dup(name, counters) if name is not None else None,
                          vma.anon_pgoff))
    upper = None
    if above:
        upper = Vma(end, vma.end, vma.flags, vma.pgoff + ((end - vma.start) >> PAGE_SHIFT), vma.file,
                    vma.anon_vma, vma.anon_chain,
                    strategy.dup(name, counters) if name is not None else None,
                    vma.anon_pgoff_at(end))
    if set_name:
        name = replace_anon_vma_name(mm, name, anon_name)
    middle = Vma(start, end, new_flags, vma.pgoff + ((start - vma.start) >> PAGE_SHIFT), vma.file,
                 vma.anon_vma, vma.anon_chain, name, vma.anon_pgoff_at(start))
    pieces.append(middle)
    if upper is not None:
        pieces.append(upper)
    mm.index.splice(vma, 1, pieces)
    return middle


def replace_anon_vma_name(mm: "Mm", orig: Optional[AnonVmaName],
                          anon_name: Optional[AnonVmaName]) -> Optional[AnonVmaName]:
    """mm/madvise.c replace_anon_vma_name: the VMA's name after the update: cleared, its own
    object kept when the strings are equal, or ``anon_name`` adopted (the old one put)."""
    if anon_name is None:
        mm.strategy.put(orig, mm.name_counters)
        return None
    if anon_vma_name_eq(orig, anon_name):
        return orig
    new = mm.strategy.adopt(anon_name, mm.name_counters)
    mm.strategy.put(orig, mm.name_counters)
    return new


def split_vma_at(mm: "Mm", vma: Vma, addr: int) -> tuple[Vma, Vma]:
    """__split_vma: cut ``vma`` at ``addr`` into (below, above); the copy shares the name (dup).

    The kernel keeps one struct and vm_area_dup's the other; which one is the copy does not
    show (both hold the name, the copy through dup_anon_vma_name), so the part above is it.
    anon_vma and its chain are cloned; pgoff stays linear.
    """
    name = vma.anon_name
    above_name = mm.strategy.dup(name, mm.name_counters) if name is not None else None
    below = Vma(vma.start, addr, vma.flags, vma.pgoff, vma.file, vma.anon_vma, vma.anon_chain, name,
                vma.anon_pgoff)
    above = Vma(addr, vma.end, vma.flags, vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT), vma.file,
                vma.anon_vma, vma.anon_chain, above_name, vma.anon_pgoff_at(addr))
    mm.index.replace(vma, below, above)
    return below, above


def split_vma(mm: "Mm", vma: Vma, addr: int) -> tuple[Vma, Vma]:
    """split_vma: __split_vma behind the map-count limit.

    :raises OSError: ENOMEM when the mm already has max_map_count VMAs.
    """
    if mm.index.count >= mm.max_map_count:
        raise OSError(errno.ENOMEM, "split would exceed max_map_count")
    return split_vma_at(mm, vma, addr)


#: The versions of this file's rules (:mod:`anonvma.model.kernel`), oldest first.
RULES = {"is_mergeable_anon_vma": (anon_vma_target_singular, anon_vma_unless_fork_child),
         "needs_adjacent_anon_pgoff": (anon_pgoff_not_compared, anon_pgoff_of_private_files)}
