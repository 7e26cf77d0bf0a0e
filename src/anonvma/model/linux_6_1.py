"""Linux 6.1's versions of the rules that later generations changed (Debian 12's kernel).

Each function is one field of :class:`anonvma.model.kernel.Kernel`; the sources are
Debian's linux-source-6.1 (6.1.176).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Optional

from anonvma.model.kernel import Kernel, rule
from anonvma.model.task_mmu import smap_field_line, vma_flag_names
from anonvma.model.merge import can_vma_merge_after, can_vma_merge_before
from anonvma.model.mmap import do_munmap, vm_enough_memory
from anonvma.model.vma import PAGE_SHIFT, File, Vma

if TYPE_CHECKING:
    from anonvma.model.mm import Mm


@rule("mm/madvise.c madvise_vma_anon_name", "9a10064f5625",
      "mm: add a field to store names for private anonymous memory", "5.17")
def anon_vma_name_allowed(vma: Vma) -> bool:
    """Only VMAs without a file can be named: any file, shmem included, gives EBADF."""
    return vma.file is None


@rule("mm/mmap.c __mmap_region", "",
      "new mappings try to expand next first, then prev with next's anon_vma", "before 5.17")
def mmap_region_merge(mm: "Mm", addr: int, end: int, flags: int, file: Optional[File],
                      pgoff: int) -> Optional[Vma]:
    """Next is checked first (unnamed, unfaulted proposal); prev is then checked with next's
    anon_vma when next matched. Both: prev absorbs the range and next; only next: next is
    extended down; only prev: prev is extended up (vma_expand)."""
    prev, nxt = mm.index.around(addr)
    pglen = (end - addr) >> PAGE_SHIFT
    target: Optional[Vma] = None
    merge_start, merge_end, vm_pgoff = addr, end, pgoff
    if nxt is not None and nxt.start == end and can_vma_merge_before(
            nxt, flags, None, file, pgoff + pglen, None):
        merge_end, target, vm_pgoff = nxt.end, nxt, nxt.pgoff - pglen
    if prev is not None and prev.end == addr and can_vma_merge_after(
            prev, flags, target.anon_vma if target is not None else None, file, pgoff, None):
        merge_start, target, vm_pgoff = prev.start, prev, prev.pgoff
    if target is None:
        return None
    if target is prev and nxt is not None and merge_end == nxt.end:
        # vma_expand over next: prev takes next's anon_vma if it has none, next is freed
        anon_vma, chain = ((nxt.anon_vma, nxt.anon_chain) if prev.anon_vma is None
                           else (prev.anon_vma, prev.anon_chain))
        merged = Vma(merge_start, merge_end, prev.flags, vm_pgoff, prev.file, anon_vma, chain,
                     prev.anon_name)
        mm.remove_vma(nxt)
    else:
        merged = target.with_range(merge_start, merge_end, vm_pgoff)
    mm.index.replace(target, merged)
    return merged


@rule("mm/mmap.c __mmap_region", "",
      "the old range is unmapped before the commit check, so a failed MAP_FIXED leaves a hole",
      "before 5.17")
def mmap_region_unmap(mm: "Mm", addr: int, end: int, charge: int) -> None:
    """Unmap [addr, end) (any failure there is ENOMEM), then charge the whole new length."""
    try:
        do_munmap(mm, addr, end)
    except OSError as exc:
        raise OSError(errno.ENOMEM, f"could not unmap the old range: {exc.strerror}") from None
    if charge:
        vm_enough_memory(mm, charge)


@rule("mm/mprotect.c mprotect_fixup", "",
      "VM_ACCOUNT, once charged, stays when write is removed", "before 5.17")
def mprotect_unaccount(vma: Vma, newflags: int) -> int:
    """Removing write never gives the commit back: the flags stay as computed."""
    return newflags


@rule("fs/proc/task_mmu.c __show_smap, show_smap", "", "no KSM line; THPeligible printed with %d",
      "before 5.17")
def show_smap_fields(stats: dict[str, int]) -> list[str]:
    """Rss .. Locked in __show_smap's order, then ``THPeligible:    0``."""
    return [smap_field_line(key, kb) for key, kb in stats.items()] + ["THPeligible:    0"]


@rule("fs/proc/task_mmu.c show_smap_vma_flags", "", "VM_LOCKONFAULT has no mnemonic: '??'",
      "before 5.17")
def show_smap_vma_flags(flags: int) -> list[str]:
    """The mnemonics; VM_LOCKONFAULT falls to the table's default, ``??``."""
    return vma_flag_names(flags, "??")


LINUX_6_1 = Kernel(
    release="6.1",
    anon_vma_name_allowed=anon_vma_name_allowed,
    mmap_region_merge=mmap_region_merge,
    mmap_region_unmap=mmap_region_unmap,
    mprotect_unaccount=mprotect_unaccount,
    show_smap_fields=show_smap_fields,
    show_smap_vma_flags=show_smap_vma_flags,
)
