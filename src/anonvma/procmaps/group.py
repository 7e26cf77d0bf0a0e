"""Totals over VMAs: by name (optionally folding numeric suffixes), by kind, or one row per VMA.

Part of the hot path (it runs over every VMA after parsing). VMAs with equal counters usually
share one :class:`~anonvma.procmaps.records.Smaps` object (the parser makes one per distinct
block), so the VMAs are first counted per (key, counters object) with ``Counter`` (C code), and
the Python loop runs once per distinct pair, not once per VMA.
"""

from __future__ import annotations

import re
from collections import Counter
from operator import attrgetter
from typing import Dict, Iterable, List, Optional, Pattern, Tuple, Union

from anonvma.procmaps.names import classify, fold
from anonvma.procmaps.records import SMAPS_ONLY, SUMMED, Group, Snapshot, Vma

#: What :func:`group` takes: a snapshot (as read_pid/read_file return) or VMAs.
VmaSource = Union[Snapshot, Iterable[Vma]]

#: Ways to group: ``name`` (the maps name; ``""`` is plain anonymous memory), ``kind``, ``none``.
GROUP_BY = ("name", "kind", "none")
#: Sort orders: group fields, largest first.
SORT_KEYS = ("pss", "rss", "size", "uss", "swap", "count", "processes")
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


def vmas_of(source: VmaSource) -> List[Vma]:
    """The VMAs of a snapshot, or the given VMAs as a list."""
    return list(source.vmas if isinstance(source, Snapshot) else source)


def matching(vmas: Iterable[Vma], pattern: Union[str, Pattern[str], None]) -> List[Vma]:
    """The VMAs whose maps name matches ``pattern`` (``re.search``); all if it is ``None``.

    :raises ValueError: a bad regular expression.
    """
    if pattern is None:
        return list(vmas)
    try:
        search = re.compile(pattern).search
    except re.error as err:
        raise ValueError(f"bad --match {getattr(pattern, 'pattern', pattern)!r}: {err}") from err
    hits: Dict[str, bool] = {}
    out = []
    for v in vmas:
        hit = hits.get(v.name)
        if hit is None:
            hit = hits[v.name] = search(v.name) is not None
        if hit:
            out.append(v)
    return out


def group(vmas: VmaSource, by: str = "name", fold_numbers: bool = False) -> List[Group]:
    """Sum the VMAs per key, in first-seen order.

    :param vmas: a :class:`Snapshot` or VMAs.
    :param by: one of :data:`GROUP_BY`; ``none`` makes one group per VMA keyed ``start-end name``.
    :param fold_numbers: with ``by="name"``, ``[anon:stack_and_tls:123]`` counts as
        ``[anon:stack_and_tls:*]`` (see :func:`anonvma.procmaps.names.fold`).
    :raises ValueError: unknown ``by``.
    """
    if by not in GROUP_BY:
        raise ValueError(f"group by must be one of {', '.join(GROUP_BY)}, not {by!r}")
    vmas = vmas_of(vmas)
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
    measured = None not in counters
    if not measured:  # maps input: sizes from the address ranges, the rest unknown
        for key, v in zip(keys, vmas, strict=True):
            if v.smaps is None:
                acc[key][1] += (v.end - v.start) >> 10
    kind_of = (lambda key: key) if by == "kind" else (lambda key: classify(first[key]))
    return [Group._make([key, kind_of(key), *a, 1, measured]) for key, a in acc.items()]


def total(groups: Iterable[Group], key: str = "total", processes: Optional[int] = None) -> Group:
    """The sum of groups (``count`` adds up VMAs).

    :param processes: how many distinct processes the groups cover (default: the most any
        group has, right for groups of one process).
    """
    sums = dict.fromkeys(SUMMED, 0)
    most, measured = 0, True
    for g in groups:
        for f in SUMMED:
            sums[f] += getattr(g, f)
        most, measured = max(most, g.processes), measured and g.measured
    return Group(key, "", **sums, processes=most if processes is None else processes,
                 measured=measured)


def sort_field(groups: Iterable[Group], by: str) -> str:
    """The field to sort by: ``by``, or ``size`` when ``by`` is unknown for some group (maps input).

    :raises ValueError: unknown sort key.
    """
    if by not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, not {by!r}")
    if by in SMAPS_ONLY and not all(g.measured for g in groups):
        return "size"
    return by


def sort_groups(groups: Iterable[Group], by: str = "pss") -> List[Group]:
    """Largest first by one of :data:`SORT_KEYS` (by size if that is unknown), ties by key.

    :raises ValueError: unknown sort key.
    """
    groups = list(groups)
    field = sort_field(groups, by)
    return sorted(groups, key=lambda g: (-getattr(g, field), g.key))
