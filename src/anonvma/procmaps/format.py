"""Render groups and diffs as a terminal table, JSON or CSV. Every function returns the whole text.

Callers print only complete output: nothing is written until the text is fully built.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Dict, List, Optional, Sequence

from anonvma.procmaps.records import Change, Group

#: Group values exported by JSON/CSV (kB, except count).
GROUP_FIELDS = ("count", "size", "rss", "pss", "uss", "shared", "swap", "swap_pss",
                "shared_clean", "shared_dirty", "private_clean", "private_dirty")


def human_kb(kb: int) -> str:
    """``4`` -> ``4K``, ``2048`` -> ``2.0M``, ``1572864`` -> ``1.5G`` (binary units), signed ok."""
    sign, value = ("-" if kb < 0 else ""), abs(kb)
    if value < 1024:
        return f"{sign}{value}K"
    for unit in "MGT":
        value /= 1024  # type: ignore[assignment]
        if value < 1024 or unit == "T":
            return f"{sign}{value:.1f}{unit}"
    raise AssertionError("unreachable")


def _fit(name: str, width: Optional[int]) -> str:
    """Shorten ``name`` in the middle to ``width`` characters (``None``: no limit)."""
    if width is None or len(name) <= width:
        return name
    if width < 5:
        return name[:max(width, 0)]
    head = (width - 3) // 2
    return name[:head] + "..." + name[len(name) - (width - 3 - head):]


def _table(header: Sequence[str], rows: List[Sequence[str]], width: Optional[int]) -> str:
    """Right-aligned columns, the last (the name) left-aligned and shortened to fit ``width``."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lead = sum(w + 2 for w in widths)
    room = None if width is None else max(width - lead, 12)
    out = []
    for r in [header, *rows]:
        cells = [c.rjust(w) for c, w in zip(r, widths, strict=False)]
        out.append(("  ".join(cells) + "  " + _fit(r[-1], room)).rstrip())
    return "\n".join(out) + "\n"


def _label(key: str) -> str:
    return key if key else "[anonymous]"


def groups_table(groups: Sequence[Group], total: Group, smaps: bool, width: Optional[int]) -> str:
    """The ``anonvma show`` table; ``smaps=False`` (maps input) shows only count and size.

    The kind is left out to give the name room (it is in JSON/CSV, and ``--by kind`` shows it).
    """
    if smaps:
        header = ["COUNT", "SIZE", "RSS", "PSS", "USS", "SHARED", "SWAP", "NAME"]
        rows: List[Sequence[str]] = [
            [str(g.count), human_kb(g.size), human_kb(g.rss), human_kb(g.pss), human_kb(g.uss),
             human_kb(g.shared), human_kb(g.swap), _label(g.key)] for g in [*groups, total]]
    else:
        header = ["COUNT", "SIZE", "NAME"]
        rows = [[str(g.count), human_kb(g.size), _label(g.key)] for g in [*groups, total]]
    return _table(header, rows, width)


def group_dict(g: Group) -> Dict[str, object]:
    """A group as a flat dict (sizes in kB)."""
    out: Dict[str, object] = {"key": g.key, "kind": g.kind}
    out.update((f, getattr(g, f)) for f in GROUP_FIELDS)
    return out


def groups_json(groups: Sequence[Group], total: Group, meta: Dict[str, object]) -> str:
    """JSON: ``meta`` plus ``units``, ``groups`` and ``total``."""
    doc = dict(meta, units="kB", groups=[group_dict(g) for g in groups], total=group_dict(total))
    return json.dumps(doc, indent=2) + "\n"


def groups_csv(groups: Sequence[Group]) -> str:
    """CSV with a header row: key, kind, then :data:`GROUP_FIELDS` (kB)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "kind", *GROUP_FIELDS])
    for g in groups:
        w.writerow([g.key, g.kind, *(getattr(g, f) for f in GROUP_FIELDS)])
    return buf.getvalue()


def _signed(kb: int) -> str:
    return ("+" if kb > 0 else "") + human_kb(kb)


def diff_table(changes: Sequence[Change], measure: str, width: Optional[int]) -> str:
    """The ``anonvma diff`` table: status, deltas, before -> after of the measure, name."""
    header = ["STATUS", f"D{measure.upper()}", "DCOUNT", "BEFORE", "AFTER", "NAME"]
    rows: List[Sequence[str]] = []
    for c in changes:
        before = human_kb(getattr(c.before, measure)) if c.before else "-"
        after = human_kb(getattr(c.after, measure)) if c.after else "-"
        if measure == "count":
            before = str(c.before.count) if c.before else "-"
            after = str(c.after.count) if c.after else "-"
        d = c.delta(measure)
        rows.append([c.status, str(d) if measure == "count" else _signed(d),
                     f"{c.delta('count'):+d}", before, after, _label(c.key)])
    return _table(header, rows, width)


def change_dict(c: Change) -> Dict[str, object]:
    """A change as a dict: key, kind, status, before/after groups (or null), deltas (kB)."""
    return {"key": c.key, "kind": c.kind, "status": c.status,
            "before": group_dict(c.before) if c.before else None,
            "after": group_dict(c.after) if c.after else None,
            "delta": {f: c.delta(f) for f in GROUP_FIELDS}}


def diff_json(changes: Sequence[Change], meta: Dict[str, object]) -> str:
    """JSON: ``meta`` plus ``units`` and ``changes``."""
    return json.dumps(dict(meta, units="kB", changes=[change_dict(c) for c in changes]),
                      indent=2) + "\n"


def diff_csv(changes: Sequence[Change]) -> str:
    """CSV: key, kind, status, then before_/after_/delta_ of each group field."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "kind", "status", *(f"{p}_{f}" for p in ("before", "after", "delta")
                                           for f in GROUP_FIELDS)])
    for c in changes:
        cells: List[object] = [c.key, c.kind, c.status]
        for side in (c.before, c.after):
            cells += [getattr(side, f) if side else "" for f in GROUP_FIELDS]
        cells += [c.delta(f) for f in GROUP_FIELDS]
        w.writerow(cells)
    return buf.getvalue()
