"""mm/mremap.c: mremap, with copy_vma (6.1 mm/mmap.c, 6.12 mm/vma.c).

A moved range is copied to its destination (merging there when it can, else a vm_area_dup that
shares the name object), its pages move, and the source range is unmapped (its references
dropped) unless MREMAP_DONTUNMAP keeps it. Three MREMAP_DONTUNMAP rules changed in mainline
7.3 and were backported to the 6.1 and 6.12 stable series (the rule versions at the end).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from anonvma.model.gup import mm_populate
from anonvma.model.kernel import rule
from anonvma.model.merge import (can_vma_merge_after, can_vma_merge_before, merge_anon_pgoff,
                                 settle_merge, split_vma, vma_merge)
from anonvma.model.mmap import do_munmap, page_align, vm_enough_memory
from anonvma.model.vma import (PAGE_MASK, PAGE_SHIFT, VM_ACCOUNT, VM_DONTEXPAND, VM_LOCKED, VM_LOCKED_MASK,
                               VM_MAYSHARE, VM_PFNMAP, VM_SEALED, VM_SHARED, VM_SPECIAL, Vma)

if TYPE_CHECKING:
    from anonvma.model.mm import Mm

MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
FLAG_BITS = {"maymove": MREMAP_MAYMOVE, "fixed": MREMAP_FIXED, "dontunmap": MREMAP_DONTUNMAP}
U64 = (1 << 64) - 1


def do_mremap(mm: "Mm", addr: int, old_len: int, new_len: int, flags: Iterable[str] = (),
              new_addr: Optional[int] = None) -> int:
    """SYSCALL mremap: shrink, grow in place, or move (``maymove``, ``fixed``, ``dontunmap``).

    The order of the checks, and whether a fixed move may span several VMAs, is the release's
    (``mm.kernel.do_mremap``). A locked VMA that grew (in place or by a move, not with
    dontunmap) has its new part populated afterwards, errors ignored (6.1 mm/mremap.c
    1099-1100, 6.12 1216-1217, 7.3 do_mremap's populate_expand).

    :return: the mapping's address afterwards.
    :raises OSError: EINVAL (bad flags or alignment, overlapping move, zero new length,
        dontunmap with a size change; 6.17+: a new length past TASK_SIZE), EFAULT (addr or
        the old range not inside one VMA), ENOMEM (cannot grow in place and may not move;
        map-count headroom).
    """
    bits = 0
    for f in flags:
        bits |= FLAG_BITS[f]
    got = mm.kernel.do_mremap(mm, addr, old_len, new_len, bits,
                              new_addr if new_addr is not None else 0)
    old_len, new_len = page_align(old_len), page_align(new_len)
    if new_len > old_len:
        # `locked` in the kernel: the grown VMA (in place, or the copy, which has the
        # source's flags) is VM_LOCKED
        vma = mm.index.vma_lookup(got)
        if vma is not None and vma.flags & VM_LOCKED:
            mm_populate(mm, got + old_len, new_len - old_len, ignore_errors=True)
    return got


def _check_move_headroom_old(mm: "Mm", vma: Vma, bits: int) -> None:
    """move_vma before 6.17: three VMAs of headroom below max_map_count."""
    if mm.map_count >= mm.max_map_count - 3:
        raise OSError(errno.ENOMEM, "too close to max_map_count to move")


def _vma_to_resize(mm: "Mm", addr: int, old_len: int, new_len: int, bits: int) -> Vma:
    """mm/mremap.c vma_to_resize: the VMA at addr, if [addr, addr+old_len) may be resized."""
    vma = mm.index.vma_lookup(addr)
    if vma is None:
        raise OSError(errno.EFAULT, f"{addr:#x} is not mapped")
    return _check_vma_range(vma, addr, old_len, new_len, old_len, bits)


def _check_vma_range(vma: Vma, addr: int, old_len: int, new_len: int, span: int, bits: int) -> Vma:
    """The checks of the VMA at ``addr`` both mremap orders share: duplication of a private
    mapping, DONTUNMAP on special mappings, ``span`` bytes within the VMA, and, when the range
    grows past ``span``, its file offset and whether it may be resized."""
    if not old_len and not vma.flags & (VM_SHARED | VM_MAYSHARE):
        raise OSError(errno.EINVAL, "a private mapping cannot be duplicated with old_len 0")
    if bits & MREMAP_DONTUNMAP and vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise OSError(errno.EINVAL, "MREMAP_DONTUNMAP on a VM_DONTEXPAND/VM_PFNMAP mapping")
    if span > vma.end - addr:
        raise OSError(errno.EFAULT, "the old range spans more than one mapping")
    if new_len == span:
        return vma
    pgoff = vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT)
    if pgoff + (new_len >> PAGE_SHIFT) > U64:
        raise OSError(errno.EINVAL, "file offset overflows")
    if vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise OSError(errno.EFAULT, "mapping may not be resized")
    return vma


def _vma_expandable(mm: "Mm", vma: Vma, delta: int) -> bool:
    """mm/mremap.c vma_expandable: nothing mapped above and still below TASK_SIZE."""
    end = vma.end + delta
    if end > U64 or mm.index.intersecting(vma.end, end):
        return False
    return end - vma.start <= mm.task_size and vma.start <= mm.task_size - (end - vma.start)


def _get_unmapped_area(mm: "Mm", length: int) -> int:
    """A free range for a move without MREMAP_FIXED: the highest gap below TASK_SIZE
    (the kernel searches top-down from mmap_base; scripts never rely on the spot)."""
    top = mm.task_size
    for vma in reversed(mm.index):
        if top - vma.end >= length:
            break
        top = vma.start
    if top < length:
        raise OSError(errno.ENOMEM, "no free range for the move")
    return (top - length) & PAGE_MASK


def _mremap_to(mm: "Mm", addr: int, old_len: int, new_addr: int, new_len: int, bits: int) -> int:
    """mm/mremap.c mremap_to: the MREMAP_FIXED / MREMAP_DONTUNMAP path."""
    if new_addr & ~PAGE_MASK:
        raise OSError(errno.EINVAL, f"new address {new_addr:#x} is not page-aligned")
    if new_len > mm.task_size or new_addr > mm.task_size - new_len:
        raise OSError(errno.EINVAL, "new range ends above TASK_SIZE")
    if addr + old_len > new_addr and new_addr + new_len > addr:
        raise OSError(errno.EINVAL, "old and new ranges overlap")
    if mm.map_count + 2 >= mm.max_map_count - 3:
        raise OSError(errno.ENOMEM, "too close to max_map_count to move")
    if bits & MREMAP_FIXED:
        do_munmap(mm, new_addr, new_addr + new_len)
    if old_len > new_len:
        do_munmap(mm, addr + new_len, addr + old_len)
        old_len = new_len
    vma = _vma_to_resize(mm, addr, old_len, new_len, bits)
    if not bits & MREMAP_FIXED:
        new_addr = _get_unmapped_area(mm, new_len)
    return _move_vma(mm, vma, addr, old_len, new_len, new_addr, bits, _check_move_headroom_old)


def copy_vma(mm: "Mm", vma: Vma, addr: int, length: int, pgoff: int, anon_pgoff: int,
             keep_source: bool = False) -> tuple[Vma, Vma]:
    """mm/mmap.c copy_vma: the VMA for [addr, addr+length) at the destination, merged with a
    neighbour (keeping that neighbour's name object) or a vm_area_dup sharing ``vma``'s name.
    ``pgoff``, ``anon_pgoff``: the moved range's offsets where it was, which a faulted VMA
    keeps; an unfaulted one takes its new page number as anonymous offset (and, anonymous,
    as page offset). ``keep_source``: MREMAP_DONTUNMAP, whose source stays (the release's
    copy_vma_merge rule).

    :return: (new_vma, source) -- the source is the merged VMA when it merged with itself.
    """
    if vma.anon_vma is None:
        anon_pgoff = addr >> PAGE_SHIFT  # an unfaulted VMA starts afresh at its new home
        if _unfaulted_anon(vma):
            pgoff = anon_pgoff
    merged = mm.kernel.copy_vma_merge(mm, vma, addr, addr + length, pgoff, anon_pgoff, keep_source)
    if merged is not None:
        if merged.start <= vma.start < merged.end:
            vma = merged  # merged with itself: only possible while unfaulted
        return merged, vma
    name = vma.anon_name
    new = Vma(addr, addr + length, vma.flags, pgoff, vma.file, vma.anon_vma, vma.anon_chain,
              mm.strategy.dup(name, mm.name_counters) if name is not None else None, anon_pgoff)
    mm.index.insert(new)
    return new, vma


def _unfaulted_anon(vma: Vma) -> bool:
    """vma_is_anonymous(vma) && !vma->anon_vma: private anonymous and never faulted."""
    return vma.file is None and not vma.flags & VM_SHARED and vma.anon_vma is None


def _move_page_tables(mm: "Mm", old_addr: int, new_addr: int, length: int) -> None:
    ptes = mm.ptes
    delta = (new_addr - old_addr) >> PAGE_SHIFT
    lo = old_addr >> PAGE_SHIFT
    young = mm.young
    moving = [(vpn, ptes.pop(vpn)) for vpn in range(lo, lo + (length >> PAGE_SHIFT)) if vpn in ptes]
    for vpn, page in moving:
        ptes[vpn + delta] = page
        if vpn in young:  # move_ptes keeps the accessed bit
            young.discard(vpn)
            young.add(vpn + delta)


def _move_vma(mm: "Mm", vma: Vma, old_addr: int, old_len: int, new_len: int, new_addr: int,
              bits: int, headroom: Callable[["Mm", Vma, int], None]) -> int:
    """mm/mremap.c move_vma: copy, move the pages, then unmap the source (unless DONTUNMAP).
    ``headroom`` raises ENOMEM when the map count leaves too little room for the move."""
    headroom(mm, vma, bits)
    to_account = new_len if bits & MREMAP_DONTUNMAP else new_len - old_len
    vma = mm.kernel.move_vma_split_locked(mm, vma, old_addr, old_len, bool(bits & MREMAP_DONTUNMAP))
    if vma.flags & VM_ACCOUNT and to_account > 0:
        vm_enough_memory(mm, to_account >> PAGE_SHIFT)
    new_pgoff = vma.pgoff + ((old_addr - vma.start) >> PAGE_SHIFT)
    dontunmap = bool(bits & MREMAP_DONTUNMAP)
    vma = copy_vma(mm, vma, new_addr, new_len, new_pgoff, vma.anon_pgoff_at(old_addr),
                   keep_source=dontunmap)[1]
    _move_page_tables(mm, old_addr, new_addr, old_len)
    if dontunmap:
        # the source keeps its range but is never locked; when it moved whole, its page
        # tables went with it and its anon_vma links go too (unlink_anon_vmas). A source the
        # copy merged into is larger than the moved range, so never "whole".
        kept = mm.kernel.move_vma_dontunmap_source(vma, old_addr, old_len)
        if kept is not vma:
            mm.index.replace(vma, kept)
        return new_addr
    # VM_ACCOUNT is hidden from the unmap and restored on what is left of the source: the
    # remnants' flags end as they were, so the model leaves them alone.
    try:
        do_munmap(mm, old_addr, old_addr + old_len)
    except OSError:
        pass  # the kernel ignores a failed unmap of the source here
    return new_addr


@rule("mm/mremap.c SYSCALL mremap", "",
      "the VMA at addr is looked up first; new_addr is checked only on the move path; a fixed "
      "move stays inside one VMA", "before 5.17")
def do_mremap_lookup_first(mm: "Mm", addr: int, old_len: int, new_len: int, bits: int,
                           new_addr: int) -> int:
    """The body of SYSCALL mremap, under mmap_lock: flag and alignment checks, then the lookup
    (EFAULT), then MREMAP_FIXED/DONTUNMAP moves (mremap_to: new_addr checks, map-count
    headroom, the destination unmapped, and only then the old range checked), shrink, or
    growth in place or by a move."""
    if bits & MREMAP_FIXED and not bits & MREMAP_MAYMOVE:
        raise OSError(errno.EINVAL, "MREMAP_FIXED needs MREMAP_MAYMOVE")
    if bits & MREMAP_DONTUNMAP and (not bits & MREMAP_MAYMOVE or old_len != new_len):
        raise OSError(errno.EINVAL, "MREMAP_DONTUNMAP needs MREMAP_MAYMOVE and an unchanged size")
    if addr & ~PAGE_MASK:
        raise OSError(errno.EINVAL, f"address {addr:#x} is not page-aligned")
    old_len, new_len = page_align(old_len), page_align(new_len)
    if not new_len:
        raise OSError(errno.EINVAL, "new length is 0")
    found = mm.index.vma_lookup(addr)
    if found is None:
        raise OSError(errno.EFAULT, f"{addr:#x} is not mapped")
    if found.flags & VM_SEALED:  # 6.10+ mseal
        raise OSError(errno.EPERM, f"{addr:#x} is sealed")
    if bits & (MREMAP_FIXED | MREMAP_DONTUNMAP):
        return _mremap_to(mm, addr, old_len, new_addr, new_len, bits)
    if old_len >= new_len:
        if old_len != new_len:
            do_munmap(mm, addr + new_len, addr + old_len)
        return addr
    vma = _vma_to_resize(mm, addr, old_len, new_len, bits)
    return _grow(mm, vma, addr, old_len, new_len, bits, _check_move_headroom_old)


def _grow(mm: "Mm", vma: Vma, addr: int, old_len: int, new_len: int, bits: int,
          headroom: Callable[["Mm", Vma, int], None]) -> int:
    """Growth without a fixed address: in place when [addr, addr+old_len) ends the VMA and
    nothing is mapped above (vma_merge_extend), else a move the kernel places (MAYMOVE)."""
    if old_len == vma.end - addr and _vma_expandable(mm, vma, new_len - old_len):
        ext_start, ext_end = addr + old_len, addr + new_len
        if vma.flags & VM_ACCOUNT:
            vm_enough_memory(mm, (new_len - old_len) >> PAGE_SHIFT)
        merged = vma_merge(mm, vma, ext_start, ext_end, vma.flags, vma.anon_vma, vma.file,
                           vma.pgoff + ((ext_start - vma.start) >> PAGE_SHIFT),
                           vma.anon_pgoff_at(ext_start), vma.anon_name)
        if merged is None:
            raise OSError(errno.ENOMEM, "cannot expand the mapping in place")
        return addr
    if not bits & MREMAP_MAYMOVE:
        raise OSError(errno.ENOMEM, "cannot grow in place and MREMAP_MAYMOVE is not set")
    target = _get_unmapped_area(mm, new_len)
    return _move_vma(mm, vma, addr, old_len, new_len, target, bits, headroom)


def _check_params(mm: "Mm", addr: int, old_len: int, new_len: int, bits: int, new_addr: int) -> None:
    """mm/mremap.c check_mremap_params (6.17+): every argument check, before any lookup.

    :raises OSError: EINVAL.
    """
    if addr & ~PAGE_MASK:
        raise OSError(errno.EINVAL, f"address {addr:#x} is not page-aligned")
    if not new_len:
        raise OSError(errno.EINVAL, "new length is 0")
    if new_len > mm.task_size:
        raise OSError(errno.EINVAL, "new length is larger than TASK_SIZE")
    if not bits & (MREMAP_FIXED | MREMAP_DONTUNMAP):
        return
    if new_addr > mm.task_size - new_len:
        raise OSError(errno.EINVAL, "new range ends above TASK_SIZE")
    if new_addr & ~PAGE_MASK:
        raise OSError(errno.EINVAL, f"new address {new_addr:#x} is not page-aligned")
    if not bits & MREMAP_MAYMOVE:
        raise OSError(errno.EINVAL, "MREMAP_FIXED and MREMAP_DONTUNMAP need MREMAP_MAYMOVE")
    if bits & MREMAP_DONTUNMAP and old_len != new_len:
        raise OSError(errno.EINVAL, "MREMAP_DONTUNMAP needs an unchanged size")
    if addr + old_len > new_addr and new_addr + new_len > addr:
        raise OSError(errno.EINVAL, "old and new ranges overlap")


def _check_prep_vma(mm: "Mm", vma: Optional[Vma], addr: int, old_len: int, new_len: int,
                    bits: int) -> Vma:
    """mm/mremap.c check_prep_vma (6.17+): what the VMA at addr allows, before anything changes.

    :raises OSError: EFAULT (nothing at addr; the old range, or for a shrink the new one,
        runs past the VMA; a VM_DONTEXPAND/VM_PFNMAP VMA would grow), EPERM (sealed), EINVAL
        (a private mapping duplicated with old_len 0, DONTUNMAP of a VM_DONTEXPAND/VM_PFNMAP
        VMA, the file offset overflows).
    """
    if vma is None:
        raise OSError(errno.EFAULT, f"{addr:#x} is not mapped")
    if vma.flags & VM_SEALED:
        raise OSError(errno.EPERM, f"{addr:#x} is sealed")
    moves = bits & (MREMAP_FIXED | MREMAP_DONTUNMAP)
    if not moves and new_len <= old_len:
        return vma  # a shrink or no change in place: nothing more to check
    # a shrink may cross VMAs in what it unmaps: only what stays must lie in this one
    return _check_vma_range(vma, addr, old_len, new_len, min(old_len, new_len), bits)


def _check_move_headroom(mm: "Mm", vma: Vma, bits: int) -> None:
    """mm/mremap.c prep_move_vma (6.17+): the copy and the unmap of the source may add two
    VMAs, three when a locked DONTUNMAP source is split first.

    :raises OSError: ENOMEM.
    """
    need = 3 if bits & MREMAP_DONTUNMAP and vma.flags & VM_LOCKED else 2
    if mm.map_count + need > mm.max_map_count:
        raise OSError(errno.ENOMEM, "too close to max_map_count to move")


def _mremap_to_checked(mm: "Mm", vma: Vma, addr: int, old_len: int, new_addr: int, new_len: int,
                       bits: int) -> int:
    """mm/mremap.c mremap_to (6.17+), the VMA already checked: unmap the destination (FIXED)
    and the shrunk tail, then move."""
    if bits & MREMAP_FIXED:
        do_munmap(mm, new_addr, new_addr + new_len)
    shrunk = old_len > new_len
    if shrunk:
        do_munmap(mm, addr + new_len, addr + old_len)
        old_len = new_len
    if bits & MREMAP_FIXED or shrunk:  # the unmaps may have split it, or removed it (old_len 0)
        again = mm.index.vma_lookup(addr)
        if again is None:
            raise OSError(errno.EFAULT, f"{addr:#x} is not mapped")
        vma = again
    if not bits & MREMAP_FIXED:
        new_addr = _get_unmapped_area(mm, new_len)
    return _move_vma(mm, vma, addr, old_len, new_len, new_addr, bits, _check_move_headroom)


def _remap_move(mm: "Mm", addr: int, length: int, new_addr: int, bits: int) -> int:
    """mm/mremap.c remap_move (6.17+): a fixed move of unchanged length moves every VMA of
    [addr, addr+length), each split at the range's edges, to new_addr plus its distance from
    the first, so the gaps between them stay. A gap at the start, or no VMA at all, is EFAULT;
    an error stops the walk with the VMAs moved so far moved.

    :return: where the first VMA went.
    """
    end = addr + length
    index = mm.index
    result: Optional[int] = None
    target = new_addr
    last_end = 0
    cursor = addr
    while True:
        vma = index.find_vma(cursor)
        if vma is None or vma.start >= end:
            break
        if result is None and addr < vma.start:
            raise OSError(errno.EFAULT, f"{addr:#x} is not mapped")
        start = max(vma.start, addr)
        piece = min(end, vma.end) - start
        dest = target + (vma.start - last_end if result is not None else 0)
        last_end = vma.end
        _check_prep_vma(mm, vma, start, piece, piece, bits)
        moved = _mremap_to_checked(mm, vma, start, piece, dest, piece, bits)
        if result is None:
            result = moved
        target = moved + piece
        cursor = last_end
    if result is None:
        raise OSError(errno.EFAULT, f"nothing is mapped in [{addr:#x}, {end:#x})")
    return result


@rule("mm/mremap.c do_mremap, check_mremap_params, remap_move", "d23cb648e365",
      "mm/mremap: permit mremap() move of multiple VMAs (and the series' earlier checks)", "6.17")
def do_mremap_moves_many(mm: "Mm", addr: int, old_len: int, new_len: int, bits: int,
                         new_addr: int) -> int:
    """Every argument check first (new_len past TASK_SIZE and every new_addr check are EINVAL
    before any lookup), then map-count headroom for the worst case of every mremap (ENOMEM),
    then: a fixed move of unchanged length moves every VMA of the range (remap_move); anything
    else checks the VMA at addr (check_prep_vma) before it unmaps the destination."""
    old_len, new_len = page_align(old_len), page_align(new_len)
    _check_params(mm, addr, old_len, new_len, bits, new_addr)
    headroom = 5 if bits & MREMAP_DONTUNMAP else 4  # unmaps may split two, the move two more
    if mm.map_count + headroom > mm.max_map_count:
        raise OSError(errno.ENOMEM, "too close to max_map_count for mremap")
    if bits & MREMAP_FIXED and old_len == new_len:
        return _remap_move(mm, addr, old_len, new_addr, bits)
    vma = _check_prep_vma(mm, mm.index.vma_lookup(addr), addr, old_len, new_len, bits)
    if bits & (MREMAP_FIXED | MREMAP_DONTUNMAP):
        return _mremap_to_checked(mm, vma, addr, old_len, new_addr, new_len, bits)
    if old_len >= new_len:
        if old_len != new_len:
            do_munmap(mm, addr + new_len, addr + old_len)
        return addr
    return _grow(mm, vma, addr, old_len, new_len, bits, _check_move_headroom)


@rule("mm/mmap.c copy_vma", "", "an mremap copy merges with any neighbour, its own source included",
      "before 5.17")
def copy_vma_merges_any(mm: "Mm", vma: Vma, addr: int, end: int, pgoff: int, anon_pgoff: int,
                        keep_source: bool) -> Optional[Vma]:
    """vma_merge with the VMA below the destination, whether or not the source stays."""
    prev, _ = mm.index.around(addr)
    return vma_merge(mm, prev, addr, end, vma.flags, vma.anon_vma, vma.file, pgoff, anon_pgoff,
                     vma.anon_name, vma.anon_chain)


@rule("mm/mmap.c copy_vma", "838bb60dc215 (6.1.y)",
      "mm/mremap: fix locked_vm leak from MREMAP_DONTUNMAP self-merge (6.1.y: keep_source)", "")
def copy_vma_no_merge_next_to_source(mm: "Mm", vma: Vma, addr: int, end: int, pgoff: int,
                                     anon_pgoff: int, keep_source: bool) -> Optional[Vma]:
    """When the source stays and is unfaulted anonymous, a copy that touches it is not merged
    with anything: neither the source nor the destination's other neighbour."""
    if keep_source and _unfaulted_anon(vma) and (addr == vma.end or vma.start == end):
        return None
    return copy_vma_merges_any(mm, vma, addr, end, pgoff, anon_pgoff, keep_source)


@rule("mm/vma.c copy_vma", "838bb60dc215",
      "mm/mremap: fix locked_vm leak from MREMAP_DONTUNMAP self-merge", "7.3")
def copy_vma_drops_source_neighbour(mm: "Mm", vma: Vma, addr: int, end: int, pgoff: int,
                                    anon_pgoff: int, keep_source: bool) -> Optional[Vma]:
    """When the source stays and is unfaulted anonymous, it is left out as the copy's prev or
    next, so the copy may still merge with its other neighbour."""
    if not (keep_source and _unfaulted_anon(vma)):
        return copy_vma_merges_any(mm, vma, addr, end, pgoff, anon_pgoff, keep_source)
    index = mm.index
    prev, _ = index.around(addr)
    nxt = index.find_vma(addr)
    flags, anon_vma, file, name = vma.flags, vma.anon_vma, vma.file, vma.anon_name
    chain, anon_ok = vma.anon_chain, mm.kernel.is_mergeable_anon_vma
    if prev is not vma and nxt is not vma:
        return vma_merge(mm, prev, addr, end, flags, anon_vma, file, pgoff, anon_pgoff, name, chain)
    anon_off = merge_anon_pgoff(mm, flags, file, anon_pgoff)
    if prev is vma:  # only next may take the copy: vma_merge case 3
        pglen = (end - addr) >> PAGE_SHIFT
        if (nxt is None or nxt.start != end or flags & VM_SPECIAL
                or not can_vma_merge_before(nxt, flags, anon_vma, file, pgoff + pglen,
                                            None if anon_off is None else anon_off + pglen, name,
                                            anon_ok, chain)):
            return None
        merged = nxt.with_range(addr, nxt.end, nxt.pgoff - pglen)
        index.replace(nxt, merged)
        return settle_merge(mm, merged, flags | nxt.flags, anon_vma, chain)
    # next is the source: only prev may take the copy (case 2)
    if (prev is None or prev.end != addr or flags & VM_SPECIAL
            or not can_vma_merge_after(prev, flags, anon_vma, file, pgoff, anon_off, name, anon_ok,
                                       chain)):
        return None
    merged = prev.with_range(prev.start, end, prev.pgoff)
    index.replace(prev, merged)
    return settle_merge(mm, merged, flags | prev.flags, anon_vma, chain)


@rule("mm/mremap.c move_vma", "", "an MREMAP_DONTUNMAP move of part of a locked VMA splits nothing",
      "before 5.17")
def move_vma_no_split(mm: "Mm", vma: Vma, old_addr: int, old_len: int, dontunmap: bool) -> Vma:
    """The whole VMA is the source: the lock is later cleared on all of it."""
    return vma


@rule("mm/mremap.c move_vma", "597e4b9ab48a",
      "mm/mremap: fix locked_vm leak by splitting VMA for MREMAP_DONTUNMAP", "7.3")
def move_vma_split_locked_source(mm: "Mm", vma: Vma, old_addr: int, old_len: int,
                                 dontunmap: bool) -> Vma:
    """A VM_LOCKED source of an MREMAP_DONTUNMAP move is split at the moved range's edges
    first (ENOMEM at max_map_count), so only the moved part loses its lock."""
    if not dontunmap or not vma.flags & VM_LOCKED:
        return vma
    if vma.start != old_addr:
        vma = split_vma(mm, vma, old_addr)[1]
    if vma.end != old_addr + old_len:
        vma = split_vma(mm, vma, old_addr + old_len)[0]
    return vma


@rule("mm/mremap.c move_vma", "1583aa278f5f",
      "mm: mremap: unlink anon_vmas when mremap with MREMAP_DONTUNMAP success", "5.17")
def dontunmap_source_unlinked(vma: Vma, old_addr: int, old_len: int) -> Vma:
    """The source loses its locks; when it moved whole it loses its anon_vma too, and keeps
    its page offset."""
    kept = vma.with_flags(vma.flags & ~VM_LOCKED_MASK) if vma.flags & VM_LOCKED_MASK else vma
    if vma.start == old_addr and vma.end == old_addr + old_len:
        kept = kept.with_anon_vma(None, 0)
    return kept


@rule("mm/mremap.c move_vma", "35b0fb391b0d",
      "mm/mremap: reset unfaulted VMA page offset for MREMAP_DONTUNMAP", "7.3")
def dontunmap_source_pgoff_reset(vma: Vma, old_addr: int, old_len: int) -> Vma:
    """As before, and a source emptied whole gets the offsets of an unfaulted VMA again
    (vm_start >> PAGE_SHIFT): the anonymous one always (7.3; unseen before), the page offset
    when it is private anonymous. Later merges see them."""
    kept = dontunmap_source_unlinked(vma, old_addr, old_len)
    if vma.start == old_addr and vma.end == old_addr + old_len:
        fresh = kept.start >> PAGE_SHIFT
        anon = kept.file is None and not kept.flags & VM_SHARED
        kept = kept.with_offsets(fresh if anon else kept.pgoff, fresh)
    return kept


#: The versions of this file's rules (:mod:`anonvma.model.kernel`), oldest first.
RULES = {"do_mremap": (do_mremap_lookup_first, do_mremap_moves_many),
         "copy_vma_merge": (copy_vma_merges_any, copy_vma_no_merge_next_to_source,
                            copy_vma_drops_source_neighbour),
         "move_vma_split_locked": (move_vma_no_split, move_vma_split_locked_source),
         "move_vma_dontunmap_source": (dontunmap_source_unlinked, dontunmap_source_pgoff_reset)}
