"""``anonvma bench fork --from PID|MAPSFILE``: what forking a real process's layout costs in the model.

The layout comes from /proc/PID/maps|smaps or a saved copy (any kernel, Android included), read
with :mod:`anonvma.procmaps`. Each entry is replayed into a model Mm with the same perms:

- private anonymous entries (no name, ``[heap]``, ``[stack]``, ``[anon:NAME]``): mmap, then
  set_anon_name for ``[anon:NAME]``;
- shared anonymous entries (``/dev/zero (deleted)``, ``[anon_shmem:NAME]``): a shared anonymous
  mmap, unnamed (Linux 6.1 cannot name shared memory);
- file entries (paths, ``(deleted)`` ones too): a file mmap, the path as the file label, same offset;
- kernel-special entries (``[vdso]``, ``[vvar]``, ...): a private anonymous mmap of the same size;
  ``[vsyscall]`` (above TASK_SIZE, not a VMA of the mm) is skipped.

maps does not show why the kernel kept two compatible neighbours apart (anon_vma, mempolicy,
uffd...), so such neighbours merge in the model; the report gives both numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

from anonvma.bench.fork import Stats, time_forks
from anonvma.model import Mm
from anonvma.model.mm import TASK_SIZE
from anonvma.procmaps import Snapshot, anon_name, classify, read

#: Model Mms are allowed more than the default limit: a saved layout is what it is.
LOAD_MAX_MAP_COUNT = 1 << 20


@dataclass
class Loaded:
    """A layout replayed into a model Mm, and what happened to its entries."""

    mm: Mm
    entries: int
    named: int
    skipped: List[str] = field(default_factory=list)
    by_kind: Dict[str, int] = field(default_factory=dict)

    @property
    def merged(self) -> int:
        """Entries that merged into a neighbour in the model."""
        return self.entries - len(self.skipped) - self.mm.map_count


def load_layout(snap: Snapshot, strategy: str) -> Loaded:
    """Replay the VMAs of ``snap`` into a new Mm of ``strategy`` (see the module docstring)."""
    mm = Mm(strategy=strategy, max_map_count=LOAD_MAX_MAP_COUNT)
    loaded = Loaded(mm, len(snap.vmas), 0)
    for v in snap.vmas:
        kind = classify(v.name)
        loaded.by_kind[kind] = loaded.by_kind.get(kind, 0) + 1
        length = v.end - v.start
        if v.end > TASK_SIZE or length <= 0:
            loaded.skipped.append(v.name or f"{v.start:#x}")
            continue
        prot = v.perms[:3].replace("-", "")
        shared = v.perms[3:4] == "s"
        name = anon_name(v.name) if kind == "anon_named" else None
        if kind in ("file", "deleted") and not (shared and v.name.startswith("/dev/zero")):
            mm.mmap(v.start, length, prot, shared=shared, file=v.name, pgoff=v.offset >> 12)
        else:
            mm.mmap(v.start, length, prot, shared=shared or kind == "anon_shmem")
        if name is not None and not shared:
            mm.set_anon_name(v.start, length, name)
            loaded.named += 1
    return loaded


def run_from(args: argparse.Namespace) -> int:
    try:
        snap = read(args.from_)
    except (OSError, ValueError) as err:
        print(f"anonvma bench fork: cannot read {args.from_}: {err}", file=sys.stderr)
        return 1
    repeats = args.repeats or 15
    results: Dict[str, Any] = {"source": snap.source, "entries": len(snap.vmas), "strategies": {}}
    print(f"layout of {snap.source}: {len(snap.vmas)} maps entries")
    header = (f"{'strategy':9} {'VMAs':>6} {'named':>6} {'allocs':>7} {'B copied':>9} {'gets':>7} "
              f"{'puts':>7} {'frees':>7} {'fork ms':>22} {'fork+exit ms':>22}")
    lines: List[str] = []
    merged, skipped, by_kind = 0, [], {}
    for strategy in args.strategies:
        loaded = load_layout(snap, strategy)
        merged, skipped, by_kind = loaded.merged, loaded.skipped, loaded.by_kind
        r = time_forks(loaded.mm, repeats, args.warmup)
        f, fe = Stats.of(r["fork_ms"]), Stats.of(r["fork_exit_ms"])
        fork, ex = r["counters"]["fork"], r["counters"]["fork_exit"]
        lines.append(f"{strategy:9} {loaded.mm.map_count:>6} {loaded.named:>6} {fork['allocs']:>7} "
                     f"{fork['bytes_copied']:>9} {fork['gets']:>7} {ex['puts']:>7} {ex['frees']:>7} "
                     f"{f.median:>8.3f} [{f.q1:.3f}-{f.q3:.3f}] {fe.median:>8.3f} [{fe.q1:.3f}-{fe.q3:.3f}]")
        results["strategies"][strategy] = {
            "vmas": loaded.mm.map_count, "named": loaded.named, "merged": loaded.merged,
            "skipped": loaded.skipped, "counters": r["counters"],
            "fork": f.__dict__, "fork_exit": fe.__dict__,
            "samples": {"fork_ms": r["fork_ms"], "fork_exit_ms": r["fork_exit_ms"]}}
        loaded.mm.exit()
        del loaded
        gc.collect()
    results["by_kind"] = by_kind
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items(), key=lambda kv: -kv[1]))
    print(f"kinds: {kinds}")
    if merged or skipped:
        print(f"model: {merged} entries merged into a neighbour (maps does not show what kept them "
              f"apart), {len(skipped)} skipped ({', '.join(skipped) or '-'})")
    print(header)
    print("\n".join(lines))
    print(f"counters per fork of the child (allocs, bytes copied, gets) and after its exit (puts, frees); "
          f"model times over {repeats} forks, unpopulated")
    if args.out != "results/bench_fork.json":
        _write(args.out, results)
        print(f"JSON: {args.out}")
    return 0


def _write(path: str, doc: Dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1))

