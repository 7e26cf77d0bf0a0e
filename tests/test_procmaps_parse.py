"""procmaps parser: saved real files, an Android sample, names, folding, garbled input."""

from __future__ import annotations

import os

import pytest

from anonvma import procmaps
from anonvma.procmaps import parser as parse_mod

from procmaps_fixtures import DATA, check_fixture, fixture_dirs


@pytest.mark.parametrize("name", fixture_dirs())
def test_saved_fixture_matches_its_expected_record(name):
    check_fixture(name)


def test_android_names_with_spaces_are_never_trimmed():
    snap = procmaps.read_file(os.path.join(DATA, "android-handwritten", "smaps"))
    names = [v.name for v in snap.vmas]
    assert "[anon:dalvik-main space]" in names
    assert "[anon: glibc: pthread stack: 77]" in names
    main = snap.vmas[0]
    assert main.smaps is not None and main.smaps.protection_key == 0 and main.smaps.swap == 2048
    assert main.vm_flags == ("rd", "wr", "mr", "mw", "me", "ac")


def test_fast_and_slow_paths_agree_on_this_process():
    with open("/proc/self/smaps", "rb") as f:
        data = f.read()
    fast, keys = parse_mod._parse_fast(data)
    slow, slow_keys = parse_mod._parse_lines(data.decode().split("\n"), "self")
    assert fast == slow and keys == slow_keys
    with open("/proc/self/maps", "rb") as f:
        data = f.read()
    assert parse_mod._parse_fast(data)[0] == parse_mod._parse_lines(data.decode().split("\n"), "m")[0]


@pytest.mark.parametrize(("name", "kind"), [
    ("", "anonymous"), ("[heap]", "heap"), ("[stack]", "stack"), ("[stack:42]", "stack"),
    ("[vdso]", "special"), ("[vvar]", "special"), ("[vsyscall]", "special"),
    ("[anon:x y]", "anon_named"), ("[anon:]", "anon_named"),
    ("[anon_shmem:dalvik-jit-code-cache]", "anon_shmem"), ("/usr/lib/libc.so.6", "file"),
    ("/memfd:x (deleted)", "deleted"), ("/dev/zero (deleted)", "deleted"),
])
def test_names_are_classified_into_the_closed_set_of_kinds(name, kind):
    assert procmaps.classify(name) == kind
    assert kind in procmaps.KINDS


@pytest.mark.parametrize(("name", "folded"), [
    ("[anon:stack_and_tls:1234]", "[anon:stack_and_tls:*]"),
    ("[anon: glibc: pthread stack: 77]", "[anon: glibc: pthread stack: *]"),
    ("[anon:stack_and_tls:main]", "[anon:stack_and_tls:main]"),
    ("[stack:42]", "[stack:*]"),
    ("[anon:v8]", "[anon:v8]"),
    ("/usr/lib/libfoo.so.6", "/usr/lib/libfoo.so.6"),
])
def test_fold_replaces_only_a_separated_trailing_number(name, folded):
    assert procmaps.fold(name) == folded


HEADER = "00400000-00401000 rw-p 00000000 00:00 0 "


def test_garbled_line_is_a_value_error_naming_its_line_number():
    with open(os.path.join(DATA, "linux-6.18-python", "smaps")) as f:
        text = f.read().split("\n")
    text[29] = "this is not smaps"
    with pytest.raises(procmaps.ProcmapsParseError) as exc:
        procmaps.parse("\n".join(text), "x.smaps")
    assert exc.value.lineno == 30
    assert "x.smaps:30:" in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_bad_number_is_reported_at_its_line():
    with pytest.raises(procmaps.ProcmapsParseError, match=":3: bad value for Rss"):
        procmaps.parse(f"{HEADER}\nSize: 4 kB\nRss: four kB\n")


def test_field_before_any_header_is_an_error():
    with pytest.raises(procmaps.ProcmapsParseError, match=":1:"):
        procmaps.parse("Size: 4 kB\n")


def test_empty_input_is_an_empty_map_and_crlf_and_missing_newline_are_fine():
    assert procmaps.parse("") == ([], ())
    vmas, _ = procmaps.parse(f"{HEADER}\r\nSize:   4 kB\r\nVmFlags: rd wr")
    assert len(vmas) == 1 and vmas[0].size == 4 and vmas[0].vm_flags == ("rd", "wr")


def test_trailing_spaces_in_a_file_name_are_kept():
    vmas, _ = procmaps.parse("00400000-00401000 r--p 00000000 08:01 12   /tmp/odd name \n")
    assert vmas[0].name == "/tmp/odd name "


def test_group_totals_uss_and_diff_statuses():
    a = procmaps.read_file(os.path.join(DATA, "android-handwritten", "smaps")).vmas
    b = list(a[1:])  # dalvik-main space vanished
    b[0] = b[0]._replace(smaps=b[0].smaps._replace(pss=b[0].smaps.pss + 100))  # boot.art grew
    b.append(procmaps.Vma(1 << 40, (1 << 40) + 4096, "rw-p", 0, "00:00", 0, "[anon:new]",
                          procmaps.Smaps(size=4, rss=4, pss=4, private_dirty=4)))
    changes = {c.key: c for c in procmaps.diff(a, b)}
    assert changes["[anon:dalvik-main space]"].status == "vanished"
    assert changes["[anon:dalvik-/system/framework/boot.art]"].status == "grew"
    assert changes["[anon:dalvik-/system/framework/boot.art]"].delta("pss") == 100
    assert changes["[anon:new]"].status == "appeared"
    assert changes["[anon:v8]" if "[anon:v8]" in changes else ""].status == "same"
    g = {x.key: x for x in procmaps.group(a)}["[anon:dalvik-main space]"]
    assert (g.uss, g.shared, g.swap, g.swap_pss) == (10240, 0, 2048, 2048)
