"""Fuzzing the maps/smaps parser and the CLI on files (a bounded number of inputs per run).

Hypothesis builds address spaces (valid ones must parse back exactly, both paths agreeing;
impossible ones must be refused naming a line); the mutation fuzzer of tests/fuzz_procmaps.py
mutates the real files under tests/data; every crasher it ever found is replayed.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_procmaps as fuzz
from anonvma import procmaps
from anonvma.procmaps import parser as parse_mod
from anonvma.procmaps.records import KB_FIELDS

PAGE = 4096
NAMES = ["", "[heap]", "[stack]", "[vdso]", "[anon:dalvik-main space]", "[anon:stack_and_tls:12]",
         "[anon: Go: heap]", "/usr/lib/libc.so.6", "/tmp/odd name ", "/memfd:x (deleted)",
         "[anon_shmem:jit]", "/t\u00e9st", "[anon:a\tb]"]
KEYS = list(KB_FIELDS)


@st.composite
def address_space(draw):
    """(text, expected [(start, end, perms, name, counters or None)]) of a possible address space."""
    smaps = draw(st.booleans())
    keys = [k for k in KEYS if k != "Size" and draw(st.booleans())] if smaps else []
    addr = draw(st.integers(1, 1 << 20)) * PAGE
    lines, expected = [], []
    for _ in range(draw(st.integers(1, 6))):
        start = addr + draw(st.integers(0, 3)) * PAGE
        end = start + draw(st.integers(1, 300)) * PAGE
        addr = end
        perms = draw(st.sampled_from(sorted(parse_mod._PERMS)))
        name = draw(st.sampled_from(NAMES))
        pad = " " * draw(st.integers(0, 30)) if name else ""
        lines.append(f"{start:08x}-{end:08x} {perms} {draw(st.integers(0, 1 << 30)):08x} fe:01 "
                     f"{draw(st.integers(0, 10 ** 9))} {pad}{name}")
        counters = {}
        if smaps:
            counters = {"Size": (end - start) >> 10}
            counters.update({k: draw(st.integers(0, 10 ** 7)) for k in keys})
            lines += [f"{k + ':':<16}{v:>8} kB" for k, v in counters.items()]
            lines.append("VmFlags: rd wr mr mw me ac ")
        expected.append((start, end, perms, name, counters or None))
    return "\n".join(lines) + "\n", expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(address_space())
def test_every_possible_address_space_parses_back_exactly_on_both_paths(case):
    text, expected = case
    vmas, _ = procmaps.parse(text)
    got = [(v.start, v.end, v.perms, v.name,
            {k: getattr(v.smaps, f) for k, f in KB_FIELDS.items() if k in expected[i][4]}
            if v.smaps is not None else None) for i, v in enumerate(vmas)]
    assert got == expected
    assert parse_mod._parse_lines(text.split("\n"), "x") == (vmas, procmaps.parse(text)[1])
    assert fuzz.check_parser(text.encode(), random.Random(0)) is None


IMPOSSIBLE = {
    "end below start": lambda lines, h: _swap_range(lines, h),
    "same VMA twice": lambda lines, h: _twice(lines, h),
    "negative size": lambda lines, h: [ln.replace("Rss:", "Rss: -", 1) if ln.startswith("Rss:") else ln
                                       for ln in lines],
    "size is not the range": lambda lines, h: [ln.replace("Size:", "Size: 1", 1) if ln.startswith("Size:")
                                               else ln for ln in lines],
}


def _twice(lines, heads):
    end = heads[1] if len(heads) > 1 else len(lines) - 1  # the text ends with a newline
    return lines[:end] + lines[heads[0]:end] + lines[end:]


def _swap_range(lines, heads):
    i = heads[-1]
    rng, _, rest = lines[i].partition(" ")
    a, _, b = rng.partition("-")
    return lines[:i] + [f"{b}-{a} {rest}"] + lines[i + 1:]


@settings(max_examples=200, deadline=None)
@given(address_space(), st.sampled_from(sorted(IMPOSSIBLE)))
def test_impossible_address_spaces_are_refused_naming_a_line(case, how):
    text, expected = case
    lines = text.split("\n")
    heads = [i for i, ln in enumerate(lines) if ln and not parse_mod._is_field(ln)]
    if how in ("negative size", "size is not the range") and expected[0][4] is None:
        return  # maps: no counters to break
    bad = "\n".join(IMPOSSIBLE[how](lines, heads))
    if how == "negative size" and "Rss:" not in text:
        return
    with pytest.raises(procmaps.ProcmapsParseError) as exc:
        procmaps.parse(bad, "bad.smaps")
    assert 1 <= exc.value.lineno <= len(bad.split("\n"))
    assert f"bad.smaps:{exc.value.lineno}:" in str(exc.value)
    assert fuzz.check_parser(bad.encode(), random.Random(0)) is None


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_are_refused_with_a_line(data):
    assert fuzz.check_parser(data, random.Random(0)) is None


def test_mutants_of_the_real_files_keep_the_contract():
    seed = int(os.environ.get("ANONVMA_FUZZ_SEED", random.randrange(1 << 30)))
    report = fuzz.run(count=int(os.environ.get("ANONVMA_FUZZ_COUNT", 1500)), seed=seed, cli_every=15)
    assert report["accepted"] and report["refused"]  # the mutants reach both outcomes
    assert report["findings"] == {}, f"seed {seed}: {report['findings']}"


CRASHERS = sorted(os.listdir(fuzz.CRASHERS)) if os.path.isdir(fuzz.CRASHERS) else []


@pytest.mark.parametrize("name", CRASHERS)
def test_every_saved_crasher_now_keeps_the_contract(name):
    path = os.path.join(fuzz.CRASHERS, name)
    with open(path, "rb") as f:
        data = f.read()
    for seed in range(5):  # several ways of cutting it into chunks
        assert fuzz.check_parser(data, random.Random(seed)) is None
    assert fuzz.check_cli(path) is None
