"""mm/madvise.c: madvise and PR_SET_VMA_ANON_NAME, which share one walk and one per-VMA update.

A flag or name change merges the range into a neighbour when it can, else splits it off;
then the flags and the name are set (replace_anon_vma_name). Which VMAs can carry a name
is the generation's rule (``mm.kernel.anon_vma_name_allowed``).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from anonvma.anon_name import check_anon_name, check_range
from anonvma.model.merge import vma_modify_flags, vma_modify_flags_name
from anonvma.model.names import AnonVmaName, anon_vma_name_eq
from anonvma.model.pagetable import anon_vma_prepare, zap_range
from anonvma.model.vma import (VM_DONTCOPY, VM_IO, VM_LOCKED, VM_MAYBE_GUARD, VM_PFNMAP, VM_RAND_READ,
                               VM_SEALED, VM_SEQ_READ, VM_SHARED, VM_SPECIAL, VM_WIPEONFORK, VM_WRITE, Vma)
from anonvma.model.kernel import rule

if TYPE_CHECKING:
    from anonvma.model.mm import Mm

#: The advices the model knows, each with the vm_flags it sets and clears (dontneed: none).
#: The read-ahead hints: 6.1 mm/madvise.c 1038-1046, 6.12 1061-1069.
ADVICE: dict[str, tuple[int, int]] = {
    "dontneed": (0, 0),
    "dontfork": (VM_DONTCOPY, 0),
    "dofork": (0, VM_DONTCOPY),
    "wipeonfork": (VM_WIPEONFORK, 0),
    "keeponfork": (0, VM_WIPEONFORK),
    "normal": (0, VM_RAND_READ | VM_SEQ_READ),
    "random": (VM_RAND_READ, VM_SEQ_READ),
    "sequential": (VM_SEQ_READ, VM_RAND_READ),
}

#: 6.13+ lightweight guard regions (MADV_GUARD_INSTALL 102, MADV_GUARD_REMOVE 103): no flag of
#: their own to set or clear; the release decides whether they exist (``madvise_behavior_valid``).
GUARD_ADVICES = ("guard_install", "guard_remove")
#: The advices that discard data (mseal.c is_madv_discard, 7.3 madvise.c is_discard): refused
#: (EPERM) on a sealed read-only private anonymous VMA.
DISCARD_ADVICES = frozenset(("dontneed", "dontfork", "wipeonfork", "guard_install"))

#: Visits one VMA piece [start, end) of a walk with the walk's argument; returns the VMA that
#: now ends the walk's progress.
Visitor = Callable[["Mm", Vma, Optional[Vma], int, int, Any], Vma]


def madvise_walk_vmas(mm: "Mm", start: int, end: int, arg: Any, visit: Visitor) -> None:
    """Visit each VMA piece of [start, end), passing ``arg`` (a name, an advice). A hole gives
    ENOMEM at the end (the rest is still done); a visitor's error stops the walk at once
    (what it did so far stays)."""
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
        prev = visit(mm, vma, prev, start, tmp, arg)
        start = tmp
        if start < prev.end:
            start = prev.end
        if start >= end:
            break
        vma = index.find_vma(prev.end)
    if unmapped:
        raise OSError(errno.ENOMEM, "part of the range is not mapped")


def madvise_update_vma(mm: "Mm", vma: Vma, prev: Optional[Vma], start: int, end: int,
                       new_flags: int, anon_name: Optional[AnonVmaName], naming: bool = False) -> Vma:
    """madvise_update_vma: no-op when nothing changes, else merge or split (vma_modify), setting
    the flags and, where the generation allows names, the name (``naming``: the caller already
    checked that rule for this VMA). Returns the VMA now covering [start, end).

    :raises OSError: ENOMEM when a split would exceed max_map_count (callers make it EAGAIN).
    """
    if new_flags == vma.flags and (vma.anon_name is anon_name or anon_vma_name_eq(vma.anon_name, anon_name)):
        return vma  # early no-op: no split and no merge attempt
    if naming or mm.kernel.anon_vma_name_allowed(vma):
        changed = vma_modify_flags_name(mm, prev, vma, start, end, new_flags, anon_name)
    else:
        changed = vma_modify_flags(mm, prev, vma, start, end, new_flags)
    if naming and changed.flags != new_flags:
        # 7.3 mm/madvise.c madvise_update_vma: a rename sets the range's own flags after
        # vma_modify_name, dropping sticky flags a merge took from a neighbour (6.19+)
        settled = changed.with_flags(new_flags)
        mm.index.replace(changed, settled)
        changed = settled
    return changed


def _eagain(exc: OSError) -> OSError:
    """Per-VMA ENOMEM (map count, allocation) is reported as EAGAIN by madvise and the prctl."""
    return OSError(errno.EAGAIN, exc.strerror) if exc.errno == errno.ENOMEM else exc


def madvise_vma_anon_name(mm: "Mm", vma: Vma, prev: Optional[Vma], start: int, end: int,
                          anon_name: Optional[AnonVmaName]) -> Vma:
    """madvise_vma_anon_name: EBADF where the generation forbids names, else update the name."""
    if not mm.kernel.anon_vma_name_allowed(vma):
        raise OSError(errno.EBADF, f"{start:#x}: this mapping cannot be named")
    try:
        return madvise_update_vma(mm, vma, prev, start, end, vma.flags, anon_name, naming=True)
    except OSError as exc:
        raise _eagain(exc) from exc


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
            madvise_walk_vmas(mm, addr, end, obj, madvise_vma_anon_name)
    finally:
        mm.strategy.put(obj, mm.name_counters)  # the prctl's own reference


def madvise_vma_behavior(mm: "Mm", vma: Vma, prev: Optional[Vma], start: int, end: int,
                         advice: str) -> Vma:
    """madvise_vma_behavior: zap pages, guard regions, or change flags (keeping the name, with
    a reference held across the update in case a merge frees the VMA: 942341dcc574). A sealed
    read-only private anonymous VMA refuses discarding advice (EPERM, 6.10+)."""
    if (vma.flags & VM_SEALED and advice in DISCARD_ADVICES and vma.file is None
            and not vma.flags & VM_WRITE):
        raise OSError(errno.EPERM, f"{start:#x}: sealed read-only memory cannot be discarded")
    if advice == "guard_install":
        return mm.kernel.madvise_guard_install(mm, vma, start, end)
    if advice == "guard_remove":
        # madvise_guard_remove: locked VMAs are fine; the markers go, the VMA stays as it is
        if vma.flags & VM_SPECIAL:
            raise OSError(errno.EINVAL, f"{start:#x}: no guard regions in a special mapping")
        return vma
    if advice == "dontneed":
        # madvise_dontneed_free_valid_vma (6.1 mm/madvise.c 797-812, 6.12 853-868)
        if vma.flags & (VM_LOCKED | VM_PFNMAP):
            raise OSError(errno.EINVAL, f"{start:#x}: MADV_DONTNEED on locked memory")
        zap_range(mm, start, end)
        return vma
    set_flags, clear_flags = ADVICE[advice]
    flags = (vma.flags | set_flags) & ~clear_flags
    if advice == "dofork" and vma.flags & VM_IO:
        raise OSError(errno.EINVAL, "MADV_DOFORK on a VM_IO mapping")
    if advice == "wipeonfork" and (vma.file is not None or vma.flags & VM_SHARED):
        raise OSError(errno.EINVAL, "MADV_WIPEONFORK needs private anonymous memory")
    name = vma.anon_name
    transient = name is not None and not mm.machine.bugs.no_transient_name_ref
    if transient:
        mm.strategy.get(name, mm.name_counters)  # type: ignore[arg-type]
    try:
        return madvise_update_vma(mm, vma, prev, start, end, flags, name)
    except OSError as exc:
        raise _eagain(exc) from exc
    finally:
        if transient:
            mm.strategy.put(name, mm.name_counters)


def do_madvise(mm: "Mm", addr: int, length: int, advice: str) -> None:
    """madvise(addr, length, advice) for the advices of :data:`ADVICE` and, from 6.13,
    :data:`GUARD_ADVICES`.

    :raises OSError: EINVAL (unaligned, an advice the release does not know, wipeonfork on
        file/shared memory, dontneed on locked memory, guard_install on locked or special
        memory; the walk stops there), EPERM (discarding sealed read-only anonymous memory;
        stops), EAGAIN (max_map_count while splitting), ENOMEM (holes; the rest was done).
    """
    if not mm.kernel.madvise_behavior_valid(advice):
        raise OSError(errno.EINVAL, f"unknown advice {advice!r}")
    end = check_range(addr, length)
    if end != addr:
        madvise_walk_vmas(mm, addr, end, advice, madvise_vma_behavior)


@rule("mm/madvise.c madvise_vma_anon_name", "9a10064f5625",
      "mm: add a field to store names for private anonymous memory", "5.17")
def anon_vma_name_allowed_private(vma: Vma) -> bool:
    """Only VMAs without a file can be named: any file, shmem included, gives EBADF."""
    return vma.file is None


@rule("mm/madvise.c madvise_vma_anon_name", "d09e8ca6cb93", "mm: anonymous shared memory naming",
      "6.2")
def anon_vma_name_allowed_shmem(vma: Vma) -> bool:
    """Private anonymous VMAs and anonymous shmem (MAP_SHARED|MAP_ANONYMOUS, memfd) can be
    named; maps then shows ``[anon_shmem:NAME]`` in place of the shmem file's path."""
    return vma.file is None or vma.file.anon_shmem


@rule("mm/madvise.c madvise_behavior_valid", "", "the advices older than named memory", "before 5.17")
def madvise_behavior_valid_classic(advice: str) -> bool:
    """The advices of :data:`ADVICE`; anything else is EINVAL before the range is looked at."""
    return advice in ADVICE


@rule("mm/madvise.c madvise_behavior_valid", "662df3e5c376",
      "mm: madvise: implement lightweight guard page mechanism", "6.13")
def madvise_behavior_valid_guard(advice: str) -> bool:
    """As before, plus MADV_GUARD_INSTALL and MADV_GUARD_REMOVE."""
    return advice in ADVICE or advice in GUARD_ADVICES


@rule("mm/madvise.c madvise_guard_install", "", "no guard regions (the advice is EINVAL before the walk)",
      "before 5.17")
def guard_install_absent(mm: "Mm", vma: Vma, start: int, end: int) -> Vma:
    """Never reached: :func:`madvise_behavior_valid_classic` refuses the advice first."""
    raise OSError(errno.EINVAL, "MADV_GUARD_INSTALL needs Linux 6.13")


def _guard_install(mm: "Mm", vma: Vma, start: int, end: int, flag: int) -> Vma:
    """madvise_guard_install without splitting: EINVAL on locked or special VMAs; ``flag`` set
    on the whole VMA; a private anonymous VMA gets its anon_vma (anon_vma_prepare); the pages
    of the range are zapped (the markers, which make an access SIGSEGV, are not modelled)."""
    if vma.flags & (VM_SPECIAL | VM_LOCKED):
        raise OSError(errno.EINVAL, f"{start:#x}: no guard regions in locked or special memory")
    if flag and not vma.flags & flag:
        flagged = vma.with_flags(vma.flags | flag)
        mm.index.replace(vma, flagged)
        vma = flagged
    if vma.file is None:  # vma_is_anonymous
        vma = anon_vma_prepare(mm, vma)
    zap_range(mm, start, end)
    return vma


@rule("mm/madvise.c madvise_guard_install", "5dba5cc2e0ff",
      "mm: introduce VM_MAYBE_GUARD and make visible in /proc/$pid/smaps", "6.19")
def guard_install_maybe_guard(mm: "Mm", vma: Vma, start: int, end: int) -> Vma:
    """Guard markers in the page tables (6.13, 662df3e5c376: no split), and the whole VMA
    gets VM_MAYBE_GUARD (``gu``; never cleared by MADV_GUARD_REMOVE, sticky on merges, page
    tables copied on fork). 6.13 to 6.18 set no flag; no release of the table has them."""
    return _guard_install(mm, vma, start, end, VM_MAYBE_GUARD)


#: The versions of this file's rules (:mod:`anonvma.model.kernel`), oldest first.
RULES = {"anon_vma_name_allowed": (anon_vma_name_allowed_private, anon_vma_name_allowed_shmem),
         "madvise_behavior_valid": (madvise_behavior_valid_classic, madvise_behavior_valid_guard),
         "madvise_guard_install": (guard_install_absent, guard_install_maybe_guard)}
