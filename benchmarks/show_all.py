"""Benchmark: `anonvma show --all --json`, the whole command, on this machine as it is.

Runs the command (and `--by process`) ``--repeat`` times, interleaved, and records wall and CPU
time (user + system, all threads), the processes read, kernel threads, processes skipped, the
VMAs summed over processes, and the time the command itself reports for reading and
grouping. With ``--child N`` a child with N one-page VMAs runs meanwhile (a machine with one
large process). Prints medians and writes JSON; the load average and CPU pressure before and
after say how busy the machine was.

Usage: ``python benchmarks/show_all.py [--repeat 7] [--child 64000] [--out results/show_all.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smaps_read import busy, spawn, timed_children, user_command, write_json  # noqa: E402 - the sibling benchmark's child and load probe


def run(argv: List[str], env: Dict[str, str]) -> Dict[str, Any]:
    """One run: wall and CPU ms, and what the command reported."""
    out, wall, cpu = timed_children(
        lambda: subprocess.run(argv, capture_output=True, env=env, check=True).stdout)
    doc = json.loads(out)
    return {"wall_ms": wall * 1000, "cpu_ms": cpu * 1000,
            "read_ms": doc["seconds"] * 1000, "processes": doc["processes_read"],
            "kernel_threads": doc["kernel_threads"], "skipped": doc["skipped"], "vmas": doc["vmas"]}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--child", type=int, default=0, metavar="N", help="also run a child with N VMAs")
    ap.add_argument("--out", default="results/show_all.json")
    args = ap.parse_args(argv)

    anonvma, env = user_command()
    cases = {"show_all_json": [anonvma, "show", "--all", "--json"],
             "show_all_by_process_json": [anonvma, "show", "--all", "--by", "process", "--json"]}
    child = spawn(args.child) if args.child else None
    try:
        for argv_ in cases.values():
            run(argv_, env)  # warm-up: bytecode cache
        load_before = busy()
        runs: Dict[str, List[Dict[str, Any]]] = {k: [] for k in cases}
        for r in range(args.repeat):
            for k in (list(cases) if r % 2 == 0 else list(cases)[::-1]):
                runs[k].append(run(cases[k], env))
        load_after = busy()
    finally:
        if child is not None:
            child.stdin.close()  # type: ignore[union-attr]
            child.wait()

    def med(k: str, f: str) -> float:
        return float(statistics.median(x[f] for x in runs[k]))

    summary = {k: {f: med(k, f) for f in ("wall_ms", "cpu_ms", "read_ms", "processes", "kernel_threads",
                                           "vmas")} for k in cases}
    result = {"benchmark": "show_all", "repeat": args.repeat, "child_vmas": args.child,
              "python": platform.python_version(), "kernel": platform.release(), "cpus": os.cpu_count(),
              "busy_before": load_before, "busy_after": load_after, "median": summary, "runs": runs}
    print(f"show --all on this machine, median of {args.repeat} (load {load_before['loadavg'][0]:.2f} -> "
          f"{load_after['loadavg'][0]:.2f}){f', with a {args.child}-VMA child' if args.child else ''}:")
    for k, m in summary.items():
        print(f"  {k:26s} wall {m['wall_ms']:7.1f} ms  CPU {m['cpu_ms']:7.1f} ms  read+group "
              f"{m['read_ms']:7.1f} ms  {m['processes']:.0f} processes ({m['kernel_threads']:.0f} kernel "
              f"threads), {m['vmas']:.0f} VMAs")
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
