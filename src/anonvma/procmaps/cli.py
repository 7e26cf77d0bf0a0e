"""``anonvma show``, ``anonvma diff`` and ``anonvma snapshot``: account a process's memory by name.

Each command builds its whole output before printing; an error prints one line to stderr and
exits 1 (argparse's usage errors exit 2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Any, Callable, Optional

from anonvma.procmaps.diff import diff_groups
from anonvma.procmaps.format import (
    diff_csv,
    diff_json,
    diff_table,
    groups_csv,
    groups_json,
    groups_table,
)
from anonvma.procmaps.group import GROUP_BY, SORT_KEYS, group, sort_groups, total
from anonvma.procmaps.parser import parse
from anonvma.procmaps.records import Snapshot
from anonvma.procmaps.source import read, read_pid_bytes


def _width() -> Optional[int]:
    """Terminal width when printing to a terminal (or $COLUMNS), else no limit."""
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _grouping_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--by", choices=GROUP_BY, default="name",
                   help="group VMAs by maps name (default), by kind, or not at all")
    p.add_argument("--sort", choices=SORT_KEYS, default="pss", help="largest first (default pss)")
    p.add_argument("--fold", action="store_true",
                   help="fold trailing numbers of names: [anon:stack_and_tls:123] -> [anon:stack_and_tls:*]")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (sizes in kB)")
    out.add_argument("--csv", action="store_true", help="print CSV (sizes in kB)")


def register(subparsers: Any) -> None:
    """Add ``show``, ``diff`` and ``snapshot`` to the ``anonvma`` command."""
    p = subparsers.add_parser("show", help="a process's memory (smaps) grouped by name",
                              description="Read /proc/PID/smaps (or a saved maps/smaps file) "
                                          "and print totals per name, kind or VMA.")
    p.add_argument("target", metavar="PID|FILE")
    _grouping_options(p)
    p.set_defaults(func=_guarded(_show))

    p = subparsers.add_parser("diff", help="what grew, shrank, appeared or vanished between two snapshots",
                              description="Compare two processes or saved smaps files group by group.")
    p.add_argument("before", metavar="A", help="PID or FILE")
    p.add_argument("after", metavar="B", help="PID or FILE")
    _grouping_options(p)
    p.add_argument("--all", action="store_true", help="also list unchanged groups")
    p.set_defaults(func=_guarded(_diff))

    p = subparsers.add_parser("snapshot", help="save a process's smaps to a file",
                              description="Save /proc/PID/smaps verbatim (readable by show/diff "
                                          "and by any smaps tool).")
    p.add_argument("pid", type=int, metavar="PID")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.add_argument("--maps", action="store_true", help="save /proc/PID/maps instead")
    p.set_defaults(func=_guarded(_snapshot))


def _guarded(fn: Callable[[argparse.Namespace], str]) -> Callable[[argparse.Namespace], int]:
    """Run a command; print its complete output, or one error line to stderr and return 1."""
    def run(args: argparse.Namespace) -> int:
        try:
            text = fn(args)
        except (OSError, ValueError) as err:
            message = str(err)
            if isinstance(err, OSError) and err.strerror and err.filename is None:
                message = err.strerror  # our errors already name the pid/path; drop "[Errno N]"
            print(f"anonvma {args.command}: error: {message}", file=sys.stderr)
            return 1
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    return run


def _meta(snap: Snapshot, args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    return {"source": snap.source, "pid": snap.pid, "by": args.by, "fold": args.fold,
            "sort": args.sort, "vmas": len(snap.vmas), "smaps": snap.has_smaps}


def _show(args: argparse.Namespace) -> str:
    snap = read(args.target)
    groups = sort_groups(group(snap.vmas, args.by, args.fold), args.sort)
    tot = total(groups)
    if args.json:
        return groups_json(groups, tot, _meta(snap, args))
    if args.csv:
        return groups_csv(groups)
    head = f"{snap.source}: {len(snap.vmas)} VMAs, {len(groups)} groups by {args.by}\n"
    return head + groups_table(groups, tot, snap.has_smaps, _width())


def _diff(args: argparse.Namespace) -> str:
    a, b = read(args.before), read(args.after)
    changes = diff_groups(group(a.vmas, args.by, args.fold), group(b.vmas, args.by, args.fold),
                          args.sort)
    if not args.all:
        changes = [c for c in changes if c.status != "same"]
    if args.json:
        return diff_json(changes, {"before": a.source, "after": b.source, "by": args.by,
                                   "fold": args.fold, "measure": args.sort})
    if args.csv:
        return diff_csv(changes)
    head = f"{a.source} -> {b.source}: {len(changes)} changed groups by {args.by} ({args.sort})\n"
    return head + diff_table(changes, args.sort, _width())


def _snapshot(args: argparse.Namespace) -> str:
    data = read_pid_bytes(args.pid, smaps=not args.maps)
    vmas, _ = parse(data, f"/proc/{args.pid}")  # never save something we cannot read back
    target = os.path.abspath(args.output)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".snapshot-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return f"saved {len(vmas)} VMAs of pid {args.pid} to {args.output}\n"
