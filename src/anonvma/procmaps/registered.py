"""Registered names on the memory they name: a process's anonvma registry applied to its smaps.

A process on a kernel without CONFIG_ANON_VMA_NAME may keep its names in a registry
(:mod:`anonvma.live.registry`). This module puts them where a kernel with the feature would:

- a registration whose range is no longer covered by private anonymous memory with the
  permissions it had (unmapped, moved, replaced, mprotected) is dropped, never attributed;
- one on ``[heap]`` or ``[stack]`` is not shown: maps prints those names even for named memory;
- a VMA wholly under one name is renamed ``[anon:NAME]``, its counters as smaps gave them;
- a VMA only partly registered (the kernel, unable to split it by name, merged it with its
  neighbours) is cut into its parts. Each part's pages are counted from /proc/PID/pagemap
  (:mod:`anonvma.procmaps.pagemap`) and the VMA's smaps counters are divided among the parts
  by those counts, so the parts add up to the VMA exactly. A counter is *exact* when the page
  counts determine it (private pages; shared pages when no zero page is mapped, or with frame
  numbers; PSS of shared pages with frame numbers as root, or when one part holds them all;
  clean/dirty when the VMA has only one kind); otherwise it is divided in proportion to those
  counts and its names are marked *estimated*. Without a readable pagemap every counter is
  divided by size, marked estimated. Counters no output shows (Referenced, Anonymous, Locked,
  AnonHugePages ...) are divided in proportion to the parts' RSS (PSS for the Pss_* ones).
"""

from __future__ import annotations

import bisect
import os
from typing import Dict, List, Literal, NamedTuple, Optional, Sequence, Set, Tuple, Union, overload

from anonvma.live.registry.coverage import GONE, gone
from anonvma.live.registry.loading import Loaded, load, unchanged
from anonvma.procmaps import source
from anonvma.procmaps.group import tally_of
from anonvma.procmaps.pagemap import PAGE_SIZE, PageCounts, count_ranges
from anonvma.procmaps.parser import ChunkParser, ChunkTally, gc_paused
from anonvma.procmaps.records import Registered, Smaps, Snapshot, Tally, Vma

#: maps names that win over an anon name (fs/proc/task_mmu.c show_map_vma checks them first).
KERNEL_NAMED = ("[heap]", "[stack]")
_PAGE_KB = PAGE_SIZE // 1024
#: Counters divided by RSS share, and the ones divided by PSS share (none is shown by any output).
_BY_RSS = ("referenced", "anonymous", "lazy_free", "anon_huge_pages", "ksm", "locked",
           "shmem_pmd_mapped", "file_pmd_mapped", "shared_hugetlb", "private_hugetlb")
_BY_PSS = ("pss_dirty", "pss_anon", "pss_file", "pss_shmem")


def apportion(total: int, weights: Sequence[int]) -> List[int]:
    """``total`` divided in proportion to ``weights`` (not all 0) into integers that add up to
    it exactly: each gets the floor of its share, the largest remainders one more."""
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: -((total * weights[i]) % whole))
    for i in order[:left]:
        shares[i] += 1
    return shares


class _Split:
    """Divides one VMA's counters among its parts, noting whether every shown one was exact."""

    def __init__(self, sizes: List[int]) -> None:
        self.sizes = sizes
        self.exact = True

    def share(self, total: int, weights: Sequence[int], exact: bool) -> List[int]:
        """``total`` by ``weights``; by size, estimated, if no part has any weight."""
        if total <= 0:
            return [0] * len(self.sizes)
        if not any(weights):
            weights, exact = self.sizes, False
        self.exact = self.exact and exact
        return apportion(total, weights)


def _nonzero(values: Sequence[int]) -> int:
    return sum(1 for v in values if v)


def split_smaps(t: Smaps, sizes: List[int], counts: Optional[List[PageCounts]]) -> Tuple[List[Smaps], bool]:
    """One VMA's counters ``t`` divided among parts of ``sizes`` kB with these page counts
    (``None``: pagemap unreadable); returns the parts' counters and whether every shown
    counter (RSS, PSS, USS, shared, clean/dirty, swap, SwapPss) is exact (module docstring)."""
    split = _Split(sizes)
    if counts is None:
        counts = [PageCounts(0, 0, 0, 0, None)] * len(sizes)
        split.exact = not (t.rss or t.swap)
    private_total = t.private_clean + t.private_dirty
    ex = [c.exclusive for c in counts]
    private = split.share(private_total, ex, sum(ex) * _PAGE_KB == private_total)
    p_clean = split.share(t.private_clean, private, t.private_dirty == 0)
    shared_total = t.shared_clean + t.shared_dirty
    sh = [c.shared for c in counts]
    shared_exact = sum(sh) * _PAGE_KB == shared_total
    shared = split.share(shared_total, sh, shared_exact)
    s_clean = split.share(t.shared_clean, shared, t.shared_dirty == 0)
    if all(c.shared_pss is not None for c in counts):  # frame numbers: each page's share known
        pss_weights, pss_exact = [round((c.shared_pss or 0.0) * 64) for c in counts], shared_exact
    else:
        pss_weights, pss_exact = shared, shared_exact and _nonzero(shared) <= 1
    pss_shared = split.share(max(0, t.pss - private_total), pss_weights, pss_exact)
    sw = [c.swapped for c in counts]
    swap = split.share(t.swap, sw, sum(sw) * _PAGE_KB == t.swap)
    swap_pss = split.share(t.swap_pss, swap, t.swap_pss == t.swap or _nonzero(swap) <= 1)
    exact = split.exact
    rss = [p + s for p, s in zip(private, shared, strict=True)]
    pss = [p + s for p, s in zip(private, pss_shared, strict=True)]
    rest = {f: split.share(getattr(t, f), rss, True) for f in _BY_RSS}
    rest.update((f, split.share(getattr(t, f), pss, True)) for f in _BY_PSS)
    parts = []
    for i, size in enumerate(sizes):
        parts.append(t._replace(
            size=size, rss=rss[i], pss=pss[i], shared_clean=s_clean[i], shared_dirty=shared[i] - s_clean[i],
            private_clean=p_clean[i], private_dirty=private[i] - p_clean[i], swap=swap[i],
            swap_pss=swap_pss[i], **{f: v[i] for f, v in rest.items()}))
    return parts, exact


class _Part(NamedTuple):
    start: int
    end: int
    name: str
    registered: bool


def _parts(v: Vma, pieces: List[Tuple[int, int, str]]) -> List[_Part]:
    """``v`` cut at its registered pieces (sorted, disjoint); neighbours of one name joined."""
    out: List[_Part] = []
    at = v.start
    for start, end, name in pieces:
        if at < start:
            out.append(_Part(at, start, v.name, False))
        out.append(_Part(start, end, name, True))
        at = end
    if at < v.end:
        out.append(_Part(at, v.end, v.name, False))
    joined: List[_Part] = []
    for p in out:
        if joined and joined[-1].name == p.name and joined[-1].registered == p.registered:
            joined[-1] = joined[-1]._replace(end=p.end)
        else:
            joined.append(p)
    return joined


def apply(snap: Snapshot, loaded: Loaded, procfs: str = "/proc") -> Snapshot:
    """``snap`` (a live process's map) with the names of its registry (see the module docstring).

    ``loaded`` should hold only what the registry held both before and after the map was
    read (:func:`with_registry` does that).
    """
    vmas = list(snap.vmas)
    starts = [v.start for v in vmas]
    pieces: Dict[int, List[Tuple[int, int, str]]] = {}
    dropped = hidden = 0
    why_dropped: Dict[str, int] = {}
    for e, why in zip(loaded.entries, gone(loaded.entries, vmas), strict=True):
        if why is not None:
            dropped += 1
            why_dropped[why] = why_dropped.get(why, 0) + 1
            continue
        seen_hidden = False
        i = max(0, bisect.bisect_right(starts, e.start) - 1)
        while i < len(vmas) and vmas[i].start < e.end:
            v = vmas[i]
            if v.end > e.start:
                if v.name in KERNEL_NAMED:
                    seen_hidden = True
                else:
                    piece = (max(e.start, v.start), min(e.end, v.end), f"[anon:{e.name}]")
                    pieces.setdefault(i, []).append(piece)
            i += 1
        hidden += seen_hidden
    cut = {i: _parts(vmas[i], sorted(p)) for i, p in pieces.items()}
    split = sorted(i for i, parts in cut.items() if len(parts) > 1 and vmas[i].smaps is not None)
    counts = _page_counts(snap.pid, [(p.start, p.end) for i in split for p in cut[i]], procfs)
    names = {p.name for parts in cut.values() for p in parts if p.registered}
    estimated: Set[str] = set()
    out: List[Vma] = []
    at = 0
    for i, v in enumerate(vmas):
        parts = cut.get(i)
        if parts is None:
            out.append(v)
            continue
        if len(parts) == 1 or v.smaps is None:
            out += [v._replace(start=p.start, end=p.end, name=p.name) for p in parts]
            continue
        mine = counts[at:at + len(parts)] if counts is not None else None
        at += len(parts)
        smaps, exact = split_smaps(v.smaps, [(p.end - p.start) >> 10 for p in parts], mine)
        if not exact:
            estimated.update(p.name for p in parts)
        out += [v._replace(start=p.start, end=p.end, name=p.name, smaps=s)
                for p, s in zip(parts, smaps, strict=True)]
    several = [parts for parts in cut.values() if len(parts) > 1]
    used = Registered(loaded.path, len(loaded.entries), dropped, hidden, frozenset(names),
                      frozenset(estimated), len(several), sum(len(parts) for parts in several),
                      tuple((why, why_dropped[why]) for why in GONE if why in why_dropped))
    return snap._replace(vmas=tuple(out), registry=used)


def _page_counts(pid: Optional[int], ranges: List[Tuple[int, int]],
                 procfs: str) -> Optional[List[PageCounts]]:
    """The ranges' page counts, or ``None`` if the pagemap cannot be read (then: estimated)."""
    if not ranges or pid is None:
        return [] if ranges == [] else None
    try:
        return count_ranges(pid, ranges, procfs)
    except OSError:
        return None


def with_registry(snap: Snapshot, before: Optional[Loaded], procfs: str = "/proc",
                  files: Optional[Sequence[Tuple[int, str]]] = None) -> Snapshot:
    """``snap`` (a live process's map) with the names its registry held both ``before`` the
    map was read and now (see :func:`anonvma.live.registry.loading.unchanged`); ``files``: the
    registry's candidate files, as :func:`anonvma.live.registry.places.scan` found them."""
    if snap.pid is None or before is None:
        return snap
    loaded = unchanged(before, load(snap.pid, files, procfs))
    return apply(snap, loaded, procfs) if loaded is not None else snap


#: A live smaps reader: VMA records, or counts only (see :func:`reader_for`).
Reader = Union[ChunkParser, ChunkTally]


def reader_for(path: str, before: Optional[Loaded], records: bool = False) -> Reader:
    """How a live smaps is read, decided here for every command: as VMA records when they are
    needed (``records``: one row per VMA; or a registry, loaded ``before`` the read, whose
    names go on the VMAs), otherwise counted per (name, counters) while it is read, with no
    record per VMA (much cheaper for a large map)."""
    return ChunkParser(path) if records or before is not None else ChunkTally(path)


def finished(reader: Reader, pid: int, before: Optional[Loaded], procfs: str = "/proc",
             files: Optional[Sequence[Tuple[int, str]]] = None) -> Union[Snapshot, Tally]:
    """What ``reader`` read of ``pid``: its counts, or its VMAs with the registry's names
    (``files``: the registry's files, as :func:`anonvma.live.registry.places.scan` found them)."""
    if isinstance(reader, ChunkTally):
        n, fields, counts, sizes = reader.finish()
        return Tally(reader.source, pid, n, fields, counts, sizes)
    vmas, fields = reader.finish()
    return with_registry(Snapshot(reader.source, pid, tuple(vmas), fields), before, procfs, files)


@overload
def read_map(target: Union[int, str], *, records: Literal[True], procfs: str = ...,
             registry: bool = ...) -> Snapshot: ...
@overload
def read_map(target: Union[int, str], *, records: bool = ..., procfs: str = ...,
             registry: bool = ...) -> Union[Snapshot, Tally]: ...
def read_map(target: Union[int, str], *, records: bool = False, procfs: str = "/proc",
             registry: bool = True) -> Union[Snapshot, Tally]:
    """A pid or a saved file, read the cheapest way that gives what is asked: a
    :class:`Snapshot` when ``records`` (or a live process's registry) needs the VMAs, else a
    :class:`Tally`. A live process has its registered names unless ``registry=False``.

    :raises ProcessNotFoundError, ProcessAccessError, OSError, ProcmapsParseError: as
        :func:`anonvma.procmaps.source.read`.
    :raises ValueError: ``$ANONVMA_REGISTRY_DIR`` is a relative path.
    """
    pid = source.pid_of(target)
    if pid is None:
        snap = source.read(target, procfs=procfs)
        return snap if records else tally_of(snap)
    before = load(pid, None, procfs) if registry else None
    path = source.proc_path(pid, "smaps", procfs)
    reader = reader_for(path, before, records)
    with gc_paused():
        source.stream(pid, path, procfs, reader)
        return finished(reader, pid, before, procfs)


def read_pid(pid: int, *, smaps: bool = True, procfs: str = "/proc", registry: bool = True) -> Snapshot:
    """The memory map of a live process as ``anonvma show`` shows it: with the names it keeps in
    its anonvma registry (:attr:`Snapshot.registry` says what they changed); ``registry=False``:
    the kernel's map alone (:func:`anonvma.procmaps.source.read_pid`). ``smaps=False`` reads the
    cheaper maps.

    :raises ProcessNotFoundError, ProcessAccessError, OSError, ProcmapsParseError: as
        :func:`anonvma.procmaps.source.read_pid`.
    :raises ValueError: ``$ANONVMA_REGISTRY_DIR`` is a relative path.
    """
    if smaps:
        return read_map(pid, records=True, procfs=procfs, registry=registry)
    before = load(pid, None, procfs) if registry else None
    return with_registry(source.read_pid(pid, smaps=False, procfs=procfs), before, procfs)


def read(target: Union[int, str], *, procfs: str = "/proc", registry: bool = True) -> Snapshot:
    """A pid or a file, as :func:`anonvma.procmaps.source.read`; a live process with its
    registered names unless ``registry=False`` (see :func:`read_pid`)."""
    return read_map(target, records=True, procfs=procfs, registry=registry)


def tally(target: Union[int, str], *, procfs: str = "/proc", registry: bool = True) -> Tally:
    """:func:`anonvma.procmaps.source.tally` (counted while read), or for a live process with a
    registry (unless ``registry=False``), its VMAs read, the registry applied, then counted."""
    got = read_map(target, procfs=procfs, registry=registry)
    return got if isinstance(got, Tally) else tally_of(got)


def read_tally(pid: int, *, procfs: str = "/proc", registry: bool = True) -> Tally:
    """:func:`anonvma.procmaps.source.read_tally` of a live process, with its registered names
    unless ``registry=False`` (see :func:`tally`)."""
    return tally(pid, procfs=procfs, registry=registry)


def note(used: Optional[Registered]) -> str:
    """One line for headers: how many ranges the registry named, dropped and left hidden."""
    if used is None:
        return ""
    shown = used.ranges - used.dropped - used.hidden
    if used.saved:
        parts = [f"{used.ranges} VMA{'s' if used.ranges != 1 else ''} named by the process's anonvma "
                 "registry when saved (anonvma snapshot), marked (registered), not by the kernel"]
    else:
        parts = [f"{shown} of {used.ranges} registered ranges shown, marked (registered) "
                 f"(named in {os.path.basename(used.path)}, not by the kernel)"]
    if used.dropped:
        whys = [GONE[why] if n == used.dropped else f"{n} {GONE[why]}"
                for why, n in used.why_dropped]
        parts.append(f"{used.dropped} dropped ({', '.join(whys) or 'memory gone'})")
    if used.hidden:
        parts.append(f"{used.hidden} on [heap]/[stack], shown as such")
    if used.cut:
        parts.append(f"{used.cut} VMAs cut into {used.parts} parts by name (COUNT counts the parts)")
    if used.estimated:
        parts.append("(estimated): counters of a VMA shared by names, divided by page counts")
    return "; ".join(parts)
