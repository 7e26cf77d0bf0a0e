"""``anonvma show``, ``anonvma diff`` and ``anonvma snapshot``: account memory by name.

Each command builds its whole output before printing; an error prints one line to stderr and
exits 1, a usage error (argparse's, and the values and combinations ``show`` refuses before
reading anything: :class:`UsageError`) exits 2; ``diff`` exits as diff(1) does: 0 when nothing
changed, 1 when something did, 2 on an error. One-shot commands run with the cyclic GC off: they
build ~100K acyclic records and exit, and a collection over them would cost more than the
rest of the grouping (``--watch`` keeps the GC on between samples).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import pwd
import re
import sys
import time
import warnings
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from anonvma.live.registry.loading import RegistryWarning, load
from anonvma.procmaps.diff import changed, diff_groups
from anonvma.procmaps import registered, saved, system
from anonvma.procmaps.budget import Budget, map_count, map_count_of_tally, read_max_map_count
from anonvma.procmaps.categories import Categories, CategoriesError, table
from anonvma.procmaps.files import write_atomically
from anonvma.procmaps.errors import ProcessNotFoundError
from anonvma.procmaps.format import (
    PerVma,
    chosen_fields,
    diff_csv,
    diff_json,
    diff_table,
    dumps,
    groups_csv,
    groups_doc,
    groups_table,
    processes_csv,
    processes_doc,
    processes_table,
    users_csv,
    users_doc,
    cgroups_csv,
    cgroups_doc,
)
from anonvma.procmaps.group import (GROUP_BY, SORT_KEYS, group, matched, matching, shown_regex, sort_field,
                                    sort_groups, total, vma_key)
from anonvma.procmaps.merges import Merges
from anonvma.procmaps.parser import parse
from anonvma.procmaps.records import VMFLAGS_KEY, Group, Registered, Snapshot, Tally, Vma
from anonvma.procmaps.source import STDIN, describe, pid_of, proc_path, read_pid_bytes

#: ``show --all`` also groups by process (procrank), by user (smem -u) and by memory cgroup.
SHOW_BY = (*GROUP_BY, "process", "user", "cgroup")
#: The ways of grouping that give a row per process, per user or per cgroup: across processes.
ACROSS = ("process", "user", "cgroup")


class UsageError(ValueError):
    """A bad option or combination, refused before anything is read: exit status 2."""


def _width() -> Optional[int]:
    """The terminal's width ($COLUMNS, else its size) when printing to a terminal; else no limit:
    names stay whole in a pipe or file (GNU readline exports COLUMNS to every child, so it
    says nothing about where the output goes)."""
    if not sys.stdout.isatty():
        return None
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        return 80


def _grouping_options(p: argparse.ArgumentParser, by: Sequence[str] = GROUP_BY) -> None:
    p.add_argument("--by", choices=by, default="name",
                   help="group VMAs by maps name (default), by kind, not at all (one row per VMA), by "
                   "category (as Android's dumpsys meminfo: docs/categories.md)"
                   + (", or per process, per user or per memory cgroup (with --all or several PIDs: "
                      "procrank, smem -u, containers)" if "user" in by else ""))
    p.add_argument("--categories", metavar="FILE",
                   help="with --by category: a TOML file of your own categories (category = "
                        "[regular expressions]), tried before the built-in ones")
    p.add_argument("--sort", choices=SORT_KEYS, default="pss",
                   help="largest first (default pss; size when the input is maps, which has no PSS)")
    p.add_argument("--fold", action="store_true",
                   help="fold trailing numbers of names: [anon:stack_and_tls:123] -> [anon:stack_and_tls:*]")
    p.add_argument("--match", metavar="REGEX",
                   help="only VMAs whose maps name matches REGEX (Python re.search), e.g. '^\\[anon:'")
    p.add_argument("--fields", metavar="LIST",
                   help="the columns of the table, JSON and CSV, comma-separated, e.g. "
                        "pss,swap_pss,pss_dirty,pss_anon,locked,thp_eligible (docs/show.md lists them)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (sizes in kB, null where unknown)")
    out.add_argument("--csv", action="store_true", help="print CSV (sizes in kB, empty where unknown)")


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, which must be above 0."""
    def check(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text}")
        return value
    check.__name__ = kind.__name__
    return check


def register(subparsers: Any) -> None:
    """Add ``show``, ``diff`` and ``snapshot`` to the ``anonvma`` command."""
    p = subparsers.add_parser(
        "show", help="memory (smaps) by name: of a process, a saved file, or every process (--all)",
        description="Read /proc/PID/smaps (or a saved maps/smaps file) and print totals per name, "
                    "kind or VMA; of several PIDs or files, one table each in the order given (as "
                    "pmap; JSON: a list of one object each), or one row each with --by process "
                    "(one per user with --by user); with --all, of every process it "
                    "may read but its own (--include-self counts it too), summed by name "
                    "(librank), per process (--by process, procrank) or per user (--by user, "
                    "smem -u).",
        epilog="examples:\n  anonvma show --all --top 10\n  anonvma show --all --by process --top 5\n"
               "  anonvma show self $$ --by kind\n  anonvma show self $$ --by process\n"
               "  anonvma show --all --by user\n"
               "  anonvma show --all --user root --comm '^python' --by process\n"
               "  anonvma show $$ --by kind\n  anonvma show self --watch 2 --count 3\n"
               "  cat /proc/$$/smaps | anonvma show - --json")
    p.add_argument("targets", metavar="PID|FILE", nargs="*",
                   help="process ids, 'self' (anonvma's own process), or saved maps or smaps "
                        "files (gzip-compressed too; '-': standard input); none with --all")
    p.add_argument("--all", action="store_true",
                   help="every process it may read but its own (the anonvma process reading); the "
                        "others are counted in one line")
    p.add_argument("--include-self", action="store_true",
                   help="with --all: count the anonvma process reading too")
    p.add_argument("--comm", metavar="REGEX",
                   help="with --all: only processes whose comm or command line matches REGEX (as "
                        "pgrep and pgrep -f), e.g. '^python'")
    p.add_argument("--user", metavar="NAME|UID",
                   help="with --all: only processes of this effective user (as ps -u)")
    _grouping_options(p, SHOW_BY)
    p.add_argument("--top", type=positive(int), metavar="N", help="only the N largest rows (the total "
                   "stays the total of all)")
    p.add_argument("--watch", type=positive(float), metavar="SECONDS",
                   help="redraw every SECONDS with each row's change since the start (Ctrl-C stops)")
    p.add_argument("--count", type=positive(int), metavar="N", help="with --watch: stop after N tables")
    p.add_argument("--merges", action="store_true",
                   help="list the VMA boundaries that exist only because names differ: adjacent VMAs "
                        "the model's merge rules would merge if their names were equal, certain or "
                        "possible, and a count per name (docs/budget.md)")
    p.add_argument("--linux", metavar="RELEASE",
                   help="with --merges: the release whose merge rules judge (default: the running "
                        "kernel's nearest in the model's table)")
    p.set_defaults(func=_guarded(_show, quick=False))

    p = subparsers.add_parser("diff", help="what grew, shrank, appeared or vanished between two snapshots",
                              description="Compare two processes or saved maps/smaps files group by "
                                          "group: every group that changed in any measure, largest "
                                          "change of the --sort measure first, then the total. A "
                                          "maps file has no PSS: then the comparison is by size, "
                                          "and unknown values are null in JSON. Exit status, as "
                                          "diff(1): 0 when nothing changed, 1 when something did, "
                                          "2 when a side could not be read.",
                              epilog="examples:\n  anonvma snapshot $$ -o before.smaps.gz\n"
                                     "  anonvma diff before.smaps.gz $$\n"
                                     "  anonvma diff before.smaps.gz $$ --by kind --all")
    p.add_argument("before", metavar="A", help="PID, 'self' or FILE ('-': standard input)")
    p.add_argument("after", metavar="B", help="PID, 'self' or FILE ('-': standard input)")
    _grouping_options(p)
    p.add_argument("--all", action="store_true", help="also list unchanged groups")
    p.set_defaults(func=_guarded(_diff, failed=2))

    p = subparsers.add_parser("snapshot", help="save a process's smaps to a file",
                              description="Save /proc/PID/smaps verbatim (readable by show/diff "
                                          "and by any smaps tool). The file is written whole or "
                                          "not at all. A process that keeps names in an anonvma "
                                          "registry is saved with them, as show shows it: the "
                                          "VMAs they name get Name: and Anonvma: registered "
                                          "lines (docs/show.md).",
                              epilog="examples:\n  anonvma snapshot $$ -o shell.smaps.gz\n"
                                     "  anonvma snapshot $$ --maps -o - | head -3")
    p.add_argument("pid", metavar="PID", help="a process id, or 'self'")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="where to save it ('-': stdout; a name ending in .gz: gzip-compressed, "
                        "which show and diff read as well)")
    p.add_argument("--maps", action="store_true", help="save /proc/PID/maps instead")
    p.set_defaults(func=_guarded(_snapshot))


@contextlib.contextmanager
def warning_lines(command: str) -> Iterator[None]:
    """Print each distinct :class:`~anonvma.live.registry.RegistryWarning` (an ignored registry
    file) as one line on stderr: ``anonvma COMMAND: warning: ...``; other warnings as usual."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                 line: Optional[str] = None) -> None:
            if issubclass(category, RegistryWarning):
                print(f"anonvma {command}: warning: {message}", file=sys.stderr, flush=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.simplefilter("default", RegistryWarning)
        warnings.showwarning = show
        yield


def error_line(command: str, err: Exception) -> str:
    """The one stderr line of a command that failed with ``err`` (an OSError or ValueError)."""
    message = str(err)
    if isinstance(err, OSError) and err.strerror:  # never a raw "[Errno N] ..." text
        # our errors already name the pid/path; open()'s name the file, as cat(1) does
        message = err.strerror if err.filename is None else f"{err.filename}: {err.strerror}"
    return f"anonvma {command}: error: {message}"


class Output(NamedTuple):
    """A command's complete output and its exit status (``diff``: 1 when something changed)."""

    text: str
    status: int


def _guarded(fn: Callable[[argparse.Namespace], Union[str, Output]], quick: bool = True,
             failed: int = 1) -> Callable[[argparse.Namespace], int]:
    """Run a command; print its complete output and return its status (0 for plain text), or
    print one error line to stderr and return ``failed``."""
    def run(args: argparse.Namespace) -> int:
        if quick or not getattr(args, "watch", None):
            gc.disable()  # a one-shot command: see the module docstring
        try:
            with warning_lines(args.command):
                out = fn(args)
        except BrokenPipeError:
            raise  # stdout's reader went away (snapshot -o -, --watch): quiet (anonvma.cli.main)
        except UsageError as err:
            print(error_line(args.command, err), file=sys.stderr)
            return 2
        except (OSError, ValueError) as err:
            print(error_line(args.command, err), file=sys.stderr)
            return failed
        text, status = (out, 0) if isinstance(out, str) else out
        sys.stdout.write(text)
        sys.stdout.flush()
        return status
    return run


class _View(NamedTuple):
    """What ``show`` prints, before choosing table, JSON or CSV."""

    head: str
    note: str  # one line on what was not counted (show --all), or ""
    groups: List[Group]  # all of them, sorted
    rows: List[Group]  # the ones shown (--top)
    total: Group
    smaps: bool
    measure: str
    by: str
    across: bool  # several processes: a PROCS column
    labels: Dict[str, Tuple[str, str]]  # pid key -> (cmdline, comm), by process
    meta: Dict[str, object]
    per_vma: Optional[PerVma] = None  # --by none: each row's VMA
    users: Optional[Dict[str, str]] = None  # uid key -> user name, by user
    merges: Optional[Merges] = None  # --merges: the boundaries names alone keep
    budgets: Optional[Dict[str, Budget]] = None  # pid key -> VMA budget, by process
    fields: Optional[Tuple[str, ...]] = None  # --fields: the columns, else the default ones
    cgroups: Optional[Dict[str, str]] = None  # cgroup key -> as shown ("?": unknown), by cgroup
    footer: str = ""  # one line on how the processes were read (show --all; stderr), or ""


class _Grouped(NamedTuple):
    """One target read and grouped as the options say."""

    source: str
    pid: Optional[int]
    has_smaps: bool
    vmas: int  # the kernel's (a registry's parts of a VMA are one VMA)
    matching: int  # records matching --match
    groups: List[Group]
    registry: Optional[Registered]  # what the process's registry of names changed
    per_vma: Optional[PerVma] = None  # --by none: the VMA of each group
    budget: Optional[Budget] = None  # map_count against vm.max_map_count
    merges: Optional[Merges] = None  # --merges: the boundaries names alone keep


def _grouped(target: str, args: argparse.Namespace) -> _Grouped:
    """Read ``target`` (a PID, ``self`` or a file) and group it by ``args.by``/``--fold``/``--match``,
    with the names a live process keeps in its anonvma registry."""
    merges = getattr(args, "merges", False)
    got = registered.read_map(target, records=args.by == "none" or merges)  # one row per VMA: records
    limit = read_max_map_count() if got.pid is not None else None
    if isinstance(got, Tally):
        found = matched(got, args.match)
        return _Grouped(got.source, got.pid, got.has_smaps, got.vmas - _extra(got.registry),
                        found.vmas, group(found, args.by, args.fold, _categories(args)), got.registry,
                        budget=Budget(map_count_of_tally(got), limit))
    vmas = matching(got.vmas, args.match)
    per_vma = (PerVma({vma_key(v): v for v in vmas}, VMFLAGS_KEY in got.fields)
               if args.by == "none" else None)
    budget = Budget(map_count(len(got.vmas), ((v.name, 1) for v in got.vmas), got.registry), limit)
    return _Grouped(got.source, got.pid, got.has_smaps, len(got.vmas) - _extra(got.registry),
                    len(vmas), group(got._replace(vmas=tuple(vmas)), args.by, args.fold, _categories(args)),
                    got.registry, per_vma, budget,
                    _merges(got.vmas, args, got.pid, got.registry) if merges else None)


def _merges(vmas: Sequence[Vma], args: argparse.Namespace, pid: Optional[int],
            registry: Optional[Registered]) -> Merges:
    """``--merges``: the boundaries of ``vmas`` under ``--linux``'s rules (or the running
    kernel's nearest release), those with a name matching ``--match`` when given; with a live
    process's registry, its maps (without the registry) tells which lie inside a kernel VMA."""
    from anonvma.model.kernel import get_kernel
    from anonvma.procmaps.merges import name_boundaries, running_release
    from anonvma.procmaps.source import read_pid

    starts = None
    if registry is not None and not registry.saved and pid is not None:  # the kernel's own VMAs
        starts = frozenset(v.start for v in read_pid(pid, smaps=False).vmas)
    found = name_boundaries(vmas, get_kernel(args.linux or running_release()), starts)
    if args.match is None:
        return found
    search = re.compile(args.match).search
    return found._replace(boundaries=tuple(b for b in found.boundaries
                                           if search(b.below) or search(b.above)))


def _fields(args: argparse.Namespace) -> Optional[Tuple[str, ...]]:
    """``--fields``: the fields chosen, or ``None`` for the default columns.

    :raises UsageError: a name that is no field (the message lists the valid ones).
    """
    if args.fields is None:
        return None
    try:
        return chosen_fields(args.fields)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _categories(args: argparse.Namespace) -> Optional[Categories]:
    """The table of ``--by category`` (``None`` for other groupings), read once and kept in ``args``.

    :raises UsageError: ``--categories`` without ``--by category``, or a file that cannot be
        used (one line naming the file and the category).
    """
    if args.by != "category":
        if args.categories is not None:
            raise UsageError("--categories goes with --by category")
        return None
    if getattr(args, "category_table", None) is None:
        try:
            args.category_table = table(args.categories)
        except CategoriesError as err:
            raise UsageError(str(err)) from None
    found: Categories = args.category_table
    return found


def _extra(used: Optional[Registered]) -> int:
    return used.extra if used is not None else 0


def _one(target: str, args: argparse.Namespace) -> _View:
    """The view of one PID or file."""
    snap = _grouped(target, args)
    groups, count, shown = snap.groups, snap.vmas, snap.matching
    measure = sort_field(groups, args.sort)
    groups = sort_groups(groups, measure)
    who = describe(snap.pid) if snap.pid is not None else snap.source
    matching_ = f" ({shown} matching {shown_regex(args.match)})" if args.match is not None else ""
    head = (f"{who}: {count} VMAs{matching_}, {len(groups)} groups by {args.by}, "
            f"largest {measure} first")
    if snap.budget is not None:
        head += f"; {snap.budget.said()}"
    if not snap.has_smaps:
        head += " (maps has no RSS/PSS: sizes only)"
    meta: Dict[str, object] = {"source": snap.source, "pid": snap.pid, "by": args.by, "fold": args.fold,
                               "sort": measure, "match": args.match, "vmas": count,
                               "smaps": snap.has_smaps}
    if snap.pid is not None:
        meta["cmdline"] = describe(snap.pid)
    if snap.budget is not None:
        meta.update(snap.budget.fields())
    _note_categories(meta, args)
    if snap.registry is not None:
        used = snap.registry
        meta["registry"] = {"path": used.path, "ranges": used.ranges, "dropped": used.dropped,
                            "why_dropped": dict(used.why_dropped), "hidden": used.hidden,
                            "estimated": bool(used.estimated), "cut": used.cut, "parts": used.parts,
                            "saved": used.saved}
    return _View(head, registered.note(snap.registry), groups, groups[:args.top] if args.top else groups,
                 total(groups), snap.has_smaps, measure, args.by, False, {}, meta, snap.per_vma,
                 merges=snap.merges, fields=_fields(args))


def _note_categories(meta: Dict[str, object], args: argparse.Namespace) -> None:
    """``--by category``: say in the JSON which table gave the categories."""
    found = _categories(args)
    if found is not None:
        meta["categories"] = found.source


def _uid(user: str) -> int:
    """``--user NAME|UID``: the uid (a number is taken as it is, as ps -u takes one no user has).

    :raises UsageError: no user has that name.
    """
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise UsageError(f"--user {user}: no such user (give a user name or a UID)") from None


def _chosen(args: argparse.Namespace, uid: Optional[int]) -> str:
    """What was read, for the header: the targets, or ``all processes`` and of which user,
    matching what."""
    if args.targets:
        return " ".join(args.targets)
    words = "all processes"
    if uid is not None:
        words += f" of user {system.user_name(str(uid))} (uid {uid})"
    if args.comm is not None:
        words += f" whose comm or command line matches {shown_regex(args.comm)}"
    return words


def _every(args: argparse.Namespace) -> _View:
    """The view of ``--all``, or of several targets ``--by process`` or ``--by user``."""
    uid = _uid(args.user) if args.user is not None else None
    by = "name" if args.by in ACROSS else args.by
    targets = args.targets or None
    for target in targets or ():
        pid = pid_of(target)
        if pid is not None and not os.path.exists(proc_path(pid, "")):  # named: not a race to count
            raise ProcessNotFoundError(pid, f" (/proc/{pid} does not exist)")
    sysmem = system.read_system(targets, by=by, fold=args.fold, match=args.match,
                                exclude=(os.getpid(),) if args.all and not args.include_self else (),
                                comm=args.comm, user=uid, owners=args.by == "user",
                                categories=_categories(args), cgroups=args.by == "cgroup",
                                totals=args.by in ACROSS)
    if args.by == "process":
        groups = system.by_process(sysmem)
    elif args.by == "user":
        groups = system.by_user(sysmem)
    elif args.by == "cgroup":
        groups = system.by_cgroup(sysmem)
    else:
        groups = system.by_name(sysmem)
    measure = sort_field(groups, args.sort)
    groups = sort_groups(groups, measure)
    tot = system.grand_total(sysmem, groups)
    read_n = len(sysmem.processes)
    vmas = sum(p.total.count for p in sysmem.processes)
    one = len(groups) == 1
    what = {"process": "process" if one else "processes", "user": "user" if one else "users",
            "cgroup": "cgroup" if one else "cgroups"}.get(args.by, f"groups by {args.by}")
    matched = f" matching {shown_regex(args.match)}" if args.match is not None else ""
    head = (f"{_chosen(args, uid)}: {read_n} read in {sysmem.seconds:.2f} s ({sysmem.kernel_threads} kernel "
            f"threads have no memory); {vmas} VMAs{matched}, {len(groups)} {what}, largest {measure} first")
    labels = {p.total.key: (p.cmdline, p.comm) for p in sysmem.processes}
    meta: Dict[str, object] = {"source": "targets" if targets else "all"}
    if targets:
        meta["targets"] = list(targets)
    meta.update(by=args.by, fold=args.fold, sort=measure, match=args.match, include_self=args.include_self,
                comm=args.comm, user=uid, time=sysmem.time, seconds=sysmem.seconds, processes_read=read_n,
                kernel_threads=sysmem.kernel_threads, skipped=sysmem.skipped, vmas=vmas, smaps=True,
                reads=sysmem.reads, listed=sysmem.listing)
    _note_categories(meta, args)
    users = {g.key: system.user_name(g.key) for g in groups} if args.by == "user" else None
    meta["max_map_count"] = sysmem.max_map_count
    budgets = {p.total.key: Budget(p.map_count, sysmem.max_map_count if p.pid is not None else None)
               for p in sysmem.processes if p.map_count is not None}
    cgroups = {g.key: g.key or "?" for g in groups} if args.by == "cgroup" else None
    return _View(head, sysmem.skipped_line(), groups, groups[:args.top] if args.top else groups, tot,
                 True, measure, args.by, True, labels, meta, users=users, budgets=budgets,
                 fields=_fields(args), cgroups=cgroups, footer=sysmem.reads_line())


def _check_regex(option: str, pattern: Optional[str]) -> None:
    """:raises UsageError: ``pattern`` (given to ``option``) is no regular expression."""
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as err:
            raise UsageError(f"bad {option} {shown_regex(pattern)}: {err}") from None


def _check_show(args: argparse.Namespace) -> None:
    """:raises UsageError: options that cannot work, before anything is read."""
    if args.all == bool(args.targets):
        raise UsageError("give one or more PID|FILE, or --all")
    if args.targets.count(STDIN) > 1:
        raise UsageError(f"only one PID|FILE can be '{STDIN}' (standard input)")
    for by in ACROSS:
        if args.by == by and not args.all and len(args.targets) < 2:
            raise UsageError(f"--by {by} needs --all or several PID|FILEs (one process is one row)")
    if args.by == "none" and args.all:
        raise UsageError("--by none lists one process's VMAs: give a PID, not --all")
    if args.watch is not None and len(args.targets) > 1 and args.by not in ACROSS:
        raise UsageError("--watch redraws one table: give one PID|FILE, --all, or several with "
                         "--by process or --by user")
    if args.watch is not None and (args.json or args.csv):
        raise UsageError("--watch redraws a table; for JSON over time use `anonvma record`")
    if args.count is not None and args.watch is None:
        raise UsageError("--count goes with --watch")
    if args.include_self and not args.all:
        raise UsageError("--include-self goes with --all (a PID is read whatever it is)")
    if (args.comm is not None or args.user is not None) and not args.all:
        raise UsageError("--comm and --user choose among the processes of --all")
    _check_merges(args)
    _check_regex("--match", args.match)
    _check_regex("--comm", args.comm)
    _fields(args)
    _categories(args)
    if args.user is not None:
        _uid(args.user)


def _check_merges(args: argparse.Namespace) -> None:
    """:raises UsageError: ``--merges`` or ``--linux`` where they cannot work."""
    if args.linux is not None and not args.merges:
        raise UsageError("--linux goes with --merges (the release whose merge rules judge)")
    if not args.merges:
        return
    if args.all or args.by in ACROSS:
        raise UsageError("--merges lists one map's boundaries: give PIDs or FILEs, not --all or --by "
                         f"{args.by}")
    if args.watch is not None or args.csv:
        raise UsageError("--merges prints a table or JSON (--json), once")
    if args.linux is not None:
        from anonvma import releases

        try:
            releases.resolve(args.linux)
        except ValueError as err:
            raise UsageError(f"--linux: {err}") from None


def _table(view: _View, since: Optional[Mapping[str, Optional[int]]] = None,
           since_total: Optional[int] = None) -> str:
    if view.merges is not None:
        from anonvma.procmaps.merges_format import merges_table

        note = view.note + "\n" if view.note else ""
        return view.head + "\n" + note + merges_table(view.merges, _width())
    shown = ""
    if len(view.rows) < len(view.groups):
        shown = f" (top {len(view.rows)} of {len(view.groups)})"
    head = view.head + shown + "\n" + (view.note + "\n" if view.note else "")
    if view.footer:  # on stderr: the table stays what it was
        print(view.footer, file=sys.stderr)
    return head + _body(view, since, since_total)


def _body(view: _View, since: Optional[Mapping[str, Optional[int]]], since_total: Optional[int]) -> str:
    if view.by == "process":
        labels = {k: cmd or (f"[{comm}]" if comm else "") for k, (cmd, comm) in view.labels.items()}
        return processes_table(view.rows, view.total, labels, _width(), since=since,
                               since_total=since_total, measure=view.measure, budgets=view.budgets,
                               fields=view.fields)
    return groups_table(view.rows, view.total, view.smaps, _width(), processes=view.across,
                        since=since, since_total=since_total, measure=view.measure,
                        per_vma=view.per_vma, names=view.users or view.cgroups,
                        name_header=_HEADERS.get(view.by, "NAME"), fields=view.fields)


#: The table's first column, by grouping (else NAME).
_HEADERS = {"user": "USER", "cgroup": "CGROUP", "category": "CATEGORY"}


def _views(args: argparse.Namespace) -> List[_View]:
    """What ``show`` prints: one view, or one per target (several, grouped within each)."""
    if args.all or args.by in ACROSS:
        return [_every(args)]
    return [_one(target, args) for target in args.targets]


def _doc(view: _View) -> Dict[str, object]:
    """A view's JSON document."""
    if view.merges is not None:
        from anonvma.procmaps.merges_format import merges_doc

        return dict(view.meta, merges=merges_doc(view.merges))
    if view.by == "process":
        return processes_doc(view.rows, view.total, view.labels, view.meta, view.budgets, view.fields)
    if view.users is not None:
        return users_doc(view.rows, view.total, view.users, view.meta, view.fields)
    if view.cgroups is not None:
        return cgroups_doc(view.rows, view.total, view.meta)
    return groups_doc(view.rows, view.total, view.meta, view.per_vma, view.fields)


def _csv(view: _View, several: bool) -> str:
    """A view's CSV; of one of ``several`` targets, each row led by its pid and source."""
    for line in (view.note, view.footer):
        if line:
            print(line, file=sys.stderr)
    if view.by == "process":
        return processes_csv(view.rows, view.labels, view.budgets, view.fields)
    if view.users is not None:
        return users_csv(view.rows, view.users, view.fields)
    if view.cgroups is not None:
        return cgroups_csv(view.rows)
    lead = {"pid": view.meta["pid"], "source": view.meta["source"]} if several else {}
    return groups_csv(view.rows, view.per_vma, lead, view.fields)


def _show(args: argparse.Namespace) -> str:
    """The tables, JSON or CSV of the targets or --all (the module docstring); with --watch,
    none: the tables were drawn as they came."""
    _check_show(args)
    if args.watch is not None:
        from anonvma.procmaps.watch import watch

        def take() -> Any:
            gc.disable()
            try:
                (view,) = _views(args)
            finally:
                gc.enable()
            stamp = time.strftime("%H:%M:%S")
            return view.groups, view.total, view.measure, lambda since, since_total: (
                f"every {args.watch:g}s, {stamp}; D{view.measure.upper()}: change since the first table\n"
                + _table(view, since, since_total))
        watch(take, args.watch, args.count)
        return ""
    views = _views(args)
    several = len(views) > 1
    if args.json:
        return dumps([_doc(v) for v in views] if several else _doc(views[0]))
    if args.csv:
        texts = [_csv(v, several) for v in views]
        return texts[0] + "".join(t.split("\n", 1)[1] for t in texts[1:])  # one header row
    return "\n".join(_table(v) for v in views)


def _diff(args: argparse.Namespace) -> Output:
    """The changes; exit status 1 when any group changed, as diff(1)."""
    if args.before == args.after == "-":
        raise ValueError("only one side can be '-' (standard input)")
    fields = _fields(args)
    a, b = _grouped(args.before, args), _grouped(args.after, args)
    before, after = a.groups, b.groups
    every = diff_groups(before, after, args.sort)
    measure = sort_field([*before, *after], args.sort)
    changes = changed(every)
    status = 1 if changes else 0
    listed = every if args.all else changes
    whole = diff_groups([total(before)], [total(after)], measure)[0]
    note = ""
    if measure != args.sort:
        note = f" ({args.sort} unknown: {'both are' if not (a.has_smaps or b.has_smaps) else 'one is'} " \
               f"maps, which has no counters; compared by {measure})"
    if args.json:
        return Output(diff_json(listed, {"before": a.source, "after": b.source, "by": args.by,
                                         "fold": args.fold, "measure": measure, "asked": args.sort,
                                         "match": args.match}, whole, fields), status)
    if args.csv:
        return Output(diff_csv(listed, fields), status)
    same = f", {len(every) - len(changes)} unchanged" if args.all else ""
    head = (f"{a.source} -> {b.source}: {len(changes)} changed groups{same} by {args.by} "
            f"({measure}){note}\n")
    for side, g in (("A", a), ("B", b)):
        if g.registry is not None:
            head += f"{side}: {registered.note(g.registry)}\n"
    return Output(head + diff_table(listed, measure, _width(), whole), status)


def _pid(text: str) -> int:
    if text == "self":
        return os.getpid()
    if not text.isdigit():
        raise ValueError(f"not a process id: {text!r}")
    return int(text)


def _snapshot(args: argparse.Namespace) -> str:
    pid = _pid(args.pid)
    before = load(pid)
    data = read_pid_bytes(pid, smaps=not args.maps)
    source = f"/proc/{pid}/{'maps' if args.maps else 'smaps'}"
    vmas, fields = parse(data, source)  # never save something we cannot read back
    said = ""
    shown = registered.with_registry(Snapshot(source, pid, tuple(vmas), fields), before)
    if shown.registry is not None and shown.registry.names:
        named = len(shown.registry.names)
        if args.maps:
            said = (f"; without the {named} name{'s' if named != 1 else ''} of its anonvma registry: "
                    "maps has no room to mark them (save smaps, without --maps, to keep them)")
        else:
            data = saved.render(data, vmas, shown)
            parse(data, source)
            marked = sum(v.name in shown.registry.names for v in shown.vmas)
            said = (f", with the names of its anonvma registry ({marked} VMA{'s' if marked != 1 else ''} "
                    "named, marked registered)")
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        if said.startswith(";"):
            print(f"anonvma snapshot: note: saved pid {pid}'s maps{said}", file=sys.stderr)
        return ""
    compressed = args.output.endswith(".gz")
    if compressed:
        import gzip  # only for .gz output

        data = gzip.compress(data, mtime=0)
    write_atomically(args.output, data)
    return f"saved {len(vmas)} VMAs of pid {pid} to {args.output}{' (gzip)' if compressed else ''}{said}\n"
