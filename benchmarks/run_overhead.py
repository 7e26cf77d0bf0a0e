"""Benchmark: what `anonvma run -- CMD` costs against running CMD on the host, and against an
unsampled guest.

For each workload and kernel generation, side by side and interleaved, ``--repeat`` times:

- ``host``: CMD run directly on this machine;
- ``guest``: CMD booted in the oracle kernel with nothing else (``anonvma.oracle.boot.boot``:
  the same boot, no sampler, no relay): what the kernel alone costs;
- ``run``: the whole command ``anonvma run -- CMD`` (default ``--every 0.5``), its stdin an
  open pipe nobody writes to (an idle terminal: the stdin relay runs all along);
- ``run_0.1``: ``anonvma run --every 0.1 -- CMD``, the same way.

Wall time and CPU time (user + system of all child processes, the guest's host processes
included). Prints medians and the ratios run/host and run/guest; writes JSON. The workloads
use this interpreter (``sys.executable``), not a ``python3`` shim.

Usage: ``python benchmarks/run_overhead.py [--repeat 3] [--linux 6.1,6.12] [--out results/run_overhead.json]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smaps_read import busy, timed_children, write_json  # noqa: E402 - the sibling benchmark's load probe and writer

from anonvma.oracle.boot import boot  # noqa: E402
from anonvma import releases  # noqa: E402
from anonvma.oracle.build import require_kernel  # noqa: E402

PY = sys.executable
FORKS = """
import os, time
kids = []
for i in range(100):
    pid = os.fork()
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    kids.append(pid)
for k in kids:
    os.waitpid(k, 0)
"""
#: name -> (what it does, argv)
WORKLOADS: Dict[str, tuple[str, List[str]]] = {
    "true": ("/bin/true: the fixed cost (boot, sampler start, halt)", ["/bin/true"]),
    "cpu": ("Python arithmetic, no syscalls (about 1 s on the host)",
            [PY, "-c", "sum(i * i for i in range(15_000_000))"]),
    "cpu_long": ("the same for about 6 s on the host: sampling's share of a longer run",
                 [PY, "-c", "sum(i * i for i in range(90_000_000))"]),
    "touch": ("Python writing 256 MiB (page faults)", [PY, "-c", "x = b'x' * (256 << 20)"]),
    "exec": ("sh running /bin/true 200 times (fork + exec)",
             ["sh", "-c", "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done"]),
    "forks": ("Python with 100 children alive for 2 s (101 processes to sample)", [PY, "-c", FORKS]),
}


def timed(fn: Callable[[], Any]) -> Dict[str, float]:
    """Wall and CPU seconds (all child processes) of ``fn()``."""
    _, wall, cpu = timed_children(fn)
    return {"wall": wall, "cpu": cpu}


def quiet(argv: List[str], idle_stdin: bool = False) -> None:
    """Run ``argv`` to the end, output discarded; with ``idle_stdin`` its stdin is a pipe left
    open with nothing in it, like a terminal nobody types in (``anonvma run`` then relays it)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if idle_stdin else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert proc.wait() == 0, argv
    finally:
        if proc.stdin is not None:
            proc.stdin.close()


def modes(linux: str, argv: List[str]) -> Dict[str, Callable[[], Any]]:
    kernel = require_kernel("refcount", linux=linux).path
    run = [PY, "-m", "anonvma", "run", "--linux", linux]

    def guest() -> None:
        assert boot(kernel, argv, mem="1G").returncode == 0

    return {"host": lambda: quiet(argv), "guest": guest, "run": lambda: quiet([*run, "--", *argv], True),
            "run_0.1": lambda: quiet([*run, "--every", "0.1", "--", *argv], True)}


def main(args_: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--linux", default=",".join(releases.names()))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--out", default="results/run_overhead.json")
    args = ap.parse_args(args_)

    load_before = busy()
    runs: Dict[str, Dict[str, Dict[str, List[Dict[str, float]]]]] = {}
    for linux in args.linux.split(","):
        for name in args.workloads.split(","):
            cases = modes(linux, WORKLOADS[name][1])
            got = runs.setdefault(linux, {}).setdefault(name, {m: [] for m in cases})
            order = list(cases)
            for r in range(args.repeat):
                for m in order[r % len(order):] + order[:r % len(order)]:  # rotate: no mode always first
                    got[m].append(timed(cases[m]))
    load_after = busy()

    median: Dict[str, Any] = {}
    print(f"anonvma run against CMD on the host and an unsampled guest; median of {args.repeat}, wall s "
          f"(CPU s); load {load_before['loadavg'][0]:.2f} -> {load_after['loadavg'][0]:.2f}")  # type: ignore[index]
    print(f"{'linux':5} {'workload':8} {'host':>12} {'guest':>12} {'run':>12} {'run_0.1':>12}"
          f" {'run/host':>9} {'run/guest':>9} {'run_0.1/guest':>13}")
    for linux, per in runs.items():
        for name, got in per.items():
            med = {m: {f: statistics.median(x[f] for x in xs) for f in ("wall", "cpu")}
                   for m, xs in got.items()}
            median.setdefault(linux, {})[name] = med
            cells = " ".join(f"{med[m]['wall']:6.2f} ({med[m]['cpu']:4.1f})" for m in got)
            print(f"{linux:5} {name:8} {cells} {med['run']['wall'] / med['host']['wall']:8.1f}x"
                  f" {med['run']['wall'] / med['guest']['wall']:8.2f}x"
                  f" {med['run_0.1']['wall'] / med['guest']['wall']:12.2f}x")
    write_json(args.out, {"benchmark": "run_overhead", "repeat": args.repeat,
                          "python": platform.python_version(), "host_kernel": platform.release(),
                          "cpus": os.cpu_count(), "workloads": {k: v[0] for k, v in WORKLOADS.items()},
                          "busy_before": load_before, "busy_after": load_after, "median": median,
                          "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
