"""``anonvma bench fork --vs-host``: the model's fork+exit against the host kernel's fork+reap.

The model forks an Mm of 65,530 VMAs named with 79-character names (unpopulated) and exits the
child; a real process on the host kernel holding as many VMAs (as many as vm.max_map_count lets
it, unnamed: the host cannot name) forks and reaps a child that ``_exit``s at once. The two
alternate fork by fork in one run, so both see the same machine state. The ratio is
model / kernel of the medians, with the interpreter's default settings (target: at most 0.25).

:func:`dup_mmap_phases` times the phases of ``anonvma.model.fork.dup_mmap`` and ``Mm.exit``
separately, re-running their statements one phase at a time (a copy of those statements for
diagnosis: keep it in step with fork.py and mm.py).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from anonvma.bench.backends import _worker_env
from anonvma.bench.fork import Stats, build_parent
from anonvma.bench.layout import MAX_MAP_COUNT
from anonvma.model import Mm

SLACK = 32


class HostForker:
    """A worker process on the host kernel holding about ``total`` VMAs, forking on request."""

    def __init__(self, total: int = MAX_MAP_COUNT, slack: int = SLACK) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "anonvma.bench.worker", "--serve", str(total), str(slack)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_worker_env(), text=True)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise RuntimeError(f"host worker did not start (said {ready!r})")
        self.map_count, self.created = int(ready[1]), int(ready[2])

    def fork(self) -> tuple[float, float]:
        """One fork+reap in the worker: (fork ms, fork+reap ms)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("fork\n")
        self.proc.stdin.flush()
        fork_ns, total_ns = self.proc.stdout.readline().split()
        return int(fork_ns) / 1e6, int(total_ns) / 1e6

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def model_fork_exit(parent: Mm) -> tuple[float, float]:
    """One fork+exit of ``parent``: (fork ms, fork+exit ms)."""
    clock = time.perf_counter_ns
    t0 = clock()
    child = parent.fork()
    t1 = clock()
    child.exit()
    t2 = clock()
    return (t1 - t0) / 1e6, (t2 - t0) / 1e6


def dup_mmap_phases(parent: Mm, rounds: int = 5) -> Dict[str, float]:
    """Median ms of each phase of fork (dup_mmap) and exit (exit_mmap) of ``parent`` in the model,
    timing the model's own phase functions."""
    from anonvma.model.fork import install, new_child, vm_area_dups
    from anonvma.model.mmap import exit_names, exit_ptes, exit_vmas

    clock = time.perf_counter_ns
    samples: Dict[str, List[float]] = {}

    def lap(name: str, t: int) -> int:
        now = clock()
        samples.setdefault(name, []).append((now - t) / 1e6)
        return now

    for _ in range(rounds):
        t = clock()
        child = new_child(parent)
        t = lap("fork: Mm() for the child", t)
        chunks, ends, faulted = vm_area_dups(parent, child)
        t = lap("fork: vm_area_dups (name references, changed VMAs)", t)
        install(child, parent, chunks, ends, faulted)
        t = lap("fork: index + copy_page_range", t)
        del chunks, ends, faulted  # the child's index holds the only references now
        t = clock()
        exit_ptes(child)
        t = lap("exit: drop ptes", t)
        exit_names(child)
        t = lap("exit: put_vmas (names)", t)
        exit_vmas(child)
        t = lap("exit: free the VMAs, forget the mm", t)
        del child
    return {k: Stats.of(v).median for k, v in samples.items()}


def profile_fork_exit(parent: Mm, rounds: int = 5, top: int = 12) -> str:
    """cProfile of ``rounds`` fork+exit of ``parent``: the top functions by own time."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(rounds):
        parent.fork().exit()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def run_vs_host(args: argparse.Namespace) -> int:
    """Model fork+exit against the host kernel's fork+reap, interleaved round by round.

    The first figures are what a user gets: ``child = mm.fork(); child.exit()`` with the
    interpreter's default settings (garbage collector on, nothing frozen). The same calls
    with the collector disabled are timed in the same rounds and printed beside them,
    labelled, to show what the collector costs.
    """
    repeats = args.repeats or 15
    strategies = args.strategies
    count = MAX_MAP_COUNT
    print(f"[vs-host] building model parents: {count} VMAs named (79 chars), unpopulated; "
          f"strategies {', '.join(strategies)}", file=sys.stderr, flush=True)
    parents = {s: build_parent(count, "max", s) for s in strategies}
    print("[vs-host] starting the host worker", file=sys.stderr, flush=True)
    host = HostForker(count)
    modes = [(s, gc_off) for s in strategies for gc_off in (False, True)]
    keys = [_key(s, gc_off) for s, gc_off in modes]
    samples: Dict[str, Dict[str, List[float]]] = {k: {"fork": [], "fork_exit": []}
                                                  for k in [*keys, "host"]}
    try:
        for rnd in range(args.warmup + repeats):
            for s, gc_off in modes:
                if gc_off:
                    gc.disable()
                try:
                    f, fe = model_fork_exit(parents[s])
                finally:
                    gc.enable()
                if rnd >= args.warmup:
                    samples[_key(s, gc_off)]["fork"].append(f)
                    samples[_key(s, gc_off)]["fork_exit"].append(fe)
            f, fe = host.fork()
            if rnd >= args.warmup:
                samples["host"]["fork"].append(f)
                samples["host"]["fork_exit"].append(fe)
    finally:
        host.close()
    stats = {k: {m: Stats.of(v) for m, v in d.items()} for k, d in samples.items()}
    kernel = stats["host"]["fork_exit"].median
    lines = [f"model fork+exit of {count} named VMAs (79-char names, unpopulated) vs the host kernel "
             f"({host.map_count} VMAs, unnamed) fork+reap, interleaved, {repeats} rounds; ms median [q1-q3]",
             f"{'':44} {'fork':>22} {'fork+exit/reap':>22} {'model/kernel':>13}"]
    for k in [*keys, "host"]:
        st = stats[k]
        who = k if k != "host" else f"host kernel {host.map_count} VMAs"
        shown = f"{st['fork_exit'].median / kernel:.2f}" if k != "host" else ""
        lines.append(f"{who:44} {st['fork'].median:>8.2f} [{st['fork'].q1:.2f}-{st['fork'].q3:.2f}] "
                     f"{st['fork_exit'].median:>8.2f} [{st['fork_exit'].q1:.2f}-{st['fork_exit'].q3:.2f}] "
                     f"{shown:>13}")
    print("\n".join(lines))
    primary = "refcount" if "refcount" in strategies else strategies[0]
    ratio = stats[_key(primary, False)]["fork_exit"].median / kernel
    print(f"\nratio model({primary}, default settings)/kernel = {ratio:.2f} (target <= 0.25)")
    doc: Dict[str, Any] = {"count_model": count, "map_count_host": host.map_count, "repeats": repeats,
                           "samples": samples,
                           "ratio": {k: stats[k]["fork_exit"].median / kernel for k in keys}}
    if args.profile or ratio > 1.0:
        why = "requested" if args.profile else "the model is slower than the kernel"
        print(f"\nprofile ({why}): phases of dup_mmap and exit_mmap, median ms over 5 rounds "
              "(default settings)")
        for s in strategies:
            phases = dup_mmap_phases(parents[s])
            doc.setdefault("phases", {})[s] = phases
            print(f"  {s}:")
            for name, ms in phases.items():
                print(f"    {name:55} {ms:8.2f}")
        print(profile_fork_exit(parents[primary]))
    out = args.out if args.out != "results/bench_fork.json" else "results/bench_fork_vs_host.json"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(doc, indent=1))
    print(f"JSON: {out}")
    return 0


def _key(strategy: str, gc_off: bool) -> str:
    return f"model {strategy}" + (" [special: gc disabled]" if gc_off else " (default settings)")
