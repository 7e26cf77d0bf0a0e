"""``anonvma replay``: run ops scripts on a backend and print the result lines (docs/ops-format.md).

Backends: the model (default) of a release (``--linux``), the running kernel in real
processes (``--kernel``), or the UML oracle kernel of that release (``--oracle``). A script
that cannot run on a backend (a real process died) prints its error on stderr and makes the
exit status 1. ``--compare A,B`` runs each script on two releases (model, or ``--oracle``)
and prints the ops whose results differ, with the rule behind each where the model knows it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from anonvma.ops import Op, ScriptError, format_result, parse_script, results_text

#: Per script: its result objects in order, or the message saying why it could not run.
Outcome = Union[list[dict[str, Any]], str]
#: A backend runs several scripts and returns one outcome per script.
Runner = Callable[[Sequence[Sequence[Op]], argparse.Namespace], Sequence[Outcome]]


def _run_model(scripts: Sequence[Sequence[Op]], args: argparse.Namespace) -> list[list[dict[str, Any]]]:
    from anonvma.model.replay import run_ops

    return [run_ops(ops, strategy=args.strategy, linux=args.linux) for ops in scripts]


def _run_kernel(scripts: Sequence[Sequence[Op]], args: argparse.Namespace) -> list[Outcome]:
    """Each script in real processes of the running kernel."""
    from anonvma.live.runner import RunnerError, run_ops

    outcomes: list[Outcome] = []
    for ops in scripts:
        try:
            outcomes.append(run_ops(ops))
        except RunnerError as exc:
            outcomes.append(str(exc))
    return outcomes


def _run_oracle(scripts: Sequence[Sequence[Op]], args: argparse.Namespace) -> list[Outcome]:
    """All scripts in one boot of the oracle kernel of ``args.variant``."""
    from anonvma.oracle.run import run_scripts

    run = run_scripts(scripts, variant=args.variant, kernel=args.oracle_kernel, linux=args.linux)
    return [o.results if o.error is None and o.results is not None else str(o.error) for o in run.outcomes]


def _pick_runner(args: argparse.Namespace) -> Runner:
    if args.oracle:
        return _run_oracle
    if args.kernel:
        return _run_kernel
    return _run_model


def load_scripts(paths: Sequence[str]) -> list[list[Op]]:
    """Read and check every script first, so a broken one stops the run before anything executes."""
    scripts = []
    for path in paths:
        try:
            data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ScriptError(data.count(b"\n", 0, exc.start) + 1,
                                  f"not UTF-8 (byte {data[exc.start]:#04x})") from None
            scripts.append(parse_script(text))
        except ScriptError as exc:
            raise SystemExit(f"anonvma replay: {path}: {exc}") from None
        except OSError as exc:
            raise SystemExit(f"anonvma replay: {path}: {exc.strerror}") from None
    return scripts


def _compare(paths: Sequence[str], scripts: Sequence[Sequence[Op]], args: argparse.Namespace) -> int:
    """``--compare A,B``: per script, the ops whose results differ between A and B."""
    from anonvma.model.differences import compare_generations, describe_rule
    from anonvma.model.kernel import get_kernel

    a, b = (get_kernel(r) for r in args.compare)
    results: dict[str, Sequence[Outcome]] = {}
    if args.oracle:
        for release in args.compare:
            args.linux = release
            results[release] = _run_oracle(scripts, args)
    status = differ = 0
    for n, (path, ops) in enumerate(zip(paths, scripts, strict=True)):
        sys.stdout.write(f"==> {path} <==\n")
        got = [results[r][n] for r in args.compare] if results else [None, None]
        broken = [m for m in got if isinstance(m, str)]
        if broken:
            print(f"anonvma replay: {path}: {broken[0]}", file=sys.stderr)
            status = 1
            continue
        diffs = compare_generations(ops, a, b, got[0], got[1])  # type: ignore[arg-type]
        if not diffs:
            print(f"the same on Linux {a.release} and {b.release} ({len(ops)} ops)")
            continue
        differ += 1
        for d in diffs:
            print(f"line {d.op.lineno}: {d.op.to_json()}")
            print(f"  {a.release:6} {format_result(d.result_a)}")
            print(f"  {b.release:6} {format_result(d.result_b)}")
            for name, info in d.rules:
                print(f"  rule   {describe_rule(name, info)}")
            if not d.rules:
                print("  rule   none alone (a consequence of an earlier difference, or several rules)")
    source = "real kernels" if args.oracle else "the model"
    print(f"anonvma replay: {differ} of {len(scripts)} scripts differ between Linux {a.release} and "
          f"{b.release} ({source})", file=sys.stderr)
    return status


def _releases(value: str) -> list[str]:
    from anonvma import releases

    parts = value.split(",")
    try:
        names = [releases.resolve(p).name for p in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if len(names) != 2 or names[0] == names[1]:
        raise argparse.ArgumentTypeError(f"two different releases out of {', '.join(releases.names())}, "
                                         f"as A,B (e.g. 6.1.176,6.1.192), not {value!r}")
    return names


def _replay(args: argparse.Namespace) -> int:
    from anonvma import releases
    from anonvma.oracle.boot import OracleBootError
    from anonvma.oracle.build import OracleMissingError

    if args.linux != releases.resolve(args.linux).name:
        print(f"anonvma replay: Linux {releases.said(args.linux)}", file=sys.stderr)
        args.linux = releases.resolve(args.linux).name

    try:
        scripts = load_scripts(args.scripts)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.compare:
        try:
            return _compare(args.scripts, scripts, args)
        except (OracleMissingError, OracleBootError) as exc:
            print(f"anonvma replay: {exc}", file=sys.stderr)
            return 1
    started = time.monotonic()
    try:
        outcomes = _pick_runner(args)(scripts, args)
    except (OracleMissingError, OracleBootError) as exc:
        print(f"anonvma replay: {exc}", file=sys.stderr)
        return 1
    seconds = time.monotonic() - started
    status = 0
    for path, res in zip(args.scripts, outcomes, strict=True):
        if len(args.scripts) > 1:
            sys.stdout.write(f"==> {path} <==\n")
        if isinstance(res, str):
            print(f"anonvma replay: {path}: {res}", file=sys.stderr)
            status = 1
            continue
        sys.stdout.write(results_text(res))
    if args.stats:
        nops = sum(len(ops) for ops in scripts)
        print(f"anonvma replay: {len(scripts)} scripts, {nops} ops in {seconds:.2f} s "
              f"({len(scripts) / seconds:.1f} scripts/s, {nops / seconds:.0f} ops/s)", file=sys.stderr)
    return status


def _path(value: str) -> Optional[Path]:
    return Path(value) if value else None


def register(sub: Any) -> None:
    from anonvma import releases

    p = sub.add_parser("replay", help="run ops scripts and print their result lines, or compare releases",
                       description="Run ops scripts (JSON lines, one syscall each; see docs/ops-format.md) "
                                   "and print one result line per op. With several scripts, each block "
                                   "starts with '==> SCRIPT <=='. Default backend: the model.",
                       epilog="examples:\n"
                              """  echo '{"op": "mmap", "addr": 0, "len": 8192, "prot": "rw"}' > s.jsonl\n"""
                              """  echo '{"op": "name", "addr": 0, "len": 4096, "name": "x"}' >> s.jsonl\n"""
                              """  echo '{"op": "maps"}' >> s.jsonl\n"""
                              "  anonvma replay s.jsonl\n"
                              "  anonvma replay --oracle --linux 6.12 s.jsonl\n"
                              "  cat s.jsonl | anonvma replay --compare 6.1.176,6.1.192 -")
    p.add_argument("scripts", nargs="+", metavar="SCRIPT", help="a .jsonl ops script, or - for stdin")
    releases.add_linux_option(p, "the release whose rules the model follows and whose oracle kernel boots")
    p.add_argument("--compare", type=_releases, default=None, metavar="A,B",
                   help="print, per script, the ops whose results differ between releases A and B "
                        "(e.g. 6.1.176,6.1.192), with the rule behind each; on the model, or the real "
                        "kernels with --oracle")
    p.add_argument("--strategy", choices=("refcount", "strdup"), default="refcount",
                   help="name strategy of the model (default: refcount; the output does not depend on it)")
    backend = p.add_mutually_exclusive_group()
    backend.add_argument("--kernel", action="store_true",
                         help="run in real processes on the running kernel (naming needs "
                              "CONFIG_ANON_VMA_NAME; without it every name op is EINVAL)")
    backend.add_argument("--oracle", action="store_true",
                         help="run in the UML oracle kernel of --linux "
                              "(build it first: anonvma oracle build --linux RELEASE)")
    p.add_argument("--variant", choices=("refcount", "strdup"), default="refcount",
                   help="oracle kernel variant (with --oracle; default refcount)")
    p.add_argument("--oracle-kernel", type=_path, default=None, metavar="PATH",
                   help="with --oracle: boot this UML executable instead of the cached one")
    p.add_argument("--stats", action="store_true", help="print scripts/s and ops/s on stderr")
    p.set_defaults(func=_replay)
