"""What a PR_SET_VMA_ANON_NAME would do to this process's registrations, asked of the model's mm/madvise.c.

A kernel with CONFIG_ANON_VMA_NAME would hold the VMAs ``/proc/self/maps`` shows, cut where
registered names differ (it splits a VMA by name; VMAs maps shows apart stay apart, whatever
kept them apart). The pieces the range reaches, and one on each side (a merge looks no
further), are loaded into a model
:class:`~anonvma.model.mm.Mm` of the 6.1 rules and named there by
:func:`anonvma.model.madvise.madvise_set_anon_name`: its walk (madvise_walk_vmas) names the
mapped parts of the range and ends with ENOMEM after naming them when the range has a hole; its
rule (anon_vma_name_allowed) refuses file-backed and shared memory with EBADF, the parts before
named; its splits and merges keep the VMA count, and a split past vm.max_map_count is EAGAIN
(the limit lowered by the VMAs not loaded). The named model VMAs are the new
registrations there.

One thing the model does not know is done here: a special mapping ([vdso], [vvar]) cannot be
split (mm/mmap.c special_mapping_split: EINVAL, the parts before it named); a whole one is
named, and never shown (fs/proc/task_mmu.c show_map_vma prints its own name), so not recorded.
"""

from __future__ import annotations

import errno
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Iterable, List, Optional, Sequence, Tuple

from anonvma import releases
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

#: The release whose rules the registry follows: the table's oldest, whose naming rule names
#: private anonymous memory only (6.2 also names shared anonymous memory; readers attribute
#: private anonymous memory only).
RELEASE = releases.RELEASES[0].name

#: A VMA cut by name: [start, end) and its name (``None``: unnamed).
Piece = Tuple[int, int, Optional[str]]


def is_special(vma: "Vma") -> bool:
    """A kernel special mapping ([vdso], [vvar] ...): no file, but not anonymous memory either."""
    return vma.inode == 0 and vma.name.startswith("[") and not is_private_anon(vma)


class Cuts:
    """The registrations (sorted, disjoint, neighbours of one name and permissions joined) and
    their boundaries, looked up by bisection: where a kernel that names memory cuts VMAs."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = entries
        self.ends = [e.end for e in entries]
        self.bounds = sorted({e.start for e in entries} | set(self.ends))

    def piece_around(self, vma: "Vma", addr: int) -> Tuple[int, int]:
        """The piece of ``vma`` (cut by name) that holds ``addr``."""
        i = bisect_right(self.ends, addr)
        lo = self.entries[i - 1].end if i else vma.start
        if i < len(self.entries) and self.entries[i].start <= addr:
            lo, hi = self.entries[i].start, self.entries[i].end
        else:
            hi = self.entries[i].start if i < len(self.entries) else vma.end
        return max(lo, vma.start), min(hi, vma.end)

    def pieces(self, vma: "Vma", lo: int, hi: int) -> List[Piece]:
        """[lo, hi) of ``vma`` (piece boundaries) cut where the registered names differ."""
        out: List[Piece] = []
        pos, k = lo, bisect_right(self.ends, lo)
        while k < len(self.entries) and self.entries[k].start < hi:
            e = self.entries[k]
            start, end = max(e.start, lo), min(e.end, hi)
            if pos < start:
                out.append((pos, start, None))
            out.append((start, end, e.name))
            pos = end
            k += 1
        if pos < hi:
            out.append((pos, hi, None))
        return out

    def count(self, starts: Sequence[int], ends: Sequence[int]) -> int:
        """How many VMAs the VMAs [starts[i], ends[i]) would be, cut by name: one more for each
        boundary of a registration strictly inside one (a name begins or ends there)."""
        inside = 0
        for b in self.bounds:
            i = bisect_right(starts, b) - 1
            inside += i >= 0 and starts[i] < b < ends[i]
        return len(starts) + inside


def vma_count(vmas: Iterable["Vma"], entries: Sequence[Entry]) -> int:
    """How many VMAs this process would have if the kernel had split them by name: what
    /proc/self/maps would show, less [vsyscall] (the gate area, not one of the mm's VMAs)."""
    mine = [v for v in vmas if v.end <= TASK_SIZE]
    return Cuts(entries).count([v.start for v in mine], [v.end for v in mine])


def _flags(vma: "Vma") -> int:
    p = vma.perms
    flags = ((VM_READ if p[0] == "r" else 0) | (VM_WRITE if p[1] == "w" else 0)
             | (VM_EXEC if p[2] == "x" else 0))
    if p[3] == "s":
        flags |= VM_SHARED | VM_MAYSHARE
    if is_special(vma):
        flags |= VM_DONTEXPAND  # in VM_SPECIAL, as _install_special_mapping sets it: never merged
    return flags


def _load(mm: Mm, window: Sequence["Vma"], cuts: Cuts, start: int, end: int) -> Tuple[int, int]:
    """Put ``window``'s VMAs (those [start, end) reaches) into ``mm``, cut by name, the first and
    the last only from the piece before the range and to the piece after it (all that a walk
    and its merges look at); the range of memory loaded. Each maps VMA gets its own anon_vma,
    so its pieces may merge back and no two maps VMAs merge."""
    loaded: List[ModelVma] = []
    for i, v in enumerate(window):
        lo = cuts.piece_around(v, start - 1)[0] if i == 0 and start > v.start else v.start
        hi = cuts.piece_around(v, end)[1] if i == len(window) - 1 and end < v.end else v.end
        file = None
        if not is_private_anon(v) and not is_special(v):
            file = File(v.name or "(anonymous shared memory)", v.inode, dev=v.dev)
        base = (v.offset if file is not None else v.start) >> PAGE_SHIFT
        flags, anon_vma = _flags(v), AnonVma()
        for a, b, name in cuts.pieces(v, lo, hi):
            named = None if name is None else mm.strategy.alloc(name, mm.name_counters)
            loaded.append(ModelVma(a, b, flags, base + ((a - v.start) >> PAGE_SHIFT), file=file,
                                   anon_vma=anon_vma, anon_chain=1, anon_name=named))
    mm.index = VmaIndex(loaded)
    return (loaded[0].start, loaded[-1].end) if loaded else (start, start)


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
    :param entries: the registrations that still apply to them (sorted, disjoint, neighbours of
        one name and permissions joined).
    :param start: page-aligned, below ``end`` (the caller checked the range).
    :param max_map_count: vm.max_map_count.
    """
    mine = [v for v in vmas if v.end <= TASK_SIZE]
    starts, ends = [v.start for v in mine], [v.end for v in mine]
    lo = bisect_right(ends, start)
    window = mine[lo:bisect_left(starts, end, lo)]
    stop = end  # where the walk would meet a special mapping it must split
    for v in window:
        if is_special(v) and (start > v.start or end < v.end):
            stop = max(start, v.start)
            break
    cuts = Cuts(entries)
    mm = Mm("refcount", RELEASE)
    first, last = _load(mm, window, cuts, start, end)
    mm.max_map_count = max(0, max_map_count - (cuts.count(starts, ends) - mm.map_count))
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
    return merged(cut_out(entries, first, last) + named), error
