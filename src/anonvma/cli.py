"""The ``anonvma`` command: one sub-command per module, each registering its own parser.

Only the module of the command being run is imported (``anonvma show`` must start fast: it is
timed as a whole against a plain read of smaps); ``anonvma --help`` imports them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Dict, List, Optional, Sequence

from anonvma import __version__, releases
from anonvma.helpformat import Formatter
from anonvma.pipes import quiet_when_closed

#: Command -> the module whose ``register(subparsers)`` adds it (a module may add several);
#: each sets ``func(args) -> int`` on its parser. Listed in ``anonvma --help`` in this order.
COMMANDS: Dict[str, str] = {
    "demo": "anonvma.demo",
    "replay": "anonvma.replay",
    "releases": "anonvma.rules",
    "soak": "anonvma.soak",
    "show": "anonvma.procmaps.cli",
    "diff": "anonvma.procmaps.cli",
    "snapshot": "anonvma.procmaps.cli",
    "export": "anonvma.fleet.cli",
    "record": "anonvma.fleet.cli",
    "plot": "anonvma.fleet.cli",
    "oracle": "anonvma.oracle.cli",
    "bench": "anonvma.bench.cli",
    "run": "anonvma.oracle.runcmd",
    "registry": "anonvma.live.registry.cli",
}


def _modules_for(argv: Sequence[str]) -> List[str]:
    """The module of the command in ``argv`` (its first word not starting with ``-``), or all."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in COMMANDS:
        return [COMMANDS[command]]
    return list(dict.fromkeys(COMMANDS.values()))


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser (and its sub-command parsers) using :class:`~anonvma.helpformat.Formatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)


def build_parser(argv: Optional[Sequence[str]] = None) -> argparse.ArgumentParser:
    """The ``anonvma`` parser: every command, or with ``argv`` only the one it names."""
    parser = _Parser(
        prog="anonvma",
        description="Linux named anonymous memory: model, oracle kernel, benchmarks, tools.",
        epilog="examples:\n  anonvma show --all --top 10\n  anonvma demo\n"
               "  anonvma oracle build --linux 6.12 && anonvma run --linux 6.12 -- sleep 1",
    )
    parser.add_argument("--version", action="version",
                        version=f"anonvma {__version__}: the model speaks Linux "
                                f"{', '.join(releases.names())} (default {releases.DEFAULT})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    modules = _modules_for(argv) if argv is not None else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(words).parse_args(words)
    try:
        return quiet_when_closed(lambda: int(args.func(args)))  # | head: no error when it leaves
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
