"""Random syscall sequences on two process families, one per name strategy, kept in lockstep.

The refcount family and the strdup family must give the same result or errno for every call and
the same /proc/PID/maps and smaps after every step; the invariant checker runs on both after every
step; when every process has exited, no name object is left alive. Addresses are small, page
granular offsets in a 16-page arena, sometimes unaligned, sometimes crossing holes or running far
past the arena; names come from a small pool including "", None and invalid ones.
"""

from __future__ import annotations

import errno
from typing import Any, Callable, Optional

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from model_helpers import P, pg

from anonvma.model import Mm
from anonvma.model.check import check_machine
from anonvma.model.names import REFCOUNT_MAX

ARENA_PAGES = 16
MAX_PROCS = 4
U64 = (1 << 64) - 1

pids = st.integers(0, MAX_PROCS - 1)  # taken modulo the number of live processes
pages = st.integers(0, ARENA_PAGES - 1)
# mostly page-aligned; st.one_of picks a branch uniformly, so repeats weight it
addrs = st.one_of(
    pages.map(pg), pages.map(pg), pages.map(pg), pages.map(pg),
    st.tuples(pages, st.sampled_from([1, 100, P - 1])).map(lambda t: pg(t[0]) + t[1]),
)
lengths = st.one_of(
    st.integers(1, 8).map(lambda n: n * P), st.integers(1, 8).map(lambda n: n * P),
    st.integers(1, 8).map(lambda n: n * P),
    st.tuples(st.integers(0, 8), st.integers(0, P - 1)).map(lambda t: t[0] * P + t[1]),
    st.sampled_from([U64, U64 + 1 - P, 1 << 40]),
)
names = st.sampled_from(["a", "b", "a", "b", "", None, None, " glibc: malloc", "n" * 79, "n" * 80,
                         "bad$", "x\x01"])
prots = st.sampled_from(["rw", "r", "", "rwx"])
advices = st.sampled_from(["dontneed", "dontfork", "dofork", "wipeonfork", "keeponfork"])


def _outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except OSError as exc:
        assert exc.errno is not None
        return errno.errorcode[exc.errno]
    return "OK"


class TwoStrategies(RuleBasedStateMachine):
    """procs[i] = (refcount Mm, strdup Mm) of live process i."""

    def __init__(self) -> None:
        super().__init__()
        self.procs: list[tuple[Mm, Mm]] = []

    @initialize(max_map_count=st.sampled_from([6, 12, 65530]),
                refcount_max=st.sampled_from([2, 3, REFCOUNT_MAX]),
                layout=st.lists(st.tuples(pages, st.integers(1, 8), prots), max_size=4))
    def start(self, max_map_count: int, refcount_max: int,
              layout: list[tuple[int, int, str]]) -> None:
        self.procs = [(Mm("refcount", max_map_count=max_map_count, refcount_max=refcount_max),
                       Mm("strdup", max_map_count=max_map_count))]
        # most runs start from a mapped arena, so renames hit VMAs more often than holes
        for page, npages, prot in [(0, ARENA_PAGES, "rw"), *layout]:
            addr, length = pg(page), npages * P
            self._both(0, lambda mm, a=addr, n=length, p=prot: mm.mmap(a, n, p))

    def _pair(self, pid: int) -> tuple[Mm, Mm]:
        return self.procs[pid % len(self.procs)]

    def _both(self, pid: int, op: Callable[[Mm], Any]) -> None:
        ref, dup = self._pair(pid)
        got = (_outcome(lambda: op(ref)), _outcome(lambda: op(dup)))
        assert got[0] == got[1], got

    @rule(pid=pids, addr=pages, npages=st.integers(1, 6), prot=prots,
          kind=st.sampled_from(["anon", "anon", "anon", "shared", "file"]), pgoff=st.integers(0, 8))
    def mmap(self, pid: int, addr: int, npages: int, prot: str, kind: str, pgoff: int) -> None:
        file: Optional[str] = "f" if kind == "file" else None
        self._both(pid, lambda mm: mm.mmap(pg(addr), npages * P, prot, shared=kind == "shared",
                                           file=file, pgoff=pgoff))

    @rule(pid=pids, addr=addrs, length=lengths)
    def munmap(self, pid: int, addr: int, length: int) -> None:
        self._both(pid, lambda mm: mm.munmap(addr, length))

    @rule(pid=pids, addr=addrs, length=lengths, prot=prots)
    def mprotect(self, pid: int, addr: int, length: int, prot: str) -> None:
        self._both(pid, lambda mm: mm.mprotect(addr, length, prot))

    @rule(pid=pids, addr=addrs, length=lengths, advice=advices)
    def madvise(self, pid: int, addr: int, length: int, advice: str) -> None:
        self._both(pid, lambda mm: mm.madvise(addr, length, advice))

    @rule(pid=pids, addr=addrs, length=lengths, name=names)
    def set_anon_name(self, pid: int, addr: int, length: int, name: Optional[str]) -> None:
        self._both(pid, lambda mm: mm.set_anon_name(addr, length, name))

    @rule(pid=pids, page=pages, write=st.booleans())
    def fault(self, pid: int, page: int, write: bool) -> None:
        self._both(pid, lambda mm: mm.fault(pg(page) + 8, write))

    @rule(pid=pids)
    def fork(self, pid: int) -> None:
        if len(self.procs) < MAX_PROCS:
            ref, dup = self._pair(pid)
            self.procs.append((ref.fork(), dup.fork()))

    @rule(pid=pids)
    def exit(self, pid: int) -> None:
        if len(self.procs) > 1:
            ref, dup = self.procs.pop(pid % len(self.procs))
            ref.exit()
            dup.exit()

    @invariant()
    def same_proc_files_and_invariants_hold(self) -> None:
        if not self.procs:
            return
        for ref, dup in self.procs:
            assert ref.maps() == dup.maps()
            assert ref.smaps() == dup.smaps()
            assert ref.map_count <= ref.max_map_count + 1
        check_machine(self.procs[0][0].machine)
        check_machine(self.procs[0][1].machine)

    def teardown(self) -> None:
        if not self.procs:
            return
        machines = (self.procs[0][0].machine, self.procs[0][1].machine)
        for ref, dup in self.procs:
            ref.exit()
            dup.exit()
        for machine in machines:
            check_machine(machine)
            assert machine.strategy.total.live == 0 and not machine.strategy.live


TwoStrategies.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_refcount_and_strdup_families_agree_step_by_step = TwoStrategies.TestCase
