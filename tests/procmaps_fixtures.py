"""Shared by the procmaps tests: the check of a saved fixture folder against its expected.json,
and a spawned child process with known mappings."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import Any, Dict, Iterator, List

from anonvma import procmaps
from anonvma.procmaps import parser as parse_mod

DATA = os.path.join(os.path.dirname(__file__), "data", "procmaps")


def fixture_dirs() -> List[str]:
    return sorted(d for d in os.listdir(DATA) if os.path.isdir(os.path.join(DATA, d)))


def check_fixture(name: str) -> None:
    """Parse a fixture's smaps (and maps, if present) and compare with its expected record."""
    folder = os.path.join(DATA, name)
    with open(os.path.join(folder, "expected.json")) as f:
        expected = json.load(f)
    snap = procmaps.read_file(os.path.join(folder, "smaps"))
    assert snap.has_smaps
    assert len(snap.vmas) == expected["vmas"]
    tot = procmaps.total(procmaps.group(snap.vmas))
    for field, value in expected["total_kb"].items():
        assert getattr(tot, field) == value, field
    counts: Dict[str, int] = {}
    for v in snap.vmas:
        counts[v.name] = counts.get(v.name, 0) + 1
        assert v.size == (v.end - v.start) >> 10 or v.smaps is None or v.smaps.kernel_page_size > 4
    for vname, count in expected["names"].items():
        assert counts.get(vname) == count, vname
    if "kinds" in expected:
        by_kind = {g.key: g.count for g in procmaps.group(snap.vmas, by="kind")}
        assert by_kind == expected["kinds"]
    if "folded" in expected:
        folded = {g.key: g.count for g in procmaps.group(snap.vmas, fold_numbers=True)}
        for key, count in expected["folded"].items():
            assert folded.get(key) == count, key
    for vname, extra in expected.get("extra", {}).items():
        (vma,) = [v for v in snap.vmas if v.name == vname]
        assert [list(e) for e in vma.extra] == extra
    with open(os.path.join(folder, "smaps"), "rb") as f:
        data = f.read()
    slow, _ = parse_mod._parse_lines(data.decode("utf-8", "surrogateescape").split("\n"), name)
    assert list(snap.vmas) == slow  # fast path (if taken) and the obvious path agree
    maps_path = os.path.join(folder, "maps")
    if os.path.exists(maps_path):
        maps = procmaps.read_file(maps_path)
        assert not maps.has_smaps
        assert [(v.start, v.end, v.perms, v.name) for v in maps.vmas] == \
            [(v.start, v.end, v.perms, v.name) for v in snap.vmas]


@contextlib.contextmanager
def spawned(code: str) -> Iterator[tuple[int, Any]]:
    """A Python child running ``code``: (its pid, the JSON line it printed); it ends on leaving."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        yield proc.pid, json.loads(proc.stdout.readline())
    finally:
        proc.stdin.close()
        proc.wait()
        proc.stdout.close()


def memfd_child(name: str, pages: int, touched: int, grow_every: float = 0.0, fork: bool = False) -> str:
    """Code for :func:`spawned`: a child mapping a memfd ``name`` (maps: ``/memfd:NAME (deleted)``)
    of ``pages`` pages, shared, with the first ``touched`` resident.

    ``grow_every``: a thread then touches one more page every that many seconds. ``fork``: a
    grandchild touches the same pages too before the JSON line ``{"pids": [child, grandchild]}``.
    """
    return f"""
import json, mmap, os, sys, threading, time
fd = os.memfd_create({name!r})
os.ftruncate(fd, {pages} * mmap.PAGESIZE)
m = mmap.mmap(fd, {pages} * mmap.PAGESIZE, flags=mmap.MAP_SHARED)
for i in range({touched}):
    m[i * mmap.PAGESIZE] = 1
pids = [os.getpid()]
if {fork!r}:
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # touches the same pages (fork copies no PTEs of shared mappings), then waits
        os.close(w)
        sum(m[i * mmap.PAGESIZE] for i in range({touched}))
        os.write(ready_w, b"x")
        os.read(r, 1)
        os._exit(0)
    os.read(ready_r, 1)
    pids.append(pid)
def grow():
    for i in range({touched}, {pages}):
        m[i * mmap.PAGESIZE] = 1
        time.sleep({grow_every!r})
if {grow_every!r}:
    threading.Thread(target=grow, daemon=True).start()
print(json.dumps({{"pids": pids}}), flush=True)
sys.stdin.read()
"""


def as_nobody(fn: Any) -> tuple[int, str]:
    """Run ``fn() -> (exit code, text)`` in a forked child that dropped to nobody (65534).

    Returns its exit code and text (a traceback's repr, exit 2, if it raised).
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 2
        try:
            os.setgid(65534)
            os.setuid(65534)
            code, text = fn()
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            text = repr(err)
        os.write(w, text.encode())
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text
