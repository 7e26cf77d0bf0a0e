"""mm/mseal.c: mseal(2), which seals VMAs against unmapping, moving, mprotect and discarding.

Sealing is a flag like any other (VM_SEALED, VmFlags ``sl``): sealing part of a VMA splits it,
and sealed pieces merge with sealed neighbours. What a seal forbids is checked where the kernel
checks it (munmap's gather, mprotect_fixup, mremap, madvise); naming and mlock stay allowed.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Optional

from anonvma.anon_name import check_range
from anonvma.model.kernel import rule
from anonvma.model.merge import vma_modify_flags
from anonvma.model.vma import VM_SEALED, Vma

if TYPE_CHECKING:
    from anonvma.model.mm import Mm


@rule("arch/x86/entry/syscalls/syscall_64.tbl", "", "no mseal syscall: 462 is ENOSYS", "before 5.17")
def mseal_absent(mm: "Mm", addr: int, length: int) -> None:
    """The syscall does not exist."""
    raise OSError(errno.ENOSYS, "mseal needs Linux 6.10")


@rule("mm/mseal.c do_mseal", "8be7258aad44", "mseal: add mseal syscall", "6.10")
def mseal_seals(mm: "Mm", addr: int, length: int) -> None:
    """SYSCALL mseal(addr, length, 0): EINVAL for an unaligned address, a length that rounds
    to 0 or a range that wraps; nothing for an empty range; ENOMEM when the range has a hole
    (nothing is sealed); else each VMA of the range gets VM_SEALED, split or merged like an
    mprotect (ENOMEM at max_map_count: the VMAs sealed so far stay sealed)."""
    end = check_range(addr, length)  # InvalidRangeError is OSError(EINVAL)
    if end == addr:
        return
    index = mm.index
    covered = addr
    for vma in index.intersecting(addr, end):
        if vma.start > covered:
            break
        covered = vma.end
    if covered < end:
        raise OSError(errno.ENOMEM, "the range to seal is not all mapped")
    prev: Optional[Vma]
    prev, found = index.around(addr)
    if found is not None and addr > found.start:
        prev = found
    start = addr
    while found is not None and found.start < end:
        done = found
        if not found.flags & VM_SEALED:
            done = vma_modify_flags(mm, prev, found, start, min(found.end, end),
                                    found.flags | VM_SEALED)
        prev = done
        start = done.end
        found = index.find_vma(done.end)


#: The versions of this file's rules (:mod:`anonvma.model.kernel`), oldest first.
RULES = {"do_mseal": (mseal_absent, mseal_seals)}
