"""mm/mmap.c: mmap, munmap, the commit check, and exit_mmap.

Where generations differ (which neighbour a new mapping extends; what a MAP_FIXED mapping
that fails its commit check leaves behind) the code asks ``mm.kernel``.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Optional

from anonvma.model.gup import mm_populate
from anonvma.model.kernel import rule
from anonvma.model.merge import (can_vma_merge_after, can_vma_merge_before, merge_anon_pgoff,
                                 split_vma_at, vma_merge)
from anonvma.model.pagetable import zap_range
from anonvma.model.vma import (PAGE_MASK, PAGE_SHIFT, PROT_FLAGS, VM_ACCOUNT, VM_MAYEXEC, VM_MAYREAD,
                               VM_MAYSHARE, VM_MAYWRITE, VM_NORESERVE, VM_SEALED, VM_SHARED, VM_SPECIAL,
                               VM_WRITE, File, Vma)

if TYPE_CHECKING:
    from anonvma.model.mm import Mm

U64 = (1 << 64) - 1
#: include/linux/fs.h MAX_LFS_FILESIZE on 64-bit (file_mmap_ok)
MAX_LFS_FILESIZE = (1 << 63) - 1


def page_align(length: int) -> int:
    """PAGE_ALIGN on an unsigned long: rounds up, wrapping to 0 past 2**64."""
    return (length + ~PAGE_MASK) & PAGE_MASK & U64


def vm_prot(prot: str) -> int:
    """The vm_flags of a ``prot`` string, or EINVAL (what the kernel says to unknown prot bits)."""
    flags = PROT_FLAGS.get(prot) if isinstance(prot, str) else None
    if flags is None:
        raise OSError(errno.EINVAL, f"prot must be letters from 'rwx', each at most once, not {prot!r}")
    return flags


def vm_enough_memory(mm: "Mm", pages: int) -> None:
    """mm/util.c __vm_enough_memory under vm.overcommit_memory=0 (the heuristic): a request
    fails only if it alone exceeds RAM + swap (``Machine.commit_limit_pages``; None: never).

    :raises OSError: ENOMEM.
    """
    limit = mm.machine.commit_limit_pages
    if limit is not None and pages > limit:
        raise OSError(errno.ENOMEM, f"{pages} pages of commit exceed RAM + swap ({limit} pages)")


def accountable_mapping(file: Optional[File], flags: int) -> bool:
    """mm/mmap.c accountable_mapping: private writable memory without MAP_NORESERVE is charged."""
    return flags & (VM_NORESERVE | VM_SHARED | VM_WRITE) == VM_WRITE


def do_mmap(mm: "Mm", addr: int, length: int, prot: str, shared: bool, file: Optional[str],
            pgoff: int, noreserve: bool = False, populate: bool = False, readonly: bool = False) -> int:
    """mmap(addr, length, prot, MAP_FIXED | MAP_PRIVATE/SHARED [| MAP_ANONYMOUS]
    [| MAP_NORESERVE] [| MAP_POPULATE], fd, pgoff).

    MAP_NORESERVE sets VM_NORESERVE, so the mapping is never charged (VM_ACCOUNT; the model
    assumes vm.overcommit_memory is not 2, which ignores the flag). MAP_POPULATE faults the
    new range in afterwards, errors ignored (do_mmap's *populate, then mm_populate).
    With ``readonly`` the file is mapped through a descriptor opened O_RDONLY for this call
    alone (its own struct file, so the VMA never merges with one mapped by another call): a
    shared mapping may not be writable (EACCES), and loses VM_MAYWRITE and VM_SHARED, keeping
    VM_MAYSHARE (mprotect can never make it writable, and it faults like a private mapping).

    :return: addr.
    :raises OSError: EINVAL (bad prot, length 0, unaligned addr), ENOMEM (length overflows,
        beyond TASK_SIZE, map-count limit, commit), EOVERFLOW (offset + length too large),
        EACCES (shared, writable, read-only descriptor).
    """
    flags = vm_prot(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    if length == 0:
        raise OSError(errno.EINVAL, "mmap length is 0")
    length = page_align(length)
    if length == 0:
        raise OSError(errno.ENOMEM, "mmap length overflows when rounded to a page")
    if mm.map_count > mm.max_map_count:
        raise OSError(errno.ENOMEM, "map count above max_map_count")
    if length > mm.task_size or addr > mm.task_size - length:
        raise OSError(errno.ENOMEM, "mapping would end above TASK_SIZE")
    if addr & ~PAGE_MASK:
        raise OSError(errno.EINVAL, f"address {addr:#x} is not page-aligned")
    backing: Optional[File] = None
    if file is not None:
        if pgoff > (MAX_LFS_FILESIZE - length) >> PAGE_SHIFT:
            raise OSError(errno.EOVERFLOW, "file offset + length beyond the largest file size")
        if shared and readonly and flags & VM_WRITE:  # 6.1 mm/mmap.c 1362-1364, 6.12 396-398
            raise OSError(errno.EACCES, "a shared writable mapping needs a file opened for writing")
        backing = mm.machine.reopen(file) if readonly else mm.machine.file(file)
        if shared:
            flags |= VM_SHARED | VM_MAYSHARE
            if readonly:  # 6.1 mm/mmap.c 1377-1378, 6.12 411-412
                flags &= ~(VM_MAYWRITE | VM_SHARED)
    elif shared:
        flags |= VM_SHARED | VM_MAYSHARE
        pgoff = 0
    else:
        pgoff = addr >> PAGE_SHIFT  # do_mmap: anonymous pgoff is the page number
    if noreserve:
        flags |= VM_NORESERVE  # 6.1 mm/mmap.c 1426-1434, 6.12 496-504
    mmap_region(mm, addr, length, flags, backing, pgoff, anon_shmem=shared and file is None)
    if populate:
        mm_populate(mm, addr, length, ignore_errors=True)  # mm/util.c vm_mmap_pgoff
    return addr


def mmap_region(mm: "Mm", addr: int, length: int, flags: int, file: Optional[File], pgoff: int,
                anon_shmem: bool) -> int:
    """__mmap_region: replace what was there, charge commit, then extend a neighbour or insert.

    A shared anonymous mapping gets its shmem file only after the merge attempt
    (shmem_zero_setup), and no neighbour can match a VM_SHARED range without a file, so it
    never merges. Making that file charges its size (shmem_acct_size) unless MAP_NORESERVE;
    when that fails (ENOMEM) the old range is already gone, in every generation: 6.1 unmapped
    it first, 6.12 has cleared its page tables (vms_clean_up_area) and leaves the gap.
    """
    end = addr + length
    accountable = accountable_mapping(file, flags)
    mm.kernel.mmap_region_unmap(mm, addr, end, length >> PAGE_SHIFT if accountable else 0)
    if accountable:
        flags |= VM_ACCOUNT
    if not flags & VM_SPECIAL and not anon_shmem:
        if mm.kernel.mmap_region_merge(mm, addr, end, flags, file, pgoff) is not None:
            return addr
    if anon_shmem and not flags & VM_NORESERVE:
        # shmem_zero_setup -> __shmem_file_setup -> shmem_acct_size (6.1 mm/shmem.c 155-159, 4239;
        # 6.12 170-174, 5316)
        vm_enough_memory(mm, length >> PAGE_SHIFT)
    backing = mm.machine.shmem_file(length >> PAGE_SHIFT) if anon_shmem else file
    mm.index.insert(Vma(addr, end, flags, pgoff, backing))
    return addr


def do_munmap(mm: "Mm", start: int, end: int) -> None:
    """do_munmap (6.1 do_mas_munmap): split the edges, then free every VMA in [start, end).

    :raises OSError: EINVAL for an empty range (mremap's unmap of a 0-length source sees it),
        ENOMEM when punching a hole would exceed max_map_count.
    """
    vmas = vms_gather_munmap_vmas(mm, start, end)
    vms_complete_munmap_vmas(mm, start, end, vmas)


def vms_gather_munmap_vmas(mm: "Mm", start: int, end: int) -> list[Vma]:
    """The VMAs [start, end) covers, split at its edges (the splits stay even if what follows
    fails). A split at the start is refused (ENOMEM) only when the range also ends inside
    that VMA and the mm is at max_map_count; the end split is never checked. A sealed VMA
    in the range is EPERM (6.10+; only mseal seals)."""
    if end <= start:
        raise OSError(errno.EINVAL, "empty range")
    vmas = mm.index.intersecting(start, end)
    if not vmas:
        return vmas
    first = vmas[0]
    if start > first.start:
        if end < first.end and mm.map_count >= mm.max_map_count:
            raise OSError(errno.ENOMEM, "munmap would exceed max_map_count")
        if first.flags & VM_SEALED:  # 6.10+ mseal: checked before the split
            raise OSError(errno.EPERM, f"{first.start:#x} is sealed")
        vmas[0] = split_vma_at(mm, first, start)[1]
    for vma in vmas:
        if vma.flags & VM_SEALED:  # any VMA of the range (the start split stays)
            raise OSError(errno.EPERM, f"{vma.start:#x} is sealed")
    last = vmas[-1]
    if last.end > end:
        vmas[-1] = split_vma_at(mm, last, end)[0]
    return vmas


def vms_complete_munmap_vmas(mm: "Mm", start: int, end: int, vmas: list[Vma]) -> None:
    """Zap the pages of [start, end) and free the VMAs gathered there (each drops its name)."""
    if not vmas:
        return
    zap_range(mm, start, end)
    for vma in vmas:
        mm.remove_vma(vma)


def do_munmap_syscall(mm: "Mm", addr: int, length: int) -> None:
    """munmap(addr, length).

    :raises OSError: EINVAL (unaligned, length 0, beyond TASK_SIZE), ENOMEM (punching a
        hole would exceed max_map_count).
    """
    if addr & ~PAGE_MASK or addr > mm.task_size or length > mm.task_size - addr:
        raise OSError(errno.EINVAL, "bad munmap range")
    end = addr + page_align(length)
    if end == addr:
        raise OSError(errno.EINVAL, "munmap length is 0")
    do_munmap(mm, addr, end)


def exit_mmap(mm: "Mm") -> None:
    """exit_mmap: drop every pte, free every VMA (each drops its name reference)."""
    exit_ptes(mm)
    exit_names(mm)
    exit_vmas(mm)


# exit_mmap in phases (``anonvma bench fork --profile`` times each)
def exit_ptes(mm: "Mm") -> None:
    for page in mm.ptes.values():
        page.mapcount -= 1
    mm.ptes = {}
    mm.young = set()


def exit_names(mm: "Mm") -> None:
    mm.strategy.put_vmas(mm.index, mm.name_counters)


def exit_vmas(mm: "Mm") -> None:
    from anonvma.model.index import VmaIndex

    mm.index = VmaIndex()
    mm.exited = True
    mm.machine.mms.remove(mm)
    mm.strategy.retire(mm.name_counters)


@rule("mm/mmap.c __mmap_region", "",
      "new mappings try to expand next first, then prev with next's anon_vma", "before 5.17")
def mmap_region_merge_next_first(mm: "Mm", addr: int, end: int, flags: int, file: Optional[File],
                                 pgoff: int) -> Optional[Vma]:
    """Next is checked first (unnamed, unfaulted proposal); prev is then checked with next's
    anon_vma when next matched. Both: prev absorbs the range and next; only next: next is
    extended down; only prev: prev is extended up (vma_expand)."""
    prev, nxt = mm.index.around(addr)
    pglen = (end - addr) >> PAGE_SHIFT
    target: Optional[Vma] = None
    merge_start, merge_end, vm_pgoff = addr, end, pgoff
    anon_ok = mm.kernel.is_mergeable_anon_vma
    anon_off = merge_anon_pgoff(mm, flags, file, addr >> PAGE_SHIFT)
    if nxt is not None and nxt.start == end and can_vma_merge_before(
            nxt, flags, None, file, pgoff + pglen, None if anon_off is None else anon_off + pglen,
            None, anon_ok):
        merge_end, target, vm_pgoff = nxt.end, nxt, nxt.pgoff - pglen
    if prev is not None and prev.end == addr and can_vma_merge_after(
            prev, flags, target.anon_vma if target is not None else None, file, pgoff, anon_off,
            None, anon_ok, target.anon_chain if target is not None else 1):
        merge_start, target, vm_pgoff = prev.start, prev, prev.pgoff
    if target is None:
        return None
    if target is prev and nxt is not None and merge_end == nxt.end:
        # vma_expand over next: prev takes next's anon_vma if it has none, next is freed
        anon_vma, chain = ((nxt.anon_vma, nxt.anon_chain) if prev.anon_vma is None
                           else (prev.anon_vma, prev.anon_chain))
        merged = Vma(merge_start, merge_end, prev.flags, vm_pgoff, prev.file, anon_vma, chain,
                     prev.anon_name, prev.anon_pgoff)
        mm.remove_vma(nxt)
    else:
        merged = target.with_range(merge_start, merge_end, vm_pgoff)
    mm.index.replace(target, merged)
    return merged


@rule("mm/vma.c vma_merge_new_range", "cacded5e42b9", "mm: avoid using vma_merge() for new VMAs",
      "6.12")
def mmap_region_merge_new_range(mm: "Mm", addr: int, end: int, flags: int, file: Optional[File],
                                pgoff: int) -> Optional[Vma]:
    """A new mapping merges like any other range: prev first, next too when prev's and next's
    anon_vmas are compatible with each other; next alone only when prev cannot."""
    prev, _ = mm.index.around(addr)
    return vma_merge(mm, prev, addr, end, flags, None, file, pgoff, addr >> PAGE_SHIFT, None)


@rule("mm/mmap.c __mmap_region", "",
      "the old range is unmapped before the commit check, so a failed MAP_FIXED leaves a hole",
      "before 5.17")
def mmap_region_unmap_first(mm: "Mm", addr: int, end: int, charge: int) -> None:
    """Unmap [addr, end) (any failure there is ENOMEM), then charge the whole new length."""
    try:
        do_munmap(mm, addr, end)
    except OSError as exc:
        raise OSError(errno.ENOMEM, f"could not unmap the old range: {exc.strerror}") from None
    if charge:
        vm_enough_memory(mm, charge)


@rule("mm/vma.c vms_gather_munmap_vmas, mm/mmap.c __mmap_region", "f8d112a4e657",
      "mm/mmap: avoid zeroing vma tree in mmap_region()", "6.12")
def mmap_region_gather_first(mm: "Mm", addr: int, end: int, charge: int) -> None:
    """The old VMAs are split at the range's edges and set aside first; the commit check then
    charges the new length minus the accounted pages it replaces, and on failure the old VMAs
    come back (the splits stay). Only then is the old range unmapped."""
    vmas = vms_gather_munmap_vmas(mm, addr, end)
    if charge:
        replaced = sum(v.end - v.start for v in vmas if v.flags & VM_ACCOUNT) >> PAGE_SHIFT
        try:
            vm_enough_memory(mm, charge - replaced)
        except OSError as exc:
            raise OSError(errno.ENOMEM, f"{exc.strerror}; the old mappings stay") from None
    vms_complete_munmap_vmas(mm, addr, end, vmas)


#: The versions of this file's rules (:mod:`anonvma.model.kernel`), oldest first.
RULES = {"mmap_region_merge": (mmap_region_merge_next_first, mmap_region_merge_new_range),
         "mmap_region_unmap": (mmap_region_unmap_first, mmap_region_gather_first)}
