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


NAME_LINES = """\
7f0000000000-7f0000004000 rw-p 00000000 00:00 0
Name:           cache
Size:                 16 kB
Rss:                   8 kB
VmFlags: rd wr mr mw me ac
7f0000004000-7f0000008000 rw-p 00000000 00:00 0
Name:           [anon:arena]
Size:                 16 kB
Rss:                   4 kB
VmFlags: rd wr mr mw me ac
7f0000008000-7f000000c000 rw-p 00000000 00:00 0                          [anon:in the maps line]
Name:           other
Size:                 16 kB
Rss:                   0 kB
VmFlags: rd wr mr mw me ac
7f000000c000-7f0000010000 rw-p 00000000 00:00 0
Size:                 16 kB
Rss:                   0 kB
VmFlags: rd wr mr mw me ac
"""


def test_a_name_only_on_a_name_line_names_the_vma(tmp_path):
    """Android prints ``Name:`` in smaps (bare in hand-written files, ``[anon:NAME]`` from
    seq_print_vma_name); a VMA whose maps line has no name is named by it, the maps line wins."""
    path = tmp_path / "named.smaps"
    path.write_text(NAME_LINES)
    snap = procmaps.read_file(path)
    assert [v.name for v in snap.vmas] == ["[anon:cache]", "[anon:arena]", "[anon:in the maps line]", ""]
    assert snap.vmas[0].extra == (("Name", "cache"),)
    rss = {g.key: g.rss for g in procmaps.group(snap)}
    assert rss == {"[anon:cache]": 8, "[anon:arena]": 4, "[anon:in the maps line]": 0, "": 0}
    assert {g.key for g in procmaps.group(procmaps.tally(str(path)))} == set(rss)


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


# --- impossible address spaces (issue 12): refused, naming the line -------------------------

SLEEP = os.path.join(DATA, "linux-6.18-sleep", "smaps")


def _sleep_lines():
    with open(SLEEP) as f:
        return f.read().split("\n")


def _header_linenos(lines):
    return [i for i, line in enumerate(lines) if line[:1].isalnum() and not parse_mod._is_field(line)]


def _refused(text, fragment, at=None):
    """parse(text) is refused with ``fragment`` in the message (at line ``at``, if given)."""
    with pytest.raises(procmaps.ProcmapsParseError) as exc:
        procmaps.parse(text, "mut.smaps")
    assert fragment in str(exc.value)
    assert at is None or exc.value.lineno == at
    return exc.value


def test_a_vma_whose_end_lies_below_its_start_is_refused_at_its_line():
    lines = _sleep_lines()
    i = _header_linenos(lines)[3]
    start, rest = lines[i].split("-", 1)
    end, tail = rest.split(" ", 1)
    lines[i] = f"{end}-{start} {tail}"
    _refused("\n".join(lines), "ends before it starts", at=i + 1)


def test_the_same_vma_twice_is_refused_not_counted_twice():
    lines = _sleep_lines()
    heads = _header_linenos(lines)
    entry = lines[heads[2]:heads[3]]
    doubled = lines[:heads[3]] + entry + lines[heads[3]:]
    _refused("\n".join(doubled), "overlaps or precedes", at=heads[3] + 1)
    # the maps-file form of the same mistake
    with open(os.path.join(DATA, "linux-6.18-sleep", "maps")) as f:
        maps = f.read().split("\n")
    _refused("\n".join(maps[:5] + maps[4:]), "overlaps or precedes", at=6)


def test_overlapping_ranges_out_of_order_unaligned_and_empty_vmas_are_refused():
    a = "00400000-00402000 rw-p 00000000 00:00 0 \n"
    _refused(a + "00401000-00403000 rw-p 00000000 00:00 0 \n", ":2: VMA overlaps")
    _refused("00500000-00501000 rw-p 00000000 00:00 0 \n" + a, ":2: VMA overlaps")
    _refused("00400100-00402000 rw-p 00000000 00:00 0 \n", "aligned")
    _refused("00400000-00400000 rw-p 00000000 00:00 0 \n", "empty VMA")


def test_size_that_is_not_the_address_range_is_refused_at_the_size_line():
    lines = _sleep_lines()
    i = _header_linenos(lines)[1] + 1
    assert lines[i].startswith("Size:")
    lines[i] = "Size:                 24 kB"
    _refused("\n".join(lines), "does not match the VMA's address range (20 kB)", at=i + 1)


@pytest.mark.parametrize("value", ["-4 kB", "+4 kB", "4_0 kB", "0x4 kB", "4kB", "4 4 kB", "4 MB", "٤ kB"])
def test_negative_or_malformed_numbers_are_refused(value):
    lines = _sleep_lines()
    i = _header_linenos(lines)[1] + 4
    key = lines[i].split(":")[0]
    assert key == "Rss"
    lines[i] = f"Rss:          {value}"
    _refused("\n".join(lines), "bad value for Rss", at=i + 1)


def test_a_field_given_twice_and_a_vma_without_fields_are_refused():
    lines = _sleep_lines()
    heads = _header_linenos(lines)
    twice = lines[:heads[1] + 3] + [lines[heads[1] + 2]] + lines[heads[1] + 3:]
    _refused("\n".join(twice), "given twice")
    bare = lines[:heads[2] + 1] + lines[heads[3]:]  # VMA 3 keeps its header only
    _refused("\n".join(bare), "no smaps fields for this VMA", at=heads[2] + 1)
    cut = "\n".join(lines[:heads[5] + 1])  # the file ends right after a header
    _refused(cut, "cut short")
    two_maps_lines = "00400000-00401000 rw-p 00000000 00:00 0 \n00401000-00402000 rw-p 00000000 00:00 0 \n"
    _refused(two_maps_lines + "Size: 4 kB\n", ":3: smaps field in a maps file")


def test_binary_data_is_refused_without_dumping_it():
    err = _refused(b"00400000-00401000 rw-p 00000000 00:00 0 \n\x00\x01\x02garbage\xff\n", "NUL byte")
    assert "\\x01" not in str(err) and "binary data" in str(err)


def test_every_line_of_a_good_file_is_still_accepted_and_both_paths_agree():
    for name in fixture_dirs():
        for kind in ("smaps", "maps"):
            path = os.path.join(DATA, name, kind)
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            slow = parse_mod._parse_lines(data.decode().split("\n"), path)
            assert procmaps.parse(data, path) == slow
            if name != "android-handwritten":  # kernel output: the fast path takes it
                assert parse_mod._parse_fast(data) == slow


def test_an_empty_or_blank_file_is_an_error_not_zero_vmas(tmp_path):
    for content in (b"", b"\n\n  \n"):
        empty = tmp_path / "empty.smaps"
        empty.write_bytes(content)
        with pytest.raises(procmaps.ProcmapsParseError, match="no VMAs in it"):
            procmaps.read_file(empty)
    assert procmaps.parse(b"") == ([], ())  # a kernel thread's live maps is empty: not an error there


def test_gzip_compressed_files_are_read_and_a_broken_one_is_a_short_error(tmp_path):
    import gzip

    with open(SLEEP, "rb") as f:
        raw = f.read()
    packed = tmp_path / "sleep.smaps.gz"
    packed.write_bytes(gzip.compress(raw))
    assert procmaps.read_file(packed).vmas == procmaps.read_file(SLEEP).vmas
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(raw)[:200])
    with pytest.raises(procmaps.ProcmapsParseError) as exc:
        procmaps.read_file(broken)
    assert "gzip data is corrupt or cut short" in str(exc.value) and "\\x" not in str(exc.value)
    assert len(str(exc.value)) < 200


def test_chunked_parsing_agrees_with_the_whole_text_whatever_the_chunk_size():
    with open(os.path.join(DATA, "linux-6.18-python", "smaps"), "rb") as f:
        data = f.read()
    whole = procmaps.parse(data)
    for size in (1, 7, 100, 4096, 10_000, len(data)):
        p = parse_mod.ChunkParser("x")
        for i in range(0, len(data), size):
            p.feed(data[i:i + size])
        assert p.finish() == whole, size
