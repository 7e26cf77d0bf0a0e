"""``--by category``: the built-in table (Android's dumpsys classes and the runtimes' names) and a
user's own (``--categories FILE``), on a hand-written maps file, the saved fixtures and live
processes of this machine.

The hand-written maps (tests/data/categories) holds one VMA per built-in rule, the i-th one i+1
pages long, with its expected category beside it in expected.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from typing import Any, Dict, Iterator

import pytest

from anonvma.cli import main
from anonvma.procmaps import group, read_file, total
from anonvma.procmaps.categories import BUILTIN, CategoriesError, builtin, load
from procmaps_fixtures import DATA, fixture_dirs
from registry_helpers import Namer

HERE = os.path.join(os.path.dirname(__file__), "data", "categories")
MAPS = os.path.join(HERE, "maps")
ANDROID = os.path.join(DATA, "android-handwritten", "smaps")
PAGE = os.sysconf("SC_PAGE_SIZE")
KB = PAGE // 1024


def expected() -> Dict[str, str]:
    with open(os.path.join(HERE, "expected.json")) as f:
        return dict(json.load(f)["categories"])


def show_json(capsys: Any, *argv: str) -> Any:
    assert main(["show", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_name_of_the_handwritten_maps_has_its_expected_category():
    table = builtin()
    want = expected()
    vmas = read_file(MAPS).vmas
    assert [v.name for v in vmas] == list(want)
    assert {v.name: table.of(v.name) for v in vmas} == want


def test_every_built_in_rule_is_the_first_match_of_some_name_in_the_handwritten_maps():
    """The file covers the whole table, in order: no rule is shadowed by an earlier one."""
    first = set()
    for name in expected():
        stripped = name[:-len(" (deleted)")] if name.endswith(" (deleted)") else name
        hit = next((i for i, (_, p) in enumerate(BUILTIN) if re.search(p, stripped)), None)
        if hit is not None:
            first.add(hit)
    assert sorted(set(range(len(BUILTIN))) - first) == []


def test_show_by_category_of_the_handwritten_maps_counts_and_sizes_each_category(capsys):
    doc = show_json(capsys, MAPS, "--by", "category")
    want = expected()
    pages: Counter[str] = Counter()
    for i, category in enumerate(want.values()):
        pages[category] += (i + 1) * 4  # the file's VMAs are 4 kB pages
    got = {g["key"]: g for g in doc["groups"]}
    assert {k: g["count"] for k, g in got.items()} == dict(Counter(want.values()))
    assert {k: g["size"] for k, g in got.items()} == dict(pages)
    assert {g["kind"] for g in doc["groups"]} == {"category"}
    assert all(g["rss"] is None and g["pss"] is None for g in doc["groups"])  # maps has no counters
    assert (doc["by"], doc["categories"]) == ("category", "built-in")
    assert doc["total"]["count"] == len(want)


def test_csv_by_category_carries_the_category_as_its_key(capsys):
    assert main(["show", MAPS, "--by", "category", "--csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("key,kind,count,size,")
    keys = {r.split(",")[0]: r.split(",")[1] for r in rows[1:]}
    assert set(keys) == set(expected().values()) and set(keys.values()) == {"category"}


def test_table_by_category_heads_its_names_column_category(capsys):
    assert main(["show", ANDROID, "--by", "category"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "groups by category" in lines[0]
    assert lines[1].split()[-1] == "CATEGORY"


def test_the_android_sample_is_split_into_dumpsys_classes_with_its_counters(capsys):
    doc = show_json(capsys, ANDROID, "--by", "category")
    got = {g["key"]: (g["count"], g["pss"], g["swap"]) for g in doc["groups"]}
    assert got["Dalvik Heap: .Heap"] == (1, 10240, 2048)
    assert got[".art mmap"][0] == 1  # [anon:dalvik-/system/framework/boot.art], as libmeminfo files it
    assert got["Stack"][0] == 3  # two stack_and_tls and one glibc pthread stack
    assert got["Dalvik Other: .AppJIT"][0] == 1  # /memfd:jit-cache (deleted)
    assert got["Shmem"][0] == 1  # [anon_shmem:dalvik-jit-code-cache]
    assert got["Unknown"][0] == 1  # plain anonymous memory
    assert doc["total"]["pss"] == 10935


@pytest.mark.parametrize("fixture", fixture_dirs())
def test_categories_split_a_saved_files_memory_without_losing_or_adding_any(capsys, fixture):
    path = os.path.join(DATA, fixture, "smaps")
    by_name = total(group(read_file(path)))
    by_category = total(group(read_file(path), by="category"))
    assert by_category == by_name
    doc = show_json(capsys, path, "--by", "category")
    assert sum(g["pss"] for g in doc["groups"]) == by_name.pss


USER_TOML = r"""
# the user's own categories, tried before the built-in ones, in file order
"My cache" = ['^\[anon:my cache\]']
"Python" = ['/python3', 'libpython']
"Libraries" = ['\.so(\.[0-9]+)*$', 'never-reached']
"""


def test_a_users_table_is_tried_first_in_file_order_then_the_built_in_one(capsys, tmp_path):
    own = tmp_path / "mine.toml"
    own.write_text(USER_TOML)
    table = load(str(own))
    assert table.source == f"{own} + built-in"
    assert table.of("[anon:my cache]") == "My cache"
    assert table.of("/usr/bin/python3.11") == "Python"
    assert table.of("/usr/lib/libpython3.11.so.1.0") == "Python"  # Python's rule comes first
    assert table.of("/usr/lib/libc.so.6") == "Libraries"
    assert table.of("[anon:dalvik-main space]") == "Dalvik Heap: .Heap"  # the built-in rules follow
    doc = show_json(capsys, MAPS, "--by", "category", "--categories", str(own))
    got = {g["key"]: g["count"] for g in doc["groups"]}
    assert (got["My cache"], got["Python"], got["Libraries"]) == (1, 1, 2)
    assert ".so mmap" not in got and doc["categories"] == f"{own} + built-in"


def test_a_users_catch_all_leaves_nothing_to_the_built_in_table(capsys, tmp_path):
    own = tmp_path / "two.toml"
    own.write_text("Named = ['^\\[anon:']\nEverything = ['']\n")
    doc = show_json(capsys, MAPS, "--by", "category", "--categories", str(own))
    assert {g["key"] for g in doc["groups"]} == {"Named", "Everything"}


BAD = {
    "not TOML": ("Heap = [", r"not TOML"),
    "a bad regex": ("'My heap' = ['^\\[anon:(heap']", r"category 'My heap': bad regular expression"),
    "not a list": ("'My heap' = '^x'", r"category 'My heap': wants a list of regular expressions"),
    "not strings": ("'My heap' = [1, 2]", r"category 'My heap': wants a list of regular expressions"),
    "a table": ("['My heap']\nx = 1", r"category 'My heap': wants a list of regular expressions"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_categories_file_is_one_line_naming_it_and_the_category_exit_2_nothing_read(
        capsys, tmp_path, case):
    text, said = BAD[case]
    own = tmp_path / "bad.toml"
    own.write_text(text + "\n")
    missing = tmp_path / "never-read.smaps"  # read first, it would be the error
    assert main(["show", str(missing), "--by", "category", "--categories", str(own)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"anonvma show: error: --categories {own}: ")
    assert re.search(said, lines[0]), lines[0]
    with pytest.raises(CategoriesError):
        load(str(own))


def test_a_missing_categories_file_and_categories_without_by_category_are_usage_errors(capsys, tmp_path):
    assert main(["show", MAPS, "--by", "category", "--categories", str(tmp_path / "none.toml")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"anonvma show: error: --categories {tmp_path / 'none.toml'}: No such file or directory")
    assert main(["show", MAPS, "--categories", str(tmp_path / "none.toml")]) == 2
    assert capsys.readouterr().err.strip() == "anonvma show: error: --categories goes with --by category"


@pytest.fixture
def named(tmp_path, monkeypatch) -> Iterator[Namer]:
    """A live child that named 32 pages ``dalvik-main space`` (20 touched) and 16 ``my cache``
    (10 touched): through the kernel where it can name memory, else its anonvma registry."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    with Namer() as child:
        child.run("heap = live.named_mmap(32 * P, 'dalvik-main space', fallback=True)\n"
                  "for i in range(20): heap[i * P] = 1\n"
                  "cache = live.named_mmap(16 * P, 'my cache', fallback=True)\n"
                  "for i in range(10): cache[i * P] = 1\n")
        yield child


def anonvma(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "anonvma", *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


def test_a_live_processs_named_memory_is_filed_by_the_built_in_and_the_users_table(named, tmp_path):
    out = anonvma("show", str(named.pid), "--by", "category", "--json")
    assert out.returncode == 0, out.stderr
    got = {g["key"]: g for g in json.loads(out.stdout)["groups"]}
    heap = got["Dalvik Heap: .Heap"]
    assert (heap["count"], heap["size"], heap["rss"], heap["uss"]) == (1, 32 * KB, 20 * KB, 20 * KB)
    own = tmp_path / "mine.toml"
    own.write_text("Cache = ['^\\[anon:my cache\\]$']\n")
    out = anonvma("show", str(named.pid), "--by", "category", "--categories", str(own), "--json")
    assert out.returncode == 0, out.stderr
    got = {g["key"]: g for g in json.loads(out.stdout)["groups"]}
    assert (got["Cache"]["size"], got["Cache"]["rss"]) == (16 * KB, 10 * KB)
    assert got["Dalvik Heap: .Heap"]["rss"] == 20 * KB


def test_show_all_by_category_sums_the_live_processes_across_the_machine(named):
    mine = anonvma("show", "--all", "--comm", "^python", "--by", "category", "--json")
    assert mine.returncode == 0, mine.stderr
    doc = json.loads(mine.stdout)
    heap = {g["key"]: g for g in doc["groups"]}["Dalvik Heap: .Heap"]
    assert heap["rss"] >= 20 * KB and heap["processes"] >= 1
    assert doc["categories"] == "built-in" and doc["by"] == "category"


def test_several_pids_by_category_give_one_table_each(named, capsys):
    doc = show_json(capsys, str(named.pid), "self", "--by", "category")
    assert isinstance(doc, list) and len(doc) == 2
    assert "Dalvik Heap: .Heap" in {g["key"] for g in doc[0]["groups"]}
