"""The ordered VMA index of one mm: sorted, non-overlapping VMAs with O(log n) lookup and update.

The kernel keeps VMAs in a maple tree. Here they sit in a list of sorted chunks of at most
``2 * CHUNK`` VMAs (the shape of ``sortedcontainers``' lists): a lookup bisects the chunks by
their last VMA's end, then bisects inside one chunk; an insert or removal moves at most one
chunk's pointers, so neither grows with the number of VMAs (a flat list's memmove did: 6 us
per insert at 65,530 VMAs). Keys are read from the VMAs themselves, never cached: splits and
merges move VMA boundaries in place without changing their order, and the index stays right.
Hot path (every syscall): written for speed.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import chain
from operator import attrgetter
from typing import Iterator, Optional

from anonvma.model.vma import Vma

#: Chunks split in two above 2 * CHUNK VMAs.
CHUNK = 512

_end = attrgetter("end")
_start = attrgetter("start")


def _last_end(chunk: list[Vma]) -> int:
    return chunk[-1].end


class VmaIndex:
    """Sorted VMAs of one mm, lowest address first."""

    __slots__ = ("_chunks", "_len")

    def __init__(self, vmas: Optional[list[Vma]] = None) -> None:
        """:param vmas: VMAs already sorted and disjoint (fork's copy of its parent's)."""
        vmas = vmas or []
        self._chunks: list[list[Vma]] = [vmas[i:i + CHUNK] for i in range(0, len(vmas), CHUNK)]
        self._len = len(vmas)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Vma]:
        return chain.from_iterable(self._chunks)

    def __reversed__(self) -> Iterator[Vma]:
        return chain.from_iterable(reversed(c) for c in reversed(self._chunks))

    @property
    def vmas(self) -> list[Vma]:
        """All VMAs as a new list (O(n): for /proc output, fork, exit and checks)."""
        return list(chain.from_iterable(self._chunks))

    def _locate(self, addr: int) -> tuple[int, int]:
        """(chunk, position) of the first VMA with end > addr; (len(chunks), 0) when none."""
        chunks = self._chunks
        ci = bisect_right(chunks, addr, key=_last_end)
        if ci == len(chunks):
            return ci, 0
        return ci, bisect_right(chunks[ci], addr, key=_end)

    def find_vma(self, addr: int) -> Optional[Vma]:
        """find_vma: the first VMA with end > addr, or None."""
        ci, j = self._locate(addr)
        return self._chunks[ci][j] if ci < len(self._chunks) else None

    def around(self, addr: int) -> tuple[Optional[Vma], Optional[Vma]]:
        """(the VMA before find_vma(addr), find_vma(addr)): find_vma_prev."""
        chunks = self._chunks
        ci, j = self._locate(addr)
        if ci == len(chunks):
            return (chunks[-1][-1] if chunks else None), None
        chunk = chunks[ci]
        if j:
            return chunk[j - 1], chunk[j]
        return (chunks[ci - 1][-1] if ci else None), chunk[j]

    def _position(self, vma: Vma) -> tuple[int, int]:
        ci, j = self._locate(vma.start)
        if ci == len(self._chunks) or self._chunks[ci][j] is not vma:
            raise AssertionError(f"{vma!r} is not in the index")
        return ci, j

    def neighbours(self, vma: Vma) -> tuple[Optional[Vma], Optional[Vma]]:
        """(the VMA before ``vma``, the VMA after it), each None at an end; ``vma`` is in the index."""
        chunks = self._chunks
        ci, j = self._position(vma)
        chunk = chunks[ci]
        prev = chunk[j - 1] if j else (chunks[ci - 1][-1] if ci else None)
        nxt = chunk[j + 1] if j + 1 < len(chunk) else (chunks[ci + 1][0] if ci + 1 < len(chunks) else None)
        return prev, nxt

    def insert(self, vma: Vma) -> None:
        """Insert a VMA that overlaps nothing in the index."""
        chunks = self._chunks
        self._len += 1
        if not chunks:
            chunks.append([vma])
            return
        ci = bisect_right(chunks, vma.start, key=_last_end)
        if ci == len(chunks):
            ci -= 1
        chunk = chunks[ci]
        chunk.insert(bisect_right(chunk, vma.start, key=_start), vma)
        if len(chunk) > 2 * CHUNK:
            chunks.insert(ci + 1, chunk[CHUNK:])
            del chunk[CHUNK:]

    def remove(self, vma: Vma) -> None:
        """Take out a VMA that is in the index."""
        ci, j = self._position(vma)
        chunk = self._chunks[ci]
        del chunk[j]
        self._len -= 1
        if not chunk:
            del self._chunks[ci]

    def intersecting(self, start: int, end: int) -> list[Vma]:
        """The VMAs that overlap [start, end), lowest first."""
        chunks = self._chunks
        ci, j = self._locate(start)
        out: list[Vma] = []
        while ci < len(chunks):
            chunk = chunks[ci]
            while j < len(chunk):
                vma = chunk[j]
                if vma.start >= end:
                    return out
                out.append(vma)
                j += 1
            ci, j = ci + 1, 0
        return out
