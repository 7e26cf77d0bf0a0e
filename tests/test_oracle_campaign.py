"""Long campaigns: guests that die or hang are replaced, shards split a run and merge back.

Real guests of the oracle kernel, killed or frozen from outside while they run scripts; real
``python -m anonvma.difftest`` runs for the shards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from anonvma.difftest.generate import random_scripts
from anonvma.oracle.pool import GuestPool
from oracle_helpers import oracle_kernel_or_skip
from process_helpers import PYTHON, REPO, TAG, process_tag, tagged, wait_until

@pytest.fixture
def tag():
    with process_tag() as value:
        yield value


def _first_guest_pid(pool: GuestPool) -> int:
    slot = pool._slots[0]
    assert slot.guest.pid is not None
    return slot.guest.pid


@pytest.mark.oracle
@pytest.mark.parametrize("how", ["dies", "hangs"])
def test_a_guest_that_dies_or_hangs_is_replaced_and_its_script_reported_lost(monkeypatch, tag, how):
    """Kill (or freeze) a real guest mid-run: one script is lost, every other one still answered."""
    kernel = oracle_kernel_or_skip("refcount")
    monkeypatch.setenv(TAG, tag)
    scripts = random_scripts(60, seed=4242)
    got = {}
    with GuestPool(kernel, jobs=1, script_timeout=10, log=lambda msg: None) as pool:
        for index, outcome in pool.run(scripts):
            got[index] = outcome
            if len(got) == 5:
                pgid = _first_guest_pid(pool)
                os.killpg(pgid, signal.SIGKILL if how == "dies" else signal.SIGSTOP)
        assert pool.boots == 2
    assert sorted(got) == list(range(60))
    lost = [i for i, o in got.items() if o.lost]
    assert len(lost) == 1, lost
    assert "halted" in got[lost[0]].error if how == "dies" else "answered nothing" in got[lost[0]].error
    assert all(o.results is not None for i, o in got.items() if i not in lost)
    with pytest.raises(ProcessLookupError):  # the guest's whole group is gone
        os.killpg(pgid, 0)
    assert wait_until(lambda: tagged(tag) == {}, timeout=10), tagged(tag)


def test_difftest_shards_merge_into_the_whole_run(tmp_path):
    """Three shards of a host campaign, merged: every script once; a missing shard is an error."""
    outs = []
    for k in (1, 2, 3):
        out = tmp_path / f"shard{k}.json"
        cmd = [PYTHON, "-m", "anonvma.difftest", "--host", "--count", "31", "--seed", "900",
               "--shard", f"{k}/3", "--out", str(out)]
        res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        assert res.returncode in (0, 1), res.stderr
        outs.append(out)
    firsts = [json.loads(o.read_text())["shard"] for o in outs]
    assert [(s["first"], s["stop"]) for s in firsts] == [(0, 10), (10, 20), (20, 31)]
    merged = subprocess.run([PYTHON, "-m", "anonvma.difftest", "--merge", *map(str, outs)], cwd=REPO,
                            capture_output=True, text=True)
    assert "31 scripts" in merged.stdout, merged.stdout + merged.stderr
    assert merged.returncode in (0, 1)
    partial = subprocess.run([PYTHON, "-m", "anonvma.difftest", "--merge", str(outs[0]), str(outs[2])],
                             cwd=REPO, capture_output=True, text=True)
    assert partial.returncode == 2 and "shards missing: 2 of 3" in partial.stderr


@pytest.mark.oracle
def test_a_run_abandoned_half_way_does_not_leak_answers_into_the_next():
    kernel = oracle_kernel_or_skip("refcount")
    first, second = random_scripts(40, seed=77), random_scripts(12, seed=5000)
    with GuestPool(kernel, jobs=2) as pool:
        for n, _ in enumerate(pool.run(first)):
            if n == 3:
                break  # the guests still owe answers for the rest of `first`
        got = dict(pool.run(second))
        alone = dict(pool.run(second))
    assert sorted(got) == list(range(12))
    assert [got[i].results for i in range(12)] == [alone[i].results for i in range(12)]
