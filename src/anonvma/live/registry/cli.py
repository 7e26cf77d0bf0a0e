"""``anonvma registry clean``: remove this user's registry files that are provably stale.

Readers never remove a file; this command is the one place that does, by the rules of
:mod:`anonvma.live.registry.stale`. It prints one line per file removed (or, with
``--dry-run``, that would be), then a count; it exits 0, 1 on an error (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXAMPLES = "examples:\n  anonvma registry clean --dry-run\n  anonvma registry clean"


def register(sub: Any) -> None:
    """Add ``registry clean`` to the ``anonvma`` command."""
    p = sub.add_parser(
        "registry", help="the fallback registry of names: remove stale files (clean)",
        description="Processes that name memory with fallback=True on a kernel without "
                    "CONFIG_ANON_VMA_NAME keep their names in registry files (docs/live.md). A "
                    "process removes its own file at exit, but not after a crash, _exit or exec; "
                    "readers (show, export, record) never remove one.",
        epilog=EXAMPLES)
    actions = p.add_subparsers(dest="registry_command", metavar="ACTION")
    actions.required = True
    c = actions.add_parser(
        "clean", help="remove this user's registry files that are provably stale",
        description="Remove this user's registry files whose process has exited or exec'd "
                    "another program, when that can be proven: the file and its directory are "
                    "this user's, and it was written in this PID namespace (and boot). Any other "
                    "file (another user's, another namespace's, a live process's, a corrupt one) "
                    "is left alone. Prints each file removed, then a count.",
        epilog=EXAMPLES)
    c.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    c.set_defaults(func=_clean)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _clean(args: argparse.Namespace) -> int:
    from anonvma.live.registry.stale import remove, survey

    try:
        found = survey()
    except (OSError, ValueError) as err:
        print(f"anonvma registry clean: error: {err}", file=sys.stderr)
        return 1
    removed = 0
    for stale in found.stale:
        if args.dry_run:
            print(f"would remove {stale.path}: {stale.why}")
            removed += 1
        elif remove(stale.path):
            print(f"removed {stale.path}: {stale.why}")
            removed += 1
    verb = "would be removed (--dry-run: nothing removed)" if args.dry_run else "removed"
    line = (f"{_plural(removed, 'stale registry file')} {verb}; "
            f"{_plural(found.others, 'other file')} left alone")
    if not found.provable:
        line += " (this procfs is not of this process's PID namespace: nothing can be proven stale)"
    print(line)
    return 0
