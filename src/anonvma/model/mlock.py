"""mlock(2), mlock2(2) and munlock(2): mm/mlock.c, as far as VMAs are concerned.

VM_LOCKED and VM_LOCKONFAULT are flags like any other: changing them on part of a VMA splits it,
and the pieces merge back only when every flag, the name and the anon_vma rules allow. Locking
without MLOCK_ONFAULT then populates the range (mm/gup.c), which write-faults private writable
memory: the VMA gets an anon_vma, and a faulted VMA no longer merges into an unfaulted
neighbour. Line numbers: Debian linux-source 6.1.176 / 6.12.95, mm/mlock.c.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Optional

from anonvma.model.gup import mm_populate
from anonvma.model.merge import vma_modify_flags
from anonvma.model.mprotect import fixup_walk
from anonvma.model.vma import PAGE_MASK, PAGE_SIZE, VM_LOCKED, VM_LOCKED_MASK, VM_LOCKONFAULT, VM_SPECIAL, Vma

if TYPE_CHECKING:
    from anonvma.model.mm import Mm

U64 = (1 << 64) - 1


def _lock_range(addr: int, length: int) -> tuple[int, int]:
    """do_mlock/munlock: an unaligned start is rounded down and its offset added to the length,
    then PAGE_ALIGN (which wraps to 0 for lengths near 2**64: then nothing happens)."""
    offset = addr & (PAGE_SIZE - 1)
    return addr & PAGE_MASK & U64, (length + offset + PAGE_SIZE - 1) & PAGE_MASK & U64


def do_mlock(mm: "Mm", addr: int, length: int, onfault: bool) -> None:
    """do_mlock (6.1 567-612, 6.12 614-659): set the lock flags, then populate the range.

    RLIMIT_MEMLOCK is not modelled: the runners are root (CAP_IPC_LOCK). mlock2's flag check
    (EINVAL for anything but MLOCK_ONFAULT, 6.1 623) cannot be expressed in scripts.
    :raises OSError: EINVAL (the range wraps), ENOMEM (start unmapped or a hole: the VMAs
        before it stay locked and nothing is populated; or a page could not be faulted in,
        e.g. PROT_NONE, with every flag already set), EAGAIN (population ran out of memory).
    """
    start, length = _lock_range(addr, length)
    flags = VM_LOCKED | (VM_LOCKONFAULT if onfault else 0)
    apply_vma_lock_flags(mm, start, length, flags)
    try:
        mm_populate(mm, start, length, ignore_errors=False)
    except OSError as exc:  # __mlock_posix_error_return (6.1 558-565)
        if exc.errno == errno.EFAULT:
            raise OSError(errno.ENOMEM, f"mlock: {exc.strerror}") from exc
        if exc.errno == errno.ENOMEM:
            raise OSError(errno.EAGAIN, f"mlock: {exc.strerror}") from exc
        raise


def do_munlock(mm: "Mm", addr: int, length: int) -> None:
    """SYSCALL munlock (6.1 632-647, 6.12 679-694): clear both lock flags; nothing is populated."""
    start, length = _lock_range(addr, length)
    apply_vma_lock_flags(mm, start, length, 0)


def apply_vma_lock_flags(mm: "Mm", start: int, length: int, flags: int) -> None:
    """apply_vma_lock_flags (6.1 468-517, 6.12 516-564): mlock_fixup on each VMA of the range.

    Unlike madvise's walk, a hole stops the walk at once with ENOMEM (changes made so far stay),
    and a range starting in a hole changes nothing.
    """
    end = start + length
    if end > U64:
        raise OSError(errno.EINVAL, "range wraps around the address space")
    if end == start:
        return
    fixup_walk(mm, start, end, flags, mlock_fixup)


def mlock_fixup(mm: "Mm", vma: Vma, prev: Optional[Vma], start: int, end: int, lock: int) -> Vma:
    """mlock_fixup (6.1 404-466, 6.12 466-514): give [start, end) the lock flags ``lock``,
    merging or splitting like mprotect. VM_SPECIAL VMAs never get lock flags (6.1 413; 6.12
    vma_supports_mlock). The pages are not faulted in here: do_mlock populates after the
    whole walk. Returns the new prev.
    """
    newflags = (vma.flags & ~VM_LOCKED_MASK) | lock
    if newflags == vma.flags or vma.flags & VM_SPECIAL:
        return vma
    return vma_modify_flags(mm, prev, vma, start, end, newflags)
