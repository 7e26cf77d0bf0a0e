"""A saved smaps that keeps a process's registered names: written by ``anonvma snapshot``, read back marked.

The kernel's smaps of a process with an anonvma registry has no names; ``anonvma show PID``
applies the registry (:mod:`anonvma.procmaps.registered`). So that a snapshot reads back as
``show`` showed it, :func:`render` writes the kernel's entries verbatim, except those of the
VMAs the registry named: one entry per part, its counters as ``show`` divided them, the
kernel's maps line (with the part's range, and the name the kernel printed: none), then::

    Name:           [anon:NAME]
    Anonvma:        registered estimated part 2/3

``Name:`` is Android's line for a VMA's name (any smaps reader that knows it sees the name);
``Anonvma:`` says the name is a registered one, not the kernel's (``registered``), that the
counters were divided by estimate (``estimated``), and which part of its VMA the entry is
(``part I/N``, for a VMA cut by name). :func:`registry_of` reads the marks back.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Set

from anonvma.procmaps.records import KB_FIELDS, Registered, Snapshot, Vma

#: The key of the line marking an entry's registered name (never a key the kernel prints).
MARK = "Anonvma"
_FIELD = re.compile(r"([A-Za-z_]+):( *)([0-9]+)( kB)")


def _entries(data: bytes) -> List[List[str]]:
    """The text of each entry, its lines, in order: an entry starts at a maps line (a line with
    no colon before its first space, as the parser tells them apart); blank lines dropped."""
    text = data.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    out: List[List[str]] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        colon, space = line.find(":"), line.find(" ")
        if not (colon > 0 and (space < 0 or colon < space)) or not out:
            out.append([line])
        else:
            out[-1].append(line)
    return out


def _field_line(line: str, part: Vma) -> str:
    """A ``Key:   N kB`` line with the part's value for the key, aligned as it was."""
    m = _FIELD.fullmatch(line)
    field = KB_FIELDS.get(m.group(1)) if m is not None else None
    if m is None or field is None or part.smaps is None:
        return line
    value = str(getattr(part.smaps, field))
    width = len(m.group(2)) + len(m.group(3))
    shown = value.rjust(width) if len(value) < width else " " + value
    return f"{m.group(1)}:{shown}{m.group(4)}"


def _part(template: List[str], kernel: Vma, part: Vma, marks: List[str]) -> List[str]:
    """The lines of one part of ``kernel`` (whose entry is ``template``)."""
    _, _, rest = template[0].partition(" ")
    lines = [f"{part.start:08x}-{part.end:08x} {rest}"]
    if part.name != kernel.name:
        lines.append(f"Name:           {part.name}")
    if marks:
        lines.append(f"{MARK}:        {' '.join(marks)}")
    return lines + [_field_line(line, part) for line in template[1:]
                    if not line.startswith(f"{MARK}:")]


def render(data: bytes, kernel: Sequence[Vma], shown: Snapshot) -> bytes:
    """The file to save for a live process: ``data`` (its smaps as the kernel printed it, which
    parsed into ``kernel``) with the registry applied as in ``shown`` (module docstring).

    :raises ValueError: ``data`` does not split into ``kernel``'s entries.
    """
    used = shown.registry
    entries = _entries(data)
    if used is None or len(entries) != len(kernel):
        raise ValueError("the smaps text and its records disagree")
    out: List[str] = []
    parts = list(shown.vmas)
    at = 0
    for template, vma in zip(entries, kernel, strict=True):
        mine = []
        while at < len(parts) and parts[at].end <= vma.end:
            mine.append(parts[at])
            at += 1
        if len(mine) == 1 and mine[0][:7] == vma[:7]:
            out += template
            continue
        for i, part in enumerate(mine, 1):
            marks = ["registered"] if part.name != vma.name else []
            if len(mine) > 1 and part.name in used.estimated:
                marks.append("estimated")
            if len(mine) > 1:
                marks.append(f"part {i}/{len(mine)}")
            out += _part(template, vma, part, marks)
    return ("\n".join(out) + "\n").encode("utf-8", "surrogateescape")


def _marks(vma: Vma) -> Optional[List[str]]:
    for key, value in vma.extra:
        if key == MARK:
            return value.split()
    return None


def registry_of(vmas: Sequence[Vma], source: str) -> Optional[Registered]:
    """What the marks of a saved file say (``None``: it has none): the registered names, the
    estimated ones, and the VMAs cut into parts by name."""
    names: Set[str] = set()
    estimated: Set[str] = set()
    registered = cut = parts = 0
    for vma in vmas:
        words = _marks(vma)
        if words is None:
            continue
        if "registered" in words:
            names.add(vma.name)
            registered += 1
        if "estimated" in words:
            estimated.add(vma.name)
        if "part" in words:
            parts += 1
            at = words.index("part") + 1
            cut += at < len(words) and words[at].startswith("1/")
    if not (registered or estimated or parts):
        return None
    return Registered(source, registered, 0, 0, frozenset(names), frozenset(estimated), cut, parts,
                      saved=True)
