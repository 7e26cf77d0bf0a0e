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
