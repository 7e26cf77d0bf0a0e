"""Run many ops scripts on several oracle guests at once, surviving guests that die or hang.

Each guest is one boot of the kernel running ``python -m anonvma.oracle.run DIR`` (the guest
side, :func:`anonvma.oracle.run.guest_main`). The host feeds it small chunks of scripts as
files ``DIR/in.0``, ``DIR/in.1``, ... (each written whole, then renamed into place; hostfs shows
a new name to the guest at once) and reads one outcome line per script from ``DIR/out`` as the
guest writes it. A guest always has its next chunk waiting, so it never idles, and work goes to
whichever guest is free, so a slow guest delays nothing. ``DIR/end`` tells it to halt.

The host touches ``DIR/alive`` while it runs scripts; an idle guest whose host stopped touching
it for two minutes (killed, or busy elsewhere) halts by itself, and the pool boots a new one
when it next has work.

A guest that halts with scripts unanswered, or answers nothing for ``script_timeout`` seconds,
is killed with its process group; the script it was running is reported as lost (an outcome
with ``lost=True``), the rest of its scripts go to the other guests, and a new guest is booted
when one is needed.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Deque, Iterable, Iterator, Optional, Sequence

from anonvma.ops import Op, script_text
from anonvma.oracle.boot import Guest, OracleBootError, appended

#: How long the host sleeps between looks at its guests.
POLL_SECONDS = 0.02
#: Guests that end without answering anything, in a row, before the kernel is declared unbootable.
MAX_FAILED_BOOTS = 3


#: A script and its index in the caller's sequence.
_Work = tuple[int, Sequence[Op]]


@dataclass(frozen=True)
class ScriptOutcome:
    """One script's run in the oracle: its result objects, or why it could not run.

    :ivar error: ``None`` when the script ran; else the runner's message (a process died, ...).
    :ivar lost: the guest died or hung while running this script (it was killed and replaced).
    """

    results: Optional[list[dict[str, Any]]]
    error: Optional[str] = None
    lost: bool = False


@dataclass
class _Slot:
    """One running guest and the scripts it has been given but not yet answered, in order."""

    guest: Guest
    dir: Path
    cpu: int
    fed: Deque[_Work] = field(default_factory=collections.deque)
    chunks: int = 0
    sizes: Deque[int] = field(default_factory=collections.deque)  # scripts of each chunk not yet read
    reading: int = 0
    offset: int = 0
    answered: int = 0
    last_progress: float = field(default_factory=time.monotonic)


class GuestPool:
    """Up to ``jobs`` guests of ``kernel`` running scripts; use as a context manager (leaving it
    halts or kills every guest and removes their files).

    :param jobs: guests at once (default: the CPU count).
    :param script_timeout: seconds a guest with work may go without answering (boot included)
        before it counts as hung.
    :param chunk: scripts per file fed to a guest.
    :param log: where to say that a guest died, hung or was restarted.
    :param cpus: the CPUs guests are pinned to, the first preferred (default: every CPU this
        process may use, lowest first); two pools at once give each other different first CPUs.
    """

    def __init__(self, kernel: Path, jobs: Optional[int] = None, script_timeout: float = 120.0,
                 chunk: int = 4, mem: str = "512M", log: Optional[Callable[[str], None]] = None,
                 cpus: Optional[Sequence[int]] = None) -> None:
        self.kernel = kernel
        self.cpus = list(cpus) if cpus else sorted(os.sched_getaffinity(0))
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self.script_timeout = script_timeout
        self.chunk = max(1, chunk)
        self.mem = mem
        self.log = log or (lambda msg: print(f"anonvma oracle: {msg}", file=sys.stderr, flush=True))
        self._tmp = tempfile.TemporaryDirectory(prefix="anonvma-pool-")
        self._slots: list[_Slot] = []
        # guests of a pool nobody closed are killed when it is collected or at interpreter exit
        self._finalizer = weakref.finalize(self, _kill_guests, self._slots)
        self._booted = 0
        self.boots = 0
        self.lost = 0
        self._last_beat = 0.0

    def __enter__(self) -> GuestPool:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close(graceful=kind is None)

    def close(self, graceful: bool = True) -> None:
        """Halt every guest (``graceful``: ask, wait a little, then kill) and remove the files."""
        try:
            if graceful:
                for slot in self._slots:
                    (slot.dir / "end").touch()
                deadline = time.monotonic() + 10
                for slot in self._slots:
                    slot.guest.halted(max(0.0, deadline - time.monotonic()))
        finally:
            _kill_guests(self._slots)
            self._tmp.cleanup()

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_beat > 1.0:
            self._last_beat = now
            for slot in self._slots:
                (slot.dir / "alive").touch()

    def _boot(self) -> _Slot:
        self._booted += 1
        self.boots += 1
        work = Path(self._tmp.name) / f"guest{self._booted}"
        work.mkdir()
        (work / "alive").touch()
        # each guest on a CPU of its own while there are CPUs enough (see Guest's cpu)
        cpu = min(self.cpus, key=lambda c: (sum(slot.cpu == c for slot in self._slots),
                                            self.cpus.index(c)))
        guest = Guest(self.kernel, [sys.executable, "-m", "anonvma.oracle.run", str(work)], mem=self.mem,
                      cpu=cpu)
        return _Slot(guest, work, cpu)

    def _feed(self, slot: _Slot, scripts: list[_Work]) -> None:
        name = f"in.{slot.chunks}"
        slot.chunks += 1
        tmp = slot.dir / f".{name}.tmp"
        tmp.write_text(json.dumps([[i, script_text(ops)] for i, ops in scripts]))
        tmp.rename(slot.dir / name)
        slot.fed.extend(scripts)
        slot.sizes.append(len(scripts))

    def _answers(self, slot: _Slot) -> Iterator[tuple[int, ScriptOutcome]]:
        """The outcome lines the guest has finished writing since the last look."""
        while slot.sizes:
            path = slot.dir / f"out.{slot.reading}"
            data = appended(path, slot.offset)
            slot.offset += len(data)
            for line in data.splitlines():
                obj = json.loads(line)
                index, _ = slot.fed.popleft()
                if obj["i"] != index:
                    raise OracleBootError(f"guest answered script {obj['i']} where {index} was next")
                slot.answered += 1
                slot.sizes[0] -= 1
                slot.last_progress = time.monotonic()
                yield index, ScriptOutcome(obj.get("results"), obj.get("error"))
            if slot.sizes[0]:
                return
            slot.sizes.popleft()
            path.unlink()  # every answer of the chunk is in: the file exists and is complete
            slot.reading += 1
            slot.offset = 0

    def _fail(self, slot: _Slot, why: str) -> tuple[tuple[int, ScriptOutcome], list[_Work]]:
        """Kill a dead or hung guest: the outcome of the script it lost, and the scripts to requeue."""
        slot.guest.kill()
        console = slot.guest.read("console").strip().splitlines()[-5:]
        stderr = slot.guest.read("stderr").strip().splitlines()[-5:]
        slot.guest.close()
        self._slots.remove(slot)
        index, _ = slot.fed.popleft()
        self.lost += 1
        msg = (f"lost: the guest {why} while running this script (killed and replaced); "
               f"console: {' | '.join(console)}; stderr: {' | '.join(stderr)}")
        self.log(f"script {index}: {msg}")
        return (index, ScriptOutcome(None, msg, lost=True)), list(slot.fed)

    def run(self, scripts: Iterable[Sequence[Op]]) -> Iterator[tuple[int, ScriptOutcome]]:
        """Run every script; yield ``(index, outcome)`` as each finishes (any order), the index
        counting from 0 in ``scripts``, which is read lazily.

        :raises OracleBootError: guests keep ending before answering anything (the kernel does
            not boot or the guest side cannot start).
        """
        done = False
        try:
            yield from self._run(scripts)
            done = True
        finally:
            if not done:  # abandoned half-way: guests still owing answers would answer the next run
                for slot in [slot for slot in self._slots if slot.fed]:
                    slot.guest.close()
                    self._slots.remove(slot)

    def _run(self, scripts: Iterable[Sequence[Op]]) -> Iterator[tuple[int, ScriptOutcome]]:
        source = iter(enumerate(scripts))
        requeued: Deque[_Work] = collections.deque()
        exhausted = False
        failed_boots = 0

        def take(n: int) -> list[_Work]:
            nonlocal exhausted
            got: list[_Work] = []
            while len(got) < n and requeued:
                got.append(requeued.popleft())
            while len(got) < n and not exhausted:
                nxt = next(source, None)
                if nxt is None:
                    exhausted = True
                else:
                    got.append(nxt)
            return got

        while True:
            # Feed: every guest keeps its running chunk and one more; boot guests while there is work.
            for slot in self._slots:
                if len(slot.fed) <= self.chunk:
                    work = take(self.chunk)
                    if work:
                        self._feed(slot, work)
            while len(self._slots) < self.jobs:
                work = take(self.chunk)
                if not work:
                    break
                slot = self._boot()
                self._slots.append(slot)
                self._feed(slot, work)
            if not any(slot.fed for slot in self._slots) and not requeued and exhausted:
                return
            time.sleep(POLL_SECONDS)
            self._heartbeat()
            for slot in list(self._slots):
                halted = slot.guest.halted()
                for answer in self._answers(slot):
                    yield answer
                if (slot.dir / "ready").exists():
                    failed_boots = 0
                why = ("halted" if halted else
                       f"answered nothing for {self.script_timeout:.0f} s"
                       if slot.fed and time.monotonic() - slot.last_progress > self.script_timeout else None)
                if why is None:
                    continue
                if not slot.fed:  # halted with nothing owed: just drop it
                    slot.guest.close()
                    self._slots.remove(slot)
                    continue
                if not (slot.dir / "ready").exists():  # never came up: no script to blame
                    failed_boots += 1
                    tail = slot.guest.read("console")[-1500:] + slot.guest.read("stderr")[-1500:]
                    slot.guest.close()
                    self._slots.remove(slot)
                    if failed_boots >= MAX_FAILED_BOOTS:
                        raise OracleBootError(f"{MAX_FAILED_BOOTS} guests of {self.kernel} in a row "
                                              f"{why} before starting; last one:\n{tail}")
                    self.log(f"a guest {why} before starting; booting another")
                    requeued.extendleft(reversed(slot.fed))
                    continue
                lost, rest = self._fail(slot, why)
                requeued.extendleft(reversed(rest))
                yield lost


def _kill_guests(slots: list[_Slot]) -> None:
    """Kill every guest of ``slots`` (and empty it)."""
    while slots:
        slots.pop().guest.close()


def run_all(pool: GuestPool, scripts: Sequence[Sequence[Op]]) -> list[ScriptOutcome]:
    """Every script's outcome, in script order."""
    out: list[Optional[ScriptOutcome]] = [None] * len(scripts)
    for index, outcome in pool.run(scripts):
        out[index] = outcome
    assert all(o is not None for o in out)
    return [o for o in out if o is not None]
