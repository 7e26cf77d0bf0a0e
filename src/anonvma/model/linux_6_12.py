"""Linux 6.12's versions of the rules that differ from 6.1 (Debian 13's and Android 16's kernel).

Each function is one field of :class:`anonvma.model.kernel.Kernel`, tagged with the upstream
commit that brought the change; the sources are Debian's linux-source-6.12 (6.12.95).
One more 6.12 difference cannot show in the model, which has no brk: ``[heap]`` is printed
only for a VMA that overlaps [start_brk, brk) (vma_is_initial_heap), where 6.1 also counted
a VMA that merely touches it.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Optional

from anonvma.model.kernel import Kernel, rule
from anonvma.model.task_mmu import smap_field_line, vma_flag_names
from anonvma.model.merge import vma_merge
from anonvma.model.mmap import vm_enough_memory, vms_complete_munmap_vmas, vms_gather_munmap_vmas
from anonvma.model.vma import PAGE_SHIFT, VM_ACCOUNT, VM_WRITE, File, Vma

if TYPE_CHECKING:
    from anonvma.model.mm import Mm


@rule("mm/madvise.c madvise_vma_anon_name", "d09e8ca6cb93", "mm: anonymous shared memory naming",
      "6.2")
def anon_vma_name_allowed(vma: Vma) -> bool:
    """Private anonymous VMAs and anonymous shmem (MAP_SHARED|MAP_ANONYMOUS, memfd) can be
    named; maps then shows ``[anon_shmem:NAME]`` in place of the shmem file's path."""
    return vma.file is None or vma.file.anon_shmem


@rule("mm/vma.c vma_merge_new_range", "cacded5e42b9", "mm: avoid using vma_merge() for new VMAs",
      "6.12")
def mmap_region_merge(mm: "Mm", addr: int, end: int, flags: int, file: Optional[File],
                      pgoff: int) -> Optional[Vma]:
    """A new mapping merges like any other range: prev first, next too when prev's and next's
    anon_vmas are compatible with each other; next alone only when prev cannot."""
    prev, _ = mm.index.around(addr)
    return vma_merge(mm, prev, addr, end, flags, None, file, pgoff, None)


@rule("mm/vma.c vms_gather_munmap_vmas, mm/mmap.c __mmap_region", "f8d112a4e657",
      "mm/mmap: avoid zeroing vma tree in mmap_region()", "6.12")
def mmap_region_unmap(mm: "Mm", addr: int, end: int, charge: int) -> None:
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


@rule("mm/mprotect.c mprotect_fixup",
      "lore bfef277462dd0dc75ce86e051bebc8b063f8d885.1696694712.git.lstoakes@gmail.com",
      "mm/mprotect: allow unfaulted VMAs to be unaccounted on mprotect()", "6.7")
def mprotect_unaccount(vma: Vma, newflags: int) -> int:
    """A private anonymous VMA that was never faulted (no anon_vma) gives its commit back
    (loses VM_ACCOUNT) when mprotect removes write; it is charged again when write returns."""
    if not newflags & VM_WRITE and newflags & VM_ACCOUNT and vma.file is None and vma.anon_vma is None:
        return newflags & ~VM_ACCOUNT
    return newflags


@rule("fs/proc/task_mmu.c __show_smap, show_smap",
      "lore 20230822180539.1424843-1-shr@devkernel.io",
      "proc/ksm: add ksm stats to /proc/pid/smaps (and THPeligible with %8u)", "6.6")
def show_smap_fields(stats: dict[str, int]) -> list[str]:
    """Rss .. Locked with a ``KSM:`` line after Anonymous, then ``THPeligible:`` padded like
    the other fields."""
    out = []
    for key, kb in stats.items():
        out.append(smap_field_line(key, kb))
        if key == "Anonymous":
            out.append(smap_field_line("KSM", 0))  # the model has no KSM pages
    return out + [f"THPeligible:    {0:8d}"]


@rule("fs/proc/task_mmu.c show_smap_vma_flags", "8614d6c5eda0",
      "VM_LOCKONFAULT gets its mnemonic, lf", "6.2")
def show_smap_vma_flags(flags: int) -> list[str]:
    """The mnemonics, VM_LOCKONFAULT as ``lf``."""
    return vma_flag_names(flags, "lf")


LINUX_6_12 = Kernel(
    release="6.12",
    anon_vma_name_allowed=anon_vma_name_allowed,
    mmap_region_merge=mmap_region_merge,
    mmap_region_unmap=mmap_region_unmap,
    mprotect_unaccount=mprotect_unaccount,
    show_smap_fields=show_smap_fields,
    show_smap_vma_flags=show_smap_vma_flags,
)
