"""``--fields`` and the columns users ask for: SwapPss, Pss_Dirty, Pss_Anon/File/Shmem, Locked,
LazyFree, AnonHugePages and the count of THPeligible VMAs, on saved files and a live process.

Saved files: each sum is checked against the same sum taken line by line from the file (the
obvious path), and against answers known from how the recordings were made; the Android sample
is of a kernel that prints no Pss_Dirty or LazyFree, so those are unknown there. Live: a child
that mlocks, MADV_FREEs and MADV_HUGEPAGEs memory at fixed addresses, read as it runs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from anonvma import procmaps
from anonvma.cli import main
from anonvma.procmaps.format import FIELDS, GROUP_FIELDS
from anonvma.procmaps.records import COLUMN_KEYS, COLUMNS
from anonvma.procmaps.system import by_name, read_system
from procmaps_fixtures import DATA, spawned
from prometheus_helpers import exporter, fetch, prometheus_server, query, wait_for

TESTS_DATA = os.path.dirname(DATA)
ANDROID = os.path.join(DATA, "android-handwritten", "smaps")
LOCKED_61 = os.path.join(TESTS_DATA, "uml_smaps_locked", "parent.smaps-6.1.176")
PYTHON_618 = os.path.join(DATA, "linux-6.18-python", "smaps")
SAVED = [os.path.join(DATA, d, "smaps")
         for d in ("android-handwritten", "linux-6.18-python", "linux-6.18-sleep")] + [
    os.path.join(TESTS_DATA, d, f) for d in ("uml_smaps", "uml_smaps_locked")
    for f in sorted(os.listdir(os.path.join(TESTS_DATA, d))) if "smaps" in f]
EVERY = ",".join(("swap_pss", *COLUMNS))
HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def by_hand(path):
    """name -> {smaps key -> summed value}, and the keys printed: the file read line by line (a
    key a VMA does not print counts 0 there, as the parser counts it)."""
    vmas = []
    printed: set = set()
    with open(path) as f:
        for line in f:
            if HEADER.match(line):
                parts = line.split(None, 5)
                vmas.append((parts[5].strip() if len(parts) > 5 else "", {}))
                continue
            key, _, rest = line.partition(":")
            words = rest.split()
            if words and words[0].isdigit():
                printed.add(key)
                vmas[-1][1][key] = int(words[0])
    sums: dict = {}
    for name, vma in vmas:
        row = sums.setdefault(name, {"vmas": 0, "_anon": 0, "_mixed": False, "_unsplit": False})
        row["vmas"] += 1
        for key, value in vma.items():
            row[key] = row.get(key, 0) + (value == 1 if key == "THPeligible" else value)
        rss, pss, anon = vma.get("Rss", 0), vma.get("Pss", 0), vma.get("Anonymous", 0)
        row["_anon"] += pss if anon == rss else 0  # Pss_Anon where exact (docs/show.md)
        row["_mixed"] |= 0 < anon < rss
        row["_unsplit"] |= anon != rss
    return sums, printed


@pytest.mark.parametrize("path", SAVED, ids=lambda p: os.path.relpath(p, TESTS_DATA))
def test_each_column_of_a_saved_file_is_the_sum_of_its_lines_or_unknown(path):
    sums, printed = by_hand(path)
    groups = {g.key: g for g in procmaps.group(procmaps.read_file(path))}
    assert set(groups) == set(sums)
    for name, row in sums.items():
        g = groups[name]
        for field in ("swap_pss", "pss_dirty", "locked", "lazy_free", "anon_huge_pages", "thp_eligible"):
            key = COLUMN_KEYS[field]
            assert g.value(field) == (row.get(key, 0) if key in printed else None), (name, field)
        assert g.value("pss_anon") == (None if row["_mixed"] else row["_anon"]), name
        for field in ("pss_file", "pss_shmem"):
            assert g.value(field) == (None if row["_unsplit"] else 0), (name, field)


def test_the_locked_recording_has_the_answers_it_was_made_with(capsys):
    # recorded_with.py: 2 pages mlocked in [anon:locked], shared with a child (Pss, Locked halved)
    rc, out, _ = run(capsys, "show", LOCKED_61, "--json", "--fields", "count,pss,locked,pss_dirty,pss_anon,"
                     "pss_file,pss_shmem,lazy_free,anon_huge_pages,thp_eligible,swap_pss")
    assert rc == 0
    doc = json.loads(out)
    locked = {g["key"]: g for g in doc["groups"]}["[anon:locked]"]
    assert locked == {"key": "[anon:locked]", "kind": "anon_named", "count": 1, "pss": 4, "locked": 4,
                      "pss_dirty": 4, "pss_anon": 4, "pss_file": 0, "pss_shmem": 0, "lazy_free": 0,
                      "anon_huge_pages": 0, "thp_eligible": 0, "swap_pss": 0, "registered": False,
                      "estimated": False}
    assert doc["total"]["locked"] == 6 and doc["total"]["pss_dirty"] == 12


def test_fields_a_kernel_does_not_print_are_dash_null_and_empty_never_zero(capsys):
    fields = "pss,pss_dirty,lazy_free,locked"
    rc, out, _ = run(capsys, "show", ANDROID, "--fields", fields)
    assert rc == 0
    header, *rows = out.splitlines()[1:]
    assert header.split() == ["PSS", "PSS_DIRTY", "LAZY_FREE", "LOCKED", "NAME"]
    main_space = [r for r in rows if r.endswith("[anon:dalvik-main space]")][0].split()
    assert main_space[:4] == ["10.0M", "-", "-", "0K"]
    assert rows[-1].split()[:4] == ["10.7M", "-", "-", "0K"] and rows[-1].endswith("total")
    rc, out, _ = run(capsys, "show", ANDROID, "--json", "--fields", fields)
    doc = json.loads(out)
    assert {(g["pss_dirty"], g["lazy_free"], g["locked"]) for g in doc["groups"]} == {(None, None, 0)}
    assert list(doc["total"]) == ["key", "kind", "pss", "pss_dirty", "lazy_free", "locked", "registered",
                                  "estimated"]
    rc, out, _ = run(capsys, "show", ANDROID, "--csv", "--fields", fields)
    head, first = out.splitlines()[:2]
    assert head == "key,kind,pss,pss_dirty,lazy_free,locked,registered,estimated"
    assert first == "[anon:dalvik-main space],anon_named,10240,,,0,false,false"


def test_maps_input_has_none_of_the_columns(capsys):
    rc, out, _ = run(capsys, "show", os.path.join(DATA, "linux-6.18-python", "maps"), "--json",
                     "--fields", "count," + EVERY)
    assert rc == 0
    doc = json.loads(out)
    assert all(g["count"] > 0 for g in doc["groups"])
    assert {g[f] for g in doc["groups"] for f in ("swap_pss", *COLUMNS)} == {None}


def test_without_fields_the_output_is_as_before(capsys):
    _, out, _ = run(capsys, "show", PYTHON_618, "--json")
    doc = json.loads(out)
    assert list(doc["total"]) == ["key", "kind", *GROUP_FIELDS, "registered", "estimated"]
    _, out, _ = run(capsys, "show", PYTHON_618)
    assert out.splitlines()[1].split() == ["COUNT", "SIZE", "RSS", "PSS", "USS", "SHARED", "SWAP", "NAME"]


@pytest.mark.parametrize("argv", [("show", PYTHON_618), ("diff", PYTHON_618, PYTHON_618)],
                         ids=["show", "diff"])
def test_a_field_that_does_not_exist_is_a_usage_error_naming_the_valid_ones(capsys, argv):
    rc, out, err = run(capsys, *argv, "--fields", "pss,Locked")
    assert rc == 2 and out == ""
    assert err == (f"anonvma {argv[0]}: error: --fields 'pss,Locked': unknown field 'Locked'; valid fields: "
                   f"{', '.join(FIELDS)}\n")


def test_diff_gives_the_chosen_fields_and_their_deltas(capsys, tmp_path):
    later = tmp_path / "later.smaps"
    text = Path(LOCKED_61).read_text()
    later.write_text(text.replace("Locked:                4 kB", "Locked:                8 kB"))
    rc, out, _ = run(capsys, "diff", LOCKED_61, str(later), "--json", "--fields", "pss,locked", "--all")
    assert rc == 0  # pss, the measure, is the same; diff's status stays about its measures
    change = {c["key"]: c for c in json.loads(out)["changes"]}["[anon:locked]"]
    assert change["delta"] == {"pss": 0, "locked": 4} and change["after"]["locked"] == 8
    rc, out, _ = run(capsys, "diff", LOCKED_61, str(later), "--csv", "--fields", "locked", "--all")
    assert out.splitlines()[0] == ("key,kind,status,before_locked,after_locked,delta_locked,registered,"
                                   "estimated")


def test_a_sum_over_processes_is_unknown_when_any_of_them_lacks_the_field(capsys):
    system = read_system([ANDROID, PYTHON_618])
    names = {g.key: g for g in by_name(system)}
    assert names[""].processes == 2  # [anonymous] is in both: Android prints no Pss_Dirty
    assert names[""].value("pss_dirty") is None and names[""].value("locked") == 0
    heap, _ = by_hand(PYTHON_618)
    assert names["[heap]"].processes == 1
    assert names["[heap]"].value("pss_dirty") == heap["[heap]"]["Pss_Dirty"]
    rc, out, _ = run(capsys, "show", ANDROID, PYTHON_618, "--by", "process", "--json",
                     "--fields", "pss_dirty,locked")
    doc = json.loads(out)
    assert [(p["cmdline"], p["pss_dirty"] is None) for p in doc["processes"]] == [
        (ANDROID, True), (PYTHON_618, False)]
    assert doc["total"]["pss_dirty"] is None and doc["total"]["locked"] == 0


CHILD = """# anonvma-columns-test
import ctypes, json, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
P = mmap.PAGESIZE
FIXED = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x10  # MAP_FIXED
RW = mmap.PROT_READ | mmap.PROT_WRITE
def region(addr, size):
    assert libc.mmap(addr, size, RW, FIXED, -1, 0) == addr, ctypes.get_errno()
    return addr
def call(name, *args):
    assert getattr(libc, name)(*map(ctypes.c_void_p, args[:1]), *args[1:]) == 0, (name, ctypes.get_errno())
locked = region(0x5000000000, 4 * P)
ctypes.memset(locked, 1, 4 * P)
call("mlock", locked, 4 * P)
free = region(0x5000100000, 4 * P)
ctypes.memset(free, 1, 4 * P)
call("madvise", free, 4 * P, mmap.MADV_FREE)
huge = region(0x5000200000, 4 << 20)
call("madvise", huge, 4 << 20, mmap.MADV_HUGEPAGE)
ctypes.memset(huge, 1, 4 << 20)
out = region(0x5000800000, 4 * P)
ctypes.memset(out, 1, 4 * P)
paged = libc.madvise(ctypes.c_void_p(out), 4 * P, 21)  # MADV_PAGEOUT: swapped out where there is swap
print(json.dumps({"locked": locked, "free": free, "huge": huge, "out": out, "paged": paged}), flush=True)
sys.stdin.read()
"""


def smaps_lines(pid):
    """start -> {key: value, and "name"} of the process's smaps, read by hand."""
    out: dict = {}
    row: dict = {}
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if HEADER.match(line):
                parts = line.split(None, 5)
                row = out.setdefault(int(line.split("-")[0], 16), {})
                row["name"] = parts[5].strip() if len(parts) > 5 else ""
            else:
                key, _, rest = line.partition(":")
                if rest.split() and rest.split()[0].isdigit():
                    row[key] = int(rest.split()[0])
    return out


def thp_available():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def test_a_live_process_shows_its_locked_lazily_freed_and_huge_page_memory(capsys):
    page = os.sysconf("SC_PAGE_SIZE") // 1024
    with spawned(CHILD) as (pid, at):
        rc, out, _ = run(capsys, "show", str(pid), "--by", "none", "--json", "--fields",
                         "rss,locked,lazy_free,anon_huge_pages,thp_eligible,pss_anon,pss_dirty,pss_file")
        kernel = smaps_lines(pid)
        rc_name, by_name_out, _ = run(capsys, "show", str(pid), "--json", "--fields", "locked,thp_eligible")
    assert rc == rc_name == 0
    rows = {g["start"]: g for g in json.loads(out)["groups"]}
    locked, free, huge = rows[at["locked"]], rows[at["free"]], rows[at["huge"]]
    assert (locked["locked"], locked["pss_anon"], locked["pss_dirty"], locked["pss_file"]) == (
        4 * page, 4 * page, 4 * page, 0)
    assert locked["lazy_free"] == 0 and locked["thp_eligible"] == 0
    assert free["lazy_free"] == kernel[at["free"]]["LazyFree"] == 4 * page  # MADV_FREE: clean until reclaim
    assert free["locked"] == 0
    if thp_available():  # madvise or always: MADV_HUGEPAGE makes the VMA eligible
        assert huge["thp_eligible"] == 1
    assert huge["anon_huge_pages"] == kernel[at["huge"]]["AnonHugePages"]  # as many as the fault got
    anonymous = {g["key"]: g for g in json.loads(by_name_out)["groups"]}[""]
    assert anonymous["locked"] == 4 * page  # nothing else of the child is locked
    assert anonymous["thp_eligible"] == sum(
        1 for start, row in kernel.items() if row.get("THPeligible") == 1 and rows[start]["name"] == "")


def swap_devices():
    with open("/proc/swaps") as f:
        return f.read().splitlines()[1:]


@pytest.mark.skipif(not swap_devices(), reason="no swap device (/proc/swaps is empty): nothing can be "
                                               "swapped out, so SwapPss is 0 whatever anonvma sums")
def test_swapped_out_memory_is_in_swap_pss():
    with spawned(CHILD) as (pid, at):
        if at["paged"] != 0:
            pytest.skip("MADV_PAGEOUT refused (kernel before 5.4)")
        g = {g.key: g for g in procmaps.group(procmaps.read_pid(pid), by="none")}
        kernel = smaps_lines(pid)[at["out"]]
    (row,) = [v for k, v in g.items() if k.startswith(f"{at['out']:x}-")]
    assert row.value("swap_pss") == kernel["SwapPss"] > 0


def test_several_pids_and_all_processes_carry_the_columns(capsys):
    page = os.sysconf("SC_PAGE_SIZE") // 1024
    with spawned(CHILD) as (pid, _):
        rc, out, _ = run(capsys, "show", "self", str(pid), "--by", "process", "--json",
                         "--fields", "pss,locked")
        assert rc == 0
        rows = {p["pid"]: p for p in json.loads(out)["processes"]}
        assert rows[pid]["locked"] == 4 * page and rows[os.getpid()]["locked"] == 0
        rc, out, _ = run(capsys, "show", "--all", "--comm", "anonvma-columns-test", "--json", "--fields",
                         "processes,locked,thp_eligible")
        assert rc == 0
        doc = json.loads(out)
        assert doc["processes_read"] == 1
        anonymous = {g["key"]: g for g in doc["groups"]}[""]
        assert anonymous["processes"] == 1 and anonymous["locked"] == 4 * page
        rc, out, _ = run(capsys, "show", "--all", "--comm", "anonvma-columns-test", "--fields", "locked")
        lines = out.splitlines()
        assert ["LOCKED", "NAME"] in [line.split() for line in lines]
        assert [r.split()[0] for r in lines if r.endswith("[anonymous]")] == [f"{4 * page}K"]


def test_prometheus_scrapes_the_new_columns_of_a_live_process(tmp_path):
    prom, why = fetch()
    if prom is None:
        pytest.skip(why)
    page = os.sysconf("SC_PAGE_SIZE")
    with spawned(CHILD) as (pid, at):
        with exporter(str(pid), "--per-process") as scrape, \
                prometheus_server(prom[0], scrape, tmp_path) as base:
            sel = '{name="[anonymous]",job="anonvma"}'
            locked = wait_for("the child's locked memory in Prometheus",
                              lambda: query(base, f"anonvma_locked_bytes{sel}"), 90)
            anonymous = [row for row in smaps_lines(pid).values() if row["name"] == ""]
            assert float(locked[0]["value"][1]) == 4 * page and locked[0]["metric"]["kind"] == "anonymous"
            mine = query(base, f'anonvma_process_locked_bytes{{pid="{pid}",name="[anonymous]"}}')
            assert float(mine[0]["value"][1]) == 4 * page
            lazy = float(query(base, f"anonvma_lazy_free_bytes{sel}")[0]["value"][1])
            assert lazy == 1024 * sum(row["LazyFree"] for row in anonymous) >= 4 * page  # MADV_FREE
            eligible = float(query(base, f"anonvma_thp_eligible_vmas{sel}")[0]["value"][1])
            assert eligible == sum(row["THPeligible"] == 1 for row in anonymous)
            assert eligible >= (1 if thp_available() else 0)
            huge = float(query(base, f"anonvma_anon_huge_pages_bytes{sel}")[0]["value"][1])
            assert huge == 1024 * sum(row["AnonHugePages"] for row in anonymous)
            for metric in ("swap_pss_bytes", "pss_dirty_bytes", "pss_anon_bytes"):
                assert query(base, f"anonvma_{metric}{sel}"), metric  # this kernel prints them


def test_a_field_unknown_for_a_name_has_no_series(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    out = tmp_path / "anonvma.prom"
    assert main(["export", "--textfile", str(out), ANDROID, PYTHON_618]) == 0
    series = {(s.name, s.labels["name"]): s.value for fam in text_string_to_metric_families(out.read_text())
              for s in fam.samples if "name" in s.labels}
    assert ("anonvma_pss_dirty_bytes", "[anonymous]") not in series  # Android prints no Pss_Dirty
    assert ("anonvma_lazy_free_bytes", "[anon:dalvik-main space]") not in series
    assert series[("anonvma_locked_bytes", "[anonymous]")] == 0
    heap, _ = by_hand(PYTHON_618)
    assert series[("anonvma_pss_dirty_bytes", "[heap]")] == heap["[heap]"]["Pss_Dirty"] * 1024
    assert series[("anonvma_thp_eligible_vmas", "[heap]")] == 0
