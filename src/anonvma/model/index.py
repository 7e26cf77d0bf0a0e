"""The VMA index of one mm (the maple tree's job): sorted, disjoint VMAs, O(log n) lookup and update.

The VMAs sit in a list of sorted chunks of at most ``2 * CHUNK`` (the shape of
``sortedcontainers``' lists), each chunk with the list of its VMAs' end addresses beside it and
the last end of every chunk in one more list. A lookup is two bisections of plain integer lists
(both in C), an update moves at most one chunk's pointers, so neither grows with the number of
VMAs. VMAs are immutable values, so the cached ends can never go stale: every change is a
:meth:`VmaIndex.replace` of old values by new ones (vma_iter_store). Hot path (every syscall):
written for speed.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import chain, islice
from typing import Iterator, Optional, Sequence

from anonvma.model.vma import Vma

#: Chunks split in two above 2 * CHUNK VMAs.
CHUNK = 512


class VmaIndex:
    """Sorted VMAs of one mm, lowest address first.

    :ivar count: how many (map_count; ``len()`` says the same).
    """

    __slots__ = ("_chunks", "_ends", "_maxes", "count")

    def __init__(self, vmas: Sequence[Vma] = ()) -> None:
        """:param vmas: VMAs already sorted and disjoint."""
        vmas = list(vmas)
        self._chunks: list[list[Vma]] = [vmas[i:i + CHUNK] for i in range(0, len(vmas), CHUNK)]
        self._ends: list[list[int]] = [[v.end for v in c] for c in self._chunks]
        self._maxes: list[int] = [e[-1] for e in self._ends]
        self.count = len(vmas)

    @classmethod
    def from_chunks(cls, chunks: list[list[Vma]], ends: list[list[int]]) -> "VmaIndex":
        """An index over ready chunks (fork's copy): each non-empty, sorted, with its ends."""
        index = cls.__new__(cls)
        index._chunks = chunks
        index._ends = ends
        index._maxes = [e[-1] for e in ends]
        index.count = sum(map(len, chunks))
        return index

    def chunks(self) -> list[tuple[list[Vma], list[int]]]:
        """The chunks and their end lists, lowest first (read-only views, for fork)."""
        return list(zip(self._chunks, self._ends, strict=True))

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Vma]:
        return chain.from_iterable(self._chunks)

    def __reversed__(self) -> Iterator[Vma]:
        return chain.from_iterable(reversed(c) for c in reversed(self._chunks))

    @property
    def vmas(self) -> list[Vma]:
        """All VMAs as a new list (O(n): for /proc output, exit and checks)."""
        return list(chain.from_iterable(self._chunks))

    def find_vma(self, addr: int) -> Optional[Vma]:
        """find_vma: the first VMA with end > addr, or None."""
        maxes = self._maxes
        ci = bisect_right(maxes, addr)
        if ci == len(maxes):
            return None
        return self._chunks[ci][bisect_right(self._ends[ci], addr)]

    def vma_lookup(self, addr: int) -> Optional[Vma]:
        """vma_lookup: the VMA containing ``addr``, or None."""
        vma = self.find_vma(addr)
        return vma if vma is not None and vma.start <= addr else None

    def around(self, addr: int) -> tuple[Optional[Vma], Optional[Vma]]:
        """find_vma_prev: (the VMA before find_vma(addr), find_vma(addr))."""
        maxes, chunks = self._maxes, self._chunks
        ci = bisect_right(maxes, addr)
        if ci == len(maxes):
            return (chunks[-1][-1] if chunks else None), None
        chunk = chunks[ci]
        j = bisect_right(self._ends[ci], addr)
        if j:
            return chunk[j - 1], chunk[j]
        return (chunks[ci - 1][-1] if ci else None), chunk[j]

    def _position(self, vma: Vma) -> tuple[int, int]:
        ci = bisect_right(self._maxes, vma.start)
        if ci < len(self._chunks):
            j = bisect_right(self._ends[ci], vma.start)
            if self._chunks[ci][j] is vma:
                return ci, j
        raise AssertionError(f"{vma!r} is not in the index")

    def prev_of(self, vma: Vma) -> Optional[Vma]:
        """The VMA before ``vma`` (which is in the index), or None."""
        ci, j = self._position(vma)
        if j:
            return self._chunks[ci][j - 1]
        return self._chunks[ci - 1][-1] if ci else None

    def next_of(self, vma: Vma) -> Optional[Vma]:
        """The VMA after ``vma`` (which is in the index), or None."""
        ci, j = self._position(vma)
        chunk = self._chunks[ci]
        if j + 1 < len(chunk):
            return chunk[j + 1]
        return self._chunks[ci + 1][0] if ci + 1 < len(self._chunks) else None

    def intersecting(self, start: int, end: int) -> list[Vma]:
        """The VMAs that overlap [start, end), lowest first."""
        chunks, maxes = self._chunks, self._maxes
        ci = bisect_right(maxes, start)
        if ci == len(chunks):
            return []
        j = bisect_right(self._ends[ci], start)
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

    def insert(self, vma: Vma) -> None:
        """Insert a VMA that overlaps nothing in the index."""
        chunks = self._chunks
        self.count += 1
        if not chunks:
            chunks.append([vma])
            self._ends.append([vma.end])
            self._maxes.append(vma.end)
            return
        ci = bisect_right(self._maxes, vma.start)
        if ci == len(chunks):
            ci -= 1
        ends = self._ends[ci]
        j = bisect_right(ends, vma.start)
        chunks[ci].insert(j, vma)
        ends.insert(j, vma.end)
        self._maxes[ci] = ends[-1]
        if len(ends) > 2 * CHUNK:
            self._split_chunk(ci)

    def remove(self, vma: Vma) -> None:
        """Take out a VMA that is in the index."""
        self.splice(vma, 1, ())

    def replace(self, old: Vma, *new: Vma) -> None:
        """vma_iter_store: put ``new`` (sorted, overlapping nothing else) where ``old`` was."""
        self.splice(old, 1, new)

    def splice(self, first: Vma, count: int, new: Sequence[Vma]) -> None:
        """Replace ``count`` consecutive VMAs, ``first`` and those after it, by ``new`` (sorted,
        overlapping nothing that stays; they may reach into free space around the old ones)."""
        # _position inline (every split and merge stores here)
        start = first.start
        ci = bisect_right(self._maxes, start)
        j = bisect_right(self._ends[ci], start) if ci < len(self._ends) else 0
        if ci == len(self._chunks) or self._chunks[ci][j] is not first:
            raise AssertionError(f"{first!r} is not in the index")
        chunk, ends = self._chunks[ci], self._ends[ci]
        if j + count > len(chunk):  # the run crosses into the next chunk: one at a time
            doomed = list(islice(chain.from_iterable(self._chunks[ci:]), j, j + count))
            for vma in doomed:
                self.splice(vma, 1, ())
            for vma in new:
                self.insert(vma)
            return
        if count == 1 and len(new) == 1:
            vma = new[0]
            chunk[j] = vma
            ends[j] = vma.end
        else:
            chunk[j:j + count] = new
            ends[j:j + count] = [v.end for v in new]
            self.count += len(new) - count
            if not chunk:
                del self._chunks[ci], self._ends[ci], self._maxes[ci]
                return
        self._maxes[ci] = ends[-1]
        if len(ends) > 2 * CHUNK:
            self._split_chunk(ci)

    def _split_chunk(self, ci: int) -> None:
        chunk, ends = self._chunks[ci], self._ends[ci]
        self._chunks.insert(ci + 1, chunk[CHUNK:])
        self._ends.insert(ci + 1, ends[CHUNK:])
        del chunk[CHUNK:], ends[CHUNK:]
        self._maxes[ci:ci + 1] = [ends[-1], self._ends[ci + 1][-1]]

    def consistency_errors(self) -> list[str]:
        """What is wrong with the cached keys, chunk sizes or count (empty: nothing)."""
        out = []
        if len(self._chunks) != len(self._ends) or len(self._chunks) != len(self._maxes):
            out.append("chunk, end and max lists differ in length")
        for ci, (chunk, ends) in enumerate(zip(self._chunks, self._ends, strict=False)):
            if not chunk or len(chunk) > 2 * CHUNK:
                out.append(f"chunk {ci} holds {len(chunk)} VMAs")
            elif [v.end for v in chunk] != ends or self._maxes[ci] != ends[-1]:
                out.append(f"chunk {ci}: cached ends disagree with its VMAs")
        if sum(map(len, self._chunks)) != self.count:
            out.append(f"count {self.count} but {sum(map(len, self._chunks))} VMAs")
        return out
