"""``anonvma COMMAND | head``: when the reader of stdout has gone, every command ends quietly.

Each command runs with its stdout the write end of a pipe whose read end is already closed, so
its first write to stdout fails (EPIPE) whatever the timing: no "Broken pipe" error line, no
traceback, exit status 0 (as for ``anonvma show | head``: the reader went away, not the command).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from anonvma import releases

from procmaps_fixtures import DATA

TESTS = Path(__file__).resolve().parent
SMAPS = os.path.join(DATA, "linux-6.18-python", "smaps")
SLEEP = os.path.join(DATA, "linux-6.18-sleep", "smaps")
SCRIPT = str(TESTS / "scripts" / "bug_96403e11283d_saturation.jsonl")


def closed_stdout(argv: List[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with stdout a pipe nobody reads (and stdin empty); its status and stderr."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=300, cwd=cwd, check=False)
    finally:
        os.close(write)


#: Commands whose stderr stays empty, then commands that report progress on stderr.
QUIET = [["--help"], ["show", "--help"], ["demo"], ["releases"], ["show", "self"],
         ["show", "self", "--json"], ["show", SMAPS, "--csv"],
         ["show", "self", "--watch", "0.1", "--count", "2"],
         ["diff", SLEEP, SMAPS], ["diff", SLEEP, SMAPS, "--json"], ["snapshot", "self", "-o", "-"],
         ["snapshot", "self", "--maps", "-o", "-"],
         ["record", "self", "--interval", "0.1", "--duration", "0.2", "-o", "-"],
         ["replay", SCRIPT], ["soak", "--ops", "200"], ["bench", "fork", "--from", SMAPS]]
NOISY = [["bench", "fork", "--backends", "model", "--counts", "10", "--repeats", "1", "--no-plot",
          "--out", "bench.json"]]


@pytest.mark.parametrize("args", QUIET + NOISY, ids=" ".join)
def test_a_command_whose_reader_has_gone_ends_quietly_with_status_0(args, tmp_path):
    done = closed_stdout([sys.executable, "-m", "anonvma", *args], tmp_path)
    assert done.returncode == 0, done.stderr
    if args in QUIET:
        assert done.stderr == ""
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr


def test_difftest_whose_reader_has_gone_ends_quietly_with_status_0(tmp_path):
    done = closed_stdout([sys.executable, "-m", "anonvma.difftest", "--coverage", "--count", "2",
                          "--linux", releases.RELEASES[0].name, "--variant", "refcount"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr
