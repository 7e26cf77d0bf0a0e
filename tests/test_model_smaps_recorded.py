"""The model's /proc/PID/smaps matches smaps that a real Linux 6.1 (UML) kernel printed.

tests/data/uml_smaps/recorded_with.py is the program that ran inside the oracle kernel; its
parent's and child's smaps (arena entries only) are the .smaps files. The model replays it.
"""

from pathlib import Path

import pytest

from anonvma import releases
from anonvma.model import Mm

DATA = Path(__file__).parent / "data" / "uml_smaps"
B = 0x4000000000
P = 4096


#: tests/data/uml_smaps was recorded on the root release of the table
ROOT = releases.RELEASES[0].name


def _replay(strategy: str) -> tuple[Mm, Mm]:
    mm = Mm(strategy=strategy, linux=ROOT)
    mm.mmap(B, 4 * P, "rw")
    mm.set_anon_name(B + P, P, "hello world")
    for i in range(4):
        mm.fault(B + i * P, write=True)
    mm.mmap(B + 8 * P, 2 * P, "r")
    mm.fault(B + 8 * P, write=False)
    mm.madvise(B + 8 * P, P, "dontfork")
    return mm, mm.fork()


@pytest.mark.parametrize("strategy", ["refcount", "strdup"])
def test_model_smaps_matches_the_kernel_for_parent_and_child(strategy):
    parent, child = _replay(strategy)
    assert child.smaps() == (DATA / "child.smaps").read_text()
    child.exit()  # the recording read the parent's smaps after reaping the child
    assert parent.smaps() == (DATA / "parent.smaps").read_text()


def test_smaps_header_lines_are_the_maps_lines():
    parent, _ = _replay("refcount")
    headers = [line for line in parent.smaps().splitlines() if line[:1] == "4"]
    assert headers == parent.maps().splitlines()


LOCKED = Path(__file__).parent / "data" / "uml_smaps_locked"


def _replay_locked(strategy: str, linux: str) -> tuple[Mm, Mm]:
    """What tests/data/uml_smaps_locked/recorded_with.py did, on the model."""
    mm = Mm(strategy=strategy, linux=linux)
    mm.mmap(B, 4 * P, "rw")
    mm.set_anon_name(B + P, 2 * P, "locked")
    mm.mlock(B + P, 2 * P)
    mm.fault(B, write=True)
    mm.mmap(B + 8 * P, 2 * P, "r", noreserve=True)
    mm.madvise(B + 8 * P, P, "random")
    mm.madvise(B + 9 * P, P, "sequential")
    mm.fault(B + 8 * P, write=False)
    mm.mmap(B + 12 * P, 2 * P, "rw")
    mm.mlock(B + 12 * P, 2 * P, onfault=True)
    mm.fault(B + 12 * P, write=True)
    mm.mmap(B + 16 * P, 2 * P, "rw", populate=True)
    return mm, mm.fork()


#: the releases tests/data/uml_smaps_locked holds recordings of (child.smaps-RELEASE)
LOCKED_RELEASES = sorted(p.name.split("-", 1)[1] for p in LOCKED.glob("child.smaps-*"))


@pytest.mark.parametrize("strategy", ["refcount", "strdup"])
@pytest.mark.parametrize("release", LOCKED_RELEASES)
def test_model_smaps_of_locked_and_hinted_mappings_match_the_kernel(strategy: str, release: str):
    """Locked: counts the Pss of pages in VM_LOCKED VMAs (halved while shared with the child,
    which lost VM_LOCKED); VmFlags lo, rr, sr, nr, and for VM_LOCKONFAULT '??' (6.1) or 'lf'
    (6.2+); mlock and MAP_POPULATE fault pages in, MLOCK_ONFAULT does not; 6.6+ prints a KSM
    line and pads THPeligible."""
    parent, child = _replay_locked(strategy, release)
    assert child.smaps() == (LOCKED / f"child.smaps-{release}").read_text()
    assert parent.smaps() == (LOCKED / f"parent.smaps-{release}").read_text()


def test_locked_smaps_are_recorded_on_releases_that_differ_in_format():
    assert len(LOCKED_RELEASES) >= 2 and set(LOCKED_RELEASES) <= set(releases.names())
