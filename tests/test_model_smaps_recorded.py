"""The model's /proc/PID/smaps matches smaps that a real Linux 6.1 (UML) kernel printed.

tests/data/uml_smaps/recorded_with.py is the program that ran inside the oracle kernel; its
parent's and child's smaps (arena entries only) are the .smaps files. The model replays it.
"""

from pathlib import Path

import pytest

from anonvma.model import Mm

DATA = Path(__file__).parent / "data" / "uml_smaps"
B = 0x4000000000
P = 4096


def _replay(strategy: str) -> tuple[Mm, Mm]:
    mm = Mm(strategy=strategy)
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
