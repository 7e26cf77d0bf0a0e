"""procmaps on live processes: a child with known mappings, errors naming the pid, the CLI."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from typing import Any, Iterator

import pytest

from anonvma import procmaps
from anonvma.cli import main

PAGE = os.sysconf("SC_PAGE_SIZE")

CHILD = r"""
import ctypes, json, mmap, os, sys, tempfile
def addr(m):
    return ctypes.addressof(ctypes.c_char.from_buffer(m))
anon = mmap.mmap(-1, 8 * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE)
for i in range(3):
    anon[i * mmap.PAGESIZE] = 1
shared = mmap.mmap(-1, 2 * mmap.PAGESIZE, flags=mmap.MAP_SHARED)
shared[0] = 1
d = tempfile.mkdtemp()
path = os.path.join(d, "mapped file")
with open(path, "wb") as f:
    f.write(b"x" * 4 * mmap.PAGESIZE)
f = open(path, "r+b")
filemap = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
gone = os.path.join(d, "gone")
with open(gone, "wb") as g:
    g.write(b"y" * mmap.PAGESIZE)
g = open(gone, "rb")
gonemap = mmap.mmap(g.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
os.unlink(gone)
print(json.dumps({"anon": addr(anon), "shared": addr(shared), "path": path}), flush=True)
sys.stdin.read()
os.unlink(path); os.rmdir(d)
"""


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


@pytest.fixture
def child():
    with spawned(CHILD) as pid_info:
        yield pid_info


def test_child_mappings_read_back_with_their_kind_perms_and_residency(child):
    pid, info = child
    snap = procmaps.read_pid(pid)
    assert snap.pid == pid and snap.has_smaps and "Rss" in snap.fields
    by_start = {v.start: v for v in snap.vmas}

    anon = by_start[info["anon"]]
    assert (anon.name, anon.kind, anon.perms) == ("", "anonymous", "rw-p")
    assert anon.size == 8 * PAGE // 1024 and anon.rss == 3 * PAGE // 1024 and anon.uss == anon.rss
    assert "wr" in anon.vm_flags

    shared = by_start[info["shared"]]
    assert shared.perms == "rw-s" and shared.kind == "deleted"
    assert shared.name.startswith("/dev/zero") and shared.name.endswith(" (deleted)")

    (filemap,) = [v for v in snap.vmas if v.name == info["path"]]
    assert filemap.kind == "file" and filemap.perms == "r--s" and filemap.inode != 0
    assert filemap.size == 4 * PAGE // 1024

    (gone,) = [v for v in snap.vmas if v.name.endswith("/gone (deleted)")]
    assert gone.kind == "deleted" and gone.perms == "r--p"

    kinds = {g.key for g in procmaps.group(snap.vmas, by="kind")}
    assert {"anonymous", "deleted", "file", "heap", "stack", "special"} <= kinds
    maps = procmaps.read_pid(pid, smaps=False)
    assert [v[:7] for v in maps.vmas] == [v[:7] for v in snap.vmas]


def test_unknown_pid_is_a_process_lookup_error_naming_the_pid():
    pid = 4_000_000  # above the kernel's PID_MAX_LIMIT
    with pytest.raises(procmaps.ProcessNotFoundError) as exc:
        procmaps.read_pid(pid)
    assert isinstance(exc.value, ProcessLookupError) and exc.value.errno == errno.ESRCH
    assert str(pid) in str(exc.value) and exc.value.pid == pid


def test_another_users_process_is_a_permission_error_naming_the_pid():
    if os.geteuid() != 0:
        target = 1
        try:
            procmaps.read_pid(1)
            pytest.skip("pid 1's smaps is readable here")
        except procmaps.ProcessAccessError as err:
            assert err.pid == 1 and "pid 1" in str(err)
            return
    # As root: a child that drops to nobody reads this (root's) process.
    target = os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            procmaps.read_pid(target)
            code = 1
        except procmaps.ProcessAccessError as err:
            os.write(w, f"{err.errno} {err.pid} {err}".encode())
        except BaseException as err:  # noqa: BLE001
            os.write(w, repr(err).encode())
            code = 2
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 1:
        pytest.skip("nobody may read root's smaps here (ptrace restrictions differ)")
    assert os.waitstatus_to_exitcode(status) == 0, out
    code, errpid, message = out.split(" ", 2)
    assert int(code) in (errno.EACCES, errno.EPERM) and int(errpid) == target
    assert f"pid {target}" in message


def test_show_prints_json_totals_of_this_process(capsys):
    assert main(["show", str(os.getpid()), "--json", "--fold"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pid"] == os.getpid() and doc["units"] == "kB" and doc["fold"] is True
    assert doc["total"]["count"] == sum(g["count"] for g in doc["groups"]) == doc["vmas"]
    assert "[heap]" in {g["key"] for g in doc["groups"]}


def test_show_table_fits_the_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    assert main(["show", str(os.getpid()), "--sort", "rss"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 70 for line in lines[1:])
    assert lines[1].split()[:3] == ["COUNT", "SIZE", "RSS"] and lines[-1].endswith("total")


def test_show_csv_by_kind(capsys):
    assert main(["show", str(os.getpid()), "--by", "kind", "--csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("key,kind,count,size,rss,pss,uss")
    # the brk heap may be more than one VMA (UML 6.1 shows two [heap] entries for Debian's python)
    heaps = sum(v.name == "[heap]" for v in procmaps.read_pid(os.getpid(), smaps=False).vmas)
    assert heaps >= 1 and any(line.startswith(f"heap,heap,{heaps},") for line in out)


def test_errors_print_one_line_to_stderr_and_nothing_to_stdout(capsys, tmp_path):
    assert main(["show", "4000000"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "no process with pid 4000000" in err
    bad = tmp_path / "bad.smaps"
    bad.write_text("00400000-00401000 rw-p 00000000 00:00 0 \nSize: x kB\n")
    assert main(["diff", str(bad), str(os.getpid())]) == 1
    out, err = capsys.readouterr()
    assert out == "" and f"{bad}:2:" in err


def test_snapshot_then_diff_against_the_live_process(capsys, tmp_path, child):
    pid, _ = child
    saved = tmp_path / "before.smaps"
    assert main(["snapshot", str(pid), "-o", str(saved)]) == 0
    assert procmaps.read_file(saved).vmas  # a complete smaps, readable back
    capsys.readouterr()
    assert main(["diff", str(saved), str(pid), "--json", "--all"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {c["status"] for c in doc["changes"]} <= {"same", "grew", "shrank", "appeared", "vanished"}
    assert any(c["key"] == "[heap]" for c in doc["changes"])
    assert main(["snapshot", "4000000", "-o", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()


NAMED_CHILD = r"""
import json, mmap, sys
from anonvma import live
from anonvma.live.naming import buffer_span
held = []
for name in ("alpha", "alpha", "beta:7", "beta:8"):
    m = live.named_mmap(3 * mmap.PAGESIZE, name)
    m[0] = 1
    held.append(m)
print(json.dumps([buffer_span(m)[0] for m in held]), flush=True)
sys.stdin.read()
"""


def test_named_child_mappings_are_read_back_and_grouped_by_name():
    from anonvma import live

    if not live.supported():
        pytest.skip("this kernel was built without CONFIG_ANON_VMA_NAME "
                    "(tests/test_oracle_live.py runs this test inside the oracle kernel)")
    with spawned(NAMED_CHILD) as (pid, starts):
        snap = procmaps.read_pid(pid)
    containing = [next(v for v in snap.vmas if v.start <= s < v.end) for s in starts]
    assert [v.name for v in containing] == ["[anon:alpha]", "[anon:alpha]", "[anon:beta:7]", "[anon:beta:8]"]
    assert all(v.kind == "anon_named" for v in containing)
    groups = {g.key: g for g in procmaps.group(snap.vmas, by="name")}
    alpha = groups["[anon:alpha]"]
    assert alpha.size == 6 * PAGE // 1024 and alpha.rss == 2 * PAGE // 1024
    folded = {g.key: g for g in procmaps.group(snap.vmas, by="name", fold_numbers=True)}
    assert folded["[anon:beta:*]"].count == 2 and "[anon:beta:7]" not in folded
