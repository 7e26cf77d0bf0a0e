"""Memory by name across many processes: the whole machine (librank) or one row per process (procrank).

:func:`read_system` reads the smaps of every process it may read (one reader thread reads
ahead while this thread parses), groups each process's VMAs, and notes the processes it could
not read (another user's, exited while read) instead of failing. :func:`by_name` then sums the
groups across processes; PSS summed across processes is the honest total (shared pages are
divided among their sharers), RSS double-counts them. :func:`by_process` gives one row per
process (procrank), :func:`by_user` one per user (smem -u), :func:`by_cgroup` one per memory
cgroup (a container, a systemd unit).
"""

from __future__ import annotations

import errno
import os
import pwd
import time
from typing import Collection, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from anonvma.live.registry.loading import Loaded, load
from anonvma.live.registry.places import scan
from anonvma.procmaps import registered
from anonvma.procmaps.budget import map_count, map_count_of_tally, read_max_map_count
from anonvma.procmaps.categories import Categories
from anonvma.procmaps.cgroup import cgroup_of
from anonvma.procmaps.errors import ProcmapsParseError
from anonvma.procmaps.group import group, group_counts, matched, searcher, tally_of, total
from anonvma.procmaps.parser import ChunkParser, ChunkTally, gc_paused
from anonvma.procmaps.procmap_query import HOW, Lister, Range
from anonvma.procmaps.reader import ThreadedReader
from anonvma.procmaps.records import Group, Tally
from anonvma.procmaps.source import cmdline, owner, pid_of, pids, proc_path, read_file

#: Why a process was not counted (keys of :attr:`System.skipped`).
SKIP_REASONS = ("denied", "exited", "unreadable")
#: How a counted process was read (keys of :attr:`System.reads`): its whole smaps, its
#: smaps_rollup (totals only), or its maps alone (no VMA name selected by ``match``).
READS = ("smaps", "rollup", "maps")


class Process(NamedTuple):
    """One process's memory, grouped: its groups and its totals (``total.key`` is the pid);
    ``uid`` its effective uid and ``cgroup`` its memory cgroup's path when asked for
    (:func:`read_system`), else (or unknown) ``None``; ``map_count`` its VMAs as the kernel
    counts them (:mod:`anonvma.procmaps.budget`)."""

    pid: Optional[int]
    cmdline: str
    comm: str
    groups: List[Group]
    total: Group
    uid: Optional[int] = None
    map_count: Optional[int] = None
    cgroup: Optional[str] = None


class System(NamedTuple):
    """The processes read at one time, and the ones skipped, by reason.

    :ivar time: when reading started (seconds since the epoch).
    :ivar seconds: how long reading and grouping took.
    :ivar kernel_threads: processes with no memory map (kernel threads), not counted.
    :ivar skipped: reason (one of :data:`SKIP_REASONS`) -> how many processes.
    :ivar errors: a few example messages of the skipped ones (of those exited, only when the
        processes were named).
    :ivar max_map_count: vm.max_map_count when reading started (``None``: unreadable).
    :ivar reads: how the counted processes were read (:data:`READS`) -> how many.
    :ivar listing: of the processes whose VMAs were listed first (to choose how to read them),
        how many by PROCMAP_QUERY and how many from maps text
        (:data:`anonvma.procmaps.procmap_query.HOW`).
    """

    time: float
    seconds: float
    processes: List[Process]
    kernel_threads: int
    skipped: Dict[str, int]
    errors: List[str]
    max_map_count: Optional[int] = None
    reads: Optional[Dict[str, int]] = None
    listing: Optional[Dict[str, int]] = None

    def reads_line(self) -> str:
        """One line saying how many processes were read which way (``""`` if none was)."""
        if not self.reads or not any(self.reads.values()):
            return ""
        words = {"smaps": "smaps", "rollup": "smaps_rollup", "maps": "maps only"}
        line = "read: " + ", ".join(f"{self.reads[how]} {words[how]}" for how in READS)
        listed = [f"{n} by {'PROCMAP_QUERY' if how == 'procmap_query' else 'maps text'}"
                  for how, n in (self.listing or {}).items() if n]
        return line + (f" (VMAs listed first: {', '.join(listed)})" if listed else "")

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
             label: Tuple[str, str], uid: Optional[int] = None, categories: Optional[Categories] = None,
             cgroup: Optional[str] = None) -> Process:
    groups = group(matched(counted, match), by, fold, categories)
    key = str(pid) if pid is not None else label[0]
    return Process(pid, label[0], label[1], groups, total(groups, key), uid,
                   map_count=map_count_of_tally(counted), cgroup=cgroup)


class _Chosen(NamedTuple):
    """The live processes to read, with what choosing them read: their labels (``--comm``)
    and effective uids (``--user``, or asked for); their memory cgroups are added when asked for."""

    pids: List[int]
    labels: Dict[int, Tuple[str, str]]
    uids: Dict[int, Optional[int]]
    cgroups: Dict[int, Optional[str]] = {}


def _choose(live: List[int], procfs: str, comm: Optional[str], user: Optional[int], owners: bool) -> _Chosen:
    """The processes of ``live`` of effective uid ``user`` whose comm or command line matches
    ``comm`` (either ``None``: any). One that exits meanwhile has no uid, and no label to match
    but ``("", "")``: it is kept only if that matches, to be counted as exited when read.

    :raises ValueError: bad ``comm``.
    """
    search = searcher(comm, "--comm")
    uids: Dict[int, Optional[int]] = {}
    if owners or user is not None:
        uids = {pid: owner(pid, procfs) for pid in live}
        if user is not None:
            live = [pid for pid in live if uids[pid] == user]
    labels: Dict[int, Tuple[str, str]] = {}
    if search is not None:
        labels = {pid: cmdline(pid, procfs) for pid in live}
        live = [pid for pid in live if search(labels[pid][1]) or search(labels[pid][0])]
    return _Chosen(live, labels, uids)


def read_system(targets: Optional[Sequence[Union[int, str]]] = None, *, by: str = "name", fold: bool = False,
                match: Optional[str] = None, procfs: str = "/proc", registries: bool = True,
                exclude: Collection[int] = (), comm: Optional[str] = None, user: Optional[int] = None,
                owners: bool = False, categories: Optional[Categories] = None,
                cgroups: bool = False, totals: bool = False) -> System:
    """Read and group every process (``targets=None``), or the given PIDs and saved files.

    Processes that cannot be read are counted in :attr:`System.skipped`; a process with an
    empty map (a kernel thread) in :attr:`System.kernel_threads`. A process that matches
    nothing under ``match`` is kept, with no groups. Saved files are read with
    :func:`~anonvma.procmaps.source.read_file` and their errors raised (they are the
    caller's input, not a race). With ``registries``, a process that keeps its names in an
    anonvma registry is shown with them (:mod:`anonvma.procmaps.registered`): its VMAs are
    read as records, the others only counted.

    Only what is needed is read (:attr:`System.reads`): with ``match``, a process without a
    registry has its VMAs listed first (:class:`~anonvma.procmaps.procmap_query.Lister`: no
    page-table walk) and its smaps is read only if one of its names matches; one with a
    registry (names that maps does not show) is always read whole.

    :param exclude: pids left out: neither read nor counted (``show --all`` leaves out its own).
    :param comm: only the processes whose comm or command line matches this regular expression
        (``re.search``), as ``pgrep`` and ``pgrep -f`` choose; the others are neither read nor
        counted (saved files are always read).
    :param user: only the processes of this effective uid (as ``ps -u``), the same way.
    :param owners: give each process its effective uid (:attr:`Process.uid`, which
        :func:`by_user` needs); always done with ``user``.
    :param categories: the table of ``by="category"`` (default: the built-in one).
    :param cgroups: give each process its memory cgroup (:attr:`Process.cgroup`, which
        :func:`by_cgroup` needs), read before its smaps; ``None`` for one that exited first.
    :param totals: only each process's totals are wanted (:func:`by_process`, :func:`by_user`):
        without ``match``, a process without a registry is read from its smaps_rollup where the
        kernel has it, its VMA count and size from its listing, and gets no groups.

    :raises ValueError: bad ``match`` or ``comm``.
    :raises ProcmapsParseError, OSError: a saved file that cannot be read.
    """
    started, clock = time.time(), time.perf_counter()
    limit = read_max_map_count(procfs)
    named = targets is not None  # a process the caller named exiting is news, not a race
    live: List[int] = []
    files: List[str] = []
    for t in (pids(procfs) if targets is None else targets):
        pid = pid_of(t)
        if pid is None:
            files.append(str(t))
        elif pid not in exclude:
            live.append(pid)
    processes: List[Process] = []
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    errors: List[str] = []
    kernel_threads = 0
    chosen = _choose(live, procfs, comm, user, owners)
    live = chosen.pids
    if cgroups:
        chosen = chosen._replace(cgroups={pid: cgroup_of(pid, procfs) for pid in live})
    for path in files:
        processes.append(_process(None, tally_of(read_file(path)), by, fold, match, (path, ""),
                                  categories=categories))
    found = _registries(live, procfs) if registries else {}
    plan = _plan(live, found, match, totals, procfs)
    failed: Dict[int, OSError] = plan.failed
    done: Dict[int, Process] = {}
    for index in plan.unmatched:
        pid = live[index]
        label = chosen.labels[pid] if pid in chosen.labels else cmdline(pid, procfs)
        done[index] = Process(pid, label[0], label[1], [], total([], str(pid)), chosen.uids.get(pid))
    order = [i for i in range(len(live)) if i in plan.how and i not in done]
    rolled = {i for i in order if plan.how[i] == "rollup"}
    paths = [proc_path(live[i], "smaps_rollup" if i in rolled else "smaps", procfs) for i in order]
    parsers: List[registered.Reader] = [
        ChunkParser(path) if i in rolled else registered.reader_for(path, _before(found.get(live[i])))
        for path, i in zip(paths, order, strict=True)]
    with gc_paused(), ThreadedReader(paths) as pieces:
        for at, piece in pieces:
            if isinstance(piece, bytes):
                parsers[at].feed(piece)
                continue
            index = order[at]
            pid = live[index]
            if isinstance(piece, OSError):
                failed[index] = piece
                continue
            label = chosen.labels[pid] if pid in chosen.labels else cmdline(pid, procfs)
            if parsers[at].empty:
                plan.empty.append(index)
                continue
            try:
                reader = parsers[at]
                if isinstance(reader, ChunkParser) and index in rolled:
                    done[index] = _rolled_up(reader, pid, plan.listed[index], label, chosen.uids.get(pid),
                                              chosen.cgroups.get(pid))
                    continue
                counted = _counted(parsers[at], pid, found.get(pid), procfs)
            except ProcmapsParseError as err:  # not expected from a kernel: say so, go on
                skipped["unreadable"] += 1
                errors.append(str(err))
                continue
            finally:
                parsers[at] = ChunkTally("")  # free the text
            done[index] = _process(pid, counted, by, fold, match, label, chosen.uids.get(pid),
                                   categories, chosen.cgroups.get(pid))
    for index in sorted(plan.empty):  # an empty map: a kernel thread, or the process is gone
        pid = live[index]
        if os.path.exists(proc_path(pid, "", procfs)):
            kernel_threads += 1
        else:
            skipped["exited"] += 1
            if named:
                errors.append(f"pid {pid}: exited")
    processes += [done[i] for i in sorted(done)]
    reads = dict.fromkeys(READS, 0)
    for index in done:
        reads[plan.how[index]] += 1
    for index, failure in sorted(failed.items()):
        reason = _reason(failure)
        skipped[reason] += 1
        if (named or reason != "exited") and len(errors) < 5:
            errors.append(f"pid {live[index]}: {'exited' if reason == 'exited' else failure.strerror}")
    return System(started, time.perf_counter() - clock, processes, kernel_threads, skipped, errors,
                  limit, reads, plan.listing)


class _Plan(NamedTuple):
    """How each live process (by index) is to be read, from its listing where one was made."""

    how: Dict[int, str]  # index -> one of READS (listed processes that failed or are empty: none)
    listed: Dict[int, List[Range]]  # index -> its VMAs, for the ones read from smaps_rollup
    unmatched: List[int]  # listed, and no name of theirs matches: read no further
    empty: List[int]  # listed (or read) with no VMA: kernel threads, or exited
    failed: Dict[int, OSError]  # listing failed
    listing: Dict[str, int]  # HOW -> processes listed that way


def _plan(live: Sequence[int], found: Dict[int, "_Registry"], match: Optional[str], totals: bool,
          procfs: str) -> _Plan:
    """Decide how to read each process (see :func:`read_system`), listing the VMAs of those
    that may need less than their smaps.

    :raises ValueError: bad ``match``.
    """
    search = searcher(match)
    plan = _Plan({}, {}, [], [], {}, dict.fromkeys(HOW, 0))
    lister = Lister(procfs)
    for index, pid in enumerate(live):
        rollup = totals and search is None and os.path.exists(proc_path(pid, "smaps_rollup", procfs))
        if pid in found or not (search is not None or rollup):
            plan.how[index] = "smaps"
            continue
        try:
            listed = lister.list_vmas(pid)
        except OSError as err:
            plan.failed[index] = err
            continue
        plan.listing[listed.how] += 1
        if not listed.vmas:
            plan.empty.append(index)
        elif rollup or search is None:
            plan.how[index], plan.listed[index] = "rollup", listed.vmas
        elif any(search(name) for name in {v[2] for v in listed.vmas}):
            plan.how[index] = "smaps"
        else:
            plan.how[index] = "maps"
            plan.unmatched.append(index)
    return plan


def _rolled_up(reader: ChunkParser, pid: int, vmas: List[Range], label: Tuple[str, str],
               uid: Optional[int], cgroup: Optional[str] = None) -> Process:
    """A process's totals from its smaps_rollup (fs/proc/task_mmu.c show_smaps_rollup: one
    entry, ``[rollup]``, summing every VMA; the columns it prints are known, the others not),
    its VMA count, map_count and size from its listing.

    :raises ProcmapsParseError: not one rollup entry.
    """
    rolled, printed = reader.finish()
    if len(rolled) != 1 or rolled[0].smaps is None:
        raise ProcmapsParseError(reader.source, None, None, f"{len(rolled)} entries, not one [rollup]")
    s = rolled[0].smaps
    size = sum((end - start) >> 10 for start, end, _ in vmas)
    summed = group_counts({("", s): 1}, {}, "name", False, fields=printed)[0]
    counted = map_count(len(vmas), ((name, 1) for _, _, name in vmas), None)
    rolled_total = summed._replace(key=str(pid), kind="", count=len(vmas), size=size)
    return Process(pid, label[0], label[1], [], rolled_total, uid, map_count=counted, cgroup=cgroup)


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


def by_user(system: System) -> List[Group]:
    """One group per user (smem -u): the totals of its processes summed, key the effective uid
    (``""`` for processes whose uid is unknown: saved files, or ``system`` read without
    ``owners``), kind ``user``, ``processes`` how many of its processes have memory."""
    buckets: Dict[str, List[Group]] = {}
    for p in system.processes:
        if p.total.count:
            buckets.setdefault("" if p.uid is None else str(p.uid), []).append(p.total)
    return [total(gs, key, processes=len(gs))._replace(kind="user") for key, gs in buckets.items()]


def by_cgroup(system: System) -> List[Group]:
    """One group per memory cgroup: the totals of its processes summed, key the cgroup's path
    (``""`` where unknown: saved files, processes that exited before it was read, or ``system``
    read without ``cgroups``), kind ``cgroup``, ``processes`` how many of its processes have memory."""
    buckets: Dict[str, List[Group]] = {}
    for p in system.processes:
        if p.total.count:
            buckets.setdefault(p.cgroup or "", []).append(p.total)
    return [total(gs, key, processes=len(gs))._replace(kind="cgroup") for key, gs in buckets.items()]


def by_category(system: System, categories: Categories) -> List[Group]:
    """One group per category of ``categories``: each process's groups filed by the category of
    their key (a name, folded or not), summed; ``processes`` how many processes have memory in it."""
    buckets: Dict[str, List[Group]] = {}
    for p in system.processes:
        mine: Dict[str, List[Group]] = {}
        for g in p.groups:
            mine.setdefault(categories.of(g.key), []).append(g)
        for category, gs in mine.items():
            buckets.setdefault(category, []).append(total(gs, category))
    return [total(gs, key, processes=len(gs))._replace(kind="category") for key, gs in buckets.items()]


def split_by_cgroup(system: System) -> Dict[str, System]:
    """The system split by memory cgroup (``""``: unknown), each part holding its processes."""
    parts: Dict[str, List[Process]] = {}
    for p in system.processes:
        parts.setdefault(p.cgroup or "", []).append(p)
    return {key: system._replace(processes=procs) for key, procs in parts.items()}


def user_name(key: str) -> str:
    """The name of a :func:`by_user` key: the uid's user name, the uid itself when the password
    database has none, ``?`` when unknown."""
    if not key:
        return "?"
    try:
        return pwd.getpwuid(int(key)).pw_name
    except KeyError:
        return key


def grand_total(system: System, groups: Iterable[Group]) -> Group:
    """The total row: sums, and the number of processes that have any of the groups."""
    counted = sum(1 for p in system.processes if p.total.count)
    return total(groups, "total", processes=counted)
