"""Render groups and diffs as a terminal table, JSON or CSV. Every function returns the whole text.

Callers print only complete output: nothing is written until the text is fully built. A value
that is unknown (a smaps-only field of maps input) is ``-`` in tables, ``null`` in JSON and
empty in CSV: never 0.
"""

from __future__ import annotations

import io
import json
from types import MappingProxyType
from typing import Collection, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from anonvma.procmaps.budget import BUDGET_FIELDS, Budget
from anonvma.procmaps.records import COLUMNS, Change, Group, Vma

#: Group values exported by JSON/CSV (kB, except count and processes).
GROUP_FIELDS = ("count", "size", "rss", "pss", "uss", "shared", "swap", "swap_pss",
                "shared_clean", "shared_dirty", "private_clean", "private_dirty", "processes")
#: Every field ``--fields`` may pick (:func:`chosen_fields`): the default ones, then the
#: columns users ask for (:data:`~anonvma.procmaps.records.COLUMNS`).
FIELDS = (*GROUP_FIELDS, *COLUMNS)
#: The fields that count (VMAs, processes), not kB.
_COUNTS = ("count", "processes", "thp_eligible")
#: Table columns of a group (after the optional PROCS): header, field.
_SMAPS_COLUMNS = (("COUNT", "count"), ("SIZE", "size"), ("RSS", "rss"), ("PSS", "pss"),
                  ("USS", "uss"), ("SHARED", "shared"), ("SWAP", "swap"))
_MAPS_COLUMNS = (("COUNT", "count"), ("SIZE", "size"))
_PROCESS_COLUMNS = (("PID", "key"), ("VMAS", "count"), ("SIZE", "size"), ("RSS", "rss"),
                    ("PSS", "pss"), ("USS", "uss"), ("SWAP", "swap"))
#: What JSON and CSV give each VMA of ``--by none`` besides its counters (pmap -X's columns).
VMA_FIELDS = ("start", "end", "perms", "offset", "dev", "inode", "name", "vm_flags")


class PerVma(NamedTuple):
    """``--by none``: the VMA of each group key (:func:`~anonvma.procmaps.group.vma_key`), and
    whether the input printed VmFlags (smaps does, maps does not: then the flags are unknown)."""

    vmas: Mapping[str, Vma]
    flags: bool

    def fields(self, key: str) -> Dict[str, object]:
        """:data:`VMA_FIELDS` of the VMA of ``key`` (offset in bytes; ``vm_flags`` a list of
        mnemonics, ``None`` when unknown); empty for a key that is no VMA's (the total)."""
        v = self.vmas.get(key)
        if v is None:
            return {}
        return {"start": v.start, "end": v.end, "perms": v.perms, "offset": v.offset, "dev": v.dev,
                "inode": v.inode, "name": v.name, "vm_flags": list(v.vm_flags) if self.flags else None}


def human_kb(kb: Optional[int]) -> str:
    """``4`` -> ``4K``, ``2048`` -> ``2.0M``, ``1572864`` -> ``1.5G`` (binary units), signed ok;
    ``None`` (unknown) -> ``-``."""
    if kb is None:
        return "-"
    sign, value = ("-" if kb < 0 else ""), abs(kb)
    if value < 1024:
        return f"{sign}{value}K"
    for unit in "MGT":
        value /= 1024  # type: ignore[assignment]
        if value < 1024 or unit == "T":
            return f"{sign}{value:.1f}{unit}"
    raise AssertionError("unreachable")


def signed(value: Optional[int], field: str) -> str:
    """A change: ``+2.0M``, ``-4K``, ``0``; counts as ``+3``; unknown as ``?``."""
    if value is None:
        return "?"
    if field in ("count", "processes"):
        return f"{value:+d}" if value else "0"
    return ("+" if value > 0 else "") + human_kb(value) if value else "0"


def chosen_fields(text: str) -> Tuple[str, ...]:
    """``--fields LIST``: the comma-separated field names, in order (duplicates dropped).

    :raises ValueError: an empty list, or a name not in :data:`FIELDS` (the message lists them).
    """
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    wrong = [n for n in names if n not in FIELDS]
    if wrong or not names:
        what = f"unknown field {', '.join(map(repr, wrong))}" if wrong else "no field named"
        raise ValueError(f"--fields {text!r}: {what}; valid fields: {', '.join(FIELDS)}")
    return names


def header_of(field: str) -> str:
    """A field's table header: ``pss_dirty`` -> ``PSS_DIRTY``, ``processes`` -> ``PROCS``."""
    return "PROCS" if field == "processes" else field.upper()


def _cell(g: Group, field: str) -> str:
    if field == "key":
        return g.key
    if field in _COUNTS:
        value = g.value(field)
        return "-" if value is None else str(value)
    return human_kb(g.value(field))


def fit(name: str, width: Optional[int]) -> str:
    """``name`` shortened to ``width`` characters (``None``: no limit): a path from the left,
    since its file name is what tells two apart (``...b/libpython3.11.so.1.0``), never into the
    file name (then ``.../NAME``, longer than ``width``); anything else (a command line,
    ``[anon:...]``) from the right, as ps(1) cuts."""
    if width is None or len(name) <= width:
        return name
    if width <= 3:
        return name[:max(width, 0)]
    if name.startswith("/"):
        base = name.rsplit("/", 1)[1]
        if len(base) + 4 > width:  # a cut file name tells nothing apart: keep it, overflowing
            return ".../" + base if base != name[1:] else name
        return "..." + name[len(name) - (width - 3):]
    return name[:width - 3] + "..."


def _table(header: Sequence[str], rows: List[Sequence[str]], width: Optional[int],
           total_row: bool = False, left: Collection[int] = ()) -> str:
    """Right-aligned columns (those in ``left`` left-aligned: words, not numbers), the last (the
    name) left-aligned and shortened to fit ``width``; with ``total_row``, the last row's name
    is never shortened."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lead = sum(w + 2 for w in widths)
    room = None if width is None else max(width - lead, 12)
    out = []
    last = len(rows)  # the index of the last row in [header, *rows]
    for i, r in enumerate([header, *rows]):
        cells = [c.ljust(w) if n in left else c.rjust(w)
                 for n, (c, w) in enumerate(zip(r, widths, strict=False))]
        name = r[-1] if total_row and i == last else fit(r[-1], room)
        out.append(("  ".join(cells) + "  " + name).rstrip())
    return "\n".join(out) + "\n"


def label(key: str) -> str:
    """A group key as tables print it (plain anonymous memory has the empty key)."""
    return key if key else "[anonymous]"


#: What the marks after a table's names mean (printed under a table that has any).
MARKS_NOTE = {
    "registered": "(registered): named in the process's anonvma registry (the kernel cannot name "
                  "memory), not by the kernel",
    "estimated": "(estimated): part of a VMA that several names share; counters divided by page "
                 "counts where pagemap could not tell them exactly",
}


def marks(g: Optional[Group]) -> List[str]:
    """The marks of a group: ``registered``, ``estimated``, both or none."""
    if g is None:
        return []
    return [m for m, on in (("registered", g.registered), ("estimated", g.estimated)) if on]


def marked(key: str, found: Sequence[str]) -> str:
    """A table's name: the label, then its marks in parentheses."""
    return label(key) + (f" ({', '.join(found)})" if found else "")


def _notes(found: Sequence[str]) -> str:
    """The lines under a table explaining the marks it shows."""
    return "".join(MARKS_NOTE[m] + "\n" for m in MARKS_NOTE if m in found)


def groups_table(groups: Sequence[Group], total: Group, smaps: bool, width: Optional[int], *,
                 processes: bool = False, since: Optional[Mapping[str, Optional[int]]] = None,
                 since_total: Optional[int] = None, measure: str = "pss",
                 per_vma: Optional[PerVma] = None, names: Optional[Mapping[str, str]] = None,
                 name_header: str = "NAME", fields: Optional[Sequence[str]] = None) -> str:
    """The ``anonvma show`` table; ``smaps=False`` (maps input) shows only count and size.

    :param processes: add a PROCS column (in how many processes; ``show --all``).
    :param since: key -> change of ``measure`` since the first sample (``--watch``): a
        D<MEASURE> column; ``since_total`` is the total's.
    :param per_vma: ``--by none``: PERMS and OFFSET columns first and FLAGS (VmFlags, when the
        input has them) before the name, as pmap -X; no COUNT (each row is one VMA).
    :param names: key -> the name shown (``--by user``: the user names), under ``name_header``.
    :param fields: ``--fields``: these columns, in this order, instead of the default ones
        (PROCS, COUNT ... SWAP).

    The kind is left out to give the name room (it is in JSON/CSV, and ``--by kind`` shows it).
    """
    columns = list(_SMAPS_COLUMNS if smaps else _MAPS_COLUMNS)
    if per_vma is not None:
        columns.remove(("COUNT", "count"))
    if processes:
        columns.insert(0, ("PROCS", "processes"))
    if fields is not None:
        columns = [(header_of(f), f) for f in fields]
    header = (["PERMS", "OFFSET"] if per_vma is not None else []) + [h for h, _ in columns]
    if since is not None:
        header.append(f"D{measure.upper()}")
    flags = per_vma is not None and per_vma.flags and smaps
    if flags:
        header.append("FLAGS")
    header.append(name_header)
    rows: List[Sequence[str]] = []
    seen: List[str] = []
    for g in [*groups, total]:
        vma = per_vma.vmas.get(g.key) if per_vma is not None and g is not total else None
        row: List[str] = []
        if per_vma is not None:
            row += [vma.perms, f"{vma.offset:08x}"] if vma is not None else ["", ""]
        row += [_cell(g, f) for _, f in columns]
        if since is not None:
            row.append(signed(since_total if g is total else since.get(g.key), measure))
        if flags:
            row.append(" ".join(vma.vm_flags) if vma is not None else "")
        seen += marks(g)
        shown = names.get(g.key, g.key) if names is not None else marked(g.key, marks(g))
        row.append(shown if g is not total else "total")
        rows.append(row)
    left = [0] if per_vma is not None else []  # PERMS and FLAGS are words: left-aligned
    if flags:
        left.append(len(header) - 2)
    return _table(header, rows, width, total_row=True, left=left) + _notes(seen)


def processes_table(rows: Sequence[Group], total: Group, labels: Mapping[str, str],
                    width: Optional[int], *, since: Optional[Mapping[str, Optional[int]]] = None,
                    since_total: Optional[int] = None, measure: str = "pss",
                    budgets: Optional[Mapping[str, Budget]] = None,
                    fields: Optional[Sequence[str]] = None) -> str:
    """``show --all --by process`` (procrank): one row per process with its command line.

    :param since: pid key -> change of ``measure`` since the first sample (``--watch``): a
        D<MEASURE> column; ``since_total`` is the total's.
    :param budgets: pid key -> its VMA budget: MAP_COUNT and HEADROOM columns after VMAS
        (``-`` where unknown: a saved file's limit; the total's headroom).
    :param fields: ``--fields``: these columns after PID, instead of VMAS ... SWAP.
    """
    columns = _PROCESS_COLUMNS if fields is None else (
        ("PID", "key"), *((header_of(f), f) for f in fields))
    header = [h for h, _ in columns] + ([f"D{measure.upper()}"] if since is not None else [])
    if budgets is not None:
        header[2:2] = ["MAP_COUNT", "HEADROOM"]
    header.append("CMDLINE")
    body: List[Sequence[str]] = []
    for g in rows:
        row = [_cell(g, f) for _, f in columns]
        if not g.key.isdigit():
            row[0] = "-"  # a saved file: no pid, its path is the command line's place
        if since is not None:
            row.append(signed(since.get(g.key), measure))
        if budgets is not None:
            row[2:2] = _budget_cells(budgets.get(g.key))
        body.append([*row, " ".join(labels.get(g.key, "").split())])  # one line per process
    row = [f"{total.processes}", *(_cell(total, f) for _, f in columns[1:])]
    if budgets is not None:
        row[2:2] = [str(sum(b.map_count for b in budgets.values())), "-"]
    if since is not None:
        row.append(signed(since_total, measure))
    body.append([*row, "total (processes)"])
    return _table(header, body, width, total_row=True)


def _budget_cells(b: Optional[Budget]) -> List[str]:
    """MAP_COUNT and HEADROOM of a process row (``-`` where unknown)."""
    if b is None:
        return ["-", "-"]
    return [str(b.map_count), "-" if b.headroom is None else str(b.headroom)]


def group_dict(g: Group, per_vma: Optional[PerVma] = None,
               fields: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """A group as a flat dict (sizes in kB; ``None`` where unknown): ``fields`` (default
    :data:`GROUP_FIELDS`); with ``per_vma``, its VMA's :data:`VMA_FIELDS` too."""
    out: Dict[str, object] = {"key": g.key, "kind": g.kind}
    out.update((f, g.value(f)) for f in (GROUP_FIELDS if fields is None else fields))
    out.update(registered=g.registered, estimated=g.estimated)
    if per_vma is not None:
        out.update(per_vma.fields(g.key))
    return out


def dumps(doc: object) -> str:
    """A JSON document as every command prints it: indented, ending with a newline."""
    return json.dumps(doc, indent=2) + "\n"


def groups_doc(groups: Sequence[Group], total: Group, meta: Mapping[str, object],
               per_vma: Optional[PerVma] = None, fields: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """The JSON document of groups: ``meta`` plus ``units``, ``groups`` (with ``per_vma``,
    each with its VMA's :data:`VMA_FIELDS`) and ``total``; ``fields`` as :func:`group_dict`."""
    return dict(meta, units="kB", groups=[group_dict(g, per_vma, fields) for g in groups],
                total=group_dict(total, fields=fields))


def groups_json(groups: Sequence[Group], total: Group, meta: Mapping[str, object],
                per_vma: Optional[PerVma] = None) -> str:
    """:func:`groups_doc` as JSON text."""
    return dumps(groups_doc(groups, total, meta, per_vma))


def processes_json(rows: Sequence[Group], total: Group, labels: Mapping[str, Sequence[str]],
                   meta: Mapping[str, object]) -> str:
    """:func:`processes_doc` as JSON text."""
    return dumps(processes_doc(rows, total, labels, meta))


def processes_doc(rows: Sequence[Group], total: Group, labels: Mapping[str, Sequence[str]],
                  meta: Mapping[str, object], budgets: Optional[Mapping[str, Budget]] = None,
                  fields: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """The JSON document of ``show --all --by process``: one object per process with pid,
    cmdline and comm (with ``budgets``: map_count, max_map_count, headroom; null where
    unknown); ``fields`` as :func:`group_dict`."""
    out = []
    for g in rows:
        d = group_dict(g, fields=fields)
        cmd, comm = labels.get(g.key, ("", ""))
        d.update(pid=int(g.key) if g.key.isdigit() else None, cmdline=cmd, comm=comm)
        if budgets is not None:
            b = budgets.get(g.key)
            d.update(b.fields() if b is not None else dict.fromkeys(BUDGET_FIELDS))
        d.pop("processes", None)
        del d["key"], d["kind"], d["registered"], d["estimated"]
        out.append(d)
    return dict(meta, units="kB", processes=out, total=group_dict(total, fields=fields))


def _uid(key: str) -> Optional[int]:
    """A pid or uid key as a number; ``None`` for any other key (a saved file's, an unknown)."""
    return int(key) if key.isdigit() else None


def users_json(rows: Sequence[Group], total: Group, names: Mapping[str, str],
               meta: Mapping[str, object]) -> str:
    """:func:`users_doc` as JSON text."""
    return dumps(users_doc(rows, total, names, meta))


def users_doc(rows: Sequence[Group], total: Group, names: Mapping[str, str],
              meta: Mapping[str, object], fields: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """The JSON document of ``show --by user`` (smem -u): one object per user with its name,
    uid (``null`` when unknown), how many processes, and their summed group fields (``fields``
    as :func:`group_dict`)."""
    out = []
    for g in rows:
        d = group_dict(g, fields=fields)
        d.update(user=names.get(g.key, g.key), uid=_uid(g.key))
        del d["key"], d["kind"], d["registered"], d["estimated"]
        out.append(d)
    return dict(meta, units="kB", users=out, total=group_dict(total, fields=fields))


def cgroups_doc(rows: Sequence[Group], total: Group, meta: Mapping[str, object]) -> Dict[str, object]:
    """The JSON document of ``show --by cgroup``: one object per memory cgroup with its path
    (``null`` when unknown), how many processes, and their summed group fields."""
    out = []
    for g in rows:
        d = group_dict(g)
        d.update(cgroup=g.key or None)
        del d["key"], d["kind"], d["registered"], d["estimated"]
        out.append(d)
    return dict(meta, units="kB", cgroups=out, total=group_dict(total))


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    import csv  # only CSV output needs it

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([["" if c is None else c for c in r] for r in rows])
    return buf.getvalue()


def _flag(on: bool) -> str:
    return "true" if on else "false"


def groups_csv(groups: Sequence[Group], per_vma: Optional[PerVma] = None,
               lead: Mapping[str, object] = MappingProxyType({}),
               fields: Optional[Sequence[str]] = None) -> str:
    """CSV with a header row: key, kind, then :data:`GROUP_FIELDS` (kB; empty where unknown),
    then ``registered`` and ``estimated`` (true/false); with ``per_vma``, then each VMA's
    :data:`VMA_FIELDS` (``vm_flags`` the mnemonics separated by spaces, empty when unknown).
    ``lead``: columns put first, the same in every row (``show PID PID``: pid and source);
    ``fields``: these instead of :data:`GROUP_FIELDS` (``--fields``)."""
    chosen = GROUP_FIELDS if fields is None else fields
    rows: List[List[object]] = []
    for g in groups:
        row: List[object] = [*lead.values(), g.key, g.kind, *(g.value(f) for f in chosen),
                             _flag(g.registered), _flag(g.estimated)]
        if per_vma is not None:
            of_vma = per_vma.fields(g.key)
            row += [" ".join(v) if isinstance(v, list) else v for v in map(of_vma.get, VMA_FIELDS)]
        rows.append(row)
    return _csv([*lead, "key", "kind", *chosen, "registered", "estimated",
                 *(VMA_FIELDS if per_vma is not None else ())], rows)


def processes_csv(rows: Sequence[Group], labels: Mapping[str, Sequence[str]],
                  budgets: Optional[Mapping[str, Budget]] = None,
                  chosen: Optional[Sequence[str]] = None) -> str:
    """CSV of ``show --all --by process``: pid (empty for a saved file, whose path is the
    cmdline), cmdline, comm, then the group fields (``chosen``: these, ``--fields``; with
    ``budgets``, then map_count, max_map_count and headroom, empty where unknown)."""
    fields = [f for f in (GROUP_FIELDS if chosen is None else chosen) if f != "processes"]
    extra = list(BUDGET_FIELDS) if budgets is not None else []

    def tail(key: str) -> List[object]:
        b = budgets.get(key) if budgets is not None else None
        return [] if budgets is None else list(b.fields().values()) if b is not None else [None] * 3

    return _csv(["pid", "cmdline", "comm", *fields, *extra],
                [[_uid(g.key), *labels.get(g.key, ("", "")), *(g.value(f) for f in fields), *tail(g.key)]
                 for g in rows])


def cgroups_csv(rows: Sequence[Group]) -> str:
    """CSV of ``show --by cgroup``: cgroup (empty when unknown), processes, then the other group
    fields."""
    fields = [f for f in GROUP_FIELDS if f != "processes"]
    return _csv(["cgroup", "processes", *fields], [[g.key, g.processes, *(g.value(f) for f in fields)]
                                                   for g in rows])


def users_csv(rows: Sequence[Group], names: Mapping[str, str],
              chosen: Optional[Sequence[str]] = None) -> str:
    """CSV of ``show --by user``: user, uid (empty when unknown), processes, then the other
    group fields (``chosen``: these, ``--fields``)."""
    fields = [f for f in (GROUP_FIELDS if chosen is None else chosen) if f != "processes"]
    return _csv(["user", "uid", "processes", *fields],
                [[names.get(g.key, g.key), _uid(g.key), g.processes, *(g.value(f) for f in fields)]
                 for g in rows])


def diff_table(changes: Sequence[Change], measure: str, width: Optional[int],
               total: Optional[Change] = None) -> str:
    """The ``anonvma diff`` table: status, signed change of the measure (and of the VMA count),
    the measure before -> after, name; then ``total`` (of every group, listed or not) as the
    last row."""
    header = ["STATUS", f"D{measure.upper()}"] + (["DCOUNT"] if measure != "count" else []) + [
        "BEFORE", "AFTER", "NAME"]
    rows: List[Sequence[str]] = []
    seen: List[str] = []
    for c in [*changes, *([total] if total is not None else [])]:
        cells = [c.status, signed(c.delta(measure), measure)]
        if measure != "count":
            cells.append(signed(c.delta("count"), "count"))
        found = _change_marks(c) if c is not total else []
        seen += found
        cells += [_cell(c.before, measure) if c.before else "-",
                  _cell(c.after, measure) if c.after else "-",
                  marked(c.key, found) if c is not total else "total"]
        rows.append(cells)
    note = ""
    if any(c.status == "changed" for c in changes):
        note = f"changed: the same {measure}, another measure differs (--json gives every delta)\n"
    return _table(header, rows, width, total_row=total is not None) + _notes(seen) + note


def _change_marks(c: Change) -> List[str]:
    """The marks of either side of a change."""
    both = marks(c.before) + marks(c.after)
    return [m for m in MARKS_NOTE if m in both]


def change_dict(c: Change, fields: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """A change as a dict: key, kind, status, before/after groups (or null), deltas (kB; null
    where a side's value is unknown); ``fields`` (default :data:`GROUP_FIELDS`) as
    :func:`group_dict`."""
    return {"key": c.key, "kind": c.kind, "status": c.status,
            "before": group_dict(c.before, fields=fields) if c.before else None,
            "after": group_dict(c.after, fields=fields) if c.after else None,
            "delta": {f: c.delta(f) for f in (GROUP_FIELDS if fields is None else fields)}}


def diff_json(changes: Sequence[Change], meta: Mapping[str, object],
              total: Optional[Change] = None, fields: Optional[Sequence[str]] = None) -> str:
    """JSON: ``meta`` plus ``units``, ``changes`` and, if given, ``total`` (of every group);
    ``fields`` as :func:`change_dict`."""
    doc = dict(meta, units="kB", changes=[change_dict(c, fields) for c in changes])
    if total is not None:
        doc["total"] = change_dict(total, fields)
    return dumps(doc)


def diff_csv(changes: Sequence[Change], fields: Optional[Sequence[str]] = None) -> str:
    """CSV: key, kind, status, then before_/after_/delta_ of each group field (``fields``,
    default :data:`GROUP_FIELDS`; empty where unknown), then ``registered`` and ``estimated``
    (of either side: true/false)."""
    chosen = GROUP_FIELDS if fields is None else fields
    rows = []
    for c in changes:
        cells: List[object] = [c.key, c.kind, c.status]
        for side in (c.before, c.after):
            cells += [side.value(f) if side else None for f in chosen]
        cells += [c.delta(f) for f in chosen]
        found = _change_marks(c)
        cells += [_flag("registered" in found), _flag("estimated" in found)]
        rows.append(cells)
    return _csv(["key", "kind", "status", *(f"{p}_{f}" for p in ("before", "after", "delta")
                                            for f in chosen), "registered", "estimated"], rows)
