"""The fork experiment in a real process: run on the host kernel or inside a UML oracle kernel.

``python3 -m anonvma.bench.worker CONFIG.json OUT.json`` builds the layout of
:mod:`anonvma.bench.layout` with mmap (MAP_FIXED_NOREPLACE), names every VMA with prctl when the
cell asks for names, writes the scenario's pages, then times ``os.fork()`` (parent side: dup_mmap)
and ``os.fork()`` + ``waitpid`` (the child ``_exit``s at once: fork+reap, like the seed).
Stdlib, :mod:`anonvma.live.syscalls` and the maps parser (:mod:`anonvma.procmaps.own`) only,
so it loads little in a guest.

CONFIG: ``{"counts": [...], "namings": [...], "scenarios": [...], "repeats": R, "warmup": W,
"slack": S}``. Counts above what fits under vm.max_map_count (minus the VMAs the process already
has, minus ``slack`` for the interpreter's own allocations) are lowered, and the result says so.
OUT: ``{"kernel": ..., "naming_supported": bool, "max_map_count": ..., "cells": [...]}``; each
cell has ``count`` (VMAs created), ``map_count`` (all VMAs of the process at fork time),
``fork_ms`` and ``fork_exit_ms`` samples, and ``status`` (``ok``, ``unsupported``, or an error).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from anonvma.bench.layout import BASE, PAGE_SIZE, SCENARIOS, VMA_BYTES, vma_addr, vma_name, vma_prot
from anonvma.live import syscalls as sc
from anonvma.procmaps import own

#: fork_ms and fork_exit_ms samples of one cell.
Samples = Dict[str, List[float]]

_PROT = {"rw": sc.PROT_READ | sc.PROT_WRITE, "rwx": sc.PROT_READ | sc.PROT_WRITE | sc.PROT_EXEC}


def _progress(msg: str) -> None:
    print(f"[worker] {msg}", file=sys.stderr, flush=True)


def map_count() -> int:
    """Every VMA of this process, as /proc/self/maps lists them (counted, not parsed into
    records: the process being measured allocates nothing it would fork)."""
    return own.count()


def max_map_count() -> int:
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except OSError:
        return 65530


def naming_supported() -> bool:
    """Probe PR_SET_VMA_ANON_NAME on a scratch page (EINVAL: kernel without CONFIG_ANON_VMA_NAME)."""
    addr = sc.mmap(0, PAGE_SIZE, sc.PROT_READ | sc.PROT_WRITE, sc.MAP_PRIVATE | sc.MAP_ANONYMOUS)
    try:
        sc.prctl_set_vma_anon_name(addr, PAGE_SIZE, b"probe")
        return True
    except OSError as err:
        if err.errno == errno.EINVAL:
            return False
        raise
    finally:
        sc.munmap(addr, PAGE_SIZE)


def build(count: int, named: bool) -> None:
    """mmap ``count`` VMAs of the layout (and name them)."""
    flags = sc.MAP_PRIVATE | sc.MAP_ANONYMOUS | sc.MAP_FIXED_NOREPLACE
    mmap, prctl = sc.mmap, sc.prctl_set_vma_anon_name
    for i in range(count):
        addr = vma_addr(i)
        got = mmap(addr, VMA_BYTES, _PROT[vma_prot(i)], flags)
        if got != addr:  # kernels before 4.17 treat MAP_FIXED_NOREPLACE as a hint
            raise OSError(errno.EEXIST, f"mmap at {addr:#x} returned {got:#x}")
        if named:
            prctl(addr, VMA_BYTES, vma_name(i).encode())


def populate(count: int, first_page: int, pages: int) -> None:
    """Write pages [first_page, pages) of every VMA (write faults; non-zero data)."""
    if pages <= first_page:
        return
    memset = ctypes.memset
    off, size = first_page * PAGE_SIZE, (pages - first_page) * PAGE_SIZE
    for i in range(count):
        memset(vma_addr(i) + off, 0x5A, size)


def fork_once() -> tuple[int, int]:
    """Fork a child that exits at once and reap it: (ns until fork returned, ns until reaped)."""
    clock = time.perf_counter_ns
    t0 = clock()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    t1 = clock()
    os.waitpid(pid, 0)
    return t1 - t0, clock() - t0


def time_forks(repeats: int, warmup: int) -> Dict[str, List[float]]:
    """Fork ``warmup + repeats`` times; the child exits at once. Times in ms."""
    fork_ms: List[float] = []
    fork_exit_ms: List[float] = []
    for k in range(warmup + repeats):
        fork_ns, fork_exit_ns = fork_once()
        if k >= warmup:
            fork_ms.append(fork_ns / 1e6)
            fork_exit_ms.append(fork_exit_ns / 1e6)
    return {"fork_ms": fork_ms, "fork_exit_ms": fork_exit_ms}


class Twin:
    """A second process that holds the named layout while this one holds the unnamed one, so
    that their forks can alternate: whatever the machine does meanwhile (another guest, the host
    tearing down the last child) falls on both alike. Forked before either layout is built; it
    obeys one-line commands on a pipe and answers each with one line."""

    def __init__(self) -> None:
        to_twin, self._from_us = os.pipe()
        self._to_us, from_twin = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the twin's side, measured by its answers
            os.close(self._from_us)
            os.close(self._to_us)
            code = 0
            try:
                _serve_twin(os.fdopen(to_twin, "r"), os.fdopen(from_twin, "w", buffering=1))
            except BaseException:
                code = 1
            os._exit(code)
        os.close(to_twin)
        os.close(from_twin)
        self._out = os.fdopen(self._from_us, "w", buffering=1)
        self._in = os.fdopen(self._to_us, "r")

    def call(self, *words: object) -> List[str]:
        """Send one command; its answer's words.

        :raises OSError: the twin answered with an error (its errno and message).
        """
        self._out.write(" ".join(map(str, words)) + "\n")
        answer = self._in.readline().split()
        if not answer:
            raise OSError(errno.EPIPE, "the twin process died")
        if answer[0] == "error":
            raise OSError(int(answer[1]), " ".join(answer[2:]))
        return answer

    def close(self) -> None:
        try:
            self._out.write("quit\n")
            self._out.close()
        except OSError:
            pass
        self._in.close()
        os.waitpid(self.pid, 0)


def _serve_twin(commands: Any, answers: Any) -> None:  # pragma: no cover - runs in the twin
    """The twin's loop: build, populate, fork, unmap, map_count, quit."""
    for line in commands:
        words = line.split()
        try:
            if words[0] == "quit":
                return
            if words[0] == "build":
                build(int(words[1]), words[2] == "1")
                answers.write("ok\n")
            elif words[0] == "populate":
                populate(int(words[1]), int(words[2]), int(words[3]))
                answers.write("ok\n")
            elif words[0] == "fork":
                fork_ns, fork_exit_ns = fork_once()
                answers.write(f"{fork_ns} {fork_exit_ns}\n")
            elif words[0] == "map_count":
                answers.write(f"{map_count()}\n")
            elif words[0] == "unmap":
                sc.munmap(BASE, max(int(words[1]), 1) * VMA_BYTES)
                answers.write("ok\n")
        except OSError as err:
            answers.write(f"error {err.errno or 0} {err.strerror or err}\n")


def time_paired(repeats: int, warmup: int, twin: Twin) -> Tuple[Samples, Samples]:
    """Fork this process and the twin alternately (which goes first alternates too), ``warmup
    + repeats`` times each; (this process's times, the twin's), in ms."""
    ours: Samples = {"fork_ms": [], "fork_exit_ms": []}
    theirs: Samples = {"fork_ms": [], "fork_exit_ms": []}
    for k in range(warmup + repeats):
        for side in ((0, 1) if k % 2 == 0 else (1, 0)):
            if side == 0:
                fork_ns, fork_exit_ns = fork_once()
                into = ours
            else:
                fork_ns, fork_exit_ns = map(int, twin.call("fork"))
                into = theirs
            if k >= warmup:
                into["fork_ms"].append(fork_ns / 1e6)
                into["fork_exit_ms"].append(fork_exit_ns / 1e6)
    return ours, theirs


def _run_paired(config: Dict[str, Any], out: Dict[str, Any], named: str,
                partial: Optional[Callable[[Dict[str, Any]], None]]) -> None:
    """Every (count, scenario) cell of the unnamed layout and the ``named`` one, forked in turn
    (:class:`Twin`); the cells come out as :func:`run`'s do."""
    repeats, warmup = int(config.get("repeats", 10)), int(config.get("warmup", 1))
    slack = int(config.get("slack", 32))
    scenarios = sorted(config["scenarios"], key=lambda s: SCENARIOS[s])
    twin = Twin()
    try:
        for requested in config["counts"]:
            count = min(requested, out["max_map_count"] - map_count() - slack)
            _progress(f"{requested} VMAs ({count} created), naming none and {named} in two "
                      "processes, forked in turn: building")
            cells = {n: {"count_requested": requested, "naming": n} for n in ("none", named)}
            try:
                build(count, False)
                twin.call("build", count, 1)
                done = 0
                for scenario in scenarios:
                    pages = SCENARIOS[scenario]
                    populate(count, done, pages)
                    twin.call("populate", count, done, pages)
                    done = max(done, pages)
                    total, twin_total = map_count(), int(twin.call("map_count")[0])
                    _progress(f"  {scenario}: {warmup}+{repeats} forks of {total} VMAs each, in turn")
                    ours, theirs = time_paired(repeats, warmup, twin)
                    out["cells"].append({**cells["none"], "scenario": scenario, "count": count,
                                         "map_count": total, "status": "ok", "paired": True, **ours})
                    out["cells"].append({**cells[named], "scenario": scenario, "count": count,
                                         "map_count": twin_total, "status": "ok", "paired": True,
                                         **theirs})
                    if partial:
                        partial(out)
            except OSError as err:
                for n in cells:
                    out["cells"].append({**cells[n], "scenario": "*", "count": count,
                                         "status": f"error: {err}"})
            finally:
                sc.munmap(BASE, max(count, 1) * VMA_BYTES)
                twin.call("unmap", count)
    finally:
        twin.close()


def run(config: Dict[str, Any], partial: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Every (count, naming, scenario) cell of ``config``; scenarios populate incrementally."""
    repeats, warmup = int(config.get("repeats", 10)), int(config.get("warmup", 1))
    slack = int(config.get("slack", 32))
    supported = naming_supported()
    limit = max_map_count()
    out: Dict[str, Any] = {"kernel": os.uname().release, "naming_supported": supported,
                           "max_map_count": limit, "python": sys.version.split()[0], "cells": []}
    namings = list(config["namings"])
    if supported and len(namings) == 2 and namings[0] == "none" and config.get("paired", True):
        _run_paired(config, out, namings[1], partial)
        return out
    scenarios = sorted(config["scenarios"], key=lambda s: SCENARIOS[s])
    for requested in config["counts"]:
        for naming in namings:
            named = naming != "none"
            base_cell = {"count_requested": requested, "naming": naming}
            if named and not supported:
                for scenario in scenarios:
                    out["cells"].append({**base_cell, "scenario": scenario, "count": 0, "status":
                                         "unsupported: this kernel has no CONFIG_ANON_VMA_NAME "
                                         "(prctl PR_SET_VMA_ANON_NAME gives EINVAL)"})
                continue
            count = min(requested, limit - map_count() - slack)
            _progress(f"{requested} VMAs ({count} created), naming {naming}: building")
            try:
                build(count, named)
                done = 0
                for scenario in scenarios:
                    pages = SCENARIOS[scenario]
                    populate(count, done, pages)
                    done = max(done, pages)
                    total = map_count()
                    _progress(f"  {scenario}: {warmup}+{repeats} forks of {total} VMAs")
                    cell = {**base_cell, "scenario": scenario, "count": count, "map_count": total,
                            "status": "ok", **time_forks(repeats, warmup)}
                    out["cells"].append(cell)
                    if partial:
                        partial(out)  # a guest that dies later keeps the cells done so far
            except OSError as err:
                out["cells"].append({**base_cell, "scenario": "*", "count": count,
                                     "status": f"error: {err}"})
            finally:
                sc.munmap(BASE, max(count, 1) * VMA_BYTES)
    return out


def serve(total: int, slack: int) -> int:
    """Hold a process of about ``total`` VMAs and fork+reap it on request (``--vs-host``).

    Prints ``ready MAP_COUNT``; then for each ``fork`` line on stdin prints ``FORK_NS FORK_EXIT_NS``.
    """
    count = max(0, min(total, max_map_count() - slack) - map_count())
    build(count, False)
    print(f"ready {map_count()} {count}", flush=True)
    for line in sys.stdin:
        if line.strip() != "fork":
            break
        fork_ns, fork_exit_ns = fork_once()
        print(f"{fork_ns} {fork_exit_ns}", flush=True)
    return 0


def main(argv: List[str]) -> int:
    if len(argv) == 4 and argv[1] == "--serve":
        return serve(int(argv[2]), int(argv[3]))
    if len(argv) != 3:
        print("usage: python3 -m anonvma.bench.worker CONFIG.json OUT.json | --serve TOTAL SLACK",
              file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        config = json.load(f)
    def write(result: Dict[str, Any]) -> None:
        tmp = argv[2] + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f)
        os.replace(tmp, argv[2])

    write(run(config, write))
    _progress(f"wrote {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
