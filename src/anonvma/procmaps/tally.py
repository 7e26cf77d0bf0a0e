"""Count VMAs per (maps name, counters): all that grouping by name or kind needs.

Hot path (it runs over every VMA): VMAs with equal counters usually share one
:class:`~anonvma.procmaps.records.Smaps` object (the parser makes one per distinct block), so
the VMAs are counted per (name, counters object) with ``Counter`` (C code), and the Python
loop runs once per distinct pair, not once per VMA.
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter
from typing import Any, Dict, Hashable, Iterable, Mapping, Tuple

from anonvma.procmaps.records import Counts, Vma

_name = attrgetter("name")
_smaps = attrgetter("smaps")


def fold_counts(pairs: Mapping[Tuple[str, Hashable], int], counters: Mapping[Any, Any]) -> Counts:
    """(name, counters) -> VMAs, from (name, handle) -> VMAs where each handle (an object id, a
    text block) stands for ``counters[handle]``: handles holding equal counters add up."""
    counts: Counts = {}
    for (name, handle), n in pairs.items():
        key = (name, counters[handle])
        counts[key] = counts.get(key, 0) + n
    return counts


def tally_vmas(vmas: Iterable[Vma]) -> Tuple[int, Counts, Dict[str, int]]:
    """(VMAs, (name, counters) -> VMAs in first-seen order, name -> kB of VMAs without counters)."""
    vmas = list(vmas)
    counters = list(map(_smaps, vmas))
    ids = list(map(id, counters))  # shared objects: count by identity, not by 27-field hash
    by_id = dict(zip(ids, counters, strict=True))
    counts = fold_counts(Counter(zip(map(_name, vmas), ids, strict=True)), by_id)
    sizes: Dict[str, int] = {}
    if None in by_id.values():  # maps input: sizes from the address ranges
        for v in vmas:
            if v.smaps is None:
                sizes[v.name] = sizes.get(v.name, 0) + ((v.end - v.start) >> 10)
    return len(vmas), counts, sizes
