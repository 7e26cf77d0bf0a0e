"""Totals over VMAs: by name (optionally folding numeric suffixes), by kind, or one row per VMA.

Part of the hot path (it runs over every VMA after parsing). VMAs with equal counters usually
share one :class:`~anonvma.procmaps.records.Smaps` object (the parser makes one per distinct
block), so the VMAs are first counted per (key, counters object) with ``Counter`` (C code), and
the Python loop runs once per distinct pair, not once per VMA.
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter
from typing import Dict, Iterable, List, Tuple

from anonvma.procmaps.names import classify, fold
from anonvma.procmaps.records import Group, Vma

#: Ways to group: ``name`` (the maps name; ``""`` is plain anonymous memory), ``kind``, ``none``.
GROUP_BY = ("name", "kind", "none")
#: Sort orders: group fields, largest first.
SORT_KEYS = ("pss", "rss", "size", "uss", "swap", "count")
_name = attrgetter("name")
_smaps = attrgetter("smaps")


class _KeyOf(Dict[str, str]):
    """maps name -> group key, computed once per distinct name."""

    def __init__(self, by: str, fold_numbers: bool) -> None:
        super().__init__()
        self.by, self.fold_numbers = by, fold_numbers

    def __missing__(self, name: str) -> str:
        key = classify(name) if self.by == "kind" else fold(name) if self.fold_numbers else name
        self[name] = key
        return key


def group(vmas: Iterable[Vma], by: str = "name", fold_numbers: bool = False) -> List[Group]:
    """Sum the VMAs per key, in first-seen order.

    :param by: one of :data:`GROUP_BY`; ``none`` makes one group per VMA keyed ``start-end name``.
    :param fold_numbers: with ``by="name"``, ``[anon:stack_and_tls:123]`` counts as
        ``[anon:stack_and_tls:*]`` (see :func:`anonvma.procmaps.names.fold`).
    :raises ValueError: unknown ``by``.
    """
    if by not in GROUP_BY:
        raise ValueError(f"group by must be one of {', '.join(GROUP_BY)}, not {by!r}")
    vmas = list(vmas)
    names = list(map(_name, vmas))
    if by == "none":
        keys = [f"{v.start:x}-{v.end:x} {v.name}".rstrip() for v in vmas]
    else:
        keys = list(map(_KeyOf(by, fold_numbers).__getitem__, names))
    first = dict(zip(reversed(keys), reversed(names), strict=True))  # key -> name of its first VMA
    acc: Dict[str, List[int]] = {key: [0] * 10 for key in dict.fromkeys(keys)}
    counters = list(map(_smaps, vmas))
    ids = list(map(id, counters))  # shared objects: count by identity, not by 27-field hash
    by_id = dict(zip(ids, counters, strict=True))
    pairs: Counter[Tuple[str, int]] = Counter(zip(keys, ids, strict=True))
    for (key, ident), n in pairs.items():
        s = by_id[ident]
        a = acc[key]
        a[0] += n
        if s is not None:
            a[1] += s.size * n
            a[2] += s.rss * n
            a[3] += s.pss * n
            a[4] += s.shared_clean * n
            a[5] += s.shared_dirty * n
            a[6] += s.private_clean * n
            a[7] += s.private_dirty * n
            a[8] += s.swap * n
            a[9] += s.swap_pss * n
    if None in counters:  # maps input: sizes from the address ranges
        for key, v in zip(keys, vmas, strict=True):
            if v.smaps is None:
                acc[key][1] += (v.end - v.start) >> 10
    kind_of = (lambda key: key) if by == "kind" else (lambda key: classify(first[key]))
    return [Group(key, kind_of(key), *a) for key, a in acc.items()]


def total(groups: Iterable[Group], key: str = "total") -> Group:
    """The sum of groups (``count`` adds up VMAs)."""
    sums = [0] * 10
    for g in groups:
        for i, value in enumerate(g[2:]):
            sums[i] += value
    return Group(key, "", *sums)


def sort_groups(groups: Iterable[Group], by: str = "pss") -> List[Group]:
    """Largest first by one of :data:`SORT_KEYS`, ties by key.

    :raises ValueError: unknown sort key.
    """
    if by not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, not {by!r}")
    return sorted(groups, key=lambda g: (-getattr(g, by), g.key))
