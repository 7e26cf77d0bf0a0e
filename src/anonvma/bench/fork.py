"""The fork experiment on the model: build a parent Mm once, fork it repeatedly, time and count.

For each (count, naming, strategy) the parent is built once (the layout of
:mod:`anonvma.bench.layout`) and populated scenario by scenario (0, then 1, then 10 pages per VMA,
by write faults), so each (count, naming, scenario, strategy) cell forks the same parent
``warmup + repeats`` times. Each fork is timed alone (dup_mmap) and with the child's exit
(fork+exit, like the seed's fork+reap). The cyclic GC is frozen and off while timing: the parent's
millions of objects would otherwise be rescanned at random moments by a collection the fork
triggers, which measures the GC, not the fork.

Counters per fork are deterministic: the child's ``name_counters`` after fork (``fork``) and after
exit (``fork_exit``), and the ptes the child got (copy_page_range).
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from anonvma.bench.layout import SCENARIOS, VMA_BYTES, vma_addr, vma_name, vma_prot
from anonvma.model import Mm
from anonvma.model.vma import PAGE_SIZE

Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Stats:
    """Summary of timing samples in ms: median, quartiles (IQR) and extremes."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Stats":
        s = sorted(samples)
        if len(s) >= 2:
            q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
        else:
            q1 = q3 = s[0]
        return cls(statistics.median(s), q1, q3, s[0], s[-1], len(s))


@dataclass
class Cell:
    """One cell of the sweep on one backend; times in ms.

    ``strategy`` is ``refcount``/``strdup`` (model, UML variants) or ``host`` (host kernel).
    ``status``: ``ok``, ``unsupported: ...`` (naming on a kernel without it) or ``error: ...``.
    """

    backend: str
    strategy: str
    count: int
    naming: str
    scenario: str
    status: str = "ok"
    map_count: int = 0
    count_requested: int = 0
    fork: Optional[Stats] = None
    fork_exit: Optional[Stats] = None
    samples: Dict[str, List[float]] = field(default_factory=dict)
    #: model only: name counters of one fork and of fork+exit, ptes copied per fork
    counters: Dict[str, Dict[str, int]] = field(default_factory=dict)
    ptes_copied: Optional[int] = None

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    def stats(self, metric: str) -> Optional[Stats]:
        """``metric``: ``fork`` or ``fork_exit``."""
        value: Optional[Stats] = getattr(self, metric)
        return value


def build_parent(count: int, naming: str, strategy: str, max_map_count: int = 65530) -> Mm:
    """An Mm with ``count`` VMAs of the layout, each named (79 characters) unless naming is ``none``."""
    mm = Mm(strategy=strategy, max_map_count=max_map_count)
    named = naming != "none"
    for i in range(count):
        addr = vma_addr(i)
        mm.mmap(addr, VMA_BYTES, vma_prot(i))
        if named:
            mm.set_anon_name(addr, VMA_BYTES, vma_name(i))
    if mm.map_count != count:
        raise AssertionError(f"layout merged: {mm.map_count} VMAs for {count} mappings")
    return mm


def populate(mm: Mm, count: int, first_page: int, pages: int) -> None:
    """Write-fault pages [first_page, pages) of each of the ``count`` VMAs."""
    fault = mm.fault
    for i in range(count):
        base = vma_addr(i)
        for p in range(first_page, pages):
            fault(base + p * PAGE_SIZE, True)


def time_forks(parent: Mm, repeats: int, warmup: int = 1) -> Dict[str, Any]:
    """Fork ``parent`` and exit the child ``warmup + repeats`` times, with the interpreter's
    default settings (garbage collector on, nothing frozen): what a user gets.

    :return: ``fork_ms``/``fork_exit_ms`` samples, the counters of the last fork, ptes copied.
    """
    clock = time.perf_counter_ns
    fork_ms: List[float] = []
    fork_exit_ms: List[float] = []
    counters: Dict[str, Dict[str, int]] = {}
    ptes = 0
    for k in range(warmup + repeats):
        t0 = clock()
        child = parent.fork()
        t1 = clock()
        child.exit()
        t2 = clock()
        if k >= warmup:
            fork_ms.append((t1 - t0) / 1e6)
            fork_exit_ms.append((t2 - t0) / 1e6)
        if k == warmup + repeats - 1:
            # counters are read after the clock stops; recounted from a fresh fork
            probe = parent.fork()
            counters["fork"] = probe.name_counters.as_dict()
            ptes = len(probe.ptes)
            probe.exit()
            counters["fork_exit"] = probe.name_counters.as_dict()
        del child
    return {"fork_ms": fork_ms, "fork_exit_ms": fork_exit_ms, "counters": counters, "ptes": ptes}


def run_model(counts: Sequence[int], namings: Sequence[str], scenarios: Sequence[str],
              strategies: Sequence[str], repeats: int, warmup: int = 1,
              progress: Progress = _quiet) -> List[Cell]:
    """Every cell of the sweep on the model (one parent per count, naming and strategy)."""
    cells: List[Cell] = []
    order = sorted(scenarios, key=lambda s: SCENARIOS[s])
    for count in counts:
        for naming in namings:
            for strategy in strategies:
                t = time.perf_counter()
                parent = build_parent(count, naming, strategy)
                progress(f"[model] {strategy:8} {count:6} VMAs naming={naming}: built in "
                         f"{time.perf_counter() - t:.1f} s")
                done = 0
                for scenario in order:
                    pages = SCENARIOS[scenario]
                    populate(parent, count, done, pages)
                    done = max(done, pages)
                    r = time_forks(parent, repeats, warmup)
                    cell = Cell("model", strategy, count, naming, scenario, map_count=parent.map_count,
                                count_requested=count, fork=Stats.of(r["fork_ms"]),
                                fork_exit=Stats.of(r["fork_exit_ms"]),
                                samples={"fork_ms": r["fork_ms"], "fork_exit_ms": r["fork_exit_ms"]},
                                counters=r["counters"], ptes_copied=r["ptes"])
                    assert cell.fork is not None
                    progress(f"[model] {strategy:8} {count:6} VMAs naming={naming} {scenario:11}: "
                             f"fork {cell.fork.median:.2f} ms")
                    cells.append(cell)
                parent.exit()
                del parent
    return cells


def cells_from_worker(result: Dict[str, Any], strategy: str) -> List[Cell]:
    """Cells from a worker's JSON (host or UML); ``strategy`` labels the kernel (``host``, variants)."""
    cells: List[Cell] = []
    for c in result["cells"]:
        cell = Cell(result["backend"], strategy, c.get("count", 0), c["naming"], c["scenario"],
                    status=c["status"], map_count=c.get("map_count", 0),
                    count_requested=c["count_requested"])
        if c["status"] == "ok":
            cell.fork = Stats.of(c["fork_ms"])
            cell.fork_exit = Stats.of(c["fork_exit_ms"])
            cell.samples = {"fork_ms": c["fork_ms"], "fork_exit_ms": c["fork_exit_ms"]}
        cells.append(cell)
    return cells
