"""Count VMAs per (maps name, counters): all that grouping by name or kind needs.

Hot path (it runs over every VMA): VMAs with equal counters usually share one
:class:`~anonvma.procmaps.records.Smaps` object (the parser makes one per distinct block), so
the VMAs are counted per (name, counters object) with ``Counter`` (C code), and the Python
loop runs once per distinct pair, not once per VMA.
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter
from typing import Dict, Iterable, Tuple

from anonvma.procmaps.records import Counts, Vma

_name = attrgetter("name")
_smaps = attrgetter("smaps")


def tally_vmas(vmas: Iterable[Vma]) -> Tuple[int, Counts, Dict[str, int]]:
    """(VMAs, (name, counters) -> VMAs in first-seen order, name -> kB of VMAs without counters)."""
    vmas = list(vmas)
    counters = list(map(_smaps, vmas))
    ids = list(map(id, counters))  # shared objects: count by identity, not by 27-field hash
    by_id = dict(zip(ids, counters, strict=True))
    pairs: Counter[Tuple[str, int]] = Counter(zip(map(_name, vmas), ids, strict=True))
    counts: Counts = {}
    for (name, ident), n in pairs.items():
        key = (name, by_id[ident])
        counts[key] = counts.get(key, 0) + n
    sizes: Dict[str, int] = {}
    if None in by_id.values():  # maps input: sizes from the address ranges
        for v in vmas:
            if v.smaps is None:
                sizes[v.name] = sizes.get(v.name, 0) + ((v.end - v.start) >> 10)
    return len(vmas), counts, sizes
