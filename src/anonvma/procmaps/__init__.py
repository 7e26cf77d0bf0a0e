"""Read and account memory by name: /proc/PID/maps and smaps, live or saved, one process or all.

Typical use::

    from anonvma import procmaps
    snap = procmaps.read_pid(1234)                     # or procmaps.read_file("saved.smaps")
    for g in procmaps.sort_groups(procmaps.group(snap, fold_numbers=True)):
        print(g.key, g.pss, g.uss)
    every = procmaps.read_system()                     # every process it may read
    for g in procmaps.sort_groups(procmaps.by_name(every)):
        print(g.key, g.processes, g.pss)               # PSS summed across processes

Records (:class:`Vma`, :class:`Group`, :class:`Change`, :class:`Snapshot`, :class:`Tally`) are
NamedTuples with sizes in kB; a value a maps file cannot give is ``None`` from
:meth:`Group.value`. Errors: :class:`ProcmapsParseError` (a ValueError naming the line),
:class:`ProcessNotFoundError` (ESRCH), :class:`ProcessAccessError` (EACCES), both naming the pid.

A live process that keeps names in an anonvma registry (a kernel without CONFIG_ANON_VMA_NAME,
``fallback=True``: docs/live.md) is read with them, as ``anonvma show`` shows it: ``read_pid``,
``read``, ``tally`` and ``read_tally`` take ``registry=False`` for the kernel's map alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Union

# Three functions share a submodule's name, which the first import of that submodule sets as
# this package's attribute: the submodules are imported now (all three are light), then the
# functions are bound over them.
from anonvma.procmaps import tally as _tally_module  # noqa: F401  (group imports it too)
from anonvma.procmaps.diff import diff
from anonvma.procmaps.group import group

if TYPE_CHECKING:
    from anonvma.procmaps.errors import ProcessAccessError, ProcessNotFoundError, ProcmapsParseError
    from anonvma.procmaps.group import GROUP_BY, SORT_KEYS, matched, matching, sort_groups, tally_of, total
    from anonvma.procmaps.names import KINDS, anon_name, classify, fold
    from anonvma.procmaps.parser import parse
    from anonvma.procmaps.records import Change, Group, Smaps, Snapshot, Tally, Vma
    from anonvma.procmaps.registered import read, read_pid, read_tally
    from anonvma.procmaps.source import read_file, read_pid_bytes
    from anonvma.procmaps.system import by_name, by_process, read_system

#: Where each name lives: imported on first use (PEP 562), so that a process that needs only
#: the parser (an oracle guest's worker reading its own maps) loads only the parser.
_WHERE = {
    "ProcessAccessError": "errors", "ProcessNotFoundError": "errors",
    "ProcmapsParseError": "errors", "GROUP_BY": "group", "SORT_KEYS": "group",
    "matched": "group", "matching": "group", "sort_groups": "group", "tally_of": "group",
    "total": "group", "KINDS": "names", "anon_name": "names", "classify": "names", "fold": "names",
    "parse": "parser", "Change": "records", "Group": "records", "Smaps": "records",
    "Snapshot": "records", "Tally": "records", "Vma": "records", "read": "registered",
    "read_pid": "registered", "read_tally": "registered",
    "read_file": "source", "read_pid_bytes": "source", "by_name": "system",
    "by_process": "system", "read_system": "system",
}

__all__ = [
    "Change", "GROUP_BY", "Group", "KINDS", "ProcessAccessError", "ProcessNotFoundError",
    "ProcmapsParseError", "SORT_KEYS", "Smaps", "Snapshot", "Tally", "Vma", "anon_name", "by_name",
    "by_process", "classify", "diff", "fold", "group", "matched", "matching", "parse", "read",
    "read_file", "read_pid", "read_pid_bytes", "read_system", "read_tally", "sort_groups", "tally",
    "tally_of", "total",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'anonvma.procmaps' has no attribute {name!r}")
    return getattr(importlib.import_module(f"anonvma.procmaps.{where}"), name)


def tally(target: Union[int, str], *, procfs: str = "/proc", registry: bool = True) -> "Tally":
    """:func:`anonvma.procmaps.registered.tally` (bound here: ``tally`` is also a submodule)."""
    from anonvma.procmaps.registered import tally as counted

    return counted(target, procfs=procfs, registry=registry)
