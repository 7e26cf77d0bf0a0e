"""``anonvma bench fork``: the seed's fork experiment on the model, the host kernel and the UML oracle.

Modes: the sweep (default), ``--vs-host`` (model against the host kernel at 65,530 VMAs, interleaved)
and ``--from PID|MAPSFILE`` (fork a real process's layout in the model). Progress goes to stderr;
the table to stdout; the JSON to ``--out`` and the plot to ``--plot``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any, Dict, List

from anonvma.bench.layout import DEFAULT_COUNTS, NAMINGS, QUICK_COUNTS, SCENARIOS, STRATEGIES


def _csv(kind: Any, choices: Any = None) -> Any:
    def parse(value: str) -> List[Any]:
        items = [kind(v) for v in value.split(",") if v]
        if choices is not None:
            bad = [v for v in items if v not in choices]
            if bad:
                raise argparse.ArgumentTypeError(f"{bad[0]!r} is not one of {', '.join(choices)}")
        return items
    return parse


def register(subparsers: Any) -> None:
    """Add ``bench`` (with its ``fork`` sub-command) to the ``anonvma`` command."""
    bench = subparsers.add_parser("bench", help="benchmarks (the seed's fork experiment)",
                                  description="Benchmarks of named anonymous VMAs.",
                                  epilog="example:\n  anonvma bench fork --quick")
    sub = bench.add_subparsers(dest="bench", metavar="BENCH")
    sub.required = True
    p = sub.add_parser(
        "fork", help="fork with N named VMAs: strdup against refcount",
        description="Rerun the experiment of the refcounted-names patch series (its v8 cover "
                    "letter): fork a process with N VMAs, "
                    "unnamed and named (79 characters), unpopulated or with 1 or 10 written pages "
                    "per VMA, under the strdup and refcount strategies; on the model, the host "
                    "kernel (unnamed only when it cannot name) and the UML oracle kernels.",
        epilog="examples:\n  anonvma bench fork --quick\n  anonvma bench fork --from $$\n"
               "  anonvma bench fork --vs-host\n"
               "  anonvma bench fork --counts 1000,4000 --backends model,uml --no-plot\n"
               "  anonvma bench fork --backends uml --linux all --counts 65530 --scenarios unpopulated")
    p.add_argument("--quick", action="store_true",
                   help=f"small sweep in seconds: counts {','.join(map(str, QUICK_COUNTS))}, 5 repeats, "
                        "model and host only")
    p.add_argument("--counts", type=_csv(int), help="VMA counts (default 1000,4000,16000,65530)")
    p.add_argument("--namings", type=_csv(str, NAMINGS), default=list(NAMINGS),
                   help="none (unnamed) and/or max (79-character names)")
    p.add_argument("--scenarios", type=_csv(str, tuple(SCENARIOS)), default=list(SCENARIOS),
                   help="unpopulated, 1page, 10pages")
    p.add_argument("--strategies", type=_csv(str, STRATEGIES), default=list(STRATEGIES),
                   help="strdup, refcount")
    p.add_argument("--repeats", type=int, help="timed forks per cell (default 15; --quick 5)")
    p.add_argument("--uml-repeats", type=int, default=15, help="timed forks per cell in UML (default 15)")
    p.add_argument("--linux", default=None, metavar="RELEASE|SERIES|all",
                   help="the releases whose UML oracle kernels run (comma list; default "
                        "the default release); counts whose populated VMAs pass the host's "
                        "vm.max_map_count raise it for the run when allowed")
    p.add_argument("--warmup", type=int, default=1, help="untimed forks before each cell (default 1)")
    p.add_argument("--backends", type=_csv(str, ("model", "host", "uml")),
                   help="model,host,uml (default all; --quick: model,host). uml runs only for the "
                        "oracle kernels found")
    p.add_argument("--oracle-kernel", action="append", default=[], metavar="[VARIANT=]PATH",
                   help="a UML oracle kernel: refcount=PATH or strdup=PATH (repeatable); also "
                        "$ANONVMA_ORACLE_KERNEL_REFCOUNT / $ANONVMA_ORACLE_KERNEL_STRDUP")
    p.add_argument("--metric", choices=("fork", "fork_exit"), default="fork",
                   help="what the table and plot show: fork (parent side, dup_mmap; the seed's "
                        "fork time, default) or fork_exit (fork + exit/reap of the child)")
    p.add_argument("--out", default="results/bench_fork.json", help="JSON results (default %(default)s)")
    p.add_argument("--plot", default="results/bench_fork.png", help="PNG plot (default %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="do not write the plot")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--vs-host", action="store_true",
                      help="model fork+exit of 65,530 named VMAs against a host process forking+reaping "
                           "as many (unnamed) VMAs, interleaved; prints model/kernel")
    mode.add_argument("--from", dest="from_", metavar="PID|MAPSFILE",
                      help="load a real process's layout (maps or smaps) into the model and report what "
                           "a fork of it costs under each strategy")
    p.add_argument("--profile", action="store_true", help="with --vs-host: profile dup_mmap and exit")
    p.set_defaults(func=run)


def _meta(args: argparse.Namespace) -> Dict[str, Any]:
    return {"command": "anonvma " + " ".join(sys.argv[1:]) if sys.argv and "anonvma" in sys.argv[0]
            else " ".join(sys.argv),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
            "host_kernel": platform.release(), "machine": platform.machine(),
            "cpus": os.cpu_count()}


def run(args: argparse.Namespace) -> int:
    if args.vs_host:
        from anonvma.bench.vs_host import run_vs_host

        return run_vs_host(args)
    if args.from_:
        from anonvma.bench.from_maps import run_from

        return run_from(args)
    return run_sweep(args)


def run_sweep(args: argparse.Namespace) -> int:
    from anonvma.bench import backends, report
    from anonvma.bench.fork import cells_from_worker, run_model, stderr_progress

    counts = args.counts or list(QUICK_COUNTS if args.quick else DEFAULT_COUNTS)
    repeats = args.repeats or (5 if args.quick else 15)
    chosen = args.backends or (["model", "host"] if args.quick else ["model", "host", "uml"])
    if any(c < 1 or c > 65530 for c in counts):
        print("anonvma bench fork: counts must be between 1 and 65530 (vm.max_map_count)", file=sys.stderr)
        return 2
    meta = _meta(args)
    meta["config"] = {"counts": counts, "namings": args.namings, "scenarios": args.scenarios,
                      "strategies": args.strategies, "repeats": repeats, "uml_repeats": args.uml_repeats,
                      "warmup": args.warmup, "backends": chosen}
    meta["backends"] = {}
    labels: Dict[str, str] = {}
    cells = []
    started = time.perf_counter()
    if "model" in chosen:
        cells += run_model(counts, args.namings, args.scenarios, args.strategies, repeats, args.warmup,
                           progress=stderr_progress)
        meta["backends"]["model"] = {"label": "the Python model (anonvma.model), same machine"}
    worker_cfg = {"counts": counts, "namings": args.namings, "scenarios": args.scenarios,
                  "warmup": args.warmup}
    if "host" in chosen:
        print("[host] running the worker on the host kernel", file=sys.stderr, flush=True)
        res = backends.run_host({**worker_cfg, "repeats": repeats})
        host_cells = cells_from_worker(res, "host")
        cells += host_cells
        label = (f"host kernel {res['kernel']}" + ("" if res["naming_supported"] else
                 ": naming unsupported (no CONFIG_ANON_VMA_NAME), unnamed baseline only"))
        labels["host"] = label
        meta["backends"]["host"] = {k: v for k, v in res.items() if k != "cells"} | {"label": label}
    skipped: List[int] = []
    if "uml" in chosen:
        from anonvma import releases
        from anonvma.bench import uml

        try:
            linuxes = uml.parse_linux(args.linux or releases.DEFAULT)
            uml_cells, skipped = uml.run(linuxes, args.strategies, args.oracle_kernel,
                                         {**worker_cfg, "repeats": args.uml_repeats}, meta, labels)
        except ValueError as err:
            print(f"anonvma bench fork: {err}", file=sys.stderr)
            return 2
        cells += uml_cells
    meta["seconds"] = round(time.perf_counter() - started, 1)
    print(report.table(cells, args.metric, labels))
    report.write_json(args.out, cells, args.metric, meta)
    print(f"\nJSON: {args.out}")
    if not args.no_plot:
        why = report.plot(args.plot, cells, args.metric, labels)
        print(f"plot: {args.plot}" if why is None else f"plot skipped: {why}")
    if skipped:
        print(f"anonvma bench fork: UML counts {', '.join(map(str, skipped))} not run: the host's "
              "vm.max_map_count is too low (see above)", file=sys.stderr)
        return 1
    return 0
