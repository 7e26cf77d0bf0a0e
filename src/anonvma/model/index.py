"""The ordered VMA index of one mm: sorted, non-overlapping VMAs with O(log n) lookup.

A Python list kept sorted by address. Lookups bisect on ``vm_end`` (find_vma's question:
the first VMA ending above an address); inserts and removals are one C-level memmove of
pointers, a few microseconds even at 65,530 VMAs.
"""

from __future__ import annotations

from bisect import bisect_right
from operator import attrgetter
from typing import Iterator, Optional

from anonvma.model.vma import Vma

_end = attrgetter("end")
_start = attrgetter("start")


class VmaIndex:
    """Sorted VMAs of one mm (the kernel keeps them in a maple tree)."""

    __slots__ = ("vmas",)

    def __init__(self, vmas: Optional[list[Vma]] = None) -> None:
        self.vmas: list[Vma] = vmas if vmas is not None else []

    def __len__(self) -> int:
        return len(self.vmas)

    def __iter__(self) -> Iterator[Vma]:
        return iter(self.vmas)

    def find_index(self, addr: int) -> int:
        """Index of the first VMA with end > addr (find_vma); len(self) when there is none."""
        return bisect_right(self.vmas, addr, key=_end)

    def find_vma(self, addr: int) -> Optional[Vma]:
        """find_vma: the first VMA with end > addr, or None."""
        i = bisect_right(self.vmas, addr, key=_end)
        return self.vmas[i] if i < len(self.vmas) else None

    def index_of(self, vma: Vma) -> int:
        """Position of a VMA that is in the index."""
        i = bisect_right(self.vmas, vma.start, key=_end)
        if self.vmas[i] is not vma:
            raise AssertionError(f"{vma!r} is not in the index")
        return i

    def prev(self, vma: Vma) -> Optional[Vma]:
        i = self.index_of(vma)
        return self.vmas[i - 1] if i else None

    def next(self, vma: Vma) -> Optional[Vma]:
        i = self.index_of(vma) + 1
        return self.vmas[i] if i < len(self.vmas) else None

    def prev_of_addr(self, addr: int) -> Optional[Vma]:
        """The last VMA that ends at or below addr."""
        i = bisect_right(self.vmas, addr, key=_end)
        return self.vmas[i - 1] if i else None

    def insert(self, vma: Vma) -> None:
        """Insert a VMA that overlaps nothing in the index."""
        i = bisect_right(self.vmas, vma.start, key=_start)
        self.vmas.insert(i, vma)

    def remove(self, vma: Vma) -> None:
        del self.vmas[self.index_of(vma)]

    def intersecting(self, start: int, end: int) -> list[Vma]:
        """The VMAs that overlap [start, end), lowest first."""
        i = bisect_right(self.vmas, start, key=_end)
        j = i
        vmas = self.vmas
        while j < len(vmas) and vmas[j].start < end:
            j += 1
        return vmas[i:j]
