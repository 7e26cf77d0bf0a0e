"""One read path: every read of a memory map goes through the procmaps parser, and the choice
between VMA records and counts-only is made in one function (procmaps.registered.reader_for)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import anonvma
from anonvma import procmaps
from anonvma.procmaps import own, registered
from anonvma.procmaps.parser import ChunkParser, ChunkTally
from anonvma.procmaps.records import Snapshot, Tally

SRC = Path(anonvma.__file__).parent
#: The modules that may open a /proc maps file: the reader of other processes and of this one.
READERS = {SRC / "procmaps" / "source.py", SRC / "procmaps" / "own.py"}


def _string_constants(path: Path) -> list[str]:
    return [n.value for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_module_reads_its_own_maps_by_hand():
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if p not in READERS
                 and any(s.startswith("/proc/self/maps") for s in _string_constants(p))]
    assert offenders == []


def test_own_maps_are_parsed_records_of_this_process():
    vmas = own.vmas()
    assert vmas and all(v.start < v.end for v in vmas)
    assert sorted(vmas, key=lambda v: v.start) == vmas
    here = id(vmas)  # an object on this interpreter's heap: some VMA holds it
    assert any(v.start <= here < v.end and "rw" in v.perms for v in vmas)
    assert len(vmas) == own.maps_bytes().count(b"\n")  # one record per line


def test_the_lean_worker_loads_the_parser_and_not_the_readers_of_other_processes():
    code = ("import sys; import anonvma.live.handlers, anonvma.bench.worker;"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('anonvma.procmaps'))))")
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    out = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert "anonvma.procmaps.own" in out and "anonvma.procmaps.parser" in out
    assert not {"anonvma.procmaps.source", "anonvma.procmaps.registered",
                "anonvma.procmaps.system"} & set(out)


@pytest.mark.parametrize("name", procmaps.__all__)
def test_every_public_name_of_the_package_is_the_function_or_class_not_a_submodule(name):
    assert not isinstance(getattr(procmaps, name), types.ModuleType)


def test_records_are_read_only_where_needed():
    assert isinstance(registered.reader_for("x", None), ChunkTally)
    assert isinstance(registered.reader_for("x", None, records=True), ChunkParser)


def test_read_map_gives_counts_or_records_as_asked_for_a_live_process():
    counted = registered.read_map("self", registry=False)
    records = registered.read_map("self", records=True, registry=False)
    assert isinstance(counted, Tally) and isinstance(records, Snapshot)
    assert counted.pid == records.pid == os.getpid() and counted.has_smaps and records.has_smaps
    assert abs(counted.vmas - len(records.vmas)) <= 4  # the interpreter mapped a few between


def test_read_map_of_a_saved_file(tmp_path):
    saved = tmp_path / "x.smaps"
    saved.write_bytes(procmaps.read_pid_bytes(os.getpid()))
    counted = registered.read_map(str(saved))
    records = registered.read_map(str(saved), records=True)
    assert isinstance(counted, Tally) and isinstance(records, Snapshot)
    assert counted.vmas == len(records.vmas) == procmaps.tally(str(saved)).vmas
