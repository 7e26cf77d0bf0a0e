"""Prometheus metrics of memory by name: a ``prometheus_client`` collector that reads /proc per scrape.

Per name (label ``name``: the group key as ``anonvma show`` prints it, numbered names folded
by default so the label set stays bounded; label ``kind``), summed over the processes read:

- ``anonvma_pss_bytes``, ``anonvma_rss_bytes``, ``anonvma_swap_bytes``, ``anonvma_size_bytes``;
- ``anonvma_processes`` (in how many processes), ``anonvma_vmas``;
- the smaps fields users ask for, each summed as ``anonvma show --fields`` sums it:
  ``anonvma_swap_pss_bytes`` (SwapPss), ``anonvma_pss_dirty_bytes`` (Pss_Dirty),
  ``anonvma_pss_anon_bytes``, ``anonvma_pss_file_bytes``, ``anonvma_pss_shmem_bytes``
  (Pss_Anon/File/Shmem: smaps prints them only in smaps_rollup, so they are derived VMA by VMA
  where Anonymous and Rss make that exact, see :func:`anonvma.procmaps.group.unprinted`),
  ``anonvma_locked_bytes`` (Locked), ``anonvma_lazy_free_bytes`` (LazyFree),
  ``anonvma_anon_huge_pages_bytes`` (AnonHugePages) and ``anonvma_thp_eligible_vmas`` (VMAs
  with ``THPeligible: 1``). A field unknown for a name (the kernel does not print it, or some
  process's VMAs of that name leave it unknown) has no series for that name: never 0.

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

The VMA budget (:mod:`anonvma.procmaps.budget`): ``anonvma_map_count_limit`` (vm.max_map_count)
and ``anonvma_process_map_count_used{pid, comm}``, each process's VMAs as the kernel counts them,
always (one series per process, not per name: outside the ``max_series`` cap, as bounded as the
process table). Not ``anonvma_process_vmas``: that family already exists, per process *and
name*, under ``per_process``, and one family cannot have two label sets; and no name ending
in ``_count``, which Prometheus keeps for histograms and summaries (``promtool check metrics``
refuses ``anonvma_max_map_count``). Headroom in PromQL:
``anonvma_map_count_limit - on() group_right anonvma_process_map_count_used``.

With ``categories`` (a table of :mod:`anonvma.procmaps.categories`), the same gauges per category
as ``anonvma_category_*`` (label ``category``): families of their own, so every series above keeps
its identity (docs/categories.md). With ``cgroup_label``, every name-, process- and
category-labelled series also has a ``cgroup`` label, the memory cgroup of its processes (``""``,
which Prometheus shows as no label, where unknown): one series per name and cgroup.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from anonvma.procmaps.categories import Categories
from anonvma.procmaps.format import label
from anonvma.procmaps.group import sort_groups
from anonvma.procmaps.records import COLUMNS, Group
from anonvma.procmaps.system import (READS, SKIP_REASONS, System, by_category, by_name, read_system,
                                     split_by_cgroup)

#: (metric suffix, Group field, help) of the per-name gauges; sizes are exported in bytes.
GAUGES: Tuple[Tuple[str, str, str], ...] = (
    ("pss_bytes", "pss", "Proportional set size: resident memory, shared pages divided among their "
                         "sharers; summed over processes it is the honest total"),
    ("rss_bytes", "rss", "Resident set size (shared pages counted in every process)"),
    ("swap_bytes", "swap", "Swapped-out memory"),
    ("size_bytes", "size", "Mapped (virtual) size"),
    ("processes", "processes", "Processes that map memory with this name"),
    ("vmas", "count", "VMAs (mappings) with this name"),
    ("swap_pss_bytes", "swap_pss", "Proportional swap share (SwapPss): swapped-out pages divided "
                                   "among their sharers"),
    ("pss_dirty_bytes", "pss_dirty", "The dirty part of PSS (Pss_Dirty)"),
    ("pss_anon_bytes", "pss_anon", "The anonymous part of PSS (Pss_Anon)"),
    ("pss_file_bytes", "pss_file", "The file-backed part of PSS (Pss_File)"),
    ("pss_shmem_bytes", "pss_shmem", "The shmem (tmpfs, shared anonymous) part of PSS (Pss_Shmem)"),
    ("locked_bytes", "locked", "Locked memory (Locked: mlock, PSS-divided)"),
    ("lazy_free_bytes", "lazy_free", "Pages freed lazily with MADV_FREE, not yet reclaimed (LazyFree)"),
    ("anon_huge_pages_bytes", "anon_huge_pages", "Anonymous memory in transparent huge pages "
                                                 "(AnonHugePages)"),
    ("thp_eligible_vmas", "thp_eligible", "VMAs eligible for transparent huge pages "
                                          "(THPeligible: 1)"),
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


def _value(g: Group, field: str) -> Optional[float]:
    """A gauge's value (bytes, or a count), ``None`` when unknown: then no series."""
    v = g.value(field)
    if v is None and field in _UNKNOWABLE:
        return None
    return float((v or 0) * (_BYTES if field not in ("processes", "count", "thp_eligible") else 1))


#: The gauges' fields that may be unknown for a smaps input (a kernel that does not print them).
_UNKNOWABLE = frozenset(("swap_pss", *COLUMNS))


def _add(fam: GaugeMetricFamily, labels: List[str], value: Optional[float]) -> None:
    """One sample, unless the value is unknown."""
    if value is not None:
        fam.add_metric(labels, value)


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
    :param categories: also export ``anonvma_category_*`` by this table (not capped: as many
        series as the table has categories, times the cgroups with ``cgroup_label``).
    :param cgroup_label: add a ``cgroup`` label (the memory cgroup) to the labelled series.
    """

    def __init__(self, targets: Optional[Sequence[str]] = None, *, fold: bool = True,
                 per_process: bool = False, max_series: int = DEFAULT_MAX_SERIES,
                 match: Optional[str] = None, procfs: str = "/proc",
                 on_error: Callable[[str], None] = lambda _: None,
                 on_warning: Callable[[str], None] = lambda _: None,
                 categories: Optional[Categories] = None, cgroup_label: bool = False) -> None:
        self.targets = list(targets) if targets is not None else None
        self.categories, self.cgroup_label = categories, cgroup_label
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
                                                       match=self.match, procfs=self.procfs,
                                                       cgroups=self.cgroup_label)
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

    def _split(self, system: System) -> List[Tuple[List[str], System]]:
        """The system whole, or with ``cgroup_label`` per cgroup: (extra label values, part)."""
        if not self.cgroup_label:
            return [([], system)]
        return [([key], part) for key, part in split_by_cgroup(system).items()]

    def _families(self, system: Optional[System]) -> Iterator[Metric]:
        where = ["cgroup"] if self.cgroup_label else []
        names = [GaugeMetricFamily(f"anonvma_{suffix}", text, labels=["name", "kind", *where])
                 for suffix, _, text in GAUGES]
        procs = [GaugeMetricFamily(f"anonvma_process_{suffix}", f"{text}, per process",
                                   labels=["pid", "comm", "name", "kind", *where])
                 for suffix, _, text in PROCESS_GAUGES] if self.per_process else []
        marks = [GaugeMetricFamily(f"anonvma_{mark}", text, labels=["name", "kind", *where])
                 for mark, text in MARKS]
        proc_marks = [GaugeMetricFamily(f"anonvma_process_{mark}", f"{text}, per process",
                                        labels=["pid", "comm", "name", "kind", *where])
                      for mark, text in MARKS] if self.per_process else []
        cats = [GaugeMetricFamily(f"anonvma_category_{suffix}", f"{text}, per category of names",
                                  labels=["category", *where])
                for suffix, _, text in GAUGES] if self.categories is not None else []
        duration = GaugeMetricFamily("anonvma_scrape_duration_seconds",
                                     "Time to read and group the processes of this scrape")
        count = GaugeMetricFamily("anonvma_scrape_processes", "Processes read in this scrape")
        limit = GaugeMetricFamily("anonvma_map_count_limit", "vm.max_map_count: the most VMAs a "
                                  "process may have before mmap and splits fail with ENOMEM")
        map_counts = GaugeMetricFamily("anonvma_process_map_count_used", "VMAs of the process as the "
                                       "kernel counts them (mm->map_count)", labels=["pid", "comm"])
        reads = GaugeMetricFamily("anonvma_scrape_reads", "Processes read in this scrape, by how: whole "
                                  "smaps, smaps_rollup, or maps alone (no name matched)", labels=["how"])
        if system is not None:
            for reason, n in system.skipped.items():
                self.errors[reason] += n
            budget = self.max_series
            left_out = 0
            parts = self._split(system)
            named = [(g, extra) for extra, part in parts for g in by_name(part)]
            named.sort(key=lambda r: (-r[0].pss, r[0].key, r[1]))
            for g, extra in named:
                if budget < len(names):
                    self.dropped += len(names)
                    left_out += 1
                    continue
                budget -= len(names)
                for fam, (_, field, _) in zip(names, GAUGES, strict=True):
                    _add(fam, [label(g.key), g.kind, *extra], _value(g, field))
                _mark(marks, g, [label(g.key), g.kind, *extra])
            if self.categories is not None:
                for extra, part in parts:
                    for g in sort_groups(by_category(part, self.categories), "pss"):
                        for fam, (_, field, _) in zip(cats, GAUGES, strict=True):
                            _add(fam, [g.key, *extra], _value(g, field))
            rows = 0
            if procs:
                budget, rows = self._per_process(system, procs, proc_marks, budget)
            if (left_out or rows) and not self._warned:
                self._warned = True
                self.on_warning(self._cap_warning(left_out, rows))
            duration.add_metric([], system.seconds)
            count.add_metric([], len(system.processes))
            if system.max_map_count is not None:
                limit.add_metric([], system.max_map_count)
            for p in system.processes:
                if p.pid is not None and p.map_count is not None:
                    map_counts.add_metric([str(p.pid), p.comm], p.map_count)
            for how in READS:
                reads.add_metric([how], (system.reads or {}).get(how, 0))
        errors = CounterMetricFamily("anonvma_scrape_errors", "Processes (or whole scrapes: failed) "
                                     "that could not be read, by reason", labels=["reason"])
        for reason, n in self.errors.items():
            errors.add_metric([reason], n)
        dropped = CounterMetricFamily("anonvma_series_dropped", "Name-labelled series left out "
                                      "because of the cap on series (smallest PSS first)")
        dropped.add_metric([], self.dropped)
        yield from [*names, *marks, *procs, *proc_marks, *cats, duration, count, reads, limit, map_counts,
                    errors, dropped]

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
        rows = [(g, p.pid, p.comm, [p.cgroup or ""] if self.cgroup_label else [])
                for p in system.processes for g in p.groups]
        rows.sort(key=lambda r: (-r[0].pss, r[0].key))
        left_out = 0
        for g, pid, comm, extra in rows:
            if budget < len(procs):
                self.dropped += len(procs)
                left_out += 1
                continue
            budget -= len(procs)
            labels = [str(pid) if pid is not None else "", comm, label(g.key), g.kind, *extra]
            for fam, (_, field, _) in zip(procs, PROCESS_GAUGES, strict=True):
                _add(fam, labels, _value(g, field))
            _mark(proc_marks, g, labels)
        return budget, left_out


def _mark(families: List[GaugeMetricFamily], g: Group, labels: List[str]) -> None:
    """1 in the marker families (registered, estimated) that apply to ``g``."""
    for fam, on in zip(families, (g.registered, g.estimated), strict=True):
        if on:
            fam.add_metric(labels, 1.0)
