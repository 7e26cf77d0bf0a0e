"""The two historic bugs of named anonymous memory, switched back on: the checks must notice.

- 942341dcc574 (``no_transient_name_ref``): madvise holds no reference on the VMA's name across
  an update whose merge may free that VMA, so the name is compared after it was freed. The
  model's KASAN (every get, put, dup and string comparison of a name object checks that it is
  live) raises UseAfterFree, so the model's output no longer matches the real kernels'.
- 96403e11283d (``no_saturation_guard``): sharing a name object at REFCOUNT_MAX saturates its
  refcount. The invariant checker notices (with REFCOUNT_MAX lowered: nothing can hold 2**31
  references in a test); the output is the same, so only the checker can.

Each bug has curated scripts recorded on every release's real kernel (tests/scripts/bug_*,
written by tests/scripts/gen_bug_cases.py), and random scripts run with the switch on until
one catches it: the first seed that does is asserted, so a weaker checker fails here.
"""

from __future__ import annotations

from typing import Optional

import pytest

from anonvma.difftest.generate import random_script
from anonvma.model import Mm
from anonvma.model.bugs import FIXED, HistoricBugs
from anonvma.model.check import InvariantError, check_machine
from anonvma.model.names import UseAfterFree
from anonvma.model.replay import run_ops
from anonvma.ops import Op, parse_script, results_text
from model_helpers import P, pg
from anonvma import releases
from recordings import SCRIPTS, expected

RELEASES = releases.names()
#: the release the seed searches below were run on
SEARCHED = releases.RELEASES[0].name

NO_TRANSIENT_REF = HistoricBugs(no_transient_name_ref=True)
NO_SATURATION_GUARD = HistoricBugs(no_saturation_guard=True)
#: REFCOUNT_MAX for the saturation tests
LOW_MAX = 3

USE_AFTER_FREE_SCRIPTS = ("bug_942341dcc574_merge_frees_the_named_vma",
                          "bug_942341dcc574_after_fork_and_exit")
SATURATION_SCRIPT = "bug_96403e11283d_saturation"


def _script(release: str, stem: str) -> tuple[list[Op], str]:
    path = SCRIPTS / f"{stem}.jsonl"
    return parse_script(path.read_text()), expected(path, release)


def _caught(ops: list[Op], strategy: str, linux: str, bugs: HistoricBugs,
            refcount_max: int = 2**31 - 1, check: bool = True) -> Optional[AssertionError]:
    """What the model's checks raise on ``ops`` (with ``check``, the invariant checker after every
    op; the use-after-free checks run inside every op regardless), or None."""
    try:
        run_ops(ops, strategy=strategy, linux=linux, bugs=bugs, check=check, refcount_max=refcount_max)
    except (UseAfterFree, InvariantError) as exc:
        return exc
    return None


# -- 942341dcc574: the use after free in madvise ---------------------------------------------------

@pytest.mark.parametrize("stem", USE_AFTER_FREE_SCRIPTS)
@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("strategy", ["refcount", "strdup"])
def test_missing_transient_reference_is_a_use_after_free_and_differs_from_the_kernel(
        strategy: str, release: str, stem: str):
    ops, kernel = _script(release, stem)
    assert results_text(run_ops(ops, strategy=strategy, linux=release, check=True)) == kernel
    with pytest.raises(UseAfterFree, match="use after free of <AnonVmaName"):
        run_ops(ops, strategy=strategy, linux=release, bugs=NO_TRANSIENT_REF)


def test_the_use_after_free_is_the_comparison_after_the_merge():
    """Not a refcount at rest: the freed object is dereferenced by anon_vma_name_eq."""
    mm = Mm("refcount", bugs=NO_TRANSIENT_REF)
    mm.mmap(pg(0), 2 * P, "rw")
    mm.madvise(pg(0), P, "dontfork")
    mm.set_anon_name(pg(0), P, "x")
    mm.set_anon_name(pg(1), P, "x")
    doomed = mm.find_vma(pg(1)).anon_name
    assert doomed is not mm.find_vma(pg(0)).anon_name and doomed.refcount == 1
    check_machine(mm.machine)  # everything holds before the call
    with pytest.raises(UseAfterFree) as exc:
        mm.madvise(pg(1), P, "dontfork")
    assert doomed.freed and repr(doomed) in str(exc.value)
    assert any("anon_vma_name_eq" in frame.name for frame in exc.traceback)


@pytest.mark.parametrize("strategy, length, first", [("strdup", None, 62), ("refcount", None, 68)])
def test_random_scripts_find_the_use_after_free(strategy: str, length: Optional[int], first: int):
    """Seeds in order, the switch on: the first seed that catches the bug is ``first`` (found by
    this search; under refcount the bug needs a name with a single holder next to an equal one,
    which the generator's sc_equal_names_merge sets up now and then). The invariant
    checker after every op adds nothing here (it looks at refcounts at rest, which the bug
    leaves right): the op itself raises, so the search runs without it, and the finding is
    then run with it on both ways."""
    for seed in range(first + 1):
        ops = random_script(seed, length=length)
        exc = _caught(ops, strategy, SEARCHED, NO_TRANSIENT_REF, check=False)
        if exc is not None:
            break
    assert seed == first and isinstance(exc, UseAfterFree)
    assert isinstance(_caught(ops, strategy, SEARCHED, NO_TRANSIENT_REF), UseAfterFree)
    assert _caught(ops, strategy, SEARCHED, FIXED) is None  # the bug, not the script


# -- 96403e11283d: refcount saturation ---------------------------------------------------------------

@pytest.mark.parametrize("release", RELEASES)
def test_missing_saturation_guard_breaks_the_refcount_invariant(release: str):
    ops, kernel = _script(release, SATURATION_SCRIPT)
    for strategy in ("refcount", "strdup"):
        got = run_ops(ops, strategy=strategy, linux=release, check=True, refcount_max=LOW_MAX)
        assert results_text(got) == kernel
    with pytest.raises(InvariantError, match=rf"exceeds REFCOUNT_MAX \({LOW_MAX}\)"):
        run_ops(ops, linux=release, check=True, refcount_max=LOW_MAX, bugs=NO_SATURATION_GUARD)
    # the output alone cannot tell: without the checker the buggy model prints what the kernel did
    assert results_text(run_ops(ops, linux=release, refcount_max=LOW_MAX, bugs=NO_SATURATION_GUARD)) == kernel


def test_saturation_guard_gives_the_fourth_holder_a_copy():
    mm = Mm("refcount", refcount_max=LOW_MAX)
    mm.mmap(pg(0), 8 * P, "rw")
    mm.set_anon_name(pg(0), 8 * P, "x")
    for page in (1, 3, 5):
        mm.mprotect(pg(page), P, "r")
    objects = {id(v.anon_name): v.anon_name for v in mm.vmas}
    assert len(mm.vmas) == 7 and all(o.refcount <= LOW_MAX for o in objects.values())
    assert sum(o.refcount for o in objects.values()) == 7 and len(objects) == 3
    check_machine(mm.machine)


def test_the_bug_switch_of_the_machine_decides_whoever_made_the_strategy():
    mm = Mm("refcount", refcount_max=LOW_MAX, bugs=NO_SATURATION_GUARD)
    mm.mmap(pg(0), 8 * P, "rw")
    mm.set_anon_name(pg(0), 8 * P, "x")
    for page in (1, 3, 5):
        mm.mprotect(pg(page), P, "r")
    assert {v.anon_name.refcount for v in mm.vmas} == {7}
    with pytest.raises(InvariantError, match="REFCOUNT_MAX"):
        check_machine(mm.machine)


@pytest.mark.parametrize("release", RELEASES)
def test_random_scripts_find_the_saturation(release: str, first: int = 15):
    for seed in range(first + 1):
        ops = random_script(seed)
        exc = _caught(ops, "refcount", release, NO_SATURATION_GUARD, LOW_MAX)
        if exc is not None:
            break
    assert seed == first and isinstance(exc, InvariantError) and "REFCOUNT_MAX" in str(exc)
    assert _caught(ops, "refcount", release, FIXED, LOW_MAX) is None


def test_bug_scripts_are_recorded_for_every_release():
    for release in RELEASES:
        for stem in (*USE_AFTER_FREE_SCRIPTS, SATURATION_SCRIPT):
            assert expected(SCRIPTS / f"{stem}.jsonl", release)
