"""mm/madvise.c: madvise and PR_SET_VMA_ANON_NAME, which share one walk and one per-VMA update.

A flag or name change merges the range into a neighbour when it can, else splits it off;
then the flags and the name are set (replace_anon_vma_name). Which VMAs can carry a name
is the generation's rule (``mm.kernel.anon_vma_name_allowed``).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Callable, Optional, Union

from anonvma.anon_name import check_anon_name, check_range
from anonvma.model.merge import split_vma_at, vma_merge
from anonvma.model.names import AnonVmaName, anon_vma_name_eq
from anonvma.model.pagetable import zap_range
from anonvma.model.vma import PAGE_SHIFT, VM_DONTCOPY, VM_IO, VM_SHARED, VM_WIPEONFORK, Vma

if TYPE_CHECKING:
    from anonvma.model.mm import Mm

#: The advices the model knows, each with the vm_flags it sets and clears (dontneed: none).
ADVICE: dict[str, tuple[int, int]] = {
    "dontneed": (0, 0),
    "dontfork": (VM_DONTCOPY, 0),
    "dofork": (0, VM_DONTCOPY),
    "wipeonfork": (VM_WIPEONFORK, 0),
    "keeponfork": (0, VM_WIPEONFORK),
}

#: Visits one VMA piece [start, end) of a walk; returns the VMA that now ends the walk's progress.
Visitor = Callable[["Mm", Vma, Optional[Vma], int, int], Vma]


def madvise_walk_vmas(mm: "Mm", start: int, end: int, visit: Visitor) -> None:
    """Visit each VMA piece of [start, end). A hole gives ENOMEM at the end (the rest is still
    done); a visitor's error stops the walk at once (what it did so far stays)."""
    index = mm.index
    before, vma = index.around(start)
    prev = vma if vma is not None and start > vma.start else before
    unmapped = False
    while True:
        if vma is None:
            raise OSError(errno.ENOMEM, f"{start:#x} is not mapped")
        if start < vma.start:
            unmapped = True
            start = vma.start
            if start >= end:
                break
        tmp = vma.end if vma.end < end else end
        prev = visit(mm, vma, prev, start, tmp)
        start = tmp
        if start < prev.end:
            start = prev.end
        if start >= end:
            break
        vma = index.find_vma(prev.end)
    if unmapped:
        raise OSError(errno.ENOMEM, "part of the range is not mapped")


def replace_anon_vma_name(mm: "Mm", orig: Optional[AnonVmaName],
                          anon_name: Optional[AnonVmaName]) -> Optional[AnonVmaName]:
    """replace_anon_vma_name: the VMA's name after the update: cleared, its own object kept
    when the strings are equal, or ``anon_name`` adopted (the old one put)."""
    if anon_name is None:
        mm.strategy.put(orig, mm.name_counters)
        return None
    if anon_vma_name_eq(orig, anon_name):
        return orig
    new = mm.strategy.adopt(anon_name, mm.name_counters)
    mm.strategy.put(orig, mm.name_counters)
    return new


def madvise_update_vma(mm: "Mm", vma: Vma, prev: Optional[Vma], start: int, end: int,
                       new_flags: int, anon_name: Optional[AnonVmaName]) -> Vma:
    """madvise_update_vma: no-op, merge, or split; then set flags and name. Returns the VMA
    now covering [start, end).

    :raises OSError: ENOMEM when a split would exceed max_map_count (callers make it EAGAIN).
    """
    if new_flags == vma.flags and anon_vma_name_eq(vma.anon_name, anon_name):
        return vma  # early no-op: no split and no merge attempt
    merged = vma_merge(mm, prev, start, end, new_flags, vma.anon_vma, vma.file,
                       vma.pgoff + ((start - vma.start) >> PAGE_SHIFT), anon_name)
    if merged is not None:
        vma = merged
    else:
        if start != vma.start:
            if len(mm.index) >= mm.max_map_count:
                raise OSError(errno.ENOMEM, "split would exceed max_map_count")
            vma = split_vma_at(mm, vma, start)[1]
        if end != vma.end:
            if len(mm.index) >= mm.max_map_count:
                raise OSError(errno.ENOMEM, "split would exceed max_map_count")
            vma = split_vma_at(mm, vma, end)[0]
    name = vma.anon_name
    if mm.kernel.anon_vma_name_allowed(vma):
        name = replace_anon_vma_name(mm, name, anon_name)
    if name is not vma.anon_name or new_flags != vma.flags:
        changed = Vma(vma.start, vma.end, new_flags, vma.pgoff, vma.file, vma.anon_vma,
                      vma.anon_chain, name)
        mm.index.replace(vma, changed)
        return changed
    return vma


def _eagain(exc: OSError) -> OSError:
    """Per-VMA ENOMEM (map count, allocation) is reported as EAGAIN by madvise and the prctl."""
    return OSError(errno.EAGAIN, exc.strerror) if exc.errno == errno.ENOMEM else exc


def madvise_vma_anon_name(anon_name: Optional[AnonVmaName]) -> Visitor:
    """madvise_vma_anon_name for ``anon_name``: EBADF where the generation forbids names."""
    def visit(mm: "Mm", vma: Vma, prev: Optional[Vma], start: int, end: int) -> Vma:
        if not mm.kernel.anon_vma_name_allowed(vma):
            raise OSError(errno.EBADF, f"{start:#x}: this mapping cannot be named")
        try:
            return madvise_update_vma(mm, vma, prev, start, end, vma.flags, anon_name)
        except OSError as exc:
            raise _eagain(exc) from exc
    return visit


def madvise_set_anon_name(mm: "Mm", addr: int, length: int,
                          name: Union[str, bytes, bytearray, None]) -> None:
    """prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, length, name); None clears the name.

    The name is checked before the address. ``""`` is a name (shown as ``[anon:]``).
    :raises OSError: EINVAL (bad name or address), EBADF (a VMA that cannot be named; the
        walk stops there), EAGAIN (max_map_count reached while splitting; stops), ENOMEM
        (holes in the range: every mapped part was still renamed).
    """
    obj: Optional[AnonVmaName] = None
    if name is not None:
        obj = mm.strategy.alloc(check_anon_name(name).decode("ascii"), mm.name_counters)
    try:
        end = check_range(addr, length)
        if end != addr:
            madvise_walk_vmas(mm, addr, end, madvise_vma_anon_name(obj))
    finally:
        mm.strategy.put(obj, mm.name_counters)  # the prctl's own reference


def madvise_vma_behavior(advice: str) -> Visitor:
    """madvise_vma_behavior for ``advice``: zap pages, or change flags (keeping the name)."""
    set_flags, clear_flags = ADVICE[advice]

    def visit(mm: "Mm", vma: Vma, prev: Optional[Vma], start: int, end: int) -> Vma:
        if advice == "dontneed":
            zap_range(mm, start, end)
            return vma
        flags = (vma.flags | set_flags) & ~clear_flags
        if advice == "dofork" and vma.flags & VM_IO:
            raise OSError(errno.EINVAL, "MADV_DOFORK on a VM_IO mapping")
        if advice == "wipeonfork" and (vma.file is not None or vma.flags & VM_SHARED):
            raise OSError(errno.EINVAL, "MADV_WIPEONFORK needs private anonymous memory")
        name = vma.anon_name
        transient = name is not None and not mm.machine.bugs.no_transient_name_ref
        if transient:
            mm.strategy.get(name, mm.name_counters)  # type: ignore[arg-type]  # 942341dcc574
        try:
            return madvise_update_vma(mm, vma, prev, start, end, flags, name)
        except OSError as exc:
            raise _eagain(exc) from exc
        finally:
            if transient:
                mm.strategy.put(name, mm.name_counters)
    return visit


def do_madvise(mm: "Mm", addr: int, length: int, advice: str) -> None:
    """madvise(addr, length, advice) for the advices of :data:`ADVICE`.

    :raises OSError: EINVAL (unaligned, unknown advice, wipeonfork on file/shared memory),
        EAGAIN (max_map_count while splitting), ENOMEM (holes; the rest was done).
    """
    if advice not in ADVICE:
        raise OSError(errno.EINVAL, f"unknown advice {advice!r}")
    end = check_range(addr, length)
    if end != addr:
        madvise_walk_vmas(mm, addr, end, madvise_vma_behavior(advice))
