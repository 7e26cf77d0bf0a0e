"""Fuzzing the ops-script parser, ``anonvma replay`` on files, and the naming argument checks.

Hypothesis builds script lines from every field and value type and arbitrary text, and naming
arguments of every type; the mutation fuzzer of tests/fuzz_ops.py mutates the real scripts
under tests/scripts (a bounded number per run: ANONVMA_FUZZ_COUNT, seed ANONVMA_FUZZ_SEED or
random); every crasher it ever found is replayed, and each bug it found has a test by name.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_ops as fuzz
from anonvma.anon_name import check_anon_name, check_range
from anonvma.cli import main as cli_main
from anonvma.live.naming import validate_name, validate_range
from anonvma.model import Mm
from anonvma.ops import OPS, ScriptError, parse_script

FUZZ_COUNT = int(os.environ.get("ANONVMA_FUZZ_COUNT", 3000))

values = st.one_of(
    st.integers(-2, 2**65), st.sampled_from([0, 4095, 4096, 2**64 - 1, 2**64, 2**63, 0x7FC0000000]),
    st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=90),
    st.sampled_from(["rw", "r", "", "rwx", "shared", "private", "f0", "dontfork", "normal", "maymove",
                     "fixed"]),
    st.lists(st.sampled_from(["maymove", "fixed", "dontunmap", "x", 1]), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
op_lines = st.fixed_dictionaries(
    {"op": st.one_of(st.sampled_from(sorted(OPS)), values)},
    optional={k: values for k in fuzz.KEYS if k != "op"}
).map(lambda obj: json.dumps(obj, ensure_ascii=False))


def _script_ok(data: bytes) -> None:
    kind, why = fuzz.parse_outcome(data)
    assert kind != "finding", why


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op_lines, max_size=8), st.sampled_from(["\n", "\r\n"]))
def test_scripts_of_any_fields_parse_or_are_refused_naming_their_line(lines: list[str], end: str):
    _script_ok(end.join(lines).encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_naming_its_line(text: str):
    _script_ok(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), st.lists(op_lines, max_size=5).map(lambda ls: "\n".join(ls).encode(
    "utf-8", "surrogatepass"))))
def test_replay_on_any_file_exits_0_or_2_without_a_traceback(data: bytes):
    with fuzz.tempfile.TemporaryDirectory() as tmp:
        kind, why = fuzz.check_script(data, os.path.join(tmp, "s.jsonl"))
    assert why is None, why


def test_mutants_of_the_real_scripts_keep_the_contract():
    seed = int(os.environ.get("ANONVMA_FUZZ_SEED", random.randrange(1 << 30)))
    report = fuzz.run_scripts(count=FUZZ_COUNT, seed=seed, cli_every=25, save_crashers=False)
    assert report["accepted"] and report["refused"] and report["cli"]  # both outcomes are reached
    assert report["findings"] == {}, f"seed {seed}: {report['findings']}"


names = st.one_of(st.text(max_size=100), st.binary(max_size=100), st.none(),
                  st.sampled_from(["x" * 79, "x" * 80, "a\x00b", "\x00", "caf\u00e9", "\ud800"]),
                  st.integers(), st.floats(), st.lists(st.text(max_size=2), max_size=2))
ints = st.one_of(st.integers(-(2**65), 2**65), st.integers(0, 2**20).map(lambda n: n * 4096),
                 st.sampled_from([0, 4096, 0x4000000000, 2**64 - 4096, 2**64 - 1, 2**64]),
                 st.floats(), st.none(), st.booleans(), st.text(max_size=3))


@settings(max_examples=1500, deadline=None)
@given(names, ints, ints)
def test_naming_checks_raise_only_oserror_or_typeerror_and_agree(name: object, addr: object, length: object):
    assert fuzz.check_naming(name, addr, length) is None


def test_random_naming_arguments_keep_the_contract():
    seed = int(os.environ.get("ANONVMA_FUZZ_SEED", random.randrange(1 << 30)))
    report = fuzz.run_naming(count=FUZZ_COUNT * 5, seed=seed, save_crashers=False)
    assert report["valid"] and report["refused"]
    assert report["findings"] == {}, f"seed {seed}: {report['findings']}"


SCRIPT_CRASHERS = sorted(Path(fuzz.SCRIPT_CRASHERS).glob("*.jsonl"))
NAMING_CRASHERS = sorted(Path(fuzz.NAMING_CRASHERS).glob("*.json"))


@pytest.mark.parametrize("path", SCRIPT_CRASHERS, ids=lambda p: p.stem)
def test_every_saved_script_crasher_now_keeps_the_contract(path: Path, tmp_path: Path):
    kind, why = fuzz.check_script(path.read_bytes(), str(tmp_path / "s.jsonl"))
    assert why is None, why


@pytest.mark.parametrize("path", NAMING_CRASHERS, ids=lambda p: p.stem)
def test_every_saved_naming_crasher_now_keeps_the_contract(path: Path):
    args = json.loads(path.read_text())
    assert fuzz.check_naming(*(fuzz.untag(args[k]) for k in ("name", "addr", "length"))) is None


def test_crashers_were_saved():
    assert len(SCRIPT_CRASHERS) >= 5 and len(NAMING_CRASHERS) >= 2


# -- what the fuzzers found, one test each ------------------------------------------------------------

def _refused_at(text: str) -> int:
    with pytest.raises(ScriptError) as exc:
        parse_script(text)
    return exc.value.lineno


def test_a_name_holding_a_unicode_line_separator_stays_on_its_line():
    """str.splitlines() also cut at U+0085 and U+2028, which JSON strings may hold raw: a valid
    line was refused as bad JSON, and the lines after it were numbered wrong."""
    for line in (json.dumps({"op": "name", "addr": 0, "len": 4096, "name": "a\x85b"}, ensure_ascii=False),
                 json.dumps({"op": "maps", "comment": "a\u2028b\u0085c"}, ensure_ascii=False)):
        assert len(parse_script(line + "\n" + line)) == 2
        assert _refused_at(line + "\n{}\n") == 2


def test_an_integer_of_5000_digits_is_refused_naming_its_line():
    assert _refused_at('{"op": "fork"}\n{"op": "mmap", "addr": ' + "9" * 5000 + "}") == 2


def test_nesting_too_deep_for_the_json_decoder_is_refused_naming_its_line():
    assert _refused_at('{"op": "fork"}\n{"op": "maps", "x": ' + "[" * 100000 + "]" * 100000 + "}") == 2


def test_an_op_that_is_not_a_string_is_refused():
    for op in ("[1]", "{}", "3", "null"):
        assert _refused_at('{"op": %s}' % op) == 1


def test_replay_refuses_a_file_that_is_not_utf8_naming_the_line(tmp_path: Path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"op": "fork"}\n{"op": "name", "addr": 0, "len": 4096, "name": "caf\xe9"}\n')
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main(["replay", str(path)])
    assert (rc, out.getvalue()) == (2, "")
    assert err.getvalue() == f"anonvma replay: {path}: line 2: not UTF-8 (byte 0xe9)\n"


def test_a_range_that_is_not_an_integer_is_a_type_error():
    """check_range formatted a float with '#x' (ValueError) or let 4096.0 through to the model."""
    mm = Mm("refcount")
    mm.mmap(0x4000000000, 4096, "rw")
    for addr, length in ((1.5, 4096), (4096.0, 4096), (0x4000000000, 4096.0), (None, 1), ("0", 1)):
        with pytest.raises(TypeError):
            check_range(addr, length)
        with pytest.raises(TypeError):
            validate_range(addr, length)
        with pytest.raises(TypeError):
            mm.set_anon_name(addr, length, "x")
    assert mm.vmas[0].anon_name is None


def test_name_rules_of_model_and_live_api_agree_but_for_nul():
    for name in ("a", "x" * 79, "", "caf\u00e9", "a$b", "x" * 80, b"\x7f"):
        try:
            expected: object = check_anon_name(name)
        except OSError as exc:
            expected = exc.errno
        try:
            got: object = validate_name(name)
        except OSError as exc:
            got = exc.errno
        assert got == expected
    assert check_anon_name("a\x00b") == b"a"
    with pytest.raises(OSError) as exc:
        validate_name("a\x00b")
    assert exc.value.errno == errno.EINVAL
