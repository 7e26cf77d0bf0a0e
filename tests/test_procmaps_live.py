"""procmaps on live processes: a child with known mappings, errors naming the pid, the CLI."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import subprocess
import sys

import pytest

from anonvma import procmaps
from anonvma.cli import main

from procmaps_fixtures import DATA, as_nobody, memfd_child, spawned

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


def test_show_by_none_of_a_live_process_gives_each_vma_its_permissions_and_flags(capsys, child):
    pid, info = child
    assert main(["show", str(pid), "--by", "none", "--json"]) == 0
    rows = {g["start"]: g for g in json.loads(capsys.readouterr().out)["groups"]}
    anon, shared = rows[info["anon"]], rows[info["shared"]]
    assert (anon["perms"], anon["offset"], anon["name"]) == ("rw-p", 0, "")
    assert {"rd", "wr"} <= set(anon["vm_flags"]) and "sh" not in anon["vm_flags"]
    assert shared["perms"] == "rw-s" and {"rd", "wr", "sh"} <= set(shared["vm_flags"])


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

    def read_root() -> tuple[int, str]:
        try:
            procmaps.read_pid(target)
            return 1, ""
        except procmaps.ProcessAccessError as err:
            return 0, f"{err.errno} {err.pid} {err}"

    status, out = as_nobody(read_root)
    if status == 1:
        pytest.skip("nobody may read root's smaps here (ptrace restrictions differ)")
    assert status == 0, out
    code, errpid, message = out.split(" ", 2)
    assert int(code) in (errno.EACCES, errno.EPERM) and int(errpid) == target
    assert f"pid {target}" in message


def test_show_prints_json_totals_of_this_process(capsys):
    assert main(["show", str(os.getpid()), "--json", "--fold"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pid"] == os.getpid() and doc["units"] == "kB" and doc["fold"] is True
    assert doc["total"]["count"] == sum(g["count"] for g in doc["groups"]) == doc["vmas"]
    assert "[heap]" in {g["key"] for g in doc["groups"]}


PYTHON_SMAPS = os.path.join(DATA, "linux-6.18-python", "smaps")
LIBS = ("/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0", "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6")


def on_terminal(argv: list, columns: int) -> str:
    """The output of ``anonvma ARGV`` on a pseudo-terminal ``columns`` wide."""
    import fcntl
    import pty
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "anonvma", *argv], stdout=secondary,
                            stderr=subprocess.DEVNULL, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the other end closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_names_stay_whole_when_the_output_is_not_a_terminal():
    for argv in (["show", PYTHON_SMAPS], ["diff", PYTHON_SMAPS, PYTHON_SMAPS, "--all"]):
        out = subprocess.run([sys.executable, "-m", "anonvma", *argv], capture_output=True, text=True,
                             env={**os.environ, "COLUMNS": "60"}, check=True).stdout
        names = [line.split("  ")[-1].strip() for line in out.splitlines()]
        assert set(LIBS) <= set(names), out


def test_on_a_terminal_a_path_is_shortened_from_the_left_and_the_total_row_never():
    out = on_terminal(["show", PYTHON_SMAPS], 60)
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["COUNT", "SIZE", "RSS"]
    names = [line.split("  ")[-1].strip() for line in lines[2:]]
    assert all(len(line) <= 60 or name.startswith(".../") and "/" not in name[4:]
               for line, name in zip(lines[2:-1], names, strict=False)), out
    libc = next(n for n in names if n.endswith("libc.so.6"))
    libm = next(n for n in names if n.endswith("libm.so.6"))
    assert libc.startswith("...") and libc != libm
    assert any(n.endswith("/libpython3.11.so.1.0") for n in names), names
    assert lines[-1].endswith("  total")
    procs = on_terminal(["show", "--all", "--by", "process", "--match", "^$"], 60).splitlines()
    assert procs[-1].endswith("  total (processes)")


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
    assert main(["diff", str(bad), str(os.getpid())]) == 2  # trouble, as diff(1)
    out, err = capsys.readouterr()
    assert out == "" and f"{bad}:2:" in err


def test_snapshot_then_diff_against_the_live_process(capsys, tmp_path, child):
    pid, _ = child
    saved = tmp_path / "before.smaps"
    assert main(["snapshot", str(pid), "-o", str(saved)]) == 0
    assert procmaps.read_file(saved).vmas  # a complete smaps, readable back
    capsys.readouterr()
    status = main(["diff", str(saved), str(pid), "--json", "--all"])
    doc = json.loads(capsys.readouterr().out)
    assert {c["status"] for c in doc["changes"]} <= set(procmaps.records.STATUSES)
    assert status == (1 if {c["status"] for c in doc["changes"]} - {"same"} else 0)
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


# --- show self, the command line in the header, show --all (librank/procrank), --watch --------

SHARED_CHILD = memfd_child("anonvma-all-test", pages=5, touched=3, fork=True)
MEMFD = "/memfd:anonvma-all-test (deleted)"


@pytest.fixture
def sharing():
    with spawned(SHARED_CHILD) as (pid, info):
        yield info["pids"]


def test_show_self_is_this_process_and_the_header_gives_its_command_line(capsys):
    assert main(["show", "self", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pid"] == os.getpid() and doc["cmdline"].startswith(f"pid {os.getpid()} (")
    assert main(["show", "self", "--top", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"pid {os.getpid()} (") and "(top 3 of " in out[0]
    assert len(out) == 2 + 3 + 1  # header, column names, 3 rows, total


def test_show_header_puts_a_multi_line_command_line_on_one_line(capsys, sharing):
    assert main(["show", str(sharing[0]), "--top", "1"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"pid {sharing[0]} ({sys.executable} -c import json, mmap, os, sys, threading, ")


def test_show_all_sums_a_name_across_processes_and_pss_counts_shared_pages_once(capsys, sharing):
    assert main(["show", "--all", "--json", "--match", "anonvma-all-test"]) == 0
    doc = json.loads(capsys.readouterr().out)
    page_kb = PAGE // 1024
    (g,) = [g for g in doc["groups"] if g["key"] == MEMFD]
    assert (g["processes"], g["count"], g["size"]) == (2, 2, 10 * page_kb)
    assert g["rss"] == 6 * page_kb  # 3 pages, resident in both processes
    assert g["pss"] == 3 * page_kb  # ... but only 3 pages of memory: PSS sums to them
    assert g["uss"] == 0 and g["kind"] == "deleted"
    assert doc["processes_read"] >= 2 and doc["total"]["processes"] == 2  # the ones matching
    assert set(doc["skipped"]) == {"denied", "exited", "unreadable"}


def test_show_all_by_process_lists_each_process_with_its_command_line(capsys, sharing):
    assert main(["show", "--all", "--by", "process", "--json", "--match", "anonvma-all-test"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {p["pid"]: p for p in doc["processes"]}
    assert set(sharing) <= set(rows)
    for pid in sharing:
        assert rows[pid]["cmdline"].startswith(sys.executable) and rows[pid]["count"] == 1
        assert rows[pid]["rss"] == 3 * PAGE // 1024 and rows[pid]["pss"] * 2 == rows[pid]["rss"]
    assert main(["show", "--all", "--by", "process", "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["PID", "VMAS"])
    assert lines[head].split()[-1] == "CMDLINE" and len(lines) == head + 1 + 2 + 1


def test_show_all_table_has_a_procs_column_and_the_csv_the_processes_field(capsys, sharing):
    assert main(["show", "--all", "--fold", "--match", "anonvma-all-test"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("all processes: ") and " read in " in lines[0]
    header = next(line for line in lines if line.startswith("PROCS"))
    assert header.split()[:3] == ["PROCS", "COUNT", "SIZE"]
    row = next(line for line in lines if line.endswith(MEMFD))
    assert row.split()[:2] == ["2", "2"]
    assert main(["show", "--all", "--csv", "--match", "anonvma-all-test"]) == 0
    out = capsys.readouterr().out.splitlines()
    header, row = out[0].split(","), out[1].split(",")
    assert header[-3:] == ["processes", "registered", "estimated"]
    assert out[1].startswith(f"{MEMFD},deleted,2,")
    assert row[-3:] == ["2", "false", "false"]


def test_show_of_several_pids_prints_a_table_for_each_in_the_order_given(capsys, sharing):
    """As pmap PID PID ...: each process's table, one after the other; JSON a list of what
    `show PID --json` prints for each; CSV one header and each row led by its pid and source."""
    a, b = sharing
    assert main(["show", str(b), "self", str(a), "--top", "2"]) == 0
    tables = capsys.readouterr().out.split("\n\n")
    assert [t.split(" (")[0] for t in tables] == [f"pid {b}", f"pid {os.getpid()}", f"pid {a}"]
    for table in tables:
        lines = table.splitlines()
        assert lines[1].split()[:2] == ["COUNT", "SIZE"] and "(top 2 of " in lines[0]
        assert len(lines) == 2 + 2 + 1  # head, column names, 2 rows, total
    assert main(["show", str(a), str(b), "--json", "--match", "anonvma-all-test"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert main(["show", str(a), "--json", "--match", "anonvma-all-test"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert isinstance(docs, list) and [d["pid"] for d in docs] == [a, b] and set(docs[0]) == set(one)
    for doc in docs:
        (g,) = doc["groups"]
        assert g["key"] == MEMFD and g["rss"] == 3 * PAGE // 1024 and g["pss"] * 2 == g["rss"]
    assert main(["show", str(a), str(b), "--csv", "--by", "kind"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("pid,source,key,kind,count,size,rss,pss")
    assert {r.split(",")[:2][0] for r in rows[1:]} == {str(a), str(b)}
    assert rows[1].split(",")[1] == f"/proc/{a}/smaps"


def test_show_of_several_pids_by_process_or_user_is_procrank_or_smem_of_just_those(capsys, sharing):
    a, b = sharing
    assert main(["show", str(a), str(b), "self", "--by", "process", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {p["pid"] for p in doc["processes"]} == {a, b, os.getpid()}  # self, named, is not left out
    assert (doc["source"], doc["targets"]) == ("targets", [str(a), str(b), "self"])
    assert doc["total"]["processes"] == 3
    assert main(["show", str(a), str(b), "--by", "process"]) == 0
    assert capsys.readouterr().out.startswith(f"{a} {b}: 2 read in ")
    assert main(["show", str(a), str(b), "--by", "user", "--json"]) == 0
    (user,) = json.loads(capsys.readouterr().out)["users"]
    assert (user["uid"], user["processes"]) == (os.geteuid(), 2)


def test_an_unknown_pid_among_several_is_its_error_as_alone_and_nothing_is_printed(capsys):
    assert main(["show", "4000000"]) == 1
    alone = capsys.readouterr().err
    assert "no process with pid 4000000" in alone  # ESRCH, said as the kernel means it
    for by in ("name", "none", "process", "user"):
        assert main(["show", "self", "4000000", "--by", by]) == 1, by
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "no process with pid 4000000" in err, (by, err)
        if by in ("name", "none"):
            assert err == alone


def test_show_all_leaves_out_its_own_process_unless_asked_to_include_it(capsys):
    """The reading process's own memory (its parser, its records) is not what a user asked
    about: --all leaves it out, --include-self puts it back; in this process and as a command."""
    assert main(["show", "--all", "--by", "process", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["include_self"] is False and os.getpid() not in {p["pid"] for p in doc["processes"]}
    assert main(["show", "--all", "--by", "process", "--json", "--include-self"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["include_self"] is True and os.getpid() in {p["pid"] for p in doc["processes"]}
    for extra, listed in (([], False), (["--include-self"], True)):
        argv = [sys.executable, "-m", "anonvma", "show", "--all", "--by", "process", "--json", *extra]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert (proc.pid in {p["pid"] for p in json.loads(out)["processes"]}) is listed


#: A child (its command line says anonvma-filter-test) that renames itself (its comm) and, when
#: asked and it is root, becomes nobody, then waits.
RENAMED_CHILD = """
import json, os, sys  # anonvma-filter-test
open("/proc/self/comm", "w").write({comm!r})
if {nobody!r}:
    os.setgid(65534)
    os.setuid(65534)
print(json.dumps({{"uid": os.geteuid()}}), flush=True)
sys.stdin.read()
"""
NOBODY = 65534


@pytest.fixture
def two_users():
    """(pid of a child of this user with comm anonvma-cm-mine, pid of one of nobody with comm
    anonvma-cm-nobody, or None when this test is not root and cannot make one)."""
    root = os.geteuid() == 0
    with spawned(RENAMED_CHILD.format(comm="anonvma-cm-mine", nobody=False)) as (mine, _), \
            spawned(RENAMED_CHILD.format(comm="anonvma-cm-nobody", nobody=root)) as (other, info):
        assert info["uid"] == (NOBODY if root else os.geteuid())
        yield mine, other if root else None


def shown_pids(capsys, *argv: str) -> set:
    """The pids ``show --all --by process --json ARGV`` lists."""
    assert main(["show", "--all", "--by", "process", "--json", *argv]) == 0
    return {p["pid"] for p in json.loads(capsys.readouterr().out)["processes"]}


def test_show_all_comm_keeps_the_processes_whose_comm_or_command_line_matches(capsys, two_users):
    mine, other = two_users
    both = {mine} | ({other} if other else set())
    assert shown_pids(capsys, "--comm", "anonvma-filter-test") == both  # in their command lines
    assert shown_pids(capsys, "--comm", "^anonvma-cm-mine$") == {mine}  # their comm alone
    assert main(["show", "--all", "--comm", "^anonvma-cm-", "--top", "1"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.startswith("all processes whose comm or command line matches '^anonvma-cm-': 2 read in ")


def test_show_all_user_keeps_the_processes_of_that_effective_user(capsys, two_users):
    import pwd

    mine, other = two_users
    me = pwd.getpwuid(os.geteuid()).pw_name
    for user in (me, str(os.geteuid())):
        assert mine in shown_pids(capsys, "--user", user)
        assert shown_pids(capsys, "--user", user, "--comm", "anonvma-filter-test") == {mine}
    if other is None:
        pytest.skip("not root: cannot start a process of another user")
    nobody = pwd.getpwuid(NOBODY).pw_name
    for user in (nobody, str(NOBODY)):  # /proc/PID of a process that changed its uid is root's
        assert shown_pids(capsys, "--user", user, "--comm", "anonvma-filter-test") == {other}
    assert main(["show", "--all", "--user", nobody, "--comm", "filter-test", "--top", "1"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.startswith(f"all processes of user {nobody} (uid {NOBODY}) whose comm or command line "
                           "matches 'filter-test': 1 read in ")


def test_show_all_by_user_gives_one_row_per_user_as_smem_u(capsys, two_users):
    import pwd

    mine, other = two_users
    expected = {os.geteuid(): 1, **({NOBODY: 1} if other else {})}
    assert main(["show", "--all", "--by", "user", "--comm", "anonvma-filter-test", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {u["uid"]: u["processes"] for u in doc["users"]} == expected
    assert all(u["user"] == pwd.getpwuid(u["uid"]).pw_name and u["pss"] > 0 for u in doc["users"])
    assert doc["total"]["processes"] == len(expected) and doc["by"] == "user"
    assert main(["show", "--all", "--by", "user", "--comm", "anonvma-filter-test"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f", {len(expected)} user{'s' if other else ''}, largest pss first")
    assert lines[1].split() == ["PROCS", "COUNT", "SIZE", "RSS", "PSS", "USS", "SHARED", "SWAP", "USER"]
    names = sorted(pwd.getpwuid(u).pw_name for u in expected)
    assert sorted(line.split()[-1] for line in lines[2:-1]) == names
    assert lines[-1].split()[0] == str(len(expected)) and lines[-1].endswith("  total")
    assert main(["show", "--all", "--by", "user", "--comm", "anonvma-filter-test", "--csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("user,uid,processes,count,size,rss,pss,uss")
    assert sorted(int(r.split(",")[1]) for r in rows[1:]) == sorted(expected)


def test_a_bad_user_or_comm_is_a_one_line_usage_error(capsys):
    for argv, why in ((["--all", "--user", "no-such-user-of-anonvma"],
                       "--user no-such-user-of-anonvma: no such user (give a user name or a UID)"),
                      (["--all", "--comm", "("], "bad --comm '(': missing ), unterminated subpattern"),
                      (["self", "--user", "0"], "--comm and --user choose among the processes of --all"),
                      (["self", "--by", "user"], "--by user needs --all")):
        assert main(["show", *argv]) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and why in err and err.count("\n") == 1, (argv, err)


def test_processes_that_cannot_be_read_are_counted_in_one_line_not_fatal(sharing):
    """As nobody (a forked child of this test drops to it), root's processes are denied."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user (as a user, root's processes are denied anyway)")
    def show_all() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(["show", "--all", "--top", "3"])
        return code, out.getvalue()

    code, text = as_nobody(show_all)
    assert code == 0, text
    lines = text.splitlines()
    assert lines[1].startswith("not counted (processes): ") and " denied" in lines[1]
    assert "run as root to read every process" in lines[1]


def test_show_all_refuses_impossible_combinations(capsys):
    for argv, why in ((["show"], "give one or more PID|FILE, or --all"),
                      (["show", "1", "--all"], "give one or more PID|FILE, or --all"),
                      (["show", "self", "--by", "process"], "--by process needs --all or several PID|FILE"),
                      (["show", "self", "1", "--watch", "1"], "--watch redraws one table"),
                      (["show", "-", "-"], "only one PID|FILE can be '-'"),
                      (["show", "--all", "--by", "none"], "--by none"),
                      (["show", "self", "--watch", "1", "--json"], "anonvma record"),
                      (["show", "self", "--count", "2"], "--count goes with --watch"),
                      (["show", "self", "--include-self"], "--include-self goes with --all"),
                      (["show", "self", "--match", "("], "bad --match '(': missing ), unterminated")):
        assert main(argv) == 2  # a usage error, as argparse's
        out, err = capsys.readouterr()
        assert out == "" and why in err and err.count("\n") == 1, (argv, err)


GROWING_CHILD = memfd_child("anonvma-watch-test", pages=4096, touched=1, grow_every=0.005)


def test_watch_redraws_with_the_change_since_the_first_table():
    with spawned(GROWING_CHILD) as (pid, _):
        proc = subprocess.run([sys.executable, "-m", "anonvma", "show", str(pid), "--watch", "0.3",
                               "--count", "3", "--match", "anonvma-watch-test"],
                              capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    tables = proc.stdout.split("\n\n")
    assert len(tables) == 3 and "\x1b[" not in proc.stdout  # not a terminal: one after the other
    changes = []
    for t in tables:
        lines = t.splitlines()
        assert lines[0].startswith("every 0.3s, ") and "DPSS: change since the first table" in lines[0]
        header = lines[2].split()
        assert header[-2:] == ["DPSS", "NAME"]
        row = next((line for line in lines if line.endswith("/memfd:anonvma-watch-test (deleted)")), None)
        assert row, t
        changes.append(row.split()[header.index("DPSS")])
    assert changes[0] == "0" and changes[-1].startswith("+")


def test_watch_by_process_has_the_change_column_it_announces():
    with spawned(GROWING_CHILD) as (pid, _):
        proc = subprocess.run([sys.executable, "-m", "anonvma", "show", "--all", "--by", "process",
                               "--watch", "0.3", "--count", "3", "--match", "anonvma-watch-test"],
                              capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    changes = []
    for t in proc.stdout.split("\n\n"):
        lines = t.splitlines()
        assert "DPSS: change since the first table" in lines[0]
        header = next(line.split() for line in lines if line.split()[:1] == ["PID"])
        assert header[-2:] == ["DPSS", "CMDLINE"], header
        row = next(line.split() for line in lines if line.split()[0] == str(pid))
        changes.append(row[header.index("DPSS")])
        total = next(line.split() for line in lines if line.endswith("total (processes)"))
        assert total[header.index("DPSS")] == changes[-1]  # the only process matching
    assert changes[0] == "0" and changes[-1].startswith("+")


def test_watch_on_a_terminal_clears_it_between_tables():
    import pty

    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "anonvma", "show", "self", "--watch", "0.1",
                             "--count", "2", "--top", "2"], stdout=secondary, stderr=subprocess.DEVNULL)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the other end closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    assert proc.wait(timeout=60) == 0
    out = b"".join(chunks).decode()
    assert out.count("\x1b[H\x1b[2J") == 2 and out.count("every 0.1s, ") == 2


def test_counting_while_reading_groups_exactly_like_the_records(child):
    from anonvma.procmaps.source import read_tally

    pid, _ = child
    # An idle child has the same map twice, but the PSS and Shared/Private split of its shared
    # libraries move when other processes start or exit: read both again until they are still.
    for _ in range(20):
        counted, snap = read_tally(pid), procmaps.read_pid(pid)
        if procmaps.group(counted) == procmaps.group(snap) == procmaps.group(read_tally(pid)):
            break
    assert counted.vmas == len(snap.vmas) and counted.fields == snap.fields and counted.pid == pid
    for by, fold in (("name", False), ("name", True), ("kind", False)):
        assert procmaps.group(counted, by, fold) == procmaps.group(snap, by, fold)
