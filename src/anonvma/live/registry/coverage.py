"""Whether a registration still applies: what ``/proc/PID/maps`` shows where it was named.

The writer and every reader judge a registration the same way: its range must still be
covered, without holes, by private anonymous VMAs with the permissions it had. Maps cannot
tell an anonymous mapping from another one mapped at the same address with the same
permissions (munmap then mmap of the same range): that is why the writer's ``forget`` exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Sequence

from anonvma.live.registry.fileformat import Entry

if TYPE_CHECKING:
    from anonvma.procmaps.records import Vma

#: Why a registration no longer applies (:func:`gone`), and how a note says it.
GONE = {
    "unmapped": "unmapped or moved away (munmap, mremap)",
    "replaced": "replaced by a file or shared mapping",
    "mprotected": "permissions changed (mprotect, or anonymous memory mapped over it)",
}


def is_private_anon(vma: "Vma") -> bool:
    """Private anonymous memory, as maps shows it: no file, ``p``, no special name but the
    heap's and the stack's (which keep those names in maps even when named)."""
    return (vma.inode == 0 and vma.dev in ("00:00", "0:0") and vma.perms.endswith("p")
            and (not vma.name or vma.name in ("[heap]", "[stack]") or vma.name.startswith("[anon:")))


def gone(entries: Sequence[Entry], vmas: Sequence["Vma"]) -> List[Optional[str]]:
    """For each entry (in address order), ``None`` if its range is still covered, without a
    hole, by private anonymous VMAs with the permissions it was registered with (``vmas`` in
    address order), else why not: a key of :data:`GONE` (the first thing found wrong, from the
    entry's start). One pass over both.

    ``unmapped`` after munmap or a move (mremap), ``replaced`` when something else (a file, shared
    memory) is mapped there, ``mprotected`` for private anonymous memory with other permissions.
    Another anonymous mapping with the same permissions at the same place counts as still
    there: maps cannot tell them apart.
    """
    out: List[Optional[str]] = []
    i = 0
    for e in entries:
        while i < len(vmas) and vmas[i].end <= e.start:
            i += 1
        at, j, why = e.start, i, "unmapped"
        while j < len(vmas):
            v = vmas[j]
            if v.start > at:
                break  # a hole: unmapped
            if not is_private_anon(v):
                why = "replaced"
                break
            if v.perms != e.perms:
                why = "mprotected"
                break
            at = v.end
            if at >= e.end:
                why = ""
                break
            j += 1
        out.append(why or None)
    return out


def still_there(entries: Sequence[Entry], vmas: Sequence["Vma"]) -> List[bool]:
    """For each entry, whether :func:`gone` finds nothing wrong."""
    return [why is None for why in gone(entries, vmas)]


def kept(entries: Sequence[Entry], vmas: Sequence["Vma"]) -> List[Entry]:
    """The entries :func:`still_there`."""
    return [e for e, ok in zip(entries, still_there(entries, vmas), strict=True) if ok]
