"""A registry file's bytes: one JSON object, checked whole when read.

The writer is the process itself; every reader is another process that must not trust what it
reads, so :func:`decode` accepts only what :func:`encode` writes: aligned, ordered, disjoint
ranges, names the prctl would take (:func:`anonvma.anon_name.check_anon_name`), permissions
of private memory.
"""

from __future__ import annotations

import json
from typing import List, NamedTuple, Optional, Sequence

from anonvma.anon_name import PAGE_SIZE, check_anon_name
from anonvma.live.registry.process_identity import MM_FIELDS, Identity, Namespace

#: The file format's version (``"anonvma_registry"`` in the file).
FORMAT = 1
#: A registry larger than this is not read (16 MiB: about 200,000 ranges).
MAX_BYTES = 16 << 20
_PERMS = frozenset(r + w + x + "p" for r in "r-" for w in "w-" for x in "x-")


class Entry(NamedTuple):
    """One registered range [start, end) with its name and the permissions of its memory then."""

    start: int
    end: int
    name: str
    perms: str


class Decoded(NamedTuple):
    """A registry file's content: its process, that process's uid, the entries (in address
    order) and the namespace it was written in (``None``: not recorded)."""

    identity: Identity
    uid: int
    entries: List[Entry]
    namespace: Optional[Namespace]


def encode(ident: Identity, uid: int, entries: Sequence[Entry], ns: Optional[Namespace] = None) -> bytes:
    """The file's bytes. ``ns``: the writer's namespace (``None``: unknown, and then no
    ``anonvma registry clean`` may ever remove the file)."""
    doc = {"anonvma_registry": FORMAT, "pid": ident.pid, "starttime": ident.starttime,
           "mm": list(ident.mm), "uid": uid, "page_size": PAGE_SIZE,
           "ns": None if ns is None else {"boot_id": ns.boot_id, "pid": list(ns.pid_ns),
                                          "time": list(ns.time_ns)},
           "entries": [[e.start, e.end, e.name, e.perms] for e in entries]}
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _int(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value < 1 << 64:
        raise ValueError(f"{what} is not an unsigned 64-bit integer: {value!r}")
    return value


def _namespace_of(value: object) -> Optional[Namespace]:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("boot_id"), str):
        raise ValueError("ns is not {boot_id, pid, time}")
    pairs = []
    for key in ("pid", "time"):
        pair = value.get(key)
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"ns {key} is not [dev, inode]")
        pairs.append((_int(pair[0], f"ns {key}"), _int(pair[1], f"ns {key}")))
    return Namespace(value["boot_id"], pairs[0], pairs[1])


def decode(data: bytes) -> Decoded:
    """Parse and check a registry file.

    :raises ValueError: anything that is not a registry this code wrote: not JSON, another
        format, wrong types, unaligned, unordered or overlapping ranges, invalid names.
    """
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("anonvma_registry") != FORMAT:
        raise ValueError(f"not an anonvma registry of format {FORMAT}")
    if doc.get("page_size") != PAGE_SIZE:
        raise ValueError(f"written for page size {doc.get('page_size')!r}, not {PAGE_SIZE}")
    mm = doc.get("mm")
    if not isinstance(mm, list) or len(mm) != len(MM_FIELDS):
        raise ValueError("no address-space fingerprint (mm)")
    ident = Identity(_int(doc.get("pid"), "pid"), _int(doc.get("starttime"), "starttime"),
                     tuple(_int(v, "mm") for v in mm))
    uid = _int(doc.get("uid"), "uid")
    ns = _namespace_of(doc.get("ns"))
    raw = doc.get("entries")
    if not isinstance(raw, list):
        raise ValueError("no entries list")
    entries: List[Entry] = []
    for i, item in enumerate(raw):
        if not isinstance(item, list) or len(item) != 4:
            raise ValueError(f"entry {i} is not [start, end, name, perms]")
        start, end = _int(item[0], f"entry {i} start"), _int(item[1], f"entry {i} end")
        name, perms = item[2], item[3]
        if start % PAGE_SIZE or end % PAGE_SIZE or start >= end:
            raise ValueError(f"entry {i}: {start:#x}-{end:#x} is not a page-aligned range")
        if entries and start < entries[-1].end:
            raise ValueError(f"entry {i}: {start:#x} overlaps or precedes the entry before")
        if not isinstance(name, str) or "\0" in name:
            raise ValueError(f"entry {i}: the name is not a string")
        try:
            check_anon_name(name)
        except (OSError, TypeError) as err:
            raise ValueError(f"entry {i}: {err}") from None
        if perms not in _PERMS:
            raise ValueError(f"entry {i}: permissions {perms!r} are not private memory's")
        entries.append(Entry(start, end, name, perms))
    return Decoded(ident, uid, entries, ns)
