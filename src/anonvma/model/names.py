"""Anonymous VMA names and the two ways of sharing them: refcount (upstream) and strdup (baseline).

A name is an immutable string in an :class:`AnonVmaName` object. The strategies differ only in
how a VMA's name is duplicated (split, fork, mremap copy), adopted (rename), released and compared;
everything else in the model is shared. Both count every allocation, copy, get, put and free.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Optional

#: include/linux/refcount.h: REFCOUNT_MAX = INT_MAX
REFCOUNT_MAX = 2**31 - 1
#: kernel/sys.c: ANON_VMA_NAME_MAX_LEN (including the NUL)
ANON_VMA_NAME_MAX_LEN = 80


class AnonVmaName:
    """struct anon_vma_name: a refcount and a string fixed at allocation (mm_types.h)."""

    __slots__ = ("name", "refcount", "freed")

    def __init__(self, name: str) -> None:
        self.name = name
        self.refcount = 1
        self.freed = False

    def __repr__(self) -> str:
        state = "freed" if self.freed else f"ref={self.refcount}"
        return f"<AnonVmaName {self.name!r} {state} at {id(self):#x}>"


@dataclass
class NameCounters:
    """What name handling cost: objects allocated and bytes allocated/copied, gets, puts, frees."""

    allocs: int = 0
    bytes_allocated: int = 0
    bytes_copied: int = 0
    gets: int = 0
    puts: int = 0
    frees: int = 0

    @property
    def live(self) -> int:
        """Objects allocated and not yet freed (over the lifetime these counters cover)."""
        return self.allocs - self.frees

    def as_dict(self) -> dict[str, int]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["live"] = self.live
        return out

    def minus(self, other: "NameCounters") -> "NameCounters":
        """The difference self - other, e.g. the cost of one fork."""
        return NameCounters(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))


def anon_vma_name_eq(a: Optional[AnonVmaName], b: Optional[AnonVmaName]) -> bool:
    """include/linux/mm_inline.h anon_vma_name_eq: same object, or both set with equal strings."""
    if a is b:
        return True
    return a is not None and b is not None and a.name == b.name


class NameStrategy:
    """Shared bookkeeping for both strategies: allocation, put/free, live-object tracking.

    One strategy object serves every Mm of one process tree, so it holds the total counters;
    each operation also charges the calling Mm's own counters.
    """

    kind = ""

    def __init__(self, refcount_max: int = REFCOUNT_MAX) -> None:
        self.refcount_max = refcount_max
        self.total = NameCounters()
        self.live: set[AnonVmaName] = set()

    def alloc(self, name: str, mm_counters: NameCounters) -> AnonVmaName:
        """anon_vma_name_alloc: a new object holding a copy of ``name``, refcount 1."""
        size = len(name) + 1
        for c in (self.total, mm_counters):
            c.allocs += 1
            c.bytes_allocated += size
            c.bytes_copied += size
        obj = AnonVmaName(name)
        self.live.add(obj)
        return obj

    def get(self, obj: AnonVmaName, mm_counters: NameCounters) -> None:
        """anon_vma_name_get (kref_get); used for the transient reference around madvise updates."""
        self._check_alive(obj)
        obj.refcount += 1
        self.total.gets += 1
        mm_counters.gets += 1

    def put(self, obj: Optional[AnonVmaName], mm_counters: NameCounters) -> None:
        """anon_vma_name_put (kref_put); the last put frees the object."""
        if obj is None:
            return
        self._check_alive(obj)
        obj.refcount -= 1
        self.total.puts += 1
        mm_counters.puts += 1
        if obj.refcount == 0:
            obj.freed = True
            self.live.discard(obj)
            self.total.frees += 1
            mm_counters.frees += 1

    @staticmethod
    def _check_alive(obj: AnonVmaName) -> None:
        if obj.freed or obj.refcount <= 0:
            raise AssertionError(f"use after free of {obj!r}")

    def dup(self, obj: AnonVmaName, mm_counters: NameCounters) -> Optional[AnonVmaName]:
        """dup_anon_vma_name: the name a copied VMA (split half, fork child, mremap copy) gets."""
        raise NotImplementedError

    def dup_vmas(self, vmas: "list[Any]", mm_counters: NameCounters) -> None:
        """dup_anon_vma_name for each of these freshly copied VMAs, whose ``anon_name`` still
        points at the original's object (fork; written for speed)."""
        raise NotImplementedError

    def put_vmas(self, vmas: "Iterable[Any]", mm_counters: NameCounters) -> None:
        """Drop the name reference of every VMA in ``vmas`` (exit; written for speed)."""
        puts = frees = 0
        live = self.live
        for vma in vmas:
            obj = vma.anon_name
            if obj is not None:
                if obj.refcount <= 0:
                    raise AssertionError(f"use after free of {obj!r}")
                obj.refcount -= 1
                puts += 1
                if not obj.refcount:
                    obj.freed = True
                    live.discard(obj)
                    frees += 1
        for c in (self.total, mm_counters):
            c.puts += puts
            c.frees += frees

    def adopt(self, obj: AnonVmaName, mm_counters: NameCounters) -> Optional[AnonVmaName]:
        """The object a renamed VMA points at after replace_anon_vma_name with ``obj``."""
        raise NotImplementedError


class RefcountStrategy(NameStrategy):
    """Upstream since 5.17: copies share the object (refcount +1), copied only at saturation."""

    kind = "refcount"

    def reuse(self, obj: AnonVmaName, mm_counters: NameCounters) -> Optional[AnonVmaName]:
        """anon_vma_name_reuse: share below REFCOUNT_MAX, else a fresh copy (96403e11283d)."""
        self._check_alive(obj)
        if obj.refcount < self.refcount_max:
            obj.refcount += 1
            self.total.gets += 1
            mm_counters.gets += 1
            return obj
        return self.alloc(obj.name, mm_counters)

    dup = reuse
    adopt = reuse

    def dup_vmas(self, vmas: "list[Any]", mm_counters: NameCounters) -> None:
        limit = self.refcount_max
        gets = 0
        for vma in vmas:
            obj = vma.anon_name
            if 0 < obj.refcount < limit:  # freed objects have refcount 0
                obj.refcount += 1
                gets += 1
            else:
                vma.anon_name = self.reuse(obj, mm_counters)  # saturated: a fresh copy
        self.total.gets += gets
        mm_counters.gets += gets


class StrdupStrategy(NameStrategy):
    """The series' strdup version: every copied or renamed VMA gets its own copy of the string."""

    kind = "strdup"

    def dup(self, obj: AnonVmaName, mm_counters: NameCounters) -> Optional[AnonVmaName]:
        self._check_alive(obj)
        return self.alloc(obj.name, mm_counters)

    adopt = dup

    def dup_vmas(self, vmas: "list[Any]", mm_counters: NameCounters) -> None:
        alloc = self.alloc
        for vma in vmas:
            obj = vma.anon_name
            self._check_alive(obj)
            vma.anon_name = alloc(obj.name, mm_counters)


STRATEGIES = {"refcount": RefcountStrategy, "strdup": StrdupStrategy}


def make_strategy(kind: str, refcount_max: int = REFCOUNT_MAX) -> NameStrategy:
    """A fresh strategy by name: ``"refcount"`` or ``"strdup"``."""
    try:
        return STRATEGIES[kind](refcount_max)
    except KeyError:
        raise ValueError(f"unknown name strategy {kind!r}: use 'refcount' or 'strdup'") from None
