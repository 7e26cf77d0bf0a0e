"""Read and account a process's memory map by name: /proc/PID/maps and smaps, live or saved.

Typical use::

    from anonvma import procmaps
    snap = procmaps.read_pid(1234)                     # or procmaps.read_file("saved.smaps")
    for g in procmaps.sort_groups(procmaps.group(snap.vmas, fold_numbers=True)):
        print(g.key, g.pss, g.uss)

Records (:class:`Vma`, :class:`Group`, :class:`Change`, :class:`Snapshot`) are NamedTuples with
sizes in kB. Errors: :class:`ProcmapsParseError` (a ValueError naming the line),
:class:`ProcessNotFoundError` (ESRCH), :class:`ProcessAccessError` (EACCES), both naming the pid.
"""

from anonvma.procmaps.diff import diff
from anonvma.procmaps.errors import ProcessAccessError, ProcessNotFoundError, ProcmapsParseError
from anonvma.procmaps.group import GROUP_BY, SORT_KEYS, group, sort_groups, total
from anonvma.procmaps.names import KINDS, anon_name, classify, fold
from anonvma.procmaps.parser import parse
from anonvma.procmaps.records import Change, Group, Smaps, Snapshot, Vma
from anonvma.procmaps.source import read, read_file, read_pid, read_pid_bytes

__all__ = [
    "Change", "GROUP_BY", "Group", "KINDS", "ProcessAccessError", "ProcessNotFoundError",
    "ProcmapsParseError", "SORT_KEYS", "Smaps", "Snapshot", "Vma", "anon_name", "classify", "diff",
    "fold", "group", "parse", "read", "read_file", "read_pid", "read_pid_bytes", "sort_groups",
    "total",
]
