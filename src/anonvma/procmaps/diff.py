"""Compare two snapshots group by group: what grew, shrank, appeared or vanished."""

from __future__ import annotations

from typing import Dict, Iterable, List

from anonvma.procmaps.group import SORT_KEYS, VmaSource, group, sort_field
from anonvma.procmaps.records import Change, Group


def diff_groups(before: Iterable[Group], after: Iterable[Group], measure: str = "pss") -> List[Change]:
    """Pair groups by key; ``measure`` (a :data:`SORT_KEYS` field) decides grew/shrank, and a
    group whose ``measure`` is unchanged is ``changed`` if any other measure known on both
    sides differs, else ``same`` (see :class:`~anonvma.procmaps.records.Change`).

    When a side has no counters (a maps file), a smaps-only measure is unknown there, so the
    comparison falls back to ``size`` (each change's :attr:`Change.measure` says which was used).
    Returned largest absolute change first, then by key; unchanged groups are included
    (status ``same``) so callers can choose to show them.

    :raises ValueError: unknown measure.
    """
    if measure not in SORT_KEYS:
        raise ValueError(f"measure must be one of {', '.join(SORT_KEYS)}, not {measure!r}")
    old: Dict[str, Group] = {g.key: g for g in before}
    new: Dict[str, Group] = {g.key: g for g in after}
    measure = sort_field([*old.values(), *new.values()], measure)
    changes = []
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key), new.get(key)
        if a is None:
            status = "appeared"
        elif b is None:
            status = "vanished"
        else:
            d = getattr(b, measure) - getattr(a, measure)
            status = "grew" if d > 0 else "shrank" if d < 0 else "changed" if _differs(a, b) else "same"
        kind = (b or a).kind  # type: ignore[union-attr]
        changes.append(Change(key, kind, status, a, b, measure))
    changes.sort(key=lambda c: (-abs(c.delta(measure) or 0), c.key))
    return changes


def _differs(a: Group, b: Group) -> bool:
    """Whether any measure (:data:`SORT_KEYS`) known on both sides differs."""
    for field in SORT_KEYS:
        old, new = a.value(field), b.value(field)
        if old is not None and new is not None and old != new:
            return True
    return False


def changed(changes: Iterable[Change]) -> List[Change]:
    """The changes that are not ``same``."""
    return [c for c in changes if c.status != "same"]


def diff(before: VmaSource, after: VmaSource, by: str = "name", fold_numbers: bool = False,
         measure: str = "pss") -> List[Change]:
    """Group both snapshots (or VMA lists) the same way (see :func:`~anonvma.procmaps.group.group`)
    and pair the groups (see :func:`diff_groups`)."""
    return diff_groups(group(before, by, fold_numbers), group(after, by, fold_numbers), measure)
