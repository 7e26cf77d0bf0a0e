"""Anonymous VMA names and the two ways of sharing them: refcount (upstream) and strdup (baseline).

A name is an immutable string in an :class:`AnonVmaName` object. The strategies differ only in
how a VMA's name is duplicated (split, fork, mremap copy) and adopted (rename); everything else
in the model is shared. Both count every allocation, copy, get, put and free.

Every use of a name object is checked the way KASAN checks the kernel's: a get, put, dup or
string comparison of an object already freed raises :class:`UseAfterFree` at once. A refcount
left above REFCOUNT_MAX between syscalls (where only VMAs hold references) is one that
refcount_t would have saturated, warning and leaking the object; the invariant checker
reports it. Transient references inside a syscall may pass it briefly, as in the kernel,
whose refcount_t limit lies far above any count its VMAs can reach.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Iterable, Optional

if TYPE_CHECKING:
    from anonvma.model.vma import Vma

#: include/linux/refcount.h: REFCOUNT_MAX = INT_MAX
REFCOUNT_MAX = 2**31 - 1


class UseAfterFree(AssertionError):
    """A freed name object was used (what KASAN reports as slab-use-after-free)."""


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


def _used(obj: AnonVmaName) -> None:
    """KASAN's check on a dereference: the object must not have been freed."""
    if obj.freed:
        raise UseAfterFree(f"use after free of {obj!r}")


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

    def plus(self, other: "NameCounters") -> "NameCounters":
        """The sum self + other."""
        return NameCounters(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def anon_vma_name_eq(a: Optional[AnonVmaName], b: Optional[AnonVmaName]) -> bool:
    """include/linux/mm_inline.h anon_vma_name_eq: same pointer, or both set with equal strings
    (the string comparison dereferences both: a freed object there is a use after free)."""
    if a is b:
        return True
    if a is None or b is None:
        return False
    if a.freed or b.freed:
        _used(a)
        _used(b)
    return a.name == b.name


class NameStrategy:
    """Shared bookkeeping for both strategies: allocation, get/put/free, live-object tracking.

    One strategy object serves every Mm of one process tree, so it holds the total counters;
    each operation also charges the calling Mm's own counters.

    :param refcount_max: REFCOUNT_MAX (lowered in tests to reach saturation).
    :param saturation_guard: anon_vma_name_reuse's check (96403e11283d); False reintroduces
        the bug it fixed, for the tests that prove the checker notices.
    """

    kind = ""

    def __init__(self, refcount_max: int = REFCOUNT_MAX, saturation_guard: bool = True) -> None:
        self.refcount_max = refcount_max
        self.saturation_guard = saturation_guard
        self.live: set[AnonVmaName] = set()
        self._counters: list[NameCounters] = []
        self._retired = NameCounters()

    def track(self, mm_counters: NameCounters) -> None:
        """Count ``mm_counters`` (a new mm's) in :attr:`total`."""
        self._counters.append(mm_counters)

    def retire(self, mm_counters: NameCounters) -> None:
        """An mm exited: keep what it cost in :attr:`total`, stop following it."""
        self._counters = [c for c in self._counters if c is not mm_counters]
        self._retired = self._retired.plus(mm_counters)

    @property
    def total(self) -> NameCounters:
        """What every mm of this strategy has cost so far, the exited ones included."""
        out = self._retired
        for c in self._counters:
            out = out.plus(c)
        return out

    # alloc, get, put and reuse run on every split, merge and rename: written for speed.
    def alloc(self, name: str, mm_counters: NameCounters) -> AnonVmaName:
        """anon_vma_name_alloc: a new object holding a copy of ``name``, refcount 1."""
        size = len(name) + 1
        mm_counters.allocs += 1
        mm_counters.bytes_allocated += size
        mm_counters.bytes_copied += size
        obj = AnonVmaName(name)
        self.live.add(obj)
        return obj

    def get(self, obj: AnonVmaName, mm_counters: NameCounters) -> None:
        """anon_vma_name_get (kref_get)."""
        if obj.freed:
            _used(obj)
        obj.refcount += 1
        mm_counters.gets += 1

    def put(self, obj: Optional[AnonVmaName], mm_counters: NameCounters) -> None:
        """anon_vma_name_put (kref_put); the last put frees the object."""
        if obj is None:
            return
        if obj.freed:
            _used(obj)
        mm_counters.puts += 1
        ref = obj.refcount - 1
        obj.refcount = ref
        if not ref:
            obj.freed = True
            self.live.discard(obj)
            mm_counters.frees += 1

    def reuse(self, obj: AnonVmaName, mm_counters: NameCounters) -> Optional[AnonVmaName]:
        """anon_vma_name_reuse: share below REFCOUNT_MAX, else a fresh copy (96403e11283d)."""
        if obj.freed:
            _used(obj)
        if obj.refcount >= self.refcount_max and self.saturation_guard:
            return self.alloc(obj.name, mm_counters)
        obj.refcount += 1
        mm_counters.gets += 1
        return obj

    def dup(self, obj: AnonVmaName, mm_counters: NameCounters) -> Optional[AnonVmaName]:
        """dup_anon_vma_name: the name a copied VMA (split half, fork child, mremap copy) gets."""
        raise NotImplementedError

    def adopt(self, obj: AnonVmaName, mm_counters: NameCounters) -> Optional[AnonVmaName]:
        """The object a renamed VMA points at after replace_anon_vma_name with ``obj``."""
        raise NotImplementedError

    def put_vmas(self, vmas: "Iterable[Vma]", mm_counters: NameCounters) -> None:
        """Drop the name reference of every VMA in ``vmas`` (exit_mmap; hot path, written for
        speed: the per-object steps of :meth:`put`, inline)."""
        puts = frees = 0
        live = self.live
        for vma in vmas:
            obj = vma.anon_name
            if obj is not None:
                puts += 1
                ref = obj.refcount
                if ref > 1:
                    obj.refcount = ref - 1
                elif ref == 1:
                    obj.refcount = 0
                    obj.freed = True
                    live.discard(obj)
                    frees += 1
                else:
                    _used(obj)
        mm_counters.puts += puts
        mm_counters.frees += frees


class RefcountStrategy(NameStrategy):
    """Upstream since 5.17: copies share the object (refcount +1), copied only at saturation."""

    kind = "refcount"

    dup = NameStrategy.reuse
    adopt = NameStrategy.reuse


class StrdupStrategy(NameStrategy):
    """The series' strdup version: every copied or renamed VMA gets its own copy of the string,
    so no two VMAs ever share an object."""

    kind = "strdup"

    def dup(self, obj: AnonVmaName, mm_counters: NameCounters) -> Optional[AnonVmaName]:
        if obj.freed:
            _used(obj)
        return self.alloc(obj.name, mm_counters)

    adopt = dup


STRATEGIES = {"refcount": RefcountStrategy, "strdup": StrdupStrategy}


def make_strategy(kind: str, refcount_max: int = REFCOUNT_MAX,
                  saturation_guard: bool = True) -> NameStrategy:
    """A fresh strategy by name: ``"refcount"`` or ``"strdup"``.

    :raises ValueError: another name.
    """
    try:
        cls = STRATEGIES[kind]
    except KeyError:
        raise ValueError(f"unknown name strategy {kind!r}: use 'refcount' or 'strdup'") from None
    return cls(refcount_max, saturation_guard)
