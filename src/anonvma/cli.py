"""The ``anonvma`` command: one sub-command per module, each registering its own parser."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

#: Modules that provide ``register(subparsers)``; each sets ``func(args) -> int`` on its parser.
COMMANDS = (
    "anonvma.demo",
    "anonvma.replay",
    "anonvma.soak",
    "anonvma.procmaps.cli",
    "anonvma.oracle.cli",
    "anonvma.bench.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anonvma",
        description="Linux named anonymous memory: model, oracle kernel, benchmarks, tools.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
