"""The CLI on saved files, as a new user runs it: each bug found that way, now fixed, stays fixed."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from anonvma import releases

from anonvma import __version__, procmaps
from anonvma.cli import build_parser, main
from anonvma.procmaps.format import group_dict

from procmaps_fixtures import DATA

PY_MAPS = os.path.join(DATA, "linux-6.18-python", "maps")
PY_SMAPS = os.path.join(DATA, "linux-6.18-python", "smaps")
ANDROID = os.path.join(DATA, "android-handwritten", "smaps")
REPO = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def maps_line(start, pages, name=""):
    return f"{start:08x}-{start + pages * 4096:08x} rw-p 00000000 00:00 0 {name}\n"


def test_diff_of_two_maps_files_compares_by_size_and_says_so(capsys, tmp_path):
    a, b = tmp_path / "a.maps", tmp_path / "b.maps"
    a.write_text(maps_line(0x400000, 1, "[heap]") + maps_line(0x500000, 2, "/lib/x.so"))
    b.write_text(maps_line(0x400000, 3, "[heap]") + maps_line(0x500000, 2, "/lib/x.so")
                 + maps_line(0x600000, 1, "[anon:new]"))
    rc, out, _ = run(capsys, "diff", str(a), str(b))
    assert rc == 1
    assert "compared by size" in out.splitlines()[0] and "both are maps" in out.splitlines()[0]
    rows = {line.split()[-1]: line.split() for line in out.splitlines()[2:]}
    assert rows["[heap]"][:2] == ["grew", "+8K"] and rows["[anon:new]"][0] == "appeared"
    assert "/lib/x.so" not in rows  # unchanged
    rc, out, _ = run(capsys, "diff", str(a), str(b), "--json")
    doc = json.loads(out)
    assert (doc["measure"], doc["asked"]) == ("size", "pss")
    heap = next(c for c in doc["changes"] if c["key"] == "[heap]")
    assert heap["delta"]["size"] == 8 and heap["delta"]["pss"] is None


def test_diff_of_a_maps_file_against_its_smaps_invents_no_growth(capsys):
    rc, out, _ = run(capsys, "diff", PY_MAPS, PY_SMAPS, "--json", "--all")
    assert rc == 0
    doc = json.loads(out)
    assert doc["measure"] == "size"
    assert {c["status"] for c in doc["changes"]} == {"same"}
    for c in doc["changes"]:
        assert c["before"]["pss"] is None and c["after"]["pss"] is not None
        assert c["delta"]["pss"] is None and c["delta"]["rss"] is None  # unknown, not "grew"
        assert c["delta"]["size"] == 0 and c["delta"]["count"] == 0
    rc, out, _ = run(capsys, "diff", PY_MAPS, PY_SMAPS)
    assert "0 changed groups" in out
    rc, out, _ = run(capsys, "diff", PY_MAPS, PY_SMAPS, "--csv", "--all")
    heap = next(r for r in out.splitlines() if r.startswith("[heap],"))
    fields = out.splitlines()[0].split(",")
    assert heap.split(",")[fields.index("before_pss")] == ""  # unknown is empty, not 0


def test_diff_lists_what_changed_in_any_measure_counts_it_totals_it_and_exits_1(capsys, tmp_path):
    before = Path(ANDROID).read_text()
    boot = before.index("[anon:dalvik-/system/framework/boot.art]")
    rest = before[boot:].replace("Rss:                3032 kB", "Rss:                2032 kB", 1)
    after = before[:boot] + rest.replace("Shared_Dirty:       2900 kB", "Shared_Dirty:       1900 kB", 1)
    a, b = tmp_path / "a.smaps", tmp_path / "b.smaps"
    a.write_text(before)
    b.write_text(after)
    groups = len(procmaps.group(procmaps.read_file(ANDROID)))
    rc, out, _ = run(capsys, "diff", str(a), str(b), "--sort", "size")
    lines = out.splitlines()
    assert rc == 1 and ": 1 changed groups by name (size)" in lines[0]
    rows = {line.split("  ")[-1].strip(): line.split() for line in lines[2:] if "  " in line}
    assert rows["[anon:dalvik-/system/framework/boot.art]"][:2] == ["changed", "0"]  # RSS -1000K
    assert lines[-2].split()[-1] == "total" and lines[-2].split()[:2] == ["changed", "0"]
    assert lines[-1].startswith("changed: the same size, another measure differs")
    rc, out, _ = run(capsys, "diff", str(a), str(b), "--sort", "rss", "--all")
    lines = out.splitlines()
    assert rc == 1 and f": 1 changed groups, {groups - 1} unchanged by name (rss)" in lines[0]
    assert lines[2].split()[:2] == ["shrank", "-1000K"] and len(lines) == 2 + groups + 1
    assert lines[-1].split()[:2] == ["shrank", "-1000K"] and lines[-1].endswith("  total")
    rc, out, _ = run(capsys, "diff", str(a), str(a), "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["changes"] == [] and doc["total"]["status"] == "same"
    assert doc["total"]["after"]["pss"] == sum(g.pss for g in procmaps.group(procmaps.read_file(ANDROID)))
    rc, out, err = run(capsys, "diff", str(a), str(tmp_path / "missing"))
    assert rc == 2 and out == "" and err.count("\n") == 1  # trouble, as diff(1)


def test_show_and_diff_read_standard_input_as_replay_does():
    with open(ANDROID, "rb") as f:
        shown = subprocess.run([sys.executable, "-m", "anonvma", "show", "-", "--json"], stdin=f,
                               capture_output=True, check=False)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["source"] == "<stdin>" and doc["groups"][0]["key"] == "[anon:dalvik-main space]"
    with open(ANDROID, "rb") as f:
        same = subprocess.run([sys.executable, "-m", "anonvma", "diff", ANDROID, "-"], stdin=f,
                              capture_output=True, text=True, check=False)
    assert same.returncode == 0 and ": 0 changed groups" in same.stdout, same.stderr
    both = subprocess.run([sys.executable, "-m", "anonvma", "diff", "-", "-"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False)
    assert both.returncode == 2 and "only one side can be '-'" in both.stderr


def test_snapshot_to_a_gz_name_is_gzip_and_reads_back(capsys, tmp_path):
    out = tmp_path / "self.smaps.gz"
    rc, text, _ = run(capsys, "snapshot", "self", "-o", str(out))
    assert rc == 0 and text.endswith(f"to {out} (gzip)\n")
    data = out.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    assert procmaps.read_file(out).vmas == tuple(procmaps.parse(gzip.decompress(data), str(out))[0])


def test_show_of_a_maps_file_is_sorted_largest_first_by_size(capsys):
    rc, out, _ = run(capsys, "show", PY_MAPS)
    assert rc == 0
    assert "largest size first" in out.splitlines()[0] and "sizes only" in out.splitlines()[0]
    sizes = [procmaps.group(procmaps.read_file(PY_MAPS))]
    by_key = {g.key or "[anonymous]": g.size for g in sizes[0]}
    shown = [line.split()[-1] for line in out.splitlines()[2:-1]]
    assert [by_key[k] for k in shown] == sorted(by_key.values(), reverse=True)
    rc, out, _ = run(capsys, "show", PY_MAPS, "--json")
    doc = json.loads(out)
    assert doc["sort"] == "size" and doc["groups"][0]["pss"] is None and doc["total"]["rss"] is None


def test_diff_sort_count_prints_one_signed_count_column(capsys, tmp_path):
    a, b = tmp_path / "a.maps", tmp_path / "b.maps"
    a.write_text(maps_line(0x400000, 1, "[anon:x]") + maps_line(0x500000, 1, "[anon:y]")
                 + maps_line(0x600000, 1, "[anon:y]"))
    b.write_text(maps_line(0x400000, 1, "[anon:x]") + maps_line(0x402000, 1, "[anon:x]")
                 + maps_line(0x500000, 1, "[anon:y]"))
    rc, out, _ = run(capsys, "diff", str(a), str(b), "--sort", "count")
    assert rc == 1
    header = out.splitlines()[1].split()
    assert header.count("DCOUNT") == 1 and header[:2] == ["STATUS", "DCOUNT"]
    rows = {line.split()[-1]: line.split() for line in out.splitlines()[2:]}
    assert rows["[anon:x]"][:2] == ["grew", "+1"] and rows["[anon:y]"][:2] == ["shrank", "-1"]
    rc, out, _ = run(capsys, "diff", str(a), str(b), "--sort", "size")
    rows = {line.split()[-1]: line.split() for line in out.splitlines()[2:]}
    assert rows["[anon:x]"][1:3] == ["+4K", "+1"] and rows["[anon:y]"][1:3] == ["-4K", "-1"]


def test_group_and_diff_take_what_read_file_returns():
    snap = procmaps.read_file(ANDROID)
    # the same default fields; VMAs alone do not say which smaps keys were printed, so the
    # columns of --fields are unknown for them (the snapshot knows: Pss_Dirty is not printed)
    assert [group_dict(g) for g in procmaps.group(snap)] == [group_dict(g) for g in procmaps.group(snap.vmas)]
    assert {g.value("pss_dirty") for g in procmaps.group(snap.vmas)} == {None}
    assert {g.value("locked") for g in procmaps.group(snap)} == {0}
    later = snap._replace(vmas=snap.vmas[1:])
    changes = {c.key: c for c in procmaps.diff(snap, later)}
    assert changes["[anon:dalvik-main space]"].status == "vanished"
    assert changes["[anon:dalvik-main space]"].delta("pss") == -10240
    maps = procmaps.read_file(PY_MAPS)
    assert all(c.measure == "size" for c in procmaps.diff(maps, procmaps.read_file(PY_SMAPS)))


def test_snapshot_to_stdout_writes_the_smaps_and_no_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "anonvma", "snapshot", "self", "-o", "-"],
                          capture_output=True, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    vmas, fields = procmaps.parse(proc.stdout)
    assert vmas and "Rss" in fields
    assert not (tmp_path / "-").exists() and proc.stderr == b""


def test_snapshot_into_a_missing_directory_names_the_target_not_a_temp_file(capsys):
    rc, out, err = run(capsys, "snapshot", str(os.getpid()), "-o", "/nonexistent-dir/x.smaps")
    assert rc == 1 and out == ""
    assert "cannot write /nonexistent-dir/x.smaps" in err and ".anonvma-" not in err
    assert err.count("\n") == 1


def test_a_gzip_file_is_read_and_a_broken_or_binary_one_gets_a_short_error(capsys, tmp_path):
    with open(ANDROID, "rb") as f:
        raw = f.read()
    packed = tmp_path / "android.smaps.gz"
    packed.write_bytes(gzip.compress(raw))
    rc, out, _ = run(capsys, "show", str(packed))
    assert rc == 0 and "[anon:dalvik-main space]" in out
    broken = tmp_path / "cut.gz"
    broken.write_bytes(gzip.compress(raw)[:100])
    binary = tmp_path / "random.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    for bad in (broken, binary):
        rc, out, err = run(capsys, "show", str(bad))
        assert rc == 1 and out == "" and err.count("\n") == 1
        assert "\\x" not in err and len(err) < 300 and str(bad) in err


def test_an_empty_file_is_refused(capsys, tmp_path):
    empty = tmp_path / "empty.smaps"
    empty.write_text("")
    rc, out, err = run(capsys, "show", str(empty))
    assert rc == 1 and out == "" and "no VMAs in it" in err


def test_version_and_help_texts(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert " ".join(capsys.readouterr().out.split()) == (f"anonvma {__version__}: the model speaks Linux "
                                               f"{', '.join(releases.names())} (default {releases.DEFAULT})")
    demo = _helps()["demo"]
    assert "refcount" in demo and "strdup" in demo and "fork" in demo
    show = _helps()["show"]
    assert re.search(r"PID\|FILE\s+process ids, 'self'", show)


def _helps() -> dict:
    """Every command's --help text, sub-commands included (``oracle build`` ...)."""
    out = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out[f"{prefix}{name}"] = sub.format_help()
                    walk(sub, f"{prefix}{name} ")
    walk(build_parser(), "")
    return out


def test_help_texts_cite_only_documents_the_repository_contains():
    """A cited document (``KERNEL-NOTES 4``, ``OPS-FORMAT v1``, ``X.md``) must be in the repository."""
    docs = {Path(p).stem for p in subprocess.run(["git", "ls-files", "*.md"], cwd=REPO, text=True,
                                                  capture_output=True, check=True).stdout.split()}
    cited = re.compile(r"\b([A-Z]+-[A-Z][A-Z-]*)\b|\b([\w-]+)\.md\b")
    missing = {}
    for command, text in {"anonvma": build_parser().format_help(), **_helps()}.items():
        for m in cited.finditer(text):
            doc = m.group(1) or m.group(2)
            if doc not in docs:
                missing.setdefault(doc, set()).add(command)
    assert missing == {}


def test_messages_say_what_a_user_typed_and_never_a_raw_errno(capsys, tmp_path):
    rc, out, _ = run(capsys, "show", "self", "--match", r"^\[anon:|^\[heap\]$")
    assert rc == 0 and r"matching '^\[anon:|^\[heap\]$')" in out.splitlines()[0]  # as typed
    rc, _, err = run(capsys, "show", "self", "--match", "it's(")
    assert rc == 2 and "bad --match 'it'\\''s(': missing )" in err
    missing = tmp_path / "missing"
    for argv, why in ((["show", str(missing)], f"{missing}: No such file or directory"),
                      (["show", str(tmp_path)], f"{tmp_path}: Is a directory"),
                      (["diff", str(missing), "self"], f"{missing}: No such file or directory"),
                      (["plot", str(missing), "-o", str(tmp_path / "x.png")],
                       f"{missing}: No such file or directory")):
        rc, out, err = run(capsys, *argv)
        assert rc in (1, 2) and out == "" and err == f"anonvma {argv[0]}: error: {why}\n", err
        assert "Errno" not in err


def test_the_hint_for_denied_processes_fits_who_reads():
    from anonvma.procmaps.system import System

    read = System(0.0, 0.0, [], 0, {"denied": 2, "exited": 1, "unreadable": 0}, [])
    assert read.skipped_line(root=False) == ("not counted (processes): 2 denied, 1 exited while read "
                                             "(run as root to read every process)")
    as_root = read.skipped_line(root=True)
    assert "run as root" not in as_root and "denied even to root" in as_root
    assert System(0.0, 0.0, [], 0, {"denied": 0, "exited": 1, "unreadable": 0}, []).skipped_line(
        root=True) == "not counted (processes): 1 exited while read"



#: What --by none gives each VMA besides its counters (JSON and CSV).
VMA_FIELDS = ("start", "end", "perms", "offset", "dev", "inode", "name", "vm_flags")


def test_show_by_none_gives_each_vma_its_permissions_offset_and_flags(capsys):
    """As pmap -X: one row per VMA with its permissions, file offset and VmFlags, in the table,
    the JSON and the CSV; a maps file has no VmFlags: unknown (null, empty), not none."""
    vmas = {v.start: v for v in procmaps.read_file(PY_SMAPS).vmas}
    libc_text = 0x7efd79644000  # r-xp at file offset 0x26000
    rc, out, _ = run(capsys, "show", PY_SMAPS, "--by", "none", "--json")
    groups = json.loads(out)["groups"]
    assert rc == 0 and len(groups) == len(vmas)
    for g in groups:
        v = vmas[g["start"]]
        assert [g[f] for f in VMA_FIELDS] == [*v[:7], list(v.vm_flags)]
    text = next(g for g in groups if g["start"] == libc_text)
    assert (text["perms"], text["offset"]) == ("r-xp", 0x26000)
    assert text["vm_flags"] == ["rd", "ex", "mr", "mw", "me"]

    rc, out, _ = run(capsys, "show", PY_SMAPS, "--by", "none")
    lines = out.splitlines()
    assert lines[1].split() == "PERMS OFFSET SIZE RSS PSS USS SHARED SWAP FLAGS NAME".split()
    row = next(line for line in lines if f"{libc_text:x}-" in line)
    assert row.split()[:2] == ["r-xp", "00026000"]
    assert re.search(f"  rd ex mr mw me +{libc_text:x}-7efd7979a000 /usr/lib/x86_64-linux-gnu/libc.so.6$",
                     row)
    assert lines[-1].split()[-1] == "total"

    rc, out, _ = run(capsys, "show", PY_SMAPS, "--by", "none", "--csv")
    rows = out.splitlines()
    header = rows[0].split(",")
    assert header[-len(VMA_FIELDS):] == list(VMA_FIELDS)
    cells = next(r.split(",") for r in rows if r.startswith(f"{libc_text:x}-"))
    assert cells[-len(VMA_FIELDS):] == [str(libc_text), str(0x7efd7979a000), "r-xp", str(0x26000), "fe:00",
                                        "339380", "/usr/lib/x86_64-linux-gnu/libc.so.6", "rd ex mr mw me"]

    rc, out, _ = run(capsys, "show", PY_MAPS, "--by", "none", "--json")
    groups = json.loads(out)["groups"]
    assert all(g["vm_flags"] is None and g["perms"] for g in groups)
    rc, out, _ = run(capsys, "show", PY_MAPS, "--by", "none")
    assert out.splitlines()[1].split() == ["PERMS", "OFFSET", "SIZE", "NAME"]
    rc, out, _ = run(capsys, "show", PY_SMAPS, "--csv")  # grouped by name: no VMA columns
    assert out.splitlines()[0].split(",")[-1] == "estimated"


def test_saved_files_by_process_are_rows_without_a_pid(capsys):
    """show FILE FILE --by process: each file a row, its path where a command line goes."""
    sleep = os.path.join(DATA, "linux-6.18-sleep", "smaps")
    rc, out, _ = run(capsys, "show", sleep, PY_SMAPS, "--by", "process")
    lines = out.splitlines()
    assert rc == 0 and lines[0].startswith(f"{sleep} {PY_SMAPS}: 2 read in ")
    assert [line.split()[0] for line in lines[2:]] == ["-", "-", "2"]
    assert sorted(line.split()[-1] for line in lines[2:-1]) == sorted([sleep, PY_SMAPS])
    rc, out, _ = run(capsys, "show", sleep, PY_SMAPS, "--by", "process", "--json")
    rows = json.loads(out)["processes"]
    assert {(p["pid"], p["cmdline"]) for p in rows} == {(None, sleep), (None, PY_SMAPS)}
    rc, out, _ = run(capsys, "show", sleep, PY_SMAPS, "--by", "process", "--csv")
    assert sorted(r.split(",")[:2] for r in out.splitlines()[1:]) == sorted([["", sleep], ["", PY_SMAPS]])
