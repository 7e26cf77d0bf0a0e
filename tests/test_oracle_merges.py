"""``show --merges`` against the kernel: inside the oracle (names are real there), adjacent memory
named differently, then renamed to equal names; what the kernel merges must lie within the bounds
the model gave (tests/guest_merges.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from anonvma import releases
from anonvma.oracle.boot import boot_python
from oracle_helpers import oracle_kernel_or_skip

HERE = Path(__file__).parent
PAGE = 4096
LINUX = releases.DEFAULT


@pytest.fixture(scope="module")
def guest() -> dict[str, Any]:
    res = boot_python(oracle_kernel_or_skip(linux=LINUX), [str(HERE / "guest_merges.py")], cwd=HERE.parent,
                      timeout=300)
    assert res.returncode == 0, f"guest script failed:\n{res.stderr}\n{res.console[-2000:]}"
    return json.loads(res.stdout)


def boundary(guest: dict[str, Any], region: str) -> dict[str, Any]:
    at = guest["bases"][region] + 2 * PAGE
    found = [b for b in guest["show"]["merges"]["boundaries"] if b["address"] == at]
    assert len(found) == 1, (region, guest["show"]["merges"]["boundaries"])
    return found[0]


def test_show_merges_ran_under_the_guests_release(guest):
    assert guest["rc"] == 0, guest["stderr"]
    assert guest["show"]["merges"]["release"] == LINUX
    assert guest["before"] == {"unfaulted": 2, "together": 2, "apart": 2}


def test_an_unfaulted_pair_is_certain_and_the_kernel_merges_it_when_the_names_agree(guest):
    b = boundary(guest, "unfaulted")
    assert (b["below"], b["above"], b["certain"]) == ("[anon:a]", "[anon:b]", True)
    assert guest["after"]["unfaulted"] == 1


def test_a_pair_split_from_one_faulted_vma_is_possible_and_the_kernel_merges_it(guest):
    b = boundary(guest, "together")
    assert not b["certain"] and "their anon_vmas differ" in b["why"]
    assert guest["after"]["together"] == 1  # within the upper bound


def test_a_pair_faulted_apart_is_possible_and_the_kernel_keeps_it_apart(guest):
    b = boundary(guest, "apart")
    assert not b["certain"]
    assert guest["after"]["apart"] == 2  # the lower bound was right not to count it


def test_the_maps_record_count_drops_by_the_merges_the_kernel_made(guest):
    before, after = guest["maps_lines"]
    assert before - after == 2
    names = {n["name"]: (n["lower"], n["upper"]) for n in guest["show"]["merges"]["names"]}
    lower, upper = names["[anon:b]"]
    assert (lower, upper) == (1, 3)  # "b" borders "a" once in each region
