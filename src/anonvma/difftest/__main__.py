"""``python -m anonvma.difftest``: random scripts on the model and a kernel; shrink and save mismatches.

    python -m anonvma.difftest --count 2000 --seed 5000 [--linux 6.1] [--variant strdup] [--jobs N]
    python -m anonvma.difftest --count 100000 --shard 3/8 --out shard3.json    # one of 8 machines
    python -m anonvma.difftest --merge shard*.json                              # the whole campaign
    python -m anonvma.difftest --coverage --count 2000 [--linux 6.1] [--variant strdup]
    python -m anonvma.difftest --kernel A --against B|model:RELEASE [--count N] [--json]

Script ``i`` of a run is generated from seed ``SEED + i``; shard K/N runs the K-th of N equal
slices of ``range(COUNT)``, so shards are disjoint and together make the whole run. Each mismatch
is shrunk and printed; with ``--save DIR`` it is written as ``DIR/regress_seed<N>.jsonl`` with the
kernel's output as ``.expected`` (the kernel is the truth). Guests that die or hang are killed
and replaced; the scripts they were running are reported as lost. Exit status: 0 all agree, 1
some differ, could not run or were lost, 2 bad usage (or shards that do not make one campaign),
130 interrupted.

``--coverage`` runs no kernel: it runs the same scripts on the model and reports the branch
coverage of anonvma.model they reach (coverage.py) and a table of what each op did (errnos,
merges, splits, mremap kinds, names shared/copied/freed, fork depth), for every generation and
both name strategies unless --linux or --variant picks one (see anonvma.difftest.coverage).
Exit status 1 when a branch is left unexplained, the branch total is below 95% or a row is 0.

``--kernel A --against B`` runs the same scripts on two kernels (a release or series of the
table, or a UML executable's path), or on a kernel and the model of a release (``B`` =
``model:RELEASE``), and groups the differences by the rule behind them (anonvma.difftest.against).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from anonvma import releases
from anonvma.difftest import against, shards
from anonvma.difftest.compare import (
    Divergence,
    OracleBackend,
    coalesced_maps,
    first_difference,
    host_backend,
    model_lines,
    model_supports,
    shrink_divergence,
)
from anonvma.difftest.generate import HOST_KWARGS, random_script
from anonvma.helpformat import Formatter
from anonvma.ops import Op, format_result, script_text
from anonvma.oracle.build import VARIANTS, OracleMissingError
from anonvma.oracle.pool import ScriptOutcome
from anonvma.oracle.procgroup import sigterm_interrupts
from anonvma.pipes import quiet_when_closed
from anonvma.procmaps.files import write_atomically

RESULTS_FORMAT = "anonvma-difftest-1"
#: Seconds between progress lines on stderr.
PROGRESS_SECONDS = 30.0


shard_range = shards.shard_range
#: Mismatches a model campaign shrinks unless --shrink says otherwise.
SHRINK_DEFAULT = 10


def parser() -> argparse.ArgumentParser:
    oldest = releases.RELEASES[0]
    newest = releases.newest_in(oldest.series).name
    p = argparse.ArgumentParser(
        prog="python -m anonvma.difftest", description=(__doc__ or "").split("\n")[0],
        formatter_class=Formatter,
        epilog="Shards: run `--shard K/N --out FILE` on N machines (same --count, --seed, --linux, "
               "--variant, --kernel, --against), then `--merge FILE...` anywhere.\n\n"
               "examples:\n"
               "  python -m anonvma.difftest --count 2000 --seed 5000\n"
               "  python -m anonvma.difftest --linux 6.1.192 --variant strdup --count 60\n"
               "  python -m anonvma.difftest --count 100000 --shard 3/8 --out shard3.json\n"
               "  python -m anonvma.difftest --merge shard*.json\n"
               "  python -m anonvma.difftest --coverage --count 2000 --linux 6.12\n"
               f"  python -m anonvma.difftest --kernel {oldest.name} --against {newest} --count 200 "
               "--save diffs\n"
               f"  python -m anonvma.difftest --kernel {releases.DEFAULT} --against model:{releases.DEFAULT} "
               "--count 200 --json")
    p.add_argument("--count", type=int, default=500, help="scripts in the whole run (default 500)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of script 0; script i uses SEED+i (default 0)")
    p.add_argument("--linux", choices=releases.choices(), default=None,
                   help=f"oracle kernel release, or a series for its newest; the model is told the same "
                        f"(default {releases.DEFAULT}; with --coverage: every release the model speaks)")
    p.add_argument("--variant", choices=VARIANTS, default=None,
                   help="oracle kernel variant, and the model's name strategy (default refcount; "
                        "with --coverage: both)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="oracle guests running at once (default: the CPU count, %(default)s here); two "
                        "kernels (--against) share them, at least one each")
    p.add_argument("--shard", type=shards.parse_shard, default=(1, 1), metavar="K/N",
                   help="run only the K-th of N equal slices of the scripts (default 1/1: all)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="write this run's results (mismatches, lost scripts, timings) as JSON (with "
                        "--against: its report)")
    p.add_argument("--merge", type=Path, nargs="+", default=None, metavar="FILE",
                   help="merge the --out files of a campaign's shards, check they cover it, report")
    p.add_argument("--host", action="store_true",
                   help="the running kernel instead of the oracle (no names, no mremap; maps coalesced "
                        "unless the host runs 6.1)")
    p.add_argument("--no-model", action="store_true",
                   help="run the scripts on the kernel only (for a release the model does not speak "
                        "yet): counts scripts that cannot run or are lost, and the throughput")
    p.add_argument("--script-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="a guest that finishes no script for this long is killed as hung (default 120)")
    p.add_argument("--shrink", type=int, default=None, metavar="N",
                   help=f"shrink at most this many mismatches (default {SHRINK_DEFAULT}; with --against: "
                        "every one; the rest are listed unshrunk)")
    p.add_argument("--save", type=Path, default=None, metavar="DIR",
                   help="write each shrunk mismatch as DIR/regress_seed<N>.jsonl and .expected (with "
                        "--against: every difference as DIR/against_seed<N>.jsonl and each side's "
                        "output beside it)")
    p.add_argument("--coverage", action="store_true",
                   help="no kernel: report the model's branch coverage and the outcomes per op that "
                        "these scripts reach")
    p.add_argument("--kernel", default=None, metavar="A",
                   help="with --against: the kernel judged, a release or series of the table (its cached "
                        "oracle kernel of --variant) or the path of a UML executable")
    p.add_argument("--against", default=None, metavar="B",
                   help="with --kernel: the kernel it is judged against (as --kernel), or model:RELEASE "
                        "for the model speaking that release; differences are grouped by the rule "
                        "behind them")
    p.add_argument("--json", action="store_true",
                   help="with --against (or --merge of its files): print the report as JSON")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (default: the command line) and run; the exit status (see the docstring).
    A reader of stdout that goes away (``| head``) ends it quietly."""
    args = parser().parse_args(argv)
    return quiet_when_closed(lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    if args.merge is not None:
        return merge(args.merge, args.json)
    if args.kernel is not None or args.against is not None:
        return against.main(args)
    if args.json:
        print("python -m anonvma.difftest: --json goes with --against (or --merge)", file=sys.stderr)
        return 2
    if args.coverage:
        return _coverage(args)
    args.shrink = SHRINK_DEFAULT if args.shrink is None else args.shrink
    args.linux = releases.resolve(args.linux or releases.DEFAULT).name
    args.variant = args.variant or "refcount"
    if args.count < 0 or args.jobs < 1:
        print("python -m anonvma.difftest: --count must be >= 0 and --jobs >= 1", file=sys.stderr)
        return 2
    if not args.no_model:
        why = model_supports(args.linux)
        if why is not None:
            print(f"python -m anonvma.difftest: the model cannot run Linux {args.linux} scripts ({why}); "
                  "use --no-model to run the kernel alone", file=sys.stderr)
            return 2
    try:
        with sigterm_interrupts():
            return _run(args)
    except OracleMissingError as exc:
        print(f"python -m anonvma.difftest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("python -m anonvma.difftest: interrupted; every guest killed", file=sys.stderr)
        return 130


class _Run:
    """Counters and findings of one run (or shard)."""

    def __init__(self, args: argparse.Namespace, indexes: range) -> None:
        self.args = args
        self.indexes = indexes
        self.scripts = 0
        self.ops = 0
        self.mismatches: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []
        self.lost: list[dict[str, Any]] = []

    def seed(self, index: int) -> int:
        return int(self.args.seed) + index


def _coverage(args: argparse.Namespace) -> int:
    from anonvma.difftest import coverage
    from anonvma import releases

    if args.count < 1:
        print("python -m anonvma.difftest: --coverage needs --count >= 1", file=sys.stderr)
        return 2
    linuxes = [args.linux] if args.linux else [r for r in releases.names() if model_supports(r) is None]
    why = model_supports(linuxes[0])
    if why is not None:
        print(f"python -m anonvma.difftest: the model cannot run Linux {linuxes[0]} scripts ({why})",
              file=sys.stderr)
        return 2
    strategies = [args.variant] if args.variant else list(VARIANTS)
    return coverage.run(linuxes, strategies, args.count, args.seed, args.host)


def _scripts(args: argparse.Namespace, indexes: range) -> Iterator[list[Op]]:
    for i in indexes:
        yield random_script(args.seed + i, **(HOST_KWARGS if args.host else {}))


def _run(args: argparse.Namespace) -> int:
    k, n = args.shard
    indexes = shard_range(args.count, k, n)
    run = _Run(args, indexes)
    task_size = None
    norm: Callable[[list[str]], list[str]] = lambda lines: lines  # noqa: E731
    if args.host:
        import platform

        from anonvma.model.mm import TASK_SIZE

        task_size = TASK_SIZE
        if not platform.release().startswith("6.1."):
            norm = coalesced_maps
    where = ("the running kernel" if args.host
             else f"Linux {args.linux} {args.variant} oracle ({args.jobs} guests)")
    print(f"difftest: scripts {indexes.start}..{indexes.stop - 1} of {args.count} (shard {k}/{n}), "
          f"seeds {args.seed + indexes.start}..{args.seed + indexes.stop - 1}, on {where}",
          file=sys.stderr, flush=True)
    started = time.monotonic()
    boots = 0
    if args.host:
        backend = host_backend()
        pending = list(_scripts(args, indexes))
        for i, outcome in enumerate(backend(pending)):
            _judge(run, i, pending[i], outcome, task_size, norm)
        seconds = time.monotonic() - started
        _shrink_all(run, backend, task_size)
    else:
        with OracleBackend(args.variant, args.linux, args.jobs, args.script_timeout) as oracle:
            inflight: dict[int, list[Op]] = {}

            def feed() -> Iterator[list[Op]]:
                for i, ops in enumerate(_scripts(args, indexes)):
                    inflight[i] = ops
                    yield ops

            last = time.monotonic()
            for i, outcome in oracle.stream(feed()):
                _judge(run, i, inflight.pop(i), outcome, task_size, norm)
                if time.monotonic() - last > PROGRESS_SECONDS:
                    last = time.monotonic()
                    rate = run.scripts / (last - started)
                    print(f"difftest: {run.scripts}/{len(indexes)} scripts, {len(run.mismatches)} differ, "
                          f"{len(run.failed)} could not run, {len(run.lost)} lost ({rate:.1f} scripts/s)",
                          file=sys.stderr, flush=True)
            seconds = time.monotonic() - started
            boots = oracle.boots
            _shrink_all(run, oracle, task_size)
    print(f"{run.scripts} scripts, {run.ops} ops compared in {seconds:.1f} s "
          f"({run.scripts / seconds if seconds else 0.0:.1f} scripts/s, {boots} boots); "
          f"{len(run.mismatches)} differ, {len(run.failed)} could not run, {len(run.lost)} lost")
    if args.out is not None:
        _write_json(args.out, _results(run, seconds, boots))
        print(f"results: {args.out}")
    return 1 if run.mismatches or run.failed or run.lost else 0


def _judge(run: _Run, i: int, ops: list[Op], outcome: ScriptOutcome, task_size: Optional[int],
           norm: Callable[[list[str]], list[str]]) -> None:
    """Compare one script's kernel outcome with the model; record what is wrong."""
    args = run.args
    run.scripts += 1
    index = run.indexes[i]
    seed = run.seed(index)
    if outcome.results is None:
        entry = {"seed": seed, "error": outcome.error}
        (run.lost if outcome.lost else run.failed).append(entry)
        print(f"seed {seed}: {'lost' if outcome.lost else 'kernel run failed'}: {outcome.error}",
              file=sys.stderr, flush=True)
        return
    kernel = [format_result(r) for r in outcome.results]
    run.ops += len(kernel)
    if args.no_model:
        return
    model = model_lines(ops, args.variant, task_size, args.linux)
    if norm(kernel) != norm(model):
        line = first_difference(norm(model), norm(kernel))
        run.mismatches.append({"seed": seed, "line": line, "ops": ops, "kernel": kernel, "model": model})


def _shrink_all(run: _Run, backend: Callable[[Sequence[Sequence[Op]]], list[ScriptOutcome]],
                task_size: Optional[int]) -> None:
    """Shrink (up to --shrink) mismatches, print them, save them with --save."""
    args = run.args
    for n, found in enumerate(sorted(run.mismatches, key=lambda m: m["seed"])):
        ops = found.pop("ops")
        if n < args.shrink:
            div = shrink_divergence(ops, backend, args.variant, task_size, linux=args.linux)
        else:
            div = Divergence(ops, found["model"], found["kernel"])
        found.update(script=script_text(div.ops), kernel=div.kernel, model=div.model,
                     shrunk=n < args.shrink, original_ops=len(ops))
        print(f"\n=== seed {found['seed']}\n{div.report()}")
        if args.save is not None and n < args.shrink:
            args.save.mkdir(parents=True, exist_ok=True)
            base = args.save / f"regress_seed{found['seed']}"
            base.with_suffix(".jsonl").write_text(script_text(div.ops))
            base.with_suffix(".expected").write_text("".join(line + "\n" for line in div.kernel))
            print(f"saved {base}.jsonl/.expected")


def _campaign(args: argparse.Namespace) -> dict[str, Any]:
    return {"count": args.count, "seed": args.seed, "linux": args.linux, "variant": args.variant,
            "host": args.host, "model": not args.no_model, "shards": args.shard[1]}


def _results(run: _Run, seconds: float, boots: int) -> dict[str, Any]:
    args = run.args
    return {"format": RESULTS_FORMAT, "campaign": _campaign(args),
            "shard": {"k": args.shard[0], "first": run.indexes.start, "stop": run.indexes.stop},
            "scripts": run.scripts, "ops": run.ops, "seconds": round(seconds, 1), "boots": boots,
            "jobs": args.jobs, "mismatches": run.mismatches, "could_not_run": run.failed, "lost": run.lost}


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write whole or not at all: a temp file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(str(path), (json.dumps(doc, indent=1) + "\n").encode())


def merge(paths: Sequence[Path], as_json: bool = False) -> int:
    """Merge shard results: check they are one campaign, each shard once, every script run; report.
    Shards of a --kernel/--against campaign are merged by anonvma.difftest.against."""
    try:
        docs = shards.load(paths)
    except shards.ShardError as exc:
        print(f"python -m anonvma.difftest: {exc}", file=sys.stderr)
        return 2
    if docs[0][1].get("format") == against.RESULTS_FORMAT:
        return against.merge(docs, as_json)
    for path, doc in docs:
        if doc.get("format") != RESULTS_FORMAT:
            print(f"python -m anonvma.difftest: {path} is not a difftest --out file", file=sys.stderr)
            return 2
    if as_json:
        print("python -m anonvma.difftest: --json merges only --kernel/--against files", file=sys.stderr)
        return 2
    campaign = docs[0][1]["campaign"]
    problems = shards.problems(docs)
    total = {key: sum(d[key] for _, d in docs) for key in ("scripts", "ops")}
    found = {key: [x for _, d in docs for x in d[key]] for key in ("mismatches", "could_not_run", "lost")}
    busy = sum(d["seconds"] for _, d in docs)
    print(f"campaign: {campaign['count']} scripts from seed {campaign['seed']}, Linux {campaign['linux']} "
          f"{campaign['variant']}, {campaign['shards']} shards; merged {len(docs)} files")
    print(f"{total['scripts']} scripts, {total['ops']} ops, {busy:.0f} s of shard time; "
          f"{len(found['mismatches'])} differ, {len(found['could_not_run'])} could not run, "
          f"{len(found['lost'])} lost")
    for m in found["mismatches"]:
        print(f"\n=== seed {m['seed']} (first difference at result line {m['line']})\n{m['script']}")
    for key in ("could_not_run", "lost"):
        for x in found[key]:
            print(f"seed {x['seed']}: {key.replace('_', ' ')}: {x['error']}")
    for p in problems:
        print(f"python -m anonvma.difftest: {p}", file=sys.stderr)
    if problems:
        return 2
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
