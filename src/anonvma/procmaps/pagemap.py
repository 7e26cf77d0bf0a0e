"""Which pages of an address range are resident, shared or swapped: /proc/PID/pagemap.

fs/proc/task_mmu.c pagemap_read gives one 64-bit entry per page: PM_PRESENT (bit 63),
PM_SWAP (62), PM_FILE (61: a page that is not anonymous), PM_MMAP_EXCLUSIVE (56: mapped
exactly once), and the page frame number (bits 0-54) only to readers with CAP_SYS_ADMIN. The
process's owner may read it (PTRACE_MODE_READ).

With frame numbers, /proc/kpagecount (how many times each page is mapped) and
/proc/kpageflags (KPF_ZERO_PAGE) give each shared page's proportional share, as smaps
computes PSS. Without them a shared page cannot be told from the zero page a read fault
maps (present, not exclusive, not counted by smaps): the caller reconciles with smaps.

Hot path for large ranges: the flags are classified with one ``bytes.translate`` over the
entries' top bytes and counted with ``bytes.count`` (C code), not a Python loop per page.
"""

from __future__ import annotations

import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PM_PFRAME_MASK = (1 << 55) - 1
KPF_ZERO_PAGE = 1 << 24
#: Pages read per pread (8 bytes each: 8 MiB).
BATCH = 1 << 20
_ENTRY = 8

# The top byte of an entry (little-endian: its 8th byte) holds bits 56-63.
_PRESENT, _SWAP, _FILE, _EXCLUSIVE = 0x80, 0x40, 0x20, 0x01


def _category(top: int) -> int:
    if top & _PRESENT:
        if top & _FILE:
            return ord("f")  # a page that is not anonymous: in anonymous memory, the huge zero page
        return ord("e") if top & _EXCLUSIVE else ord("n")
    return ord("s") if top & _SWAP else ord(".")


_CATEGORIES = bytes(_category(b) for b in range(256))


class PageCounts(NamedTuple):
    """The pages of a range, by what smaps would count them as.

    :ivar exclusive: present and mapped once: smaps Private_*.
    :ivar shared: present, anonymous, mapped more than once (smaps Shared_*); without frame
        numbers (``shared_pss is None``) this also counts zero pages, which smaps does not count.
    :ivar swapped: in swap (smaps Swap).
    :ivar uncounted: present but not counted by smaps: the huge zero page, and with frame
        numbers the zero page.
    :ivar shared_pss: with frame numbers, bytes of PSS of the shared pages (PAGE_SIZE divided by
        each page's map count); ``None`` without them.
    """

    exclusive: int
    shared: int
    swapped: int
    uncounted: int
    shared_pss: Optional[float]


def _shared_pss(entries: bytes, kinds: bytes, counts: int, flags: int) -> Tuple[int, int, float]:
    """For the shared (``n``) entries: (real shared pages, zero pages, their PSS in bytes), from
    /proc/kpagecount and /proc/kpageflags (file descriptors ``counts`` and ``flags``)."""
    shared = zero = 0
    pss = 0.0
    at = kinds.find(b"n")
    while at >= 0:
        pfn = int.from_bytes(entries[at * _ENTRY:(at + 1) * _ENTRY], "little") & PM_PFRAME_MASK
        page_flags = int.from_bytes(os.pread(flags, _ENTRY, pfn * _ENTRY), "little")
        if page_flags & KPF_ZERO_PAGE:
            zero += 1
        else:
            mapped = int.from_bytes(os.pread(counts, _ENTRY, pfn * _ENTRY), "little")
            shared += 1
            pss += PAGE_SIZE / max(mapped, 1)
        at = kinds.find(b"n", at + 1)
    return shared, zero, pss


class Pagemap:
    """The pagemap of one process, open; ranges are counted with :meth:`count`.

    Frame numbers are used when they are visible (CAP_SYS_ADMIN) and /proc/kpagecount and
    /proc/kpageflags can be read; else ``shared_pss`` is ``None``.

    :raises OSError: the pagemap cannot be opened (another user's process: EACCES; gone: ENOENT).
    """

    def __init__(self, pid: int, procfs: str = "/proc") -> None:
        self.fd = os.open(os.path.join(procfs, str(pid), "pagemap"), os.O_RDONLY | os.O_CLOEXEC)
        self.procfs = procfs
        self._kpage: Optional[Tuple[int, int]] = None
        self._frames: Optional[bool] = None  # are frame numbers visible? (known at the first present page)

    def __enter__(self) -> "Pagemap":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        os.close(self.fd)
        if self._kpage is not None:
            for fd in self._kpage:
                os.close(fd)
            self._kpage = None

    def _kpage_files(self) -> Optional[Tuple[int, int]]:
        if self._kpage is None:
            try:
                counts = os.open(os.path.join(self.procfs, "kpagecount"), os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            try:
                flags = os.open(os.path.join(self.procfs, "kpageflags"), os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                os.close(counts)
                return None
            self._kpage = (counts, flags)
        return self._kpage

    def _frames_visible(self, entries: bytes, kinds: bytes) -> bool:
        """Whether this reader sees frame numbers (a present page shows one that is not 0)."""
        if self._frames is None:
            for at in (kinds.find(b"e"), kinds.find(b"n"), kinds.find(b"f")):
                if at >= 0:
                    entry = int.from_bytes(entries[at * _ENTRY:(at + 1) * _ENTRY], "little")
                    self._frames = bool(entry & PM_PFRAME_MASK)
                    break
        return bool(self._frames)

    def count(self, start: int, end: int) -> PageCounts:
        """Count the pages of [start, end) (page-aligned).

        :raises OSError: the read failed (the process exited: ESRCH or a short read).
        """
        exclusive = shared = swapped = uncounted = 0
        pss: Optional[float] = 0.0
        first = start // PAGE_SIZE
        pages = (end - start) // PAGE_SIZE
        done = 0
        while done < pages:
            n = min(BATCH, pages - done)
            entries = os.pread(self.fd, n * _ENTRY, (first + done) * _ENTRY)
            if len(entries) != n * _ENTRY:
                raise OSError(0, f"short read of pagemap: {len(entries)} of {n * _ENTRY} bytes")
            kinds = entries[_ENTRY - 1::_ENTRY].translate(_CATEGORIES)
            exclusive += kinds.count(b"e")
            swapped += kinds.count(b"s")
            uncounted += kinds.count(b"f")
            n_shared = kinds.count(b"n")
            kpage = self._kpage_files() if n_shared and self._frames_visible(entries, kinds) else None
            if n_shared and kpage is not None and pss is not None:
                real, zero, part = _shared_pss(entries, kinds, *kpage)
                shared += real
                uncounted += zero
                pss += part
            else:
                shared += n_shared
                if n_shared:
                    pss = None
            done += n
        return PageCounts(exclusive, shared, swapped, uncounted, pss)


def count_ranges(pid: int, ranges: Sequence[Tuple[int, int]], procfs: str = "/proc") -> List[PageCounts]:
    """:meth:`Pagemap.count` of each range of one process.

    :raises OSError: as :class:`Pagemap` and :meth:`Pagemap.count`.
    """
    with Pagemap(pid, procfs) as pm:
        return [pm.count(s, e) for s, e in ranges]
