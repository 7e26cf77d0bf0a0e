"""The VMA budget: a process's map_count against vm.max_map_count, and what is left of it.

mm->map_count counts the VMAs of the mm; /proc/PID/maps prints them and then the gate VMA
(fs/proc/task_mmu.c proc_get_vma/m_next: ``priv->tail_vma = get_gate_vma(mm)``, printed after
the mm's map_count VMAs), which x86-64 names ``[vsyscall]`` (arch/x86/entry/vsyscall/vsyscall_64.c
gate_vma) and never inserts into an mm: it is not counted. A process's anonvma registry cuts
one kernel VMA into several records by name (:attr:`~anonvma.procmaps.records.Registered.extra`
says how many records more): those are not counted either. A split or new mapping past the
limit fails with ENOMEM (mm/vma.c split_vma, mm/mmap.c do_mmap: ``mm->map_count >
sysctl_max_map_count``), which is how processes crash at it.
"""

from __future__ import annotations

import os
from typing import Iterable, NamedTuple, Optional, Tuple

from anonvma.procmaps.records import Registered, Tally

#: What :meth:`Budget.fields` gives, in order (JSON keys, CSV columns).
BUDGET_FIELDS = ("map_count", "max_map_count", "headroom")
#: The names of VMAs that maps prints but map_count does not count (the gate VMA).
GATE_NAMES = frozenset({"[vsyscall]"})


class Budget(NamedTuple):
    """A process's map_count, and vm.max_map_count when known (``None``: a saved file, which
    does not record the machine's limit)."""

    map_count: int
    max_map_count: Optional[int]

    @property
    def headroom(self) -> Optional[int]:
        """VMAs the process may still add before mmap and splits fail (``None``: unknown)."""
        return None if self.max_map_count is None else self.max_map_count - self.map_count

    @property
    def used_percent(self) -> Optional[float]:
        """map_count as a percentage of the limit (``None``: unknown)."""
        if not self.max_map_count:
            return None
        return 100.0 * self.map_count / self.max_map_count

    def fields(self) -> dict[str, object]:
        """map_count, max_map_count and headroom, as JSON gives them (``None``: unknown)."""
        return {"map_count": self.map_count, "max_map_count": self.max_map_count,
                "headroom": self.headroom}

    def said(self) -> str:
        """The header's words: ``map_count 40 of vm.max_map_count 65530 (65490 left, 0.1%)``."""
        if self.max_map_count is None:
            return f"map_count {self.map_count} of vm.max_map_count - (a file does not record it)"
        return (f"map_count {self.map_count} of vm.max_map_count {self.max_map_count} "
                f"({self.headroom} left, {self.used_percent:.1f}%)")


def read_max_map_count(procfs: str = "/proc") -> Optional[int]:
    """vm.max_map_count (``/proc/sys/vm/max_map_count``), ``None`` when it cannot be read."""
    try:
        with open(os.path.join(procfs, "sys/vm/max_map_count"), "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def map_count(records: int, names: Iterable[Tuple[str, int]], registry: Optional[Registered]) -> int:
    """mm->map_count of a map of ``records`` entries: less the gate VMA and the records the
    registry cut out of one VMA; ``names`` gives (maps name, how many records) pairs."""
    gate = sum(n for name, n in names if name in GATE_NAMES)
    return records - gate - (registry.extra if registry is not None else 0)


def map_count_of_tally(tally: Tally) -> int:
    """:func:`map_count` of a :class:`~anonvma.procmaps.records.Tally`."""
    return map_count(tally.vmas, ((name, n) for (name, _), n in tally.counts.items()), tally.registry)
