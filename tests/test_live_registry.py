"""Names where the kernel cannot keep them: anonvma's per-process registry, on this machine's kernel.

This kernel lacks CONFIG_ANON_VMA_NAME (the tests skip on one that has it: there the kernel
names memory and the fallback is never used). Real child processes name memory with
``fallback=True``; the real ``anonvma`` command reads them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
from prometheus_client.parser import text_string_to_metric_families

from anonvma import live
from anonvma.cli import main
from anonvma.live import registry, syscalls
from anonvma.procmaps import group, read_pid, total
from anonvma.procmaps.pagemap import PageCounts
from anonvma.procmaps.records import Smaps
from anonvma.procmaps.registered import apportion, split_smaps
from procmaps_fixtures import as_nobody
from registry_helpers import ChildError, Namer

PAGE = os.sysconf("SC_PAGE_SIZE")
KB = PAGE // 1024
NOBODY = 65534

pytestmark = pytest.mark.skipif(live.supported(), reason="this kernel has CONFIG_ANON_VMA_NAME: the "
                                                         "kernel names memory, the fallback is never used")


@pytest.fixture
def run_dir(tmp_path, monkeypatch) -> str:
    """A runtime directory of our own (XDG_RUNTIME_DIR) for the children and the readers."""
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    return str(path)


def anonvma(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """The real command, in this environment (and ``env``)."""
    return subprocess.run([sys.executable, "-m", "anonvma", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def only(run_dir: str) -> Dict[str, str]:
    """The environment that makes a command see the registries of ``run_dir`` alone (not the
    machine's other ones, which other tests and users may be writing)."""
    return {"ANONVMA_REGISTRY_DIR": os.path.join(run_dir, "anonvma")}


def groups_of(pid: int, *extra: str) -> Dict[str, Any]:
    """``anonvma show PID --json``: (the document, key -> group)."""
    out = anonvma("show", str(pid), "--json", *extra)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    return {"doc": doc, "stderr": out.stderr, **{g["key"]: g for g in doc["groups"]}}


THREE = """
cache = live.named_mmap(64 * P, "cache", fallback=True)
for i in range(40):
    cache[i * P] = 1
scratch = syscalls.mmap(0, 16 * P, RW, ANON)
live.set_anon_name(scratch, 16 * P, "scratch", fallback=True)
touch(scratch, 16)
buf = bytearray(33 << 20)  # past glibc's largest mmap threshold (32 MiB): always its own mmap, never [heap]
arena = live.name_buffer(buf, "arena", fallback=True)
buf[:] = b"x" * len(buf)
from anonvma.live.naming import buffer_span
result = {"cache": buffer_span(cache), "scratch": [scratch, 16 * P], "arena": list(arena),
          "path": registry.path()}
"""


@pytest.fixture
def three(run_dir) -> Iterator[tuple]:
    """A child that named three regions (a named_mmap, raw mmap memory, a bytearray's pages)."""
    with Namer() as child:
        yield child, child.run(THREE)


def test_three_registered_regions_are_shown_marked_with_their_exact_sizes(three):
    child, where = three
    assert where["path"].startswith(os.environ["XDG_RUNTIME_DIR"] + "/anonvma/")
    shown = groups_of(child.pid)
    arena_kb = where["arena"][1] // 1024
    for key, size, rss in (("[anon:cache]", 256, 40 * KB), ("[anon:scratch]", 64, 64),
                           ("[anon:arena]", arena_kb, arena_kb)):
        g = shown[key]
        assert (g["registered"], g["estimated"], g["kind"]) == (True, False, "anon_named"), key
        assert (g["size"], g["rss"], g["pss"], g["uss"], g["count"]) == (size, rss, rss, rss, 1), key
    assert {k: v for k, v in shown["doc"]["registry"].items() if k not in ("cut", "parts")} == {
        "path": where["path"], "ranges": 3, "dropped": 0, "why_dropped": {}, "hidden": 0, "estimated": False,
        "saved": False}
    assert not any(g["registered"] for g in shown["doc"]["groups"] if not g["key"].startswith("[anon:"))
    # the registry moves memory between names; it never adds or loses any (PSS and USS are left
    # out: the file pages' shares change while another Python, the reader, maps the same files)
    raw = total(group(read_pid(child.pid, registry=False)))
    assert [shown["doc"]["total"][f] for f in ("size", "rss", "swap")] == [raw.size, raw.rss, raw.swap]
    table = anonvma("show", str(child.pid)).stdout.splitlines()
    assert table[1].startswith("3 of 3 registered ranges shown, marked (registered)")
    assert [line.split()[-2:] for line in table if "[anon:" in line] == [
        [k, "(registered)"] for k in ("[anon:arena]", "[anon:cache]", "[anon:scratch]")]  # by PSS
    assert table[-1].startswith("(registered): named in the process's anonvma registry")
    csv = anonvma("show", str(child.pid), "--csv").stdout.splitlines()
    assert csv[0].endswith(",registered,estimated")
    assert sorted(line.split(",")[0] for line in csv if line.endswith(",true,false")) == [
        "[anon:arena]", "[anon:cache]", "[anon:scratch]"]


def test_procmaps_read_pid_in_python_shows_the_registered_names_as_the_command_does(three):
    child, where = three
    from anonvma import procmaps

    snap = procmaps.read_pid(child.pid)
    assert snap.registry is not None and snap.registry.path == where["path"]
    assert snap.registry.names == {"[anon:cache]", "[anon:scratch]", "[anon:arena]"}
    mine = {g.key: g for g in procmaps.group(snap)}
    shown = groups_of(child.pid)
    for key in snap.registry.names:
        assert mine[key].registered and (mine[key].size, mine[key].rss) == (shown[key]["size"],
                                                                            shown[key]["rss"])
    for counted in (procmaps.tally(child.pid), procmaps.read_tally(child.pid)):
        assert {g.key for g in procmaps.group(counted) if g.registered} == snap.registry.names
    assert procmaps.read(str(child.pid)).registry is not None
    kernel = procmaps.read_pid(child.pid, registry=False)
    assert kernel.registry is None and not any(v.name.startswith("[anon:") for v in kernel.vmas)
    assert procmaps.tally(child.pid, registry=False).registry is None


def test_munmap_drops_the_registration_though_the_process_never_said_so(three):
    child, where = three
    child.run("syscalls.munmap(scratch, 16 * P)")
    assert "scratch" in [e[2] for e in child.run("result = entries()")]  # the process did not say
    shown = groups_of(child.pid)
    assert "[anon:scratch]" not in shown and shown["[anon:cache]"]["registered"]
    assert shown["doc"]["registry"]["dropped"] == 1
    head = anonvma("show", str(child.pid)).stdout.splitlines()[1]
    assert head.startswith("2 of 3 registered ranges shown") and \
        "1 dropped (unmapped or moved away (munmap, mremap))" in head


@pytest.mark.parametrize("replacement, why", [
    ("fd = os.memfd_create('other'); os.ftruncate(fd, 16 * P); "
     "syscalls.mmap(scratch, 16 * P, RW, syscalls.MAP_PRIVATE | syscalls.MAP_FIXED, fd)", "replaced"),
    ("syscalls.mmap(scratch, 16 * P, RW, syscalls.MAP_SHARED | syscalls.MAP_ANONYMOUS | syscalls.MAP_FIXED)",
     "replaced"),
    ("syscalls.mmap(scratch, 16 * P, syscalls.PROT_READ, ANON | syscalls.MAP_FIXED)", "mprotected"),
    ("syscalls.mremap(scratch, 16 * P, 16 * P, 1 | 2, syscalls.mmap(0, 16 * P, RW, ANON))", "unmapped"),
    ("syscalls.mprotect(scratch + 4 * P, 4 * P, syscalls.PROT_READ)", "mprotected"),
], ids=["file", "shared-anonymous", "read-only-anonymous", "moved-by-mremap", "mprotect"])
def test_memory_replaced_or_moved_is_never_attributed_to_the_old_name_and_says_why(three, replacement, why):
    child, _ = three
    child.run(replacement)
    assert "scratch" in [e[2] for e in child.run("result = entries()")]  # the process did not say
    shown = groups_of(child.pid)
    assert "[anon:scratch]" not in shown and shown["doc"]["registry"]["dropped"] == 1
    assert shown["doc"]["registry"]["why_dropped"] == {why: 1}
    head = anonvma("show", str(child.pid)).stdout.splitlines()[1]
    assert f"1 dropped ({registry.GONE[why]})" in head


def test_closing_a_named_mmap_drops_its_name_before_another_mapping_can_land_there(three):
    child, where = three
    addr, length = where["cache"]
    again = child.run(f"cache.close(); result = syscalls.mmap({addr}, {length}, RW, ANON | "
                      "syscalls.MAP_FIXED_NOREPLACE); touch(result, 4)")
    assert again == addr  # the same range, the same permissions: maps alone could not tell
    assert "cache" not in [e[2] for e in child.run("result = entries()")]
    assert "[anon:cache]" not in groups_of(child.pid)


PARTIAL = """
base = syscalls.mmap(0, 48 * P, RW, ANON)
touch(base, 5)                      # pages 0-4 before the name
touch(base + 16 * P, 10)            # pages 16-25 named and written
touch(base + 26 * P, 6, write=False)  # pages 26-31 named, only read: the zero page, not counted
live.set_anon_name(base + 16 * P, 16 * P, "middle", fallback=True)
result = base
"""


def test_a_name_on_part_of_a_vma_is_measured_from_pagemap_not_prorated(run_dir):
    with Namer() as child:
        base = child.run(PARTIAL)
        shown = groups_of(child.pid)
        middle = shown["[anon:middle]"]
        assert (middle["size"], middle["rss"], middle["pss"], middle["uss"]) == (64, 40, 40, 40)
        assert (middle["registered"], middle["estimated"]) == (True, False)
        by_vma = groups_of(child.pid, "--by", "none")["doc"]
        rows = {g["key"].split(" ")[0]: g for g in by_vma["groups"]}
        named = rows[f"{base + 16 * PAGE:x}-{base + 32 * PAGE:x}"]
        assert named["key"].endswith(" [anon:middle]") and named["rss"] == 40 and named["registered"]
        before = next(g for k, g in rows.items() if k.endswith(f"-{base + 16 * PAGE:x}"))
        assert before["rss"] >= 5 * KB and not before["registered"]  # pages 0-4, and any neighbour's
        assert by_vma["total"]["rss"] == total(group(read_pid(child.pid, registry=False))).rss
        kernel = len(read_pid(child.pid, registry=False).vmas)  # the child is idle: its map does not change
        assert shown["doc"]["vmas"] == by_vma["vmas"] == kernel  # three parts of one VMA are one VMA
        assert (shown["doc"]["registry"]["cut"], shown["doc"]["registry"]["parts"]) == (1, 3)
        assert by_vma["total"]["count"] == kernel + 2  # the table lists the parts
        head = anonvma("show", str(child.pid)).stdout.splitlines()
        assert f": {kernel} VMAs, " in head[0] and "1 VMAs cut into 3 parts by name" in head[1]


def test_a_snapshot_keeps_registered_names_marked_and_reads_back_as_show_showed_it(run_dir, tmp_path):
    """A VMA cut in three by one name: the saved file has the three parts, the registered one
    with Android's Name: line and an Anonvma: mark (src/anonvma/procmaps/saved.py)."""
    with Namer() as child:
        base = child.run(PARTIAL)
        saved = tmp_path / "partial.smaps"
        made = anonvma("snapshot", str(child.pid), "-o", str(saved))
        assert made.returncode == 0, made.stderr
        kernel = len(read_pid(child.pid, registry=False).vmas)
        assert made.stdout == (f"saved {kernel} VMAs of pid {child.pid} to {saved}, with the names of "
                               "its anonvma registry (1 VMA named, marked registered)\n")
        text = saved.read_text()
        part = f"{base + 16 * PAGE:08x}-{base + 32 * PAGE:08x} rw-p 00000000 00:00 0"
        at = text.index(part + " ")
        assert text[at:].splitlines()[1:4] == ["Name:           [anon:middle]",
                                               "Anonvma:        registered part 2/3",
                                               "Size:                 64 kB"]
        live_doc, file_doc = groups_of(child.pid), groups_of(str(saved))
        for doc in (live_doc, file_doc):
            g = doc["[anon:middle]"]
            assert (g["size"], g["rss"], g["registered"], g["estimated"]) == (64, 40, True, False)
        assert file_doc["doc"]["vmas"] == live_doc["doc"]["vmas"] == kernel
        assert file_doc["doc"]["registry"] == {
            "path": str(saved), "ranges": 1, "dropped": 0, "why_dropped": {}, "hidden": 0,
            "estimated": False, "cut": 1, "parts": 3, "saved": True}
        head = anonvma("show", str(saved)).stdout.splitlines()[1]
        assert head.startswith("1 VMA named by the process's anonvma registry when saved (anonvma "
                               "snapshot), marked (registered), not by the kernel")
        # the kernel's maps has no room for a mark: saved as printed, and the command says so
        maps = tmp_path / "partial.maps"
        made = anonvma("snapshot", str(child.pid), "--maps", "-o", str(maps))
        assert made.stdout.endswith("; without the 1 name of its anonvma registry: maps has no room to "
                                    "mark them (save smaps, without --maps, to keep them)\n")
        assert "[anon:" not in maps.read_text()


def test_names_on_the_heap_are_kept_but_shown_as_heap_as_the_kernel_does(run_dir):
    with Namer() as child:
        child.run("small = bytearray(3 * P); live.name_buffer(small, 'on-heap', fallback=True)")
        assert [e[2] for e in child.run("result = entries()")] == ["on-heap"]
        shown = groups_of(child.pid)
        assert "[anon:on-heap]" not in shown and not shown["[heap]"]["registered"]
        assert shown["doc"]["registry"]["hidden"] == 1
        head = anonvma("show", str(child.pid)).stdout.splitlines()[1]
        assert head.startswith("0 of 1 registered ranges shown")
        assert "1 on [heap]/[stack], shown as such" in head


SHARED = """
base = syscalls.mmap(0, 32 * P, RW, ANON)
touch(base, 32)
live.set_anon_name(base, 16 * P, "halves", fallback=True)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.read(r, 1)
    os._exit(0)
os.close(r)
keep_pipe = w
result = pid
"""


def test_pages_shared_with_a_fork_are_measured_exactly_with_frame_numbers_as_root(run_dir):
    with Namer() as child:
        grandchild = child.run(SHARED)
        try:
            g = groups_of(child.pid)["[anon:halves]"]
            assert (g["rss"], g["shared"], g["uss"], g["pss"], g["estimated"]) == (64, 64, 0, 32, False)
            # the forked child has the names too (the kernel copies them on fork), in its own file
            assert groups_of(grandchild)["[anon:halves]"]["registered"]
            own = registry.file_name(registry.identity(grandchild))
            assert os.path.exists(os.path.join(run_dir, "anonvma", own))
        finally:
            child.run("os.close(keep_pipe); os.waitpid(pid, 0)")


def _nobody_namer(ready_w: int, done_r: int, done_w: int) -> None:  # pragma: no cover - a child
    """In a forked child: become nobody, name part of a VMA whose pages are shared with a fork
    and part of whose pages are the zero page, report the address, wait, leave."""
    code = 1
    try:
        os.close(done_w)  # so that the parent closing its end is the end
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: setuid made us undumpable,
        os.environ.pop("XDG_RUNTIME_DIR", None)  # and so unreadable to nobody's readers
        rw, anon = syscalls.PROT_READ | syscalls.PROT_WRITE, syscalls.MAP_PRIVATE | syscalls.MAP_ANONYMOUS
        base = syscalls.mmap(0, 32 * PAGE, rw, anon)
        for i in range(32):
            if i % 4 == 3:
                ctypes.string_at(base + i * PAGE, 1)  # the zero page
            else:
                ctypes.memset(base + i * PAGE, 1, 1)
        live.set_anon_name(base, 16 * PAGE, "nobodys", fallback=True)
        forked = os.fork()
        if forked == 0:
            os.read(done_r, 1)
            os._exit(0)
        os.write(ready_w, json.dumps([os.getpid(), base]).encode() + b"\n")
        os.read(done_r, 1)
        os.waitpid(forked, 0)  # its file too is stale when the parent sees this one gone
        code = 0
    finally:
        os._exit(code)


@contextlib.contextmanager
def nobody_namer(clean: bool = True) -> Iterator[List[int]]:
    """A process of nobody's that named memory shared with its own fork: [pid, base]. Its
    registry is in /tmp/anonvma-65534; the files it leaves (it ends with _exit) are stale, and
    removed after it (``clean``) by nobody's own ``anonvma registry clean``."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        _nobody_namer(ready_w, done_r, done_w)
    os.close(ready_w)
    os.close(done_r)
    try:
        with os.fdopen(ready_r) as f:
            line = f.readline()
        assert line, "the nobody child failed"
        yield json.loads(line)
    finally:
        os.close(done_w)
        os.waitpid(pid, 0)
        if clean:
            _clean_as_nobody()


def _clean_as_nobody() -> str:
    """``anonvma registry clean`` as nobody, whose stale files only nobody may remove (root
    never does); its output."""
    def clean() -> tuple:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["registry", "clean"])
        return code, out.getvalue()
    code, text = as_nobody(clean)
    assert code == 0, text
    return text


def _show_json(pid: int) -> tuple:
    """Run ``anonvma show PID --json`` in this process: (exit code, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["show", str(pid), "--json"])
    return code, out.getvalue() + err.getvalue()


def test_a_non_root_owner_reads_its_own_registry_and_marks_what_pagemap_cannot_tell(run_dir):
    """Without frame numbers, a shared page and the zero page look alike: estimated, and said."""
    with nobody_namer() as (pid, base):
        code, text = as_nobody(lambda: _show_json(pid))
        assert code == 0, text
        doc = json.loads(text)
        g = {x["key"]: x for x in doc["groups"]}["[anon:nobodys]"]
        assert (g["registered"], g["estimated"], g["size"]) == (True, True, 64)
        assert {x["key"]: x for x in doc["groups"]}[""]["estimated"]  # the rest of its VMA too
        # root sees frame numbers: the zero pages are known, the same memory is exact
        exact = groups_of(pid)["[anon:nobodys]"]
        assert (exact["estimated"], exact["rss"], exact["pss"], exact["shared"]) == (False, 48, 24, 48)


def test_root_trusts_another_users_registry_in_that_users_directory(run_dir):
    with nobody_namer() as (pid, _):
        shown = groups_of(pid)
        assert shown["[anon:nobodys]"]["registered"] and shown["stderr"] == ""


def test_show_all_diff_export_and_record_show_registered_names(three, tmp_path):
    child, where = three
    pid = str(child.pid)
    every = json.loads(anonvma("show", "--all", "--match", "^\\[anon:", "--json").stdout)
    cache = {g["key"]: g for g in every["groups"]}["[anon:cache]"]
    assert cache["registered"] and cache["processes"] >= 1 and cache["rss"] >= 40 * KB
    table = anonvma("show", "--all", "--match", "^\\[anon:cache\\]$").stdout.splitlines()
    assert any(line.endswith("[anon:cache] (registered)") for line in table)
    assert anonvma("show", pid, "--fold", "--json").returncode == 0
    saved = tmp_path / "before.smaps"
    made = anonvma("snapshot", pid, "-o", str(saved))
    assert made.returncode == 0 and ", with the names of its anonvma registry (" in made.stdout
    # the names were there all along: the snapshot keeps them, marked, and nothing appeared
    named = ("--match", "^\\[anon:")
    diff = anonvma("diff", str(saved), pid, "--all", *named)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "A: 3 VMAs named by the process's anonvma registry when saved (anonvma snapshot)" in diff.stdout
    assert "B: 3 of 3 registered ranges shown" in diff.stdout
    line = next(x for x in diff.stdout.splitlines() if "[anon:cache]" in x)
    assert line.split()[0] == "same" and line.endswith("[anon:cache] (registered)")
    changes = {c["key"]: c for c in json.loads(anonvma("diff", str(saved), pid, "--all", "--json",
                                                       *named).stdout)["changes"]}
    assert set(changes) == {"[anon:cache]", "[anon:scratch]", "[anon:arena]"}
    for c in changes.values():
        assert c["status"] == "same" and c["before"]["registered"] and c["after"]["registered"]
    rows = anonvma("diff", str(saved), pid, "--all", "--csv", *named).stdout.splitlines()
    assert rows[0].endswith(",registered,estimated")
    assert next(r for r in rows if r.startswith("[anon:cache],")).endswith(",true,false")
    prom = tmp_path / "anonvma.prom"
    assert anonvma("export", "--textfile", str(prom), pid, "--per-process").returncode == 0
    got = {(s.name, s.labels.get("name")): s.value for f in text_string_to_metric_families(prom.read_text())
           for s in f.samples}
    assert got[("anonvma_pss_bytes", "[anon:cache]")] == 40 * PAGE
    assert got[("anonvma_registered", "[anon:cache]")] == 1
    assert got[("anonvma_process_registered", "[anon:cache]")] == 1
    assert ("anonvma_registered", "[anonymous]") not in got
    assert ("anonvma_estimated", "[anon:cache]") not in got
    rec = tmp_path / "rec.jsonl"
    assert anonvma("record", pid, "--duration", "0.1", "--interval", "1", "-o", str(rec)).returncode == 0
    sample = json.loads(rec.read_text().splitlines()[1])
    assert {g["key"]: g["registered"] for g in sample["groups"]}["[anon:cache]"] is True


def _plant(run_dir: str, ident: registry.Identity, content: bytes) -> str:
    """Write a registry file for the process ``ident`` by hand."""
    folder = os.path.join(run_dir, "anonvma")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, registry.file_name(ident))
    with open(path, "wb") as f:
        f.write(content)
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize("case", ["corrupt", "another-process", "another-user", "others-may-write",
                                  "symlink", "bad-entry"])
def test_an_untrustworthy_registry_is_ignored_with_one_warning_line(run_dir, case):
    with Namer() as child:
        addr = child.run("result = syscalls.mmap(0, 4 * P, RW, ANON); touch(result, 4)")
        me = registry.identity(child.pid)
        good = registry.encode(me, 0, [registry.Entry(addr, addr + 4 * PAGE, "planted", "rw-p")])
        content = {
            "corrupt": b'{"anonvma_registry": 1, "pid": ',
            "another-process": registry.encode(me._replace(starttime=me.starttime + 1), 0,
                                               [registry.Entry(addr, addr + PAGE, "planted", "rw-p")]),
            "bad-entry": good.replace(b'"planted"', b'"bad$name"'),
        }.get(case, good)
        path = _plant(run_dir, me, content)
        if case == "another-user":
            os.chown(path, NOBODY, NOBODY)
        elif case == "others-may-write":
            os.chmod(path, 0o666)
        elif case == "symlink":
            real = path + ".real"
            os.rename(path, real)
            os.symlink(real, path)
        out = anonvma("show", str(child.pid))
        assert out.returncode == 0 and "planted" not in out.stdout and "(registered)" not in out.stdout
        lines = out.stderr.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(f"anonvma show: warning: ignored anonvma registry {path}: ")
        assert lines[0].endswith("; never trusted")
        why = {"corrupt": ": corrupt: not JSON", "another-process": "it claims pid",
               "another-user": "it belongs to uid 65534, but the process runs as uid 0",
               "others-may-write": "others may write it", "symlink": "cannot be opened",
               "bad-entry": "corrupt: entry 0"}[case]
        assert why in lines[0]
        assert os.path.exists(path)  # never trusted, never removed either: someone should look


def _dead() -> registry.Identity:
    """The identity of a process that has exited (its pid may be reused: then its start time differs)."""
    gone = subprocess.Popen(["sleep", "60"])
    ident = registry.identity(gone.pid)
    gone.kill()
    gone.wait()
    return ident


def test_readers_leave_a_dead_processs_file_and_registry_clean_removes_only_it(three, tmp_path):
    child, where = three
    run_dir = os.environ["XDG_RUNTIME_DIR"]
    ident = _dead()
    here = registry.namespace()
    dead = _plant(run_dir, ident, registry.encode(ident, 0, [], here))
    elsewhere = _dead()
    other = _plant(run_dir, elsewhere, registry.encode(
        elsewhere, 0, [], here._replace(pid_ns=(here.pid_ns[0], here.pid_ns[1] + 1))))
    for reader in (["show", "--all", "--match", "^$", "--by", "process"], ["show", str(child.pid)],
                   ["export", "--all", "--textfile", str(tmp_path / "x.prom")]):
        out = anonvma(*reader)
        assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
        assert all(os.path.exists(p) for p in (dead, other, where["path"])), reader
    dry = anonvma("registry", "clean", "--dry-run", env=only(run_dir))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f"would remove {dead}: pid {ident.pid} has exited",
        "1 stale registry file would be removed (--dry-run: nothing removed); 2 other files left alone"]
    assert os.path.exists(dead)
    out = anonvma("registry", "clean", env=only(run_dir))
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.splitlines() == [f"removed {dead}: pid {ident.pid} has exited",
                                       "1 stale registry file removed; 2 other files left alone"]
    assert not os.path.exists(dead)
    assert os.path.exists(other) and os.path.exists(where["path"])  # another namespace's; a live one
    again = anonvma("registry", "clean", env=only(run_dir))
    assert again.stdout == "0 stale registry files removed; 2 other files left alone\n"


@pytest.mark.parametrize("written", ["without a namespace", "in another boot", "in another pid namespace"])
def test_the_file_of_a_dead_process_from_elsewhere_is_never_removed(run_dir, written):
    """Its pid was another namespace's: nothing here proves that process gone."""
    ident = _dead()
    here = registry.namespace()
    assert here is not None
    ns = {"without a namespace": None, "in another boot": here._replace(boot_id="another-boot"),
          "in another pid namespace": here._replace(pid_ns=(here.pid_ns[0], here.pid_ns[1] + 1))}[written]
    path = _plant(run_dir, ident, registry.encode(ident, 0, [], ns))
    out = anonvma("show", "--all", "--match", "^$", "--by", "process")
    assert out.returncode == 0 and "warning" not in out.stderr
    out = anonvma("registry", "clean", env=only(run_dir))
    assert out.stdout == "0 stale registry files removed; 1 other file left alone\n"
    assert os.path.exists(path)


def _unshare_or_skip() -> List[str]:
    """``unshare --pid --fork --mount-proc``, if it works here (root, and no sandbox forbidding it)."""
    argv = ["unshare", "--pid", "--fork", "--mount-proc"]
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) (util-linux) for a reader in another PID namespace")
    if os.geteuid() != 0:
        pytest.skip("needs root for unshare --pid --mount-proc")
    tried = subprocess.run([*argv, "true"], capture_output=True, text=True, timeout=30)
    if tried.returncode != 0:
        pytest.skip(f"unshare --pid --fork --mount-proc fails here: {tried.stderr.strip()}")
    return argv


#: In the unshared reader's own mount namespace, hide the machine's other registries (of other
#: tests and users) behind empty tmpfs mounts: only this test's files are at stake.
HIDE_OTHERS = ('for d in /tmp/anonvma-* /run/user; do [ -d "$d" ] && mount -t tmpfs none "$d"; done; '
               'exec "$@"')


def test_a_reader_in_another_pid_namespace_removes_no_registry(three, tmp_path):
    """The issue's loss: ``unshare --pid --fork --mount-proc anonvma show --all`` sees no host
    pid, and took every registry for a dead process's; ``registry clean`` there neither."""
    argv = _unshare_or_skip()
    child, where = three
    run_dir = os.environ["XDG_RUNTIME_DIR"]
    ident = _dead()
    dead = _plant(run_dir, ident, registry.encode(ident, 0, [], registry.namespace()))
    prom = str(tmp_path / "x.prom")
    for reader in (["show", "--all"], ["show", "--all", "--json"], ["export", "--all", "--textfile", prom],
                   ["registry", "clean"]):
        out = subprocess.run([*argv, "sh", "-c", HIDE_OTHERS, "sh", sys.executable, "-m", "anonvma", *reader],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert os.path.exists(where["path"]) and os.path.exists(dead), reader
    shown = groups_of(child.pid)
    assert shown["[anon:cache]"]["registered"] and shown["[anon:arena]"]["registered"]
    # back in the namespace that wrote it, the dead process's file is provably stale
    assert anonvma("show", "--all", "--match", "^$").returncode == 0
    assert os.path.exists(dead)
    assert anonvma("registry", "clean", env=only(run_dir)).returncode == 0
    assert not os.path.exists(dead) and os.path.exists(where["path"])


def test_a_registry_written_in_another_pid_namespace_is_kept_by_readers_outside_it(run_dir, tmp_path):
    """A process named memory under ``unshare --pid``: its pid (1 there) is another process here."""
    argv = _unshare_or_skip()
    with Namer(prefix=argv) as child:
        assert child.pid == 1
        path = child.run("m = live.named_mmap(4 * P, 'inside', fallback=True); result = registry.path()")
        assert os.path.basename(path).startswith("1-")
        for reader in (["show", "--all"], ["show", "--all", "--by", "process", "--json"],
                       ["export", "--all", "--textfile", str(tmp_path / "x.prom")]):
            out = anonvma(*reader)
            assert out.returncode == 0, out.stderr
            assert os.path.exists(path), reader
            assert "inside" not in out.stdout  # and never attributed to this namespace's pid 1
        assert child.run("result = [e.name for e in registry.entries()]") == ["inside"]
    assert not os.path.exists(path)  # its exit removed it, as ever


def test_root_never_removes_another_users_registry(run_dir):
    """nobody's stale files stay until nobody's own reader removes them."""
    with nobody_namer(clean=False) as (pid, _):
        mine = [p for _, p in registry.scan([f"/tmp/anonvma-{NOBODY}"]).get(pid, [])]
        assert mine
    try:
        assert not os.path.exists(f"/proc/{pid}")  # ended with _exit: its file is stale
        out = anonvma("show", "--all", "--match", "^$", "--by", "process")
        assert out.returncode == 0 and "warning" not in out.stderr
        out = anonvma("registry", "clean")
        assert out.returncode == 0 and not any(p in out.stdout for p in mine)
        assert all(os.path.exists(p) for p in mine)
    finally:
        text = _clean_as_nobody()
    assert not any(os.path.exists(p) for p in mine)
    assert all(f"removed {p}: pid {pid} has exited" in text.splitlines() for p in mine)


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def test_exit_removes_the_file_and_exec_leaves_no_names_behind(run_dir):
    with Namer() as child:
        path = child.run("m = live.named_mmap(4 * P, 'x', fallback=True); result = registry.path()")
        assert os.path.exists(path)
        assert child.close() == 0
    assert not os.path.exists(path)
    with Namer() as child:
        path = child.run("m = syscalls.mmap(0, 4 * P, RW, ANON); live.set_anon_name(m, 4 * P, 'x', "
                         "fallback=True); result = registry.path()")
        child.proc.stdin.write(json.dumps("os.execv('/bin/sleep', ['sleep', '60'])") + "\n")
        child.proc.stdin.flush()
        deadline = time.monotonic() + 10
        while _comm(child.pid) != "sleep" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.exists(path)  # exec runs no atexit: the file stays, with the same pid and start
        out = anonvma("show", str(child.pid))
        assert out.returncode == 0 and "registered" not in out.stdout and out.stderr == ""
        assert os.path.exists(path)  # a reader removes nothing
        out = anonvma("registry", "clean", env=only(run_dir))
        why = f"pid {child.pid} runs another program now (exec)"
        assert out.stdout.splitlines()[0] == f"removed {path}: {why}"
        assert not os.path.exists(path)  # another program now: its file is stale
        child.proc.kill()


# --- naming semantics, as the kernel's ----------------------------------------------------------

def test_a_new_name_splits_older_registrations_and_none_clears(run_dir):
    with Namer() as child:
        a = child.run("result = syscalls.mmap(0, 8 * P, RW, ANON); live.set_anon_name(result, 8 * P, 'a', "
                      "fallback=True)")
        child.run(f"live.set_anon_name({a} + 2 * P, 2 * P, 'b', fallback=True)")
        assert child.run("result = entries()") == [[a, a + 2 * PAGE, "a", "rw-p"],
                                                   [a + 2 * PAGE, a + 4 * PAGE, "b", "rw-p"],
                                                   [a + 4 * PAGE, a + 8 * PAGE, "a", "rw-p"]]
        child.run(f"live.set_anon_name({a} + 3 * P, 2 * P, None, fallback=True)")
        assert child.run("result = entries()") == [[a, a + 2 * PAGE, "a", "rw-p"],
                                                   [a + 2 * PAGE, a + 3 * PAGE, "b", "rw-p"],
                                                   [a + 5 * PAGE, a + 8 * PAGE, "a", "rw-p"]]
        child.run(f"live.set_anon_name({a}, 8 * P, '', fallback=True)")  # "" is a name: [anon:]
        assert child.run("result = entries()") == [[a, a + 8 * PAGE, "", "rw-p"]]
        with open(child.run("result = registry.path()"), "rb") as f:
            assert registry.decode(f.read())[2] == [registry.Entry(a, a + 8 * PAGE, "", "rw-p")]
        assert "[anon:]" in groups_of(child.pid)


def test_a_hole_is_enomem_after_the_mapped_parts_are_named(run_dir):
    with Namer() as child:
        a = child.run("result = syscalls.mmap(0, 3 * P, RW, ANON); syscalls.munmap(result + P, P)")
        with pytest.raises(ChildError) as exc:
            child.run(f"live.set_anon_name({a}, 3 * P, 'holey', fallback=True)")
        assert exc.value.errno == errno.ENOMEM and "(in anonvma's registry)" in exc.value.message
        assert child.run("result = entries()") == [[a, a + PAGE, "holey", "rw-p"],
                                                   [a + 2 * PAGE, a + 3 * PAGE, "holey", "rw-p"]]


def test_file_backed_and_shared_memory_is_ebadf_with_what_came_before_named(run_dir):
    with Namer() as child:
        a = child.run("result = syscalls.mmap(0, 4 * P, RW, ANON); fd = os.memfd_create('f'); "
                      "os.ftruncate(fd, P); syscalls.mmap(result + 2 * P, P, RW, syscalls.MAP_PRIVATE | "
                      "syscalls.MAP_FIXED, fd)")
        with pytest.raises(ChildError) as exc:
            child.run(f"live.set_anon_name({a}, 4 * P, 'mixed', fallback=True)")
        assert exc.value.errno == errno.EBADF
        assert child.run("result = entries()") == [[a, a + 2 * PAGE, "mixed", "rw-p"]]
        with pytest.raises(ChildError) as exc:
            child.run("s = syscalls.mmap(0, P, RW, syscalls.MAP_SHARED | syscalls.MAP_ANONYMOUS); "
                      "live.set_anon_name(s, P, 'shared', fallback=True)")
        assert exc.value.errno == errno.EBADF


HOOKS = r"""
import atexit, contextlib, io, json, os, sys

hooks = []  # (what, module) of every exit or fork hook anonvma installs

def watched(what, real):
    def install(*args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("anonvma"):
            hooks.append([what, caller])
        return real(*args, **kwargs)
    return install

atexit.register = watched("atexit", atexit.register)
os.register_at_fork = watched("register_at_fork", os.register_at_fork)

import anonvma.live.registry
from anonvma.live.registry import (cli, coverage, fileformat, kernel_naming, loading, places,
                                   process_identity, stale, this_process, writer)
from anonvma import live
from anonvma.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    shown = main(["show", str(os.getpid())]) + main(["show", "--all", "--match", "^$"])
run = os.environ["XDG_RUNTIME_DIR"]
after_reading = {"hooks": list(hooks), "holder": this_process.current() is not None,
                 "files": os.listdir(run), "status": shown}
a = live.named_mmap(4096, "a", fallback=True)
b = live.named_mmap(4096, "b", fallback=True)
live.set_anon_name(*live.naming.buffer_span(a), None, fallback=True)
print(json.dumps({"reading": after_reading, "naming": hooks, "files": os.listdir(run),
                  "holder": this_process.current() is not None}))
"""


def test_import_and_readers_install_no_hooks_and_write_nothing_the_first_naming_installs_them_once(run_dir):
    out = subprocess.run([sys.executable, "-c", HOOKS], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["reading"] == {"hooks": [], "holder": False, "files": [], "status": 0}
    assert got["naming"] == [["atexit", "anonvma.live.registry.this_process"],
                             ["register_at_fork", "anonvma.live.registry.this_process"]]
    assert got["holder"] and got["files"] == ["anonvma"]


def test_the_map_count_limit_counts_the_vmas_names_would_split_not_the_registrations(run_dir):
    """vm.max_map_count (here this registry's own limit: the real one is the machine's) three
    VMAs above what maps shows: a name in the middle of a VMA splits it in three, a second such
    name would need two more VMAs than that: EAGAIN, with one range registered."""
    with Namer() as child:
        a = child.run("result = syscalls.mmap(0, 8 * P, RW, ANON); b = syscalls.mmap(0, 8 * P, "
                      "syscalls.PROT_READ, ANON)\n"
                      "from anonvma.live.registry import kernel_naming, this_process, writer\n"
                      "own = this_process.this_process().get()\n"
                      "own.limit = kernel_naming.vma_count(writer.maps_of_self(), []) + 3\n"
                      "live.set_anon_name(result + 2 * P, 2 * P, 'first', fallback=True)")
        with pytest.raises(ChildError) as exc:
            child.run("live.set_anon_name(b + 2 * P, 2 * P, 'second', fallback=True)")
        assert exc.value.errno == errno.EAGAIN and "beyond vm.max_map_count" in exc.value.message
        assert child.run("result = entries()") == [[a + 2 * PAGE, a + 4 * PAGE, "first", "rw-p"]]


def test_without_opting_in_the_error_says_how_and_nothing_is_written(run_dir):
    with Namer() as child:
        with pytest.raises(ChildError) as exc:
            child.run("live.named_mmap(P, 'x')")
        assert exc.value.kind == "AnonNameUnsupportedError" and exc.value.errno == errno.EINVAL
        assert "pass fallback=True, or set ANONVMA_FALLBACK=1" in exc.value.message
        with pytest.raises(ChildError) as exc:
            child.run("live.named_mmap(P, 'a$b', fallback=True)")
        assert exc.value.kind == "InvalidAnonNameError"
        assert child.run("result = registry.path()") is None
    assert not os.path.exists(os.path.join(run_dir, "anonvma"))


def test_anonvma_fallback_1_opts_in_and_a_value_that_is_not_0_or_1_is_refused(run_dir):
    with Namer({"ANONVMA_FALLBACK": "1"}) as child:
        assert child.run("m = live.named_mmap(P, 'by-env'); result = entries()")[0][2] == "by-env"
    with Namer({"ANONVMA_FALLBACK": "yes"}) as child:
        with pytest.raises(ChildError) as exc:
            child.run("live.named_mmap(P, 'x')")
        assert exc.value.kind == "ValueError" and "ANONVMA_FALLBACK='yes'" in exc.value.message
        assert child.run("result = registry.path()") is None


def test_only_the_unsupported_kernels_einval_falls_back(run_dir):
    with Namer() as child:
        with pytest.raises(ChildError) as exc:  # as a seccomp filter or an LSM would answer
            child.run("def refuse(*a):\n    raise OSError(errno.EPERM, 'denied')\n"
                      "import errno; syscalls.prctl_set_vma_anon_name = refuse\n"
                      "live.named_mmap(P, 'x', fallback=True)")
        assert exc.value.errno == errno.EPERM
        assert child.run("result = registry.path()") is None


def test_a_forked_child_has_its_own_copy_and_its_exit_removes_only_its_file(run_dir):
    with Namer() as child:
        parent_path = child.run("m = live.named_mmap(2 * P, 'inherited', fallback=True); "
                                "result = registry.path()")
        got = child.run("""
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, json.dumps([registry.path(), entries()]).encode())
    sys.exit(0)
os.close(w)
mine = json.loads(os.read(r, 65536))
os.waitpid(pid, 0)
result = [pid] + mine
""")
        pid, path, entries = got
        assert path != parent_path and os.path.basename(path).startswith(f"{pid}-")
        assert [e[2] for e in entries] == ["inherited"]
        assert not os.path.exists(path) and os.path.exists(parent_path)


def test_the_default_directory_is_private_under_tmp_and_a_foreign_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    with Namer() as child:
        path = child.run("m = live.named_mmap(P, 'tmp', fallback=True); result = registry.path()")
        folder = os.path.dirname(path)
        assert folder == f"/tmp/anonvma-{os.geteuid()}"
        st = os.lstat(folder)
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
        assert groups_of(child.pid)["[anon:tmp]"]["registered"]
    foreign = tmp_path / "foreign"
    (foreign / "anonvma").mkdir(parents=True, mode=0o700)
    os.chown(foreign / "anonvma", NOBODY, NOBODY)
    with Namer({"XDG_RUNTIME_DIR": str(foreign)}) as child:
        with pytest.raises(ChildError) as exc:
            child.run("live.named_mmap(P, 'x', fallback=True)")
        assert exc.value.errno == errno.EACCES and "owned by uid 65534" in exc.value.message


# --- dividing one VMA's counters among names ----------------------------------------------------

def test_apportion_adds_up_exactly():
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(7, [0, 5, 0]) == [0, 7, 0]
    assert sum(apportion(1001, [3, 7, 11, 13])) == 1001


def test_swap_and_zero_pages_that_page_counts_cannot_place_are_estimated():
    vma = Smaps(size=64, rss=32, pss=32, private_dirty=32, swap=16, swap_pss=16)
    both = [PageCounts(4, 0, 2, 0, None), PageCounts(4, 0, 2, 0, None)]
    parts, exact = split_smaps(vma, [32, 32], both)
    assert exact and [p.rss for p in parts] == [16, 16] and [p.swap for p in parts] == [8, 8]
    # swap shared with another process (SwapPss < Swap) split between two parts: estimated
    parts, exact = split_smaps(vma._replace(swap_pss=10), [32, 32], both)
    assert not exact and sum(p.swap_pss for p in parts) == 10
    # no pagemap: divided by size, estimated
    parts, exact = split_smaps(vma, [48, 16], None)
    assert not exact and [p.rss for p in parts] == [24, 8]


def test_anonvma_registry_dir_is_the_one_directory_written_and_read(run_dir, tmp_path):
    own = tmp_path / "own"
    with Namer(env={"ANONVMA_REGISTRY_DIR": str(own)}) as child:
        path = child.run("m = live.named_mmap(4 * P, 'own', fallback=True); result = registry.path()")
        assert os.path.dirname(path) == str(own) and stat.S_IMODE(os.stat(own).st_mode) == 0o700
        assert child.run("result = registry.reader_dirs()") == [str(own)]
        assert "[anon:own]" not in groups_of(child.pid)  # the default directories: not there
        with_dir = subprocess.run([sys.executable, "-m", "anonvma", "show", str(child.pid), "--json"],
                                  capture_output=True, text=True, timeout=120,
                                  env={**os.environ, "ANONVMA_REGISTRY_DIR": str(own)})
        assert {g["key"]: g for g in json.loads(with_dir.stdout)["groups"]}["[anon:own]"]["registered"]
    with Namer(env={"ANONVMA_REGISTRY_DIR": "relative/dir"}) as child:
        with pytest.raises(ChildError) as err:
            child.run("m = live.named_mmap(4 * P, 'own', fallback=True)")
        assert err.value.kind == "ValueError"
        assert err.value.message == ("ANONVMA_REGISTRY_DIR='relative/dir' is not an absolute path: "
                                     "set it to one, or unset it")
        assert not os.path.exists("relative")
    relative = {**os.environ, "ANONVMA_REGISTRY_DIR": "relative/dir"}
    refused = subprocess.run([sys.executable, "-m", "anonvma", "show", "--all"], capture_output=True,
                             text=True, timeout=120, env=relative)
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1, refused.stderr
    assert "ANONVMA_REGISTRY_DIR='relative/dir' is not an absolute path" in refused.stderr
