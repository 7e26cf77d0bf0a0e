"""Invariants of the model, checked the way the kernel would wish: no leak, no use after free.

- each mm's VMAs are sorted, disjoint, non-empty and page-aligned, within max_map_count + 1;
- an anonymous VMA's anonymous page offset is its page offset (7.3 mm.h vma_start_anon_pgoff);
- the index's cached keys agree with its VMAs;
- no VMA holds a freed name, and names sit only where the generation allows them;
- no name's refcount exceeds REFCOUNT_MAX (refcount_t would saturate and leak it);
- each live name object's refcount equals the number of VMAs (over all live mms) holding it
  plus the open temporary references; every object with references is live;
- strdup never shares an object between two VMAs;
- once every mm has exited, no name object is live.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping, Optional

from anonvma.model.mm import Machine, Mm
from anonvma.model.names import AnonVmaName, StrdupStrategy
from anonvma.model.vma import PAGE_SIZE


class InvariantError(AssertionError):
    """The model broke one of its invariants; the message says which and where."""


def check_mm(mm: Mm) -> None:
    """Structural invariants of one address space."""
    prev_end = -1
    for vma in mm.index.vmas:
        if vma.start % PAGE_SIZE or vma.end % PAGE_SIZE or vma.start >= vma.end:
            raise InvariantError(f"bad VMA bounds {vma!r}")
        if vma.start < prev_end:
            raise InvariantError(f"VMAs overlap or are out of order at {vma!r}")
        prev_end = vma.end
        name = vma.anon_name
        if name is not None:
            if name.freed or name.refcount <= 0:
                raise InvariantError(f"{vma!r} holds a freed name {name!r}")
            if name.refcount > mm.strategy.refcount_max:
                raise InvariantError(f"{vma!r} holds {name!r}, whose refcount exceeds REFCOUNT_MAX "
                                     f"({mm.strategy.refcount_max}): refcount_t would saturate and "
                                     "leak it")
            if not mm.kernel.anon_vma_name_allowed(vma):
                raise InvariantError(f"{vma!r} holds a name Linux {mm.kernel.release} cannot give it")
        if (vma.anon_vma is None) != (vma.anon_chain == 0):
            raise InvariantError(f"{vma!r}: anon_vma and its chain disagree")
        if vma.file is None and vma.anon_pgoff != vma.pgoff:
            raise InvariantError(f"{vma!r}: an anonymous VMA's anonymous page offset "
                                 f"{vma.anon_pgoff:#x} is not its page offset")
    broken = mm.index.consistency_errors()
    if broken:
        raise InvariantError(f"VMA index inconsistent: {broken[0]}")
    if mm.map_count > mm.max_map_count + 1:
        raise InvariantError(f"map_count {mm.map_count} beyond max_map_count {mm.max_map_count}")


def check_machine(machine: Machine, temporary: Optional[Mapping[AnonVmaName, int]] = None) -> None:
    """All invariants over every live mm of a process tree.

    :param temporary: references held outside VMAs right now (e.g. inside a syscall).
    """
    held: Counter[AnonVmaName] = Counter()
    for mm in machine.mms:
        check_mm(mm)
        held.update(v.anon_name for v in mm.index.vmas if v.anon_name is not None)
    if temporary:
        held.update(temporary)
    strategy = machine.strategy
    for obj, count in held.items():
        if obj not in strategy.live:
            raise InvariantError(f"{obj!r} is referenced but not live")
        if obj.refcount != count:
            raise InvariantError(f"{obj!r} has refcount {obj.refcount} but {count} references")
        if isinstance(strategy, StrdupStrategy) and count > 1 and not temporary:
            raise InvariantError(f"strdup shares {obj!r} between {count} VMAs")
    leaked = [obj for obj in strategy.live if obj not in held]
    if leaked:
        raise InvariantError(f"name objects leaked (live, unreferenced): {leaked[:5]!r}")
    if strategy.total.live != len(strategy.live):
        raise InvariantError(f"counters say {strategy.total.live} live names, "
                             f"{len(strategy.live)} are")


def check_all(mms: Iterable[Mm]) -> None:
    """check_machine for each distinct machine of the given mms."""
    seen: list[Machine] = []
    for mm in mms:
        if not any(mm.machine is m for m in seen):
            seen.append(mm.machine)
            check_machine(mm.machine)
