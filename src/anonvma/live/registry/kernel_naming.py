"""What a PR_SET_VMA_ANON_NAME would do to this process's registrations, asked of the model's mm/madvise.c.

A kernel with CONFIG_ANON_VMA_NAME would hold the VMAs ``/proc/self/maps`` shows, cut where
registered names differ (it splits a VMA by name; VMAs maps shows apart stay apart, whatever
kept them apart). The VMAs the range reaches are loaded, so cut, into a model
:class:`~anonvma.model.mm.Mm` of the 6.1 rules and named there by
:func:`anonvma.model.madvise.madvise_set_anon_name`: its walk (madvise_walk_vmas) names the
mapped parts of the range and ends with ENOMEM after naming them when the range has a hole; its
rule (anon_vma_name_allowed) refuses file-backed and shared memory with EBADF, the parts before
named; its splits and merges keep the VMA count, and a split past vm.max_map_count is EAGAIN
(the limit lowered by the VMAs outside the range). The named model VMAs are the new
registrations there.

One thing the model does not know is done here: a special mapping ([vdso], [vvar]) cannot be
split (mm/mmap.c special_mapping_split: EINVAL, the parts before it named); a whole one is
named, and never shown (fs/proc/task_mmu.c show_map_vma prints its own name), so not recorded.
"""

from __future__ import annotations

import errno
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Iterable, List, Optional, Sequence, Tuple

from anonvma.live.registry.coverage import is_private_anon
from anonvma.live.registry.fileformat import Entry
from anonvma.model.index import VmaIndex
from anonvma.model.madvise import madvise_set_anon_name
from anonvma.model.mm import TASK_SIZE, Mm
from anonvma.model.vma import (PAGE_SHIFT, VM_DONTEXPAND, VM_EXEC, VM_MAYSHARE, VM_READ, VM_SHARED,
                               VM_WRITE, AnonVma, File)
from anonvma.model.vma import Vma as ModelVma

if TYPE_CHECKING:
    from anonvma.procmaps.records import Vma

#: The release whose rules the registry follows: private anonymous memory only (6.2 also names
#: shared anonymous memory; readers attribute private anonymous memory only).
RELEASE = "6.1"

#: A VMA cut by name: [start, end) and its name (``None``: unnamed).
Piece = Tuple[int, int, Optional[str]]


def is_special(vma: "Vma") -> bool:
    """A kernel special mapping ([vdso], [vvar] ...): no file, but not anonymous memory either."""
    return vma.inode == 0 and vma.name.startswith("[") and not is_private_anon(vma)


def pieces(vma: "Vma", entries: Sequence[Entry], at: int = 0) -> Tuple[List[Piece], int]:
    """``vma`` cut where the registered names in it differ (``entries`` sorted and disjoint,
    looked at from index ``at``): what a kernel that names memory would hold; and the index
    to look at for the next VMA."""
    while at < len(entries) and entries[at].end <= vma.start:
        at += 1
    out: List[Piece] = []
    pos, k = vma.start, at
    while k < len(entries) and entries[k].start < vma.end:
        e = entries[k]
        start, end = max(e.start, vma.start), min(e.end, vma.end)
        if pos < start:
            out.append((pos, start, None))
        if out and out[-1][1] == start and out[-1][2] == e.name:
            out[-1] = (out[-1][0], end, e.name)
        else:
            out.append((start, end, e.name))
        pos = end
        if e.end > vma.end:
            break  # it goes on in the next VMA
        k += 1
    if pos < vma.end:
        out.append((pos, vma.end, None))
    return out, k


def vma_count(vmas: Iterable["Vma"], entries: Sequence[Entry]) -> int:
    """How many VMAs this process would have if the kernel had split them by name: what
    /proc/self/maps would show, less [vsyscall] (the gate area, not one of the mm's VMAs)."""
    n, at = 0, 0
    for v in vmas:
        if v.end <= TASK_SIZE:
            cut, at = pieces(v, entries, at)
            n += len(cut)
    return n


def _flags(vma: "Vma") -> int:
    p = vma.perms
    flags = ((VM_READ if p[0] == "r" else 0) | (VM_WRITE if p[1] == "w" else 0)
             | (VM_EXEC if p[2] == "x" else 0))
    if p[3] == "s":
        flags |= VM_SHARED | VM_MAYSHARE
    if is_special(vma):
        flags |= VM_DONTEXPAND  # in VM_SPECIAL, as _install_special_mapping sets it: never merged
    return flags


def _load(mm: Mm, window: Sequence["Vma"], entries: Sequence[Entry]) -> int:
    """Put ``window``'s VMAs into ``mm``, cut by name; how many model VMAs that made. Each
    maps VMA gets its own anon_vma, so its pieces may merge back and no two maps VMAs merge."""
    loaded: List[ModelVma] = []
    at = 0
    for v in window:
        cut, at = pieces(v, entries, at)
        file = None
        if not is_private_anon(v) and not is_special(v):
            file = File(v.name or "(anonymous shared memory)", v.inode, dev=v.dev)
        base = (v.offset if file is not None else v.start) >> PAGE_SHIFT
        flags, anon_vma = _flags(v), AnonVma()
        for start, end, name in cut:
            named = None if name is None else mm.strategy.alloc(name, mm.name_counters)
            loaded.append(ModelVma(start, end, flags, base + ((start - v.start) >> PAGE_SHIFT), file=file,
                                   anon_vma=anon_vma, anon_chain=1, anon_name=named))
    mm.index = VmaIndex(loaded)
    return len(loaded)


def cut_out(entries: Iterable[Entry], start: int, end: int) -> List[Entry]:
    """The entries with [start, end) taken out (an entry across it is split in two)."""
    out: List[Entry] = []
    for e in entries:
        if e.end <= start or e.start >= end:
            out.append(e)
            continue
        if e.start < start:
            out.append(e._replace(end=start))
        if e.end > end:
            out.append(e._replace(start=end))
    return out


def merged(entries: Iterable[Entry]) -> List[Entry]:
    """Sorted, with neighbours of the same name and permissions joined."""
    out: List[Entry] = []
    for e in sorted(entries):
        if out and out[-1].end == e.start and out[-1][2:] == e[2:]:
            out[-1] = out[-1]._replace(end=e.end)
        else:
            out.append(e)
    return out


def rename(vmas: Sequence["Vma"], entries: Sequence[Entry], start: int, end: int, name: Optional[str],
           max_map_count: int) -> Tuple[List[Entry], int]:
    """The registrations after naming [start, end) ``name`` (``None`` clears) and the errno the
    prctl would end with (0: none), as the module docstring says.

    :param vmas: this process's VMAs now, in address order (``/proc/self/maps``).
    :param entries: the registrations that still apply to them (sorted, disjoint).
    :param start: page-aligned, below ``end`` (the caller checked the range).
    :param max_map_count: vm.max_map_count.
    """
    mine = [v for v in vmas if v.end <= TASK_SIZE]
    lo = bisect_right([v.end for v in mine], start)
    hi = bisect_left([v.start for v in mine], end, lo)
    window = mine[lo:hi]
    stop = end  # where the walk would meet a special mapping it must split
    for v in window:
        if is_special(v) and (start > v.start or end < v.end):
            stop = max(start, v.start)
            break
    mm = Mm("refcount", RELEASE)
    inside = _load(mm, window, entries)
    mm.max_map_count = max(0, max_map_count - (vma_count(mine, entries) - inside))
    error = 0
    if stop > start:
        try:
            madvise_set_anon_name(mm, start, stop - start, name)
        except OSError as err:
            error = err.errno or errno.EINVAL
    if stop < end and error in (0, errno.ENOMEM):
        error = errno.EINVAL  # special_mapping_split: a visitor's error ends the walk at once
    named = [Entry(m.start, m.end, m.anon_name.name, m.perms()) for m in mm.index
             if m.anon_name is not None and not m.flags & VM_DONTEXPAND]
    outside = cut_out(entries, window[0].start, window[-1].end) if window else list(entries)
    return merged(outside + named), error
