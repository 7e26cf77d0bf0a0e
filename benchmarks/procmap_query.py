"""Benchmark: listing a 64,000-VMA process's VMAs by PROCMAP_QUERY against parsing its maps text.

Side by side in one run, interleaved round by round, in this process, on one child (the layout of
``smaps_read.py``: 1-page anonymous VMAs of alternating protection, so none merge):

- ``procmap_query``: :meth:`anonvma.procmaps.procmap_query.Lister.list_vmas`, one ioctl per VMA;
- ``maps_text``: the same listing from the maps text (read, then parsed by anonvma's parser);
- ``maps_names_regex``: the maps text read and only its distinct names taken, by one regular
  expression (what choosing by name alone would cost from the text, without VMA records);
- for scale, reads without parsing: ``maps_read`` (the maps text), ``smaps_rollup_read`` and
  ``smaps_read`` (the kernel walks every VMA's page tables for these two).

Wall and CPU milliseconds (this process, all threads) per call: median, min and max. Writes JSON.

Usage: ``python benchmarks/procmap_query.py [--vmas 64000] [--repeat 9] [--out FILE]``
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from smaps_read import busy, spawn, write_json  # noqa: E402


def read_bytes(path: str) -> Callable[[], object]:
    """A plain read of ``path`` to its end, 1 MiB at a time."""
    def run() -> object:
        fd = os.open(path, os.O_RDONLY)
        try:
            while os.read(fd, 1 << 20):
                pass
        finally:
            os.close(fd)
        return None
    return run


#: A maps line's name (after start-end, perms, offset, dev, inode and the padding).
NAMES = re.compile(rb"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+ *(.*)$", re.M)


def names_of(path: str) -> Callable[[], object]:
    """The distinct names of a maps file, by one regular expression over its text."""
    def run() -> object:
        with open(path, "rb") as f:
            return set(NAMES.findall(f.read()))
    return run


def timed(fn: Callable[[], object]) -> Dict[str, float]:
    """Wall and CPU milliseconds of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return {"wall_ms": (time.perf_counter() - t0) * 1000, "cpu_ms": (time.process_time() - c0) * 1000}


def summary(samples: List[Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    """Median, min and max of each measure."""
    return {k: {"median": round(statistics.median(s[k] for s in samples), 3),
                "min": round(min(s[k] for s in samples), 3), "max": round(max(s[k] for s in samples), 3)}
            for k in samples[0]}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmas", type=int, default=64000)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--out", default="results/procmap_query.json")
    args = ap.parse_args(argv)

    from anonvma.procmaps.procmap_query import Lister

    child = spawn(args.vmas)
    pid = child.pid
    query, text = Lister(), Lister(query=False)
    listed = query.list_vmas(pid)
    if listed.how != "procmap_query":
        raise SystemExit("this kernel has no PROCMAP_QUERY (Linux 6.11+): nothing to compare")
    same = listed.vmas == text.list_vmas(pid).vmas
    modes: Dict[str, Callable[[], object]] = {
        "procmap_query": lambda: query.list_vmas(pid),
        "maps_text": lambda: text.list_vmas(pid),
        "maps_names_regex": names_of(f"/proc/{pid}/maps"),
        "maps_read": read_bytes(f"/proc/{pid}/maps"),
        "smaps_rollup_read": read_bytes(f"/proc/{pid}/smaps_rollup"),
        "smaps_read": read_bytes(f"/proc/{pid}/smaps"),
    }
    samples: Dict[str, List[Dict[str, float]]] = {m: [] for m in modes}
    before = busy()
    try:
        for r in range(args.repeat):
            names = list(modes) if r % 2 == 0 else list(reversed(modes))  # interleaved, both orders
            for name in names:
                samples[name].append(timed(modes[name]))
    finally:
        child.stdin.close()  # type: ignore[union-attr]
        child.wait()
    result: Dict[str, object] = {
        "benchmark": "procmap_query", "vmas_listed": len(listed.vmas), "listings_equal": same,
        "repeat": args.repeat, "kernel": platform.release(), "python": platform.python_version(),
        "busy_before": before, "busy_after": busy(),
        "modes": {m: summary(s) for m, s in samples.items()}, "samples": samples,
    }
    print(f"{len(listed.vmas)} VMAs, listings equal: {same}; median (min-max) ms over {args.repeat} rounds")
    print(f"{'mode':<20}{'wall ms':>26}{'cpu ms':>26}")
    for m, s in result["modes"].items():  # type: ignore[union-attr]
        w, c = s["wall_ms"], s["cpu_ms"]
        print(f"{m:<20}{w['median']:>10.1f} ({w['min']:.1f}-{w['max']:.1f}){'':>3}"
              f"{c['median']:>10.1f} ({c['min']:.1f}-{c['max']:.1f})")
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
