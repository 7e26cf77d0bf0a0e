"""Memory by name across many processes: the whole machine (librank) or one row per process (procrank).

:func:`read_system` reads the smaps of every process it may read (one reader thread reads
ahead while this thread parses), groups each process's VMAs, and notes the processes it could
not read (another user's, exited while read) instead of failing. :func:`by_name` then sums the
groups across processes; PSS summed across processes is the honest total (shared pages are
divided among their sharers), RSS double-counts them.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from anonvma.live.registry.loading import Loaded, load
from anonvma.live.registry.places import scan
from anonvma.procmaps import registered
from anonvma.procmaps.errors import ProcmapsParseError
from anonvma.procmaps.group import group, matched, tally_of, total
from anonvma.procmaps.parser import ChunkTally, gc_paused
from anonvma.procmaps.reader import ThreadedReader
from anonvma.procmaps.records import Group, Tally
from anonvma.procmaps.source import cmdline, pid_of, pids, proc_path, read_file

#: Why a process was not counted (keys of :attr:`System.skipped`).
SKIP_REASONS = ("denied", "exited", "unreadable")


class Process(NamedTuple):
    """One process's memory, grouped: its groups and its totals (``total.key`` is the pid)."""

    pid: Optional[int]
    cmdline: str
    comm: str
    groups: List[Group]
    total: Group


class System(NamedTuple):
    """The processes read at one time, and the ones skipped, by reason.

    :ivar time: when reading started (seconds since the epoch).
    :ivar seconds: how long reading and grouping took.
    :ivar kernel_threads: processes with no memory map (kernel threads), not counted.
    :ivar skipped: reason (one of :data:`SKIP_REASONS`) -> how many processes.
    :ivar errors: a few example messages of the skipped ones (of those exited, only when the
        processes were named).
    """

    time: float
    seconds: float
    processes: List[Process]
    kernel_threads: int
    skipped: Dict[str, int]
    errors: List[str]

    def skipped_line(self, root: Optional[bool] = None) -> str:
        """One line saying what was not counted, or ``""``.

        :param root: whether the reader is root (default: whether it is now); decides the hint
            for denied processes: run as root, or what denies even root.
        """
        words = {"denied": "denied", "exited": "exited while read", "unreadable": "unreadable"}
        parts = [f"{n} {words[why]}" for why, n in self.skipped.items() if n]
        if not parts:
            return ""
        if root is None:
            root = os.geteuid() == 0
        hint = ""
        if self.skipped.get("denied"):
            hint = (" (denied even to root: another user namespace's processes, or a ptrace "
                    "rule of Yama or an LSM)" if root else " (run as root to read every process)")
        return f"not counted (processes): {', '.join(parts)}{hint}"


def _reason(err: OSError) -> str:
    if err.errno in (errno.EACCES, errno.EPERM):
        return "denied"
    if err.errno in (errno.ENOENT, errno.ESRCH):
        return "exited"
    return "unreadable"


def _process(pid: Optional[int], counted: Tally, by: str, fold: bool, match: Optional[str],
             label: Tuple[str, str]) -> Process:
    groups = group(matched(counted, match), by, fold)
    key = str(pid) if pid is not None else label[0]
    return Process(pid, label[0], label[1], groups, total(groups, key))


def read_system(targets: Optional[Sequence[Union[int, str]]] = None, *, by: str = "name", fold: bool = False,
                match: Optional[str] = None, procfs: str = "/proc", registries: bool = True) -> System:
    """Read and group every process (``targets=None``), or the given PIDs and saved files.

    Processes that cannot be read are counted in :attr:`System.skipped`; a process with an
    empty map (a kernel thread) in :attr:`System.kernel_threads`. A process that matches
    nothing under ``match`` is kept, with no groups. Saved files are read with
    :func:`~anonvma.procmaps.source.read_file` and their errors raised (they are the
    caller's input, not a race). With ``registries``, a process that keeps its names in an
    anonvma registry is shown with them (:mod:`anonvma.procmaps.registered`): its VMAs are
    read as records, the others only counted.

    :raises ValueError: bad ``match``.
    :raises ProcmapsParseError, OSError: a saved file that cannot be read.
    """
    started, clock = time.time(), time.perf_counter()
    named = targets is not None  # a process the caller named exiting is news, not a race
    live: List[int] = []
    files: List[str] = []
    for t in (pids(procfs) if targets is None else targets):
        pid = pid_of(t)
        if pid is None:
            files.append(str(t))
        else:
            live.append(pid)
    processes: List[Process] = []
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    errors: List[str] = []
    kernel_threads = 0
    for path in files:
        processes.append(_process(None, tally_of(read_file(path)), by, fold, match, (path, "")))
    paths = [proc_path(pid, "smaps", procfs) for pid in live]
    found = _registries(live, procfs) if registries else {}
    parsers = [registered.reader_for(p, _before(found.get(pid)))
               for p, pid in zip(paths, live, strict=True)]
    failed: Dict[int, OSError] = {}
    with gc_paused(), ThreadedReader(paths) as pieces:
        for index, piece in pieces:
            if isinstance(piece, bytes):
                parsers[index].feed(piece)
                continue
            pid = live[index]
            if isinstance(piece, OSError):
                failed[index] = piece
                continue
            label = cmdline(pid, procfs)
            if parsers[index].empty:
                if os.path.exists(proc_path(pid, "", procfs)):
                    kernel_threads += 1
                else:
                    skipped["exited"] += 1
                    if named:
                        errors.append(f"pid {pid}: exited")
                continue
            try:
                counted = _counted(parsers[index], pid, found.get(pid), procfs)
            except ProcmapsParseError as err:  # not expected from a kernel: say so, go on
                skipped["unreadable"] += 1
                errors.append(str(err))
                continue
            parsers[index] = ChunkTally("")  # free the text
            processes.append(_process(pid, counted, by, fold, match, label))
    for index, failure in failed.items():
        reason = _reason(failure)
        skipped[reason] += 1
        if (named or reason != "exited") and len(errors) < 5:
            errors.append(f"pid {live[index]}: {'exited' if reason == 'exited' else failure.strerror}")
    return System(started, time.perf_counter() - clock, processes, kernel_threads, skipped, errors)


class _Registry(NamedTuple):
    files: List[Tuple[int, str]]
    before: Loaded  # loaded before the map is read


def _registries(live: Sequence[int], procfs: str) -> Dict[int, _Registry]:
    """pid -> the registry of each process to read that has one. Files of processes that are
    gone are left where they are: ``anonvma registry clean`` removes them."""
    found = scan()
    wanted = set(live)
    out = {}
    for pid, files in found.items():
        loaded = load(pid, files, procfs) if pid in wanted else None
        if loaded is not None:
            out[pid] = _Registry(files, loaded)
    return out


def _before(reg: Optional[_Registry]) -> Optional[Loaded]:
    return reg.before if reg else None


def _counted(reader: registered.Reader, pid: int, reg: Optional[_Registry], procfs: str) -> Tally:
    """The tally of one process's smaps, with its registered names if it has a registry."""
    got = registered.finished(reader, pid, _before(reg), procfs, reg.files if reg else None)
    return got if isinstance(got, Tally) else tally_of(got)


def by_name(system: System) -> List[Group]:
    """Groups summed across processes, keyed as in each process (librank); ``processes`` says in
    how many, and a name is registered or estimated when it is in any of them."""
    buckets: Dict[str, List[Group]] = {}
    for proc in system.processes:
        for g in proc.groups:
            buckets.setdefault(g.key, []).append(g)
    return [total(gs, key, processes=len(gs))._replace(
                kind=gs[0].kind, registered=any(g.registered for g in gs),
                estimated=any(g.estimated for g in gs))
            for key, gs in buckets.items()]


def by_process(system: System) -> List[Group]:
    """One group per process (procrank): key the pid, kind ``process``."""
    return [p.total._replace(kind="process") for p in system.processes if p.total.count]


def grand_total(system: System, groups: Iterable[Group]) -> Group:
    """The total row: sums, and the number of processes that have any of the groups."""
    counted = sum(1 for p in system.processes if p.total.count)
    return total(groups, "total", processes=counted)
