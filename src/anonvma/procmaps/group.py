"""Totals over VMAs: by name (optionally folding numeric suffixes), by kind, or one row per VMA.

Grouping works on a :class:`~anonvma.procmaps.records.Tally` (VMAs counted per name and
counters, see :mod:`anonvma.procmaps.tally`): one loop per distinct (name, counters) pair,
whether the tally was counted while reading (``show PID``) or from VMA records.
"""

from __future__ import annotations

import re
from typing import Callable, Collection, Dict, FrozenSet, Iterable, List, Optional, Pattern, Set, Tuple, Union

from anonvma.procmaps.categories import Categories, builtin
from anonvma.procmaps.names import classify, fold
from anonvma.procmaps.records import (COLUMN_KEYS, COLUMNS, SMAPS_ONLY, SUMMED, UNPRINTED, Counts, Group,
                                      Registered, Snapshot, Tally, Vma)
from anonvma.procmaps.tally import tally_vmas

#: What :func:`group` takes: a snapshot (as read_pid/read_file return), a tally, or VMAs.
VmaSource = Union[Snapshot, Tally, Iterable[Vma]]

#: Ways to group: ``name`` (the maps name; ``""`` is plain anonymous memory), ``kind``, ``none``,
#: ``category`` (a table's: :mod:`anonvma.procmaps.categories`).
GROUP_BY = ("name", "kind", "none", "category")
#: Sort orders: group fields, largest first.
SORT_KEYS = ("pss", "rss", "size", "uss", "swap", "count", "processes")


class _KeyOf(Dict[str, str]):
    """maps name -> group key, computed once per distinct name."""

    def __init__(self, by: str, fold_numbers: bool, categories: Optional[Categories] = None) -> None:
        super().__init__()
        self.by, self.fold_numbers = by, fold_numbers
        self.categories = categories if categories is not None or by != "category" else builtin()

    def __missing__(self, name: str) -> str:
        if self.categories is not None and self.by == "category":
            key = self.categories.of(name)
        else:
            key = classify(name) if self.by == "kind" else fold(name) if self.fold_numbers else name
        self[name] = key
        return key


def vmas_of(source: Union[Snapshot, Iterable[Vma]]) -> List[Vma]:
    """The VMAs of a snapshot, or the given VMAs as a list."""
    return list(source.vmas if isinstance(source, Snapshot) else source)


def tally_of(source: Union[Snapshot, Iterable[Vma]]) -> Tally:
    """Count a snapshot's (or some VMAs') VMAs per (name, counters)."""
    if isinstance(source, Snapshot):
        n, counts, sizes = tally_vmas(source.vmas)
        return Tally(source.source, source.pid, n, source.fields, counts, sizes, source.registry)
    n, counts, sizes = tally_vmas(source)
    return Tally("", None, n, () if sizes else ("Size",), counts, sizes)  # only has_smaps matters


def shown_regex(pattern: str) -> str:
    r"""A regular expression as the user typed it, quoted for a shell: ``'^\[anon:'`` (not
    ``'^\\[anon:'``, the doubled backslash of ``repr``)."""
    return "'" + pattern.replace("'", "'\\''") + "'"


def searcher(pattern: Union[str, Pattern[str], None],
             option: str = "--match") -> Optional[Callable[[str], object]]:
    """``re.search`` of ``pattern`` (``None`` for no pattern).

    :raises ValueError: a bad regular expression, named as the user gave it to ``option``.
    """
    if pattern is None:
        return None
    try:
        return re.compile(pattern).search
    except re.error as err:
        raise ValueError(f"bad {option} {shown_regex(str(getattr(pattern, 'pattern', pattern)))}: {err}"
                         ) from err


def matching(vmas: Iterable[Vma], pattern: Union[str, Pattern[str], None]) -> List[Vma]:
    """The VMAs whose maps name matches ``pattern`` (``re.search``); all if it is ``None``.

    :raises ValueError: a bad regular expression.
    """
    search = searcher(pattern)
    if search is None:
        return list(vmas)
    hits: Dict[str, bool] = {}
    out = []
    for v in vmas:
        hit = hits.get(v.name)
        if hit is None:
            hit = hits[v.name] = search(v.name) is not None
        if hit:
            out.append(v)
    return out


def matched(tally: Tally, pattern: Union[str, Pattern[str], None]) -> Tally:
    """The tally of the VMAs whose name matches ``pattern`` (all if ``None``).

    :raises ValueError: a bad regular expression.
    """
    search = searcher(pattern)
    if search is None:
        return tally
    counts = {k: n for k, n in tally.counts.items() if search(k[0])}
    sizes = {k: kb for k, kb in tally.sizes.items() if search(k)}
    return tally._replace(vmas=sum(counts.values()), counts=counts, sizes=sizes)


def vma_key(v: Vma) -> str:
    """The key of a VMA's group by none: ``start-end name`` (addresses in hex, as maps prints
    them; no trailing space for plain anonymous memory)."""
    return f"{v.start:x}-{v.end:x} {v.name}".rstrip()


def _by_none(vmas: List[Vma], registry: Optional[Registered]) -> Tally:
    """One name per VMA: :func:`vma_key` (registered and estimated as their names are)."""
    named = [v._replace(name=vma_key(v)) for v in vmas]
    n, counts, sizes = tally_vmas(named)
    if registry is not None:
        pairs = list(zip(named, vmas, strict=True))
        registry = registry._replace(
            names=frozenset(r.name for r, v in pairs if v.name in registry.names),
            estimated=frozenset(r.name for r, v in pairs if v.name in registry.estimated))
    return Tally("", None, n, (), counts, sizes, registry)


def group(vmas: VmaSource, by: str = "name", fold_numbers: bool = False,
          categories: Optional[Categories] = None) -> List[Group]:
    """Sum the VMAs per key, in first-seen order.

    :param vmas: a :class:`Snapshot`, a :class:`Tally` or VMAs.
    :param by: one of :data:`GROUP_BY`; ``none`` makes one group per VMA keyed ``start-end name``
        (:func:`vma_key`; not from a tally, which has no addresses).
    :param fold_numbers: with ``by="name"``, ``[anon:stack_and_tls:123]`` counts as
        ``[anon:stack_and_tls:*]`` (see :func:`anonvma.procmaps.names.fold`).
    :param categories: with ``by="category"``, the table (default: the built-in one).
    :raises ValueError: unknown ``by``, or ``none`` of a tally.
    """
    if by not in GROUP_BY:
        raise ValueError(f"group by must be one of {', '.join(GROUP_BY)}, not {by!r}")
    if isinstance(vmas, Tally):
        if by == "none":
            raise ValueError("a tally has no addresses: group its snapshot by none")
        t = vmas
    elif by == "none":
        t = _by_none(vmas_of(vmas), vmas.registry if isinstance(vmas, Snapshot) else None)
        fold_numbers = False
    else:
        t = tally_of(vmas)
    fields = vmas.fields if isinstance(vmas, (Snapshot, Tally)) else None
    return group_counts(t.counts, t.sizes, by, fold_numbers, t.registry, categories, fields=fields)


def _marked(names: FrozenSet[str], key_of: Optional[Dict[str, str]]) -> FrozenSet[str]:
    """The group keys that ``names`` (maps names) fall under."""
    return frozenset(key_of[n] for n in names) if key_of is not None else names


#: Pss_Anon/File/Shmem: smaps_rollup prints them, smaps does not (fs/proc/task_mmu.c __show_smap:
#: only in rollup_mode); derived per VMA where that is exact (see :func:`unprinted`).
_PSS_SPLIT = ("pss_anon", "pss_file", "pss_shmem")
_SPLIT_UNKNOWN = frozenset(_PSS_SPLIT)
_FILE_SHMEM_UNKNOWN = frozenset(_PSS_SPLIT[1:])


def unprinted(fields: Optional[Collection[str]]) -> Tuple[FrozenSet[str], bool]:
    """The fields of :data:`~anonvma.procmaps.records.COLUMNS` (and ``swap_pss``) unknown for
    input that printed the smaps keys ``fields``, and whether Pss_Anon/File/Shmem are derived.

    ``None`` (not said: VMAs given as a list) leaves every column unknown (``swap_pss`` known
    with the counters, as before these columns). Where smaps prints no Pss_Anon/File/Shmem but
    does print Rss, Pss and Anonymous, they are derived VMA by VMA: each resident page counts in
    Rss and, when anonymous, in Anonymous (fs/proc/task_mmu.c smaps_account), and its share of
    Pss goes to Pss_Anon exactly when anonymous (smaps_page_accumulate); so Anonymous == Rss
    gives Pss_Anon = Pss and Pss_File = Pss_Shmem = 0, Anonymous == 0 gives Pss_Anon = 0 (how
    the rest splits between file and shmem is not printed: unknown), anything between leaves all
    three unknown.
    """
    if fields is None:
        return UNPRINTED, False
    missing = frozenset(f for f in ("swap_pss", *COLUMNS) if COLUMN_KEYS[f] not in fields)
    derive = bool(missing & _SPLIT_UNKNOWN) and {"Rss", "Pss", "Anonymous"} <= set(fields)
    return (missing - _SPLIT_UNKNOWN if derive else missing), derive


def group_counts(counts: Counts, sizes: Dict[str, int], by: str, fold_numbers: bool,
                 registry: Optional[Registered] = None, categories: Optional[Categories] = None, *,
                 fields: Optional[Collection[str]] = None) -> List[Group]:
    """Sum counted VMAs per key (see :func:`group`); ``sizes`` gives kB of names without counters;
    ``registry`` marks the groups of registered names and of estimated counters; ``fields``
    (the smaps keys the input printed) says which columns are known (:func:`unprinted`)."""
    key_of = _KeyOf(by, fold_numbers, categories) if by != "none" else None
    acc: Dict[str, List[int]] = {}
    measured = True
    missing, derive = unprinted(fields)
    mixed: Set[str] = set()  # keys with a VMA whose Pss_Anon is not derivable
    file_or_shmem: Set[str] = set()  # keys with a VMA of Pss_File + Pss_Shmem unsplit
    for (name, s), n in counts.items():
        key = key_of[name] if key_of is not None else name
        a = acc.get(key)
        if a is None:
            a = acc[key] = [0] * 18
        a[0] += n
        if s is None:
            measured = False
            continue
        # hot path: one unpack of the counters (C) instead of an attribute lookup per field
        (size, _, _, rss, pss, pss_dirty, pss_anon, pss_file, pss_shmem, shared_clean, shared_dirty,
         private_clean, private_dirty, _, anonymous, _, lazy_free, anon_huge_pages, _, _, _, _, swap,
         swap_pss, locked, thp_eligible, _) = s
        a[1] += size * n
        a[2] += rss * n
        a[3] += pss * n
        a[4] += shared_clean * n
        a[5] += shared_dirty * n
        a[6] += private_clean * n
        a[7] += private_dirty * n
        a[8] += swap * n
        a[9] += swap_pss * n
        a[10] += pss_dirty * n
        if not derive:
            a[11] += pss_anon * n
            a[12] += pss_file * n
            a[13] += pss_shmem * n
        elif anonymous == rss:
            a[11] += pss * n
        elif anonymous == 0:
            file_or_shmem.add(key)
        else:
            mixed.add(key)
        a[14] += locked * n
        a[15] += lazy_free * n
        a[16] += anon_huge_pages * n
        if thp_eligible == 1:
            a[17] += n
    for name, kb in sizes.items():
        acc[key_of[name] if key_of is not None else name][1] += kb
    # a folded name has the kind of its names ("[anon:tls:*]" is anon_named); --by none keys start
    # with the range
    kind_of: Callable[[str], str] = (lambda key: key) if by == "kind" else classify if by == "name" else (
        lambda key: "category") if by == "category" else (lambda key: classify(key.partition(" ")[2]))
    registered = _marked(registry.names, key_of) if registry is not None else frozenset()
    estimated = _marked(registry.estimated, key_of) if registry is not None else frozenset()
    split_missing = missing | _SPLIT_UNKNOWN
    shmem_missing = missing | _FILE_SHMEM_UNKNOWN
    return [Group._make([key, kind_of(key), *a[:10], 1, measured, key in registered, key in estimated,
                         *a[10:], split_missing if key in mixed else shmem_missing
                         if key in file_or_shmem else missing])
            for key, a in acc.items()]


def total(groups: Iterable[Group], key: str = "total", processes: Optional[int] = None) -> Group:
    """The sum of groups (``count`` adds up VMAs); a field unknown in any group is unknown in
    the sum (a sum over no groups is 0 in every field).

    :param processes: how many distinct processes the groups cover (default: the most any
        group has, right for groups of one process).
    """
    sums = dict.fromkeys((*SUMMED, *COLUMNS), 0)
    most, measured = 0, True
    unknown: FrozenSet[str] = frozenset()
    for g in groups:
        for f in sums:
            sums[f] += getattr(g, f)
        most, measured = max(most, g.processes), measured and g.measured
        unknown |= g.unknown  # unknown in any part: the sum would be a part passed off as the whole
    return Group._make([key, "", *(sums[f] for f in SUMMED),  # SUMMED is in Group's field order
                        most if processes is None else processes, measured, False, False,
                        *(sums[f] for f in COLUMNS), unknown])


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
