"""Prometheus metrics of memory by name: a ``prometheus_client`` collector that reads /proc per scrape.

Per name (label ``name``: the group key as ``anonvma show`` prints it, numbered names folded
by default so the label set stays bounded; label ``kind``), summed over the processes read:

- ``anonvma_pss_bytes``, ``anonvma_rss_bytes``, ``anonvma_swap_bytes``, ``anonvma_size_bytes``;
- ``anonvma_processes`` (in how many processes), ``anonvma_vmas``.

With ``per_process``, the same per process and name as ``anonvma_process_*`` (labels ``pid``,
``comm``, ``name``, ``kind``): kept apart so summing ``anonvma_pss_bytes`` never counts twice.
Largest PSS first, at most ``max_series`` such series per scrape; the rest are counted in
``anonvma_series_dropped_total``.

Names that a process keeps in its anonvma registry (the kernel lacks CONFIG_ANON_VMA_NAME; see
:mod:`anonvma.procmaps.registered`) are exported under the same ``name`` as kernel-given ones, so
queries and dashboards need no change; ``anonvma_registered{name, kind} 1`` marks them, and
``anonvma_estimated{name, kind} 1`` the names whose counters were estimated in part
(``anonvma_process_registered``/``_estimated`` with ``--per-process``). Separate marker series
rather than a label on every series: a label would change the identity of each series when a
process moves between kernel names and the registry, and the markers join with
``* on(name) group_left`` when wanted. Processes that could not be read are counted in
``anonvma_scrape_errors_total{reason}`` (``denied``, ``exited``, ``unreadable``, and
``failed`` for a scrape that failed as a whole). Plus ``anonvma_scrape_duration_seconds`` and
``anonvma_scrape_processes``, and ``anonvma_scrape_reads{how}``: of the processes read in this
scrape, how many were read through their whole smaps (``smaps``), their smaps_rollup
(``rollup``), or their maps alone (``maps``: with ``match``, no name of theirs matches, so their
smaps is not read; see :func:`anonvma.procmaps.system.read_system`).
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from anonvma.procmaps.format import label
from anonvma.procmaps.group import sort_groups
from anonvma.procmaps.records import Group
from anonvma.procmaps.system import READS, SKIP_REASONS, System, by_name, read_system

#: (metric suffix, Group field, help) of the per-name gauges; sizes are exported in bytes.
GAUGES: Tuple[Tuple[str, str, str], ...] = (
    ("pss_bytes", "pss", "Proportional set size: resident memory, shared pages divided among their "
                         "sharers; summed over processes it is the honest total"),
    ("rss_bytes", "rss", "Resident set size (shared pages counted in every process)"),
    ("swap_bytes", "swap", "Swapped-out memory"),
    ("size_bytes", "size", "Mapped (virtual) size"),
    ("processes", "processes", "Processes that map memory with this name"),
    ("vmas", "count", "VMAs (mappings) with this name"),
)
#: Marker gauges (1 where they apply): (metric suffix, help), in the order of Group's flags.
MARKS = (
    ("registered", "1 for names kept in a process's anonvma registry (the kernel cannot name "
                   "memory), not given by the kernel"),
    ("estimated", "1 for names whose counters were estimated in part (a VMA shared by names)"),
)
#: The per-process gauges (``anonvma_process_*``): all but ``processes``.
PROCESS_GAUGES = tuple(g for g in GAUGES if g[1] != "processes")
_BYTES = 1024  # smaps counts kB
DEFAULT_MAX_SERIES = 10000


def _value(g: Group, field: str) -> float:
    v = g.value(field)
    return float((v or 0) * (_BYTES if field not in ("processes", "count") else 1))


class MemoryCollector:
    """Reads the targets at every scrape (``collect``); counters live as long as the collector.

    :param targets: PIDs or saved files (``None``: every process).
    :param fold: fold numbered names (``[anon:stack_and_tls:*]``), bounding label cardinality.
    :param per_process: also export ``anonvma_process_*`` series.
    :param max_series: cap on name-labelled series per scrape (largest PSS kept).
    :param match: only VMAs whose maps name matches this regex.
    :param on_error: told why, once per distinct reason, when a scrape fails as a whole (a
        saved file that cannot be read) or a target given by PID cannot be read (the counters
        count every time; a log must not fill with one reason per scrape).
    :param on_warning: told once, at the first scrape that leaves series out for the cap.
    """

    def __init__(self, targets: Optional[Sequence[str]] = None, *, fold: bool = True,
                 per_process: bool = False, max_series: int = DEFAULT_MAX_SERIES,
                 match: Optional[str] = None, procfs: str = "/proc",
                 on_error: Callable[[str], None] = lambda _: None,
                 on_warning: Callable[[str], None] = lambda _: None) -> None:
        self.targets = list(targets) if targets is not None else None
        self.fold, self.per_process, self.max_series = fold, per_process, max_series
        self.match, self.procfs = match, procfs
        self.on_error, self.on_warning = on_error, on_warning
        self._warned = False
        self._told: set[str] = set()
        self.errors: Dict[str, int] = dict.fromkeys((*SKIP_REASONS, "failed"), 0)
        self.dropped = 0
        self.last_error = ""
        self._lock = threading.Lock()  # one scrape at a time: counters and /proc reads

    def describe(self) -> Iterator[Metric]:
        """The metric families, without reading anything (for the registry's name checks)."""
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        """Read the targets and yield every family (the scrape)."""
        with self._lock:
            try:
                system: Optional[System] = read_system(self.targets, by="name", fold=self.fold,
                                                       match=self.match, procfs=self.procfs)
            except (OSError, ValueError) as err:
                self.errors["failed"] += 1
                self.last_error = str(err)
                self._tell(f"scrape failed: {err}")
                system = None
            if system is not None and self.targets is not None:
                for message in system.errors:  # a target named by the user: say why, once
                    self._tell(message)
            families = list(self._families(system))
        yield from families

    def _tell(self, message: str) -> None:
        if message not in self._told:
            self._told.add(message)
            self.on_error(message)

    def _families(self, system: Optional[System]) -> Iterator[Metric]:
        names = [GaugeMetricFamily(f"anonvma_{suffix}", text, labels=["name", "kind"])
                 for suffix, _, text in GAUGES]
        procs = [GaugeMetricFamily(f"anonvma_process_{suffix}", f"{text}, per process",
                                   labels=["pid", "comm", "name", "kind"])
                 for suffix, _, text in PROCESS_GAUGES] if self.per_process else []
        marks = [GaugeMetricFamily(f"anonvma_{mark}", text, labels=["name", "kind"])
                 for mark, text in MARKS]
        proc_marks = [GaugeMetricFamily(f"anonvma_process_{mark}", f"{text}, per process",
                                        labels=["pid", "comm", "name", "kind"])
                      for mark, text in MARKS] if self.per_process else []
        duration = GaugeMetricFamily("anonvma_scrape_duration_seconds",
                                     "Time to read and group the processes of this scrape")
        count = GaugeMetricFamily("anonvma_scrape_processes", "Processes read in this scrape")
        reads = GaugeMetricFamily("anonvma_scrape_reads", "Processes read in this scrape, by how: whole "
                                  "smaps, smaps_rollup, or maps alone (no name matched)", labels=["how"])
        if system is not None:
            for reason, n in system.skipped.items():
                self.errors[reason] += n
            budget = self.max_series
            left_out = 0
            for g in sort_groups(by_name(system), "pss"):
                if budget < len(names):
                    self.dropped += len(names)
                    left_out += 1
                    continue
                budget -= len(names)
                for fam, (_, field, _) in zip(names, GAUGES, strict=True):
                    fam.add_metric([label(g.key), g.kind], _value(g, field))
                _mark(marks, g, [label(g.key), g.kind])
            rows = 0
            if procs:
                budget, rows = self._per_process(system, procs, proc_marks, budget)
            if (left_out or rows) and not self._warned:
                self._warned = True
                self.on_warning(self._cap_warning(left_out, rows))
            duration.add_metric([], system.seconds)
            count.add_metric([], len(system.processes))
            for how in READS:
                reads.add_metric([how], (system.reads or {}).get(how, 0))
        errors = CounterMetricFamily("anonvma_scrape_errors", "Processes (or whole scrapes: failed) "
                                     "that could not be read, by reason", labels=["reason"])
        for reason, n in self.errors.items():
            errors.add_metric([reason], n)
        dropped = CounterMetricFamily("anonvma_series_dropped", "Name-labelled series left out "
                                      "because of the cap on series (smallest PSS first)")
        dropped.add_metric([], self.dropped)
        yield from [*names, *marks, *procs, *proc_marks, duration, count, reads, errors, dropped]

    def _cap_warning(self, names: int, rows: int) -> str:
        """What the cap left out, and how it counts."""
        what = [f"{names} names ({names * len(GAUGES)} series)"] if names else []
        if rows:
            what.append(f"{rows} process rows ({rows * len(PROCESS_GAUGES)} series)")
        return (f"--max-series {self.max_series} left out {' and '.join(what)}: each name takes "
                f"{len(GAUGES)} series (and each process's name {len(PROCESS_GAUGES)} more with "
                "--per-process); counted in anonvma_series_dropped_total")

    def _per_process(self, system: System, procs: List[GaugeMetricFamily],
                     proc_marks: List[GaugeMetricFamily], budget: int) -> Tuple[int, int]:
        """Add the per-process series within ``budget``; returns what is left of it and how
        many (process, name) rows were left out."""
        rows = [(g, p.pid, p.comm) for p in system.processes for g in p.groups]
        rows.sort(key=lambda r: (-r[0].pss, r[0].key))
        left_out = 0
        for g, pid, comm in rows:
            if budget < len(procs):
                self.dropped += len(procs)
                left_out += 1
                continue
            budget -= len(procs)
            labels = [str(pid) if pid is not None else "", comm, label(g.key), g.kind]
            for fam, (_, field, _) in zip(procs, PROCESS_GAUGES, strict=True):
                fam.add_metric(labels, _value(g, field))
            _mark(proc_marks, g, labels)
        return budget, left_out


def _mark(families: List[GaugeMetricFamily], g: Group, labels: List[str]) -> None:
    """1 in the marker families (registered, estimated) that apply to ``g``."""
    for fam, on in zip(families, (g.registered, g.estimated), strict=True):
        if on:
            fam.add_metric(labels, 1.0)
