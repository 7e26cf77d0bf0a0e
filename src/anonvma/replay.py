"""``anonvma replay``: run ops scripts on a backend and print the result lines of OPS format v1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from anonvma.ops import Op, ScriptError, parse_script, results_text

#: A backend runs several scripts and returns, per script, its result objects in order.
Runner = Callable[[Sequence[Sequence[Op]], argparse.Namespace], list[list[dict[str, Any]]]]


def _run_model(scripts: Sequence[Sequence[Op]], args: argparse.Namespace) -> list[list[dict[str, Any]]]:
    from anonvma.model.replay import run_ops

    return [run_ops(ops, strategy=args.strategy) for ops in scripts]


def _pick_runner(args: argparse.Namespace) -> Runner:
    return _run_model


def load_scripts(paths: Sequence[str]) -> list[list[Op]]:
    """Read and check every script first, so a broken one stops the run before anything executes."""
    scripts = []
    for path in paths:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
            scripts.append(parse_script(text))
        except ScriptError as exc:
            raise SystemExit(f"anonvma replay: {path}: {exc}") from None
        except OSError as exc:
            raise SystemExit(f"anonvma replay: {path}: {exc.strerror}") from None
    return scripts


def _replay(args: argparse.Namespace) -> int:
    try:
        scripts = load_scripts(args.scripts)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    results = _pick_runner(args)(scripts, args)
    for path, res in zip(args.scripts, results, strict=True):
        if len(args.scripts) > 1:
            sys.stdout.write(f"==> {path} <==\n")
        sys.stdout.write(results_text(res))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("replay", help="run ops scripts (OPS-FORMAT v1) and print their result lines",
                       description="Run ops scripts and print one result line per op. "
                                   "With several scripts, each block starts with '==> SCRIPT <=='.")
    p.add_argument("scripts", nargs="+", metavar="SCRIPT", help="a .jsonl ops script, or - for stdin")
    p.add_argument("--strategy", choices=("refcount", "strdup"), default="refcount",
                   help="name strategy of the model (default: refcount; the output does not depend on it)")
    p.set_defaults(func=_replay)
