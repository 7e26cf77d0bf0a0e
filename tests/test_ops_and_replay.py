"""Ops scripts: broken scripts are refused with the line named; `anonvma replay` prints results."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anonvma.cli import main
from anonvma.ops import ScriptError, arena_maps, parse_script

SCRIPTS = Path(__file__).parent / "scripts"


@pytest.mark.parametrize("text, lineno, words", [
    ('{"op": "mmap", "addr": 0, "len": 4096, "prot": "rw"}\n{oops', 2, "bad JSON"),
    ('{"op": "frobnicate"}', 1, "unknown op"),
    ('{"op": "mmap", "addr": 0, "prot": "rw"}', 1, "missing field 'len'"),
    ('{"op": "mmap", "addr": 0, "len": 4096, "prot": "rwq"}', 1, "prot"),
    ('{"op": "maps", "pid": 1}', 1, "no process 1"),
    ('{"op": "fork"}\n{"op": "exit", "pid": 1}\n{"op": "maps", "pid": 1}', 3, "no process 1"),
    ('{"op": "name", "addr": 0, "len": 4096}', 1, "missing field 'name'"),
    ('{"op": "madvise", "addr": 0, "len": 4096, "advice": "free"}', 1, "advice"),
    ('{"op": "mmap", "addr": -4096, "len": 4096, "prot": "rw"}', 1, "addr"),
    ('{"op": "mmap", "addr": 0, "len": 4096, "prot": "rw", "populate": 1}', 1,
     "'populate' must be true or false"),
    ('{"op": "mmap", "addr": 0, "len": 4096, "prot": "rw", "noreserve": "yes"}', 1, "'noreserve'"),
    ('{"op": "mlock", "addr": 0, "len": 4096, "onfault": null}', 1, "'onfault' must be true or false"),
    ('{"op": "mlock", "addr": 0}', 1, "missing field 'len'"),
    ('{"op": "munlock", "len": 4096}', 1, "missing field 'addr'"),
    ('{"op": "madvise", "addr": 0, "len": 4096, "advice": "willneed"}', 1, "sequential"),
])
def test_broken_script_names_the_line(text, lineno, words):
    with pytest.raises(ScriptError) as info:
        parse_script(text)
    assert info.value.lineno == lineno
    assert words in str(info.value)


def test_fork_numbers_children_in_order():
    ops = parse_script('{"op": "fork"}\n{"op": "fork", "pid": 1}\n{"op": "maps", "pid": 2}\n')
    assert [op.pid for op in ops] == [0, 1, 2]


def test_arena_maps_keeps_only_the_arena_and_labels_files():
    text = ("00400000-00401000 r-xp 00000000 08:01 12 /usr/bin/true\n"
            "4000000000-4000001000 rw-p 00000000 00:00 0 \n"
            "4000001000-4000002000 rw-p 00000000 00:00 0" + " " * 30 + "[anon:a b]\n"
            "4000002000-4000003000 r--p 00003000 08:01 99" + " " * 29 + "/tmp/x/f0\n"
            "4000003000-4000004000 rw-s 00000000 00:01 7" + " " * 30 + "/dev/zero (deleted)\n")
    assert arena_maps(text, {"/tmp/x/f0": "f0"}) == [
        "0-1000 rw-p", "1000-2000 rw-p [anon:a b]", "2000-3000 r--p file:f0@3", "3000-4000 rw-s shmem"]


def test_replay_prints_the_recorded_kernel_output(capsys):
    script = SCRIPTS / "e03_fork_rename.jsonl"
    assert main(["replay", str(script)]) == 0
    assert capsys.readouterr().out == script.with_suffix(".expected").read_text()


def test_replay_of_broken_script_exits_2_naming_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"op": "mmap", "addr": 0, "len": 4096, "prot": "rw"}\n{"op": "maps", "pid": 3}\n')
    proc = subprocess.run([sys.executable, "-m", "anonvma", "replay", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "line 2" in proc.stderr and "no process 3" in proc.stderr
    assert proc.stdout == ""


def test_replay_several_scripts_prints_a_block_each(capsys):
    a, b = SCRIPTS / "e01_selftest_port.jsonl", SCRIPTS / "e02_bionic_span.jsonl"
    assert main(["replay", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert out == (f"==> {a} <==\n" + a.with_suffix(".expected").read_text()
                   + f"==> {b} <==\n" + b.with_suffix(".expected").read_text())


def test_result_lines_are_json_objects(capsys):
    main(["replay", str(SCRIPTS / "e05_munmap_named.jsonl")])
    lines = capsys.readouterr().out.splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_every_runner_handles_every_op_of_the_format():
    from anonvma.live.handlers import HANDLERS as LIVE
    from anonvma.model.replay import HANDLERS as MODEL
    from anonvma.ops import LIFECYCLE_OPS, OPS

    assert set(MODEL) == set(OPS)
    assert set(LIVE) == set(OPS) - LIFECYCLE_OPS
    assert LIFECYCLE_OPS <= set(OPS)


def test_new_flag_fields_default_to_false_and_only_true_is_kept():
    """Lines written before noreserve/populate/onfault existed keep their meaning: an absent
    field and false are the same op, and a script round-trips without the false fields."""
    from anonvma.ops import script_text

    text = ('{"op": "mmap", "addr": 0, "len": 4096, "prot": "rw", "noreserve": false, "populate": true}\n'
            '{"op": "mlock", "addr": 0, "len": 4096, "onfault": false}\n'
            '{"op": "mlock", "addr": 0, "len": 4096, "onfault": true}\n'
            '{"op": "munlock", "addr": 0, "len": 4096}\n')
    ops = parse_script(text)
    assert [dict(op.args) for op in ops] == [
        {"addr": 0, "len": 4096, "prot": "rw", "populate": True},
        {"addr": 0, "len": 4096},
        {"addr": 0, "len": 4096, "onfault": True},
        {"addr": 0, "len": 4096},
    ]
    assert parse_script(script_text(ops)) == ops
