"""Benchmark: `anonvma export --textfile FILE --all --match '^\\[anon:'`, the whole command, before and after.

On this machine, with two children of this script besides whatever else runs:

- a big process holding no name: 64,000 1-page anonymous VMAs of alternating protection (none
  merge; under the default vm.max_map_count of 65530), its writable pages dirtied; a thread of
  it maps and unmaps one page in a loop and keeps the longest such call (those calls take its
  mmap lock for writing: the longest one during a scrape is what its threads waited on);
- a small process naming 16 pages ``[anon:bench-small]`` through its anonvma registry (this
  kernel lacks CONFIG_ANON_VMA_NAME; on one that has it the kernel names them).

Interleaved round by round (the order alternating), the command run by the code of ``--before``
(a source tree: the base commit's ``src``) and of ``--after`` (this tree's ``src``), each as a
user runs it (``python -m anonvma``): its wall time, its CPU seconds (user + system of the
child, all threads), its own ``anonvma_scrape_duration_seconds``, the big process's longest
mmap/munmap meanwhile, and whether it exported the small process's name. In this process, the
same rounds time the big process's smaps read (what a scrape of it costs, page tables walked)
against its maps read and its PROCMAP_QUERY listing. Medians with min and max. Writes JSON.

Usage: ``python benchmarks/bench_cheap_read.py --before /path/to/base/src [--after src]
[--vmas 64000] [--repeat 7] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procmap_query import read_bytes, summary, timed  # noqa: E402
from smaps_read import CHILD, busy, timed_children, write_json  # noqa: E402

#: smaps_read.py's child, its mappings made, then: a thread churning its mmap lock.
BIG = CHILD.split('sys.stdout.write("ready')[0] + r"""
import threading, time
longest = [0.0]
def churn():  # each mmap and munmap takes this process's mmap lock for writing
    while True:
        t0 = time.perf_counter()
        s.munmap(s.mmap(0, page, rw, s.MAP_PRIVATE | s.MAP_ANONYMOUS), page)
        longest[0] = max(longest[0], time.perf_counter() - t0)
        time.sleep(0.001)
threading.Thread(target=churn, daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:  # each line: print the longest call since the last line, in ms; reset
    print(round(longest[0] * 1000, 3), flush=True)
    longest[0] = 0.0
"""
SMALL = r"""
import sys
from anonvma import live
m = live.named_mmap(16 * 4096, "bench-small", fallback=True)
m[:] = b"s" * len(m)
print("ready", flush=True)
sys.stdin.read()
"""
NAME = "[anon:bench-small]"


def start(code: str, *args: str, env: Dict[str, str]) -> "subprocess.Popen[str]":
    """A child running ``code``, once it says ``ready``."""
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        child.kill()
        raise SystemExit(f"a child failed to start (exit {child.wait()})")
    return child


def longest_ms(big: "subprocess.Popen[str]") -> float:
    """The big child's longest mmap+munmap since the last ask (ms); resets it."""
    assert big.stdin is not None and big.stdout is not None
    big.stdin.write("\n")
    big.stdin.flush()
    return float(big.stdout.readline())


def scraped(path: str) -> Dict[str, object]:
    """What one textfile says of its scrape: duration, processes, reads, the small child's PSS."""
    out: Dict[str, object] = {"reads": {}}
    with open(path) as f:
        for line in f:
            if line.startswith("anonvma_scrape_duration_seconds "):
                out["scrape_seconds"] = float(line.split()[1])
            elif line.startswith("anonvma_scrape_processes "):
                out["processes"] = float(line.split()[1])
            elif line.startswith("anonvma_scrape_reads{"):
                how = line.split('how="')[1].split('"')[0]
                out["reads"][how] = float(line.split()[-1])  # type: ignore[index]
            elif line.startswith("anonvma_pss_bytes{") and f'name="{NAME}"' in line:
                out["small_pss_bytes"] = float(line.split()[-1])
    return out


def export(src: str, textfile: str,
           big: "subprocess.Popen[str]") -> Tuple[Dict[str, float], Dict[str, object]]:
    """One whole command by the code in ``src``: its timings, and what its textfile says."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.path.abspath(src)
    argv = [sys.executable, "-m", "anonvma", "export", "--textfile", textfile, "--all",
            "--match", r"^\[anon:"]
    longest_ms(big)
    _, wall, cpu = timed_children(
        lambda: subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True))
    got = scraped(textfile)
    scrape = float(got.pop("scrape_seconds"))  # type: ignore[arg-type]
    return {"wall_s": wall, "cpu_s": cpu, "scrape_s": scrape, "big_longest_mmap_ms": longest_ms(big)}, got


def machine() -> Dict[str, object]:
    """The processes and VMAs on the machine now (the other processes each scrape also reads)."""
    procs = vmas = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/maps", "rb") as f:
                    n = f.read().count(b"\n")
            except OSError:
                continue
            procs, vmas = procs + (n > 0), vmas + n
    with open("/proc/sys/vm/max_map_count") as f:
        limit = int(f.read())
    return {"processes_with_memory": procs, "vmas": vmas, "max_map_count": limit}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="source tree (src) of the code to compare with")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--after", default=os.path.join(here, os.pardir, "src"))
    ap.add_argument("--vmas", type=int, default=64000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", default="results/bench_cheap_read.json")
    args = ap.parse_args(argv)

    from anonvma.procmaps.procmap_query import Lister

    env = {**os.environ, "PYTHONPATH": os.path.abspath(args.after)}
    big = start(BIG, str(args.vmas), env=env)
    small = start(SMALL, env=env)
    lister, text = Lister(), Lister(query=False)
    sides = {"before": args.before, "after": args.after}
    runs: Dict[str, List[Dict[str, float]]] = {s: [] for s in sides}
    seen: Dict[str, List[Dict[str, object]]] = {s: [] for s in sides}
    pid = big.pid
    in_process = {"smaps_read": read_bytes(f"/proc/{pid}/smaps"),
                  "maps_read": read_bytes(f"/proc/{pid}/maps"),
                  "maps_text_listing": lambda: text.list_vmas(pid),
                  "procmap_query_listing": lambda: lister.list_vmas(pid)}
    reads: Dict[str, List[Dict[str, float]]] = {n: [] for n in in_process}
    state = {"machine_before": machine(), "busy_before": busy()}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            textfile = os.path.join(tmp, "anonvma.prom")
            for r in range(args.repeat):
                order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
                for side in order:
                    timings, got = export(sides[side], textfile, big)
                    runs[side].append(timings)
                    seen[side].append(got)
                for name, fn in in_process.items():
                    reads[name].append(timed(fn))
    finally:
        for child in (big, small):
            child.stdin.close()  # type: ignore[union-attr]
            child.wait()
    result: Dict[str, object] = {
        "benchmark": "bench_cheap_read",
        "command": "anonvma export --textfile FILE --all --match '^\\[anon:'",
        "vmas": args.vmas, "repeat": args.repeat, "before": os.path.abspath(args.before),
        "after": os.path.abspath(args.after), "kernel": platform.release(),
        "python": platform.python_version(),
        "time": time.time(), **state, "busy_after": busy(), "machine_after": machine(),
        "whole_command": {s: summary(v) for s, v in runs.items()},
        "big_process_reads": {n: summary(v) for n, v in reads.items()},
        "scrapes": seen, "samples": {"whole_command": runs, "big_process_reads": reads},
    }
    print(f"{args.vmas}-VMA process (no name) + one small named process; "
          f"median (min-max) over {args.repeat} rounds")
    for s, v in result["whole_command"].items():  # type: ignore[union-attr]
        print(f"{s:<7}" + "  ".join(f"{k} {m['median']:.3f} ({m['min']:.3f}-{m['max']:.3f})"
                                    for k, m in v.items()))
        found = all("small_pss_bytes" in g for g in seen[s])
        print(f"        found {NAME}: {found}; reads: {seen[s][-1]['reads']}")
    for n, v in result["big_process_reads"].items():  # type: ignore[union-attr]
        w = v["wall_ms"]
        print(f"{n:<22} wall ms {w['median']:.1f} ({w['min']:.1f}-{w['max']:.1f})"
              f"  cpu ms {v['cpu_ms']['median']:.1f}")
    write_json(args.out, result)
    print(json.dumps({s: {k: m["median"] for k, m in v.items()}  # type: ignore[union-attr]
                      for s, v in result["whole_command"].items()}))  # type: ignore[union-attr]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
