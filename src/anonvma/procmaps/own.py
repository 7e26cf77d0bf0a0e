"""This process's own memory map, read through the parser.

For the lean processes that need only their own VMAs (an oracle guest's workers, a process
naming through the registry, the fork benchmark's worker): it loads the parser and its records,
not the readers of other processes (:mod:`anonvma.procmaps.source`).
"""

from __future__ import annotations

from typing import List

from anonvma.procmaps.parser import count_vmas, parse
from anonvma.procmaps.records import Vma

SELF_MAPS = "/proc/self/maps"


def maps_bytes() -> bytes:
    """The text of /proc/self/maps, read whole."""
    with open(SELF_MAPS, "rb") as f:
        return f.read()


def vmas() -> List[Vma]:
    """This process's VMAs (every line of /proc/self/maps, [vsyscall] included)."""
    return parse(maps_bytes(), SELF_MAPS)[0]


def count() -> int:
    """How many VMAs this process has (every line of /proc/self/maps), counted without a record
    each: allocating 65,000 records would itself map memory (and, under UML, host mappings)."""
    return count_vmas(maps_bytes())
