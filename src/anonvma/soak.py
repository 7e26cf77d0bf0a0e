"""``anonvma soak``: random syscalls, forks and exits on a refcount and a strdup family in lockstep.

The ops are the difftest generator's mix (:class:`anonvma.difftest.generate.OpStream`) with
addresses spread over a wide window, so the families grow to tens of thousands of VMAs. Both
families run every op; the name strategy must not change anything a process can see.

What is compared, and when:

- after every op: its result (ret, errno, child number, address) in both families, and in the
  process that ran it the VMAs around the op's range(s) -- the VMA before, every VMA overlapping,
  the VMA after (mremap: around the old and the new range; ranges are looked at over at most
  their first 64 pages, which only the prctl's EINVAL cases exceed) -- each as (start, end,
  vm_flags, pgoff, file, whether it has an anon_vma, chain length, name string); that process's
  VMA count and resident pages, and after a fork the child's VMA count;
- every K ops and at the end: every process's VMAs in full (the same views), then the invariant
  checker (:func:`anonvma.model.check.check_machine`) on both families; at the end also the
  /proc/PID/maps text of every process;
- at the end (and before every restart, see below) every process exits: name objects still
  live then are leaked names.

An op that raises anything but OSError in either family (:class:`~anonvma.model.names.UseAfterFree`,
the model's KASAN, among others) is an invariant break at that op. A break or difference found
only every K ops is traced to the op that caused it by running the same ops again from the last
restart with the checks after every op. Each break and disagreement is counted and printed with
its op; then both families start afresh (a broken state would report itself at every later
check). The generator's ``maps`` ops are not run one by one: the soak compares maps itself.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from anonvma.difftest.generate import HOT, OpStream
from anonvma.model.bugs import FIXED, HistoricBugs
from anonvma.model.check import check_machine
from anonvma import releases
from anonvma.model.mm import Machine, Mm
from anonvma.model.names import REFCOUNT_MAX, make_strategy
from anonvma.model.replay import HANDLERS, UML_COMMIT_LIMIT_PAGES, UML_TASK_SIZE, Processes
from anonvma.model.vma import PAGE_SIZE, Vma
from anonvma.ops import ARENA_BASE, FILE_SIZE, OPS, Op, err, script_text

#: Default window of the soak's addresses: 1 GiB of the arena (262,144 pages). Seed 1 reaches
#: 54,325 VMAs over four processes in a million ops, and of the range ops outside the hot pages
#: 11.5% meet a VMA by op 200,000-300,000 (a 4 GiB window: as many VMAs, 3.0% meet one).
SOAK_WINDOW = 1 << 30
#: Ranges are compared over at most this many bytes from their start.
COMPARE_SPAN = 64 * PAGE_SIZE
STRATEGIES = ("refcount", "strdup")
#: The switches of :class:`~anonvma.model.bugs.HistoricBugs`, as the command line spells them.
BUG_SWITCHES = {"no-transient-name-ref": "no_transient_name_ref",
                "no-saturation-guard": "no_saturation_guard"}

#: What the soak compares of one VMA (see the module docstring).
View = tuple[int, int, int, int, int, Optional[str], bool, int, Optional[str]]


def view(vma: Vma) -> View:
    """What must not depend on the name strategy: everything but the name object's identity."""
    file = vma.file
    name = vma.anon_name
    return (vma.start, vma.end, vma.flags, vma.pgoff, vma.anon_pgoff,
            None if file is None else f"{file.path}:{file.inode}", vma.anon_vma is not None,
            vma.anon_chain, None if name is None else name.name)


@dataclass(frozen=True)
class SoakConfig:
    """One soak run.

    :ivar ops: how many ops to run (fork and exit included, ``maps`` ops not counted).
    :ivar seed: the generator's seed: the same seed runs the same ops.
    :ivar linux: the release (or series) of both families.
    :ivar check_every: K: full comparison and invariant checker every K ops.
    :ivar window: addresses lie in [0, window) of the arena (bytes).
    :ivar hot_pages: most ops aim at the first ``hot_pages`` pages, where VMAs split and merge.
    :ivar bugs: historic bugs to reintroduce (to show that the soak catches them).
    :ivar refcount_max: REFCOUNT_MAX of both families (lowered to reach saturation).
    """

    ops: int
    seed: int = 0
    linux: str = releases.DEFAULT
    check_every: int = 1000
    window: int = SOAK_WINDOW
    hot_pages: int = HOT
    bugs: HistoricBugs = FIXED
    refcount_max: int = REFCOUNT_MAX


@dataclass
class SoakEvent:
    """An invariant break or a strategy disagreement, with the op that caused it.

    :ivar kind: ``"break"`` or ``"disagreement"``.
    :ivar number: the op's number in the run (1-based).
    :ivar op: the op as a script line.
    :ivar what: what went wrong.
    :ivar script: the ops from the last restart up to this one (only with ``keep_scripts``).
    """

    kind: str
    number: int
    op: str
    what: str
    script: Optional[str] = None

    def describe(self) -> str:
        label = "invariant break" if self.kind == "break" else "strategy disagreement"
        return f"op {self.number}: {label}: {self.what}\n    op: {self.op}"


@dataclass
class SoakReport:
    """The figures of a run; :meth:`last_line` is what ``anonvma soak`` ends with."""

    ops: int = 0
    breaks: int = 0
    leaked: int = 0
    disagreements: int = 0
    seconds: float = 0.0
    peak_vmas: int = 0
    peak_procs: int = 0
    checks: int = 0
    restarts: int = 0
    events: list[SoakEvent] = field(default_factory=list)

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    @property
    def clean(self) -> bool:
        return not (self.breaks or self.leaked or self.disagreements)

    def last_line(self) -> str:
        return (f"{self.ops} ops, {self.breaks} invariant breaks, {self.leaked} leaked names, "
                f"{self.disagreements} strategy disagreements, {self.ops_per_second:.0f} ops/s, "
                f"peak {self.peak_vmas} VMAs and {self.peak_procs} processes")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ops_per_second"] = round(self.ops_per_second, 1)
        out["seconds"] = round(self.seconds, 2)
        out["events"] = [{k: v for k, v in asdict(e).items() if k != "script"} for e in self.events]
        return out


class Family:
    """One process tree of one name strategy: its machine and its processes by script number."""

    def __init__(self, strategy: str, cfg: SoakConfig) -> None:
        self.machine = Machine(make_strategy(strategy, cfg.refcount_max), cfg.linux, file_size=FILE_SIZE,
                               commit_limit_pages=UML_COMMIT_LIMIT_PAGES, bugs=cfg.bugs)
        self.procs: dict[int, Mm] = {0: Mm(machine=self.machine, task_size=UML_TASK_SIZE)}
        self.state = Processes(self.procs)

    def run(self, op: Op) -> dict[str, Any]:
        """The op's result; OSError is its errno, anything else escapes (an invariant break)."""
        try:
            return HANDLERS[op.op](self.procs[op.pid], op.args, self.state)
        except OSError as exc:
            return err(exc)

    def vma_count(self) -> int:
        return sum(mm.index.count for mm in self.procs.values())

    def exit_all(self) -> int:
        """Exit every process; the number of name objects still live afterwards (leaked)."""
        for pid in sorted(self.procs):
            self.procs[pid].exit()
        self.procs.clear()
        return len(self.machine.strategy.live)


def around(mm: Mm, lo: int, hi: int) -> list[View]:
    """The views of the VMA before [lo, hi), every VMA overlapping it, and the VMA after."""
    index = mm.index
    hi = min(hi, lo + COMPARE_SPAN)
    inside = index.intersecting(lo, hi) if hi > lo else []
    if inside:
        before, after = index.prev_of(inside[0]), index.next_of(inside[-1])
    else:
        before, after = index.around(lo)
    out = [view(v) for v in inside]
    if before is not None:
        out.insert(0, view(before))
    if after is not None:
        out.append(view(after))
    return out


def op_ranges(op: Op) -> list[tuple[int, int]]:
    """The address ranges an op works on (absolute addresses)."""
    a = op.args
    if op.op == "touch":
        lo = ARENA_BASE + a["addr"] - a["addr"] % PAGE_SIZE
        return [(lo, lo + PAGE_SIZE)]
    if "addr" not in a:
        return []
    lo = ARENA_BASE + a["addr"]
    if op.op != "mremap":
        return [(lo, lo + a["len"])]
    out = [(lo, lo + max(a["len"], a["new_len"]))]
    if a.get("new_addr") is not None:
        nlo = ARENA_BASE + a["new_addr"]
        out.append((nlo, nlo + a["new_len"]))
    return out


def local_difference(op: Op, a: Family, b: Family) -> Optional[str]:
    """What differs between the families after ``op`` near its range (None: nothing)."""
    pa, pb = a.procs.get(op.pid), b.procs.get(op.pid)
    if (pa is None) != (pb is None):
        return f"process {op.pid} is alive in one family only"
    if pa is None or pb is None:
        return None  # it exited in both
    if pa.index.count != pb.index.count:
        return f"process {op.pid} has {pa.index.count} VMAs (refcount) and {pb.index.count} (strdup)"
    if len(pa.ptes) != len(pb.ptes):
        return f"process {op.pid} has {len(pa.ptes)} resident pages (refcount) and {len(pb.ptes)} (strdup)"
    for lo, hi in op_ranges(op):
        va, vb = around(pa, lo, hi), around(pb, lo, hi)
        if va != vb:
            return f"VMAs around {lo:#x}-{hi:#x} differ:\n      refcount {va}\n      strdup   {vb}"
    if op.op == "fork":
        child = a.state.next_pid - 1
        ca, cb = a.procs.get(child), b.procs.get(child)
        if ca is None or cb is None or ca.index.count != cb.index.count:
            return f"fork child {child} differs"
    return None


def full_difference(a: Family, b: Family, maps_text: bool = False) -> Optional[str]:
    """What differs between the families' processes in full (None: nothing)."""
    if sorted(a.procs) != sorted(b.procs):
        return f"processes differ: {sorted(a.procs)} (refcount), {sorted(b.procs)} (strdup)"
    for pid, pa in a.procs.items():
        pb = b.procs[pid]
        va, vb = [view(v) for v in pa.index], [view(v) for v in pb.index]
        if va != vb:
            i = next((i for i, (x, y) in enumerate(zip(va, vb, strict=False)) if x != y),
                     min(len(va), len(vb)))
            return (f"process {pid}: VMA {i} differs: {va[i] if i < len(va) else None} (refcount), "
                    f"{vb[i] if i < len(vb) else None} (strdup)")
        if maps_text and pa.maps() != pb.maps():
            return f"process {pid}: /proc/PID/maps texts differ"
    return None


def check_both(a: Family, b: Family) -> Optional[str]:
    """The invariant checker on both families (None: both hold)."""
    for name, fam in zip(STRATEGIES, (a, b), strict=True):
        try:
            check_machine(fam.machine)
        except Exception as exc:  # noqa: BLE001 - every failure of the checker is a finding
            return f"{name}: {type(exc).__name__}: {exc}"
    return None


class Epoch:
    """Both families from a fresh start, and the ops they run from a saved generator state."""

    def __init__(self, cfg: SoakConfig, rng_state: Any, first: int) -> None:
        self.cfg = cfg
        self.rng_state = rng_state
        self.first = first  # number of this epoch's first op in the run
        rng = random.Random()
        rng.setstate(rng_state)
        self.stream = OpStream(rng, window=cfg.window, hot_pages=cfg.hot_pages)
        self.a, self.b = Family("refcount", cfg), Family("strdup", cfg)
        self.rng = rng

    def ops(self) -> Iterator[Op]:
        """The op stream (without ``maps`` ops), checked as a script line would be."""
        n = 0
        while True:
            for obj in self.stream.next_ops():
                kind = obj["op"]
                if kind == "maps":
                    continue
                n += 1
                yield Op(kind, obj.get("pid", 0), OPS[kind](obj, n), n)

    def step(self, op: Op) -> Optional[tuple[str, str]]:
        """Run ``op`` on both families and compare: None, or (kind, what went wrong)."""
        results = []
        for name, fam in zip(STRATEGIES, (self.a, self.b), strict=True):
            try:
                results.append(fam.run(op))
            except Exception as exc:  # noqa: BLE001 - a model fault is a finding, not a crash
                return "break", f"{name}: {type(exc).__name__}: {exc}"
        if results[0] != results[1]:
            return "disagreement", f"results differ: {results[0]} (refcount), {results[1]} (strdup)"
        what = local_difference(op, self.a, self.b)
        return None if what is None else ("disagreement", what)

    def periodic(self, maps_text: bool = False) -> Optional[tuple[str, str]]:
        """The full comparison and the invariant checker."""
        what = full_difference(self.a, self.b, maps_text)
        if what is not None:
            return "disagreement", what
        what = check_both(self.a, self.b)
        return None if what is None else ("break", what)


def trace(cfg: SoakConfig, rng_state: Any, upto: int, clean: int) -> tuple[Optional[Op], str, str]:
    """Run an epoch's first ``upto`` ops again, checking fully after each one past ``clean``:
    the op that first breaks or disagrees, and what; or None if none does (a flaky fault)."""
    epoch = Epoch(cfg, rng_state, 1)
    for op in epoch.ops():
        found = epoch.step(op)
        if found is None and op.lineno > clean:
            found = epoch.periodic()
        if found is not None:
            return op, found[0], found[1]
        if op.lineno >= upto:
            break
    return None, "", ""


def epoch_script(cfg: SoakConfig, rng_state: Any, upto: int) -> str:
    """An epoch's first ``upto`` ops as an ops script (for ``anonvma replay`` or run_ops)."""
    epoch = Epoch(cfg, rng_state, 1)
    ops = []
    for op in epoch.ops():
        ops.append(op)
        if op.lineno >= upto:
            break
    return script_text(ops)


def finish(epoch: Epoch, report: SoakReport, out: Any, number: int, broken: bool) -> None:
    """Every process of both families exits; name objects still live then have leaked. An
    exit that raises is a break, unless the epoch already ended in one (its state is broken)."""
    for name, fam in zip(STRATEGIES, (epoch.a, epoch.b), strict=True):
        try:
            leaked = fam.exit_all()
        except Exception as exc:  # noqa: BLE001 - a model fault is a finding, not a crash
            if not broken:
                event = SoakEvent("break", number, "(exit of every process)",
                                  f"{name}: {type(exc).__name__}: {exc}")
                report.breaks += 1
                report.events.append(event)
                if out is not None:
                    print(event.describe(), file=out, flush=True)
            continue
        report.leaked += leaked
        if leaked and out is not None:
            print(f"op {number}: {name}: {leaked} name objects live after every process exited: "
                  f"{sorted(o.name for o in fam.machine.strategy.live)[:5]!r}", file=out, flush=True)


def soak(cfg: SoakConfig, out: Any = None, keep_scripts: bool = False, progress: Any = None,
         progress_every: float = 10.0) -> SoakReport:
    """Run ``cfg.ops`` ops on both families; print each event to ``out`` (a text stream) as found.

    :param keep_scripts: keep, with each event, the ops from the last restart up to its op.
    :param progress: a text stream for a progress line every ``progress_every`` seconds.
    """
    report = SoakReport()
    started = time.perf_counter()
    next_progress = started + progress_every
    rng_state = random.Random(cfg.seed).getstate()
    number = 0
    while number < cfg.ops:
        epoch = Epoch(cfg, rng_state, number + 1)
        clean = 0  # ops of this epoch known to pass the periodic checks
        event: Optional[SoakEvent] = None
        for op in epoch.ops():
            number += 1
            found = epoch.step(op)
            bad: Optional[Op] = op if found is not None else None
            if found is None and (op.lineno % cfg.check_every == 0 or number == cfg.ops):
                report.checks += 1
                found = epoch.periodic(maps_text=number == cfg.ops)
                if found is not None:
                    traced, kind, what = trace(cfg, epoch.rng_state, op.lineno, clean)
                    if traced is not None:
                        bad, found = traced, (kind, what)
                    else:
                        bad = op
                        found = (found[0], found[1] + " (not reproduced op by op)")
                else:
                    clean = op.lineno
            if found is None:
                vmas = epoch.a.vma_count()
                if vmas > report.peak_vmas:
                    report.peak_vmas = vmas
                if len(epoch.a.procs) > report.peak_procs:
                    report.peak_procs = len(epoch.a.procs)
                if number >= cfg.ops:
                    break
                if progress is not None and not number & 1023 and time.perf_counter() > next_progress:
                    now = time.perf_counter()
                    next_progress = now + progress_every
                    print(f"op {number} of {cfg.ops}: {vmas} VMAs in {len(epoch.a.procs)} processes, "
                          f"{number / (now - started):.0f} ops/s", file=progress, flush=True)
                continue
            assert bad is not None
            kind, what = found
            event = SoakEvent(kind, epoch.first + bad.lineno - 1, bad.to_json(), what,
                              epoch_script(cfg, epoch.rng_state, bad.lineno) if keep_scripts else None)
            break
        if event is not None:
            report.events.append(event)
            if event.kind == "break":
                report.breaks += 1
            else:
                report.disagreements += 1
            if out is not None:
                print(event.describe(), file=out, flush=True)
        finish(epoch, report, out, number, broken=event is not None and event.kind == "break")
        if event is not None and number < cfg.ops:
            report.restarts += 1
            rng_state = epoch.rng.getstate()
    report.ops = number
    report.seconds = time.perf_counter() - started
    return report


def _soak(args: argparse.Namespace) -> int:
    bugs = HistoricBugs(**{BUG_SWITCHES[b]: True for b in args.bug})
    cfg = SoakConfig(ops=args.ops, seed=args.seed, linux=releases.resolve(args.linux).name,
                     check_every=args.check_every, window=args.window, bugs=bugs,
                     refcount_max=args.refcount_max)
    print(f"anonvma soak: {cfg.ops} ops, seed {cfg.seed}, Linux {cfg.linux}, refcount and strdup "
          f"families, checks every {cfg.check_every} ops"
          + (f"; bugs reintroduced: {', '.join(args.bug)}" if args.bug else "")
          + (f"; REFCOUNT_MAX {cfg.refcount_max}" if cfg.refcount_max != REFCOUNT_MAX else ""),
          flush=True)
    report = soak(cfg, sys.stdout, keep_scripts=args.save is not None,
                  progress=sys.stderr if args.progress else None)
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
        for event in report.events:
            if event.script is not None:
                path = args.save / f"soak-seed{cfg.seed}-op{event.number}.jsonl"
                path.write_text(event.script)
                print(f"saved {path}")
    if args.json is not None:
        args.json.write_text(json.dumps({"config": {**asdict(cfg), "bugs": asdict(cfg.bugs)},
                                         "report": report.as_dict(), "command": sys.argv}, indent=2) + "\n")
    print(report.last_line())
    return 0 if report.clean else 1


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def _window(value: str) -> int:
    n = int(value, 0)
    if n < 64 * PAGE_SIZE or n % PAGE_SIZE or n > 1 << 36:
        raise argparse.ArgumentTypeError("must be a page multiple from 256 KiB to 64 GiB")
    return n


def register(sub: Any) -> None:
    p = sub.add_parser("soak", help="random syscalls, forks and exits on both name strategies in "
                                    "lockstep, checked as they go",
                       description="Random syscalls, forks and exits (the difftest mix, addresses spread "
                                   "wide) on a refcount and a strdup family of the model in lockstep: "
                                   "each op's result and the VMAs around its range compared after every "
                                   "op, every process and the invariant checker every K ops and at the "
                                   "end, leaked names counted after every process exits. Ends with the "
                                   "line 'N ops, B invariant breaks, L leaked names, D strategy "
                                   "disagreements, R ops/s, peak V VMAs and P processes'; exit status 0 "
                                   "only when B, L and D are 0.",
                       epilog="examples:\n  anonvma soak --ops 100000 --seed 1 --progress\n"
                              "  anonvma soak --ops 20000 --seed 1 --bug no-transient-name-ref --save found")
    p.add_argument("--ops", type=_positive, required=True, metavar="N", help="ops to run")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the generator's seed (default 0)")
    releases.add_linux_option(p, "the release whose rules the model follows")
    p.add_argument("--check-every", type=_positive, default=1000, metavar="K",
                   help="compare every process in full and run the invariant checker every K ops "
                        "(default 1000)")
    p.add_argument("--window", type=_window, default=SOAK_WINDOW, metavar="BYTES",
                   help=f"addresses spread over this much of the arena (default {SOAK_WINDOW:#x})")
    p.add_argument("--progress", action="store_true", help="a progress line on stderr every 10 s")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the figures as JSON")
    p.add_argument("--save", type=Path, default=None, metavar="DIR",
                   help="write, for each break or disagreement, the ops that led to it as a script")
    p.add_argument("--bug", action="append", choices=sorted(BUG_SWITCHES), default=[],
                   help="reintroduce a historic bug, to see the soak catch it (repeatable)")
    p.add_argument("--refcount-max", type=_positive, default=REFCOUNT_MAX, metavar="N",
                   help="REFCOUNT_MAX of the model (lowered to reach refcount saturation)")
    p.set_defaults(func=_soak)

