"""Finding every host process a command left behind: real processes, tagged through the environment.

A command started with ``TAG=<unique value>`` in its environment passes the tag to every process
it starts (make and its compilers, a UML kernel and its host helpers, workers), however they
detach (new sessions, reparented orphans). ``tagged(tag)`` lists the ones still alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

TAG = "ANONVMA_TEST_PROCESS_TAG"
REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def tagged(tag: str) -> dict[int, str]:
    """pid -> command line of every live process whose environment carries ``TAG=tag``."""
    needle = f"{TAG}={tag}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            if needle not in env.split(b"\0"):
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":  # a zombie holds no resources; its parent may just not have reaped yet
                continue
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry)] = cmd.strip()
    return found


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Poll ``check`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


def sigint_at_default() -> None:
    """For ``preexec_fn``: the child starts with SIGINT at its default, as from a terminal, even
    when the tests were started from a background shell (whose ``&`` leaves SIGINT ignored, a
    disposition the commands under test rightly keep)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_tagged(argv: Sequence[str], tag: str, env: Optional[dict[str, str]] = None,
                 cwd: Path = REPO) -> subprocess.Popen[str]:
    """Start ``argv`` (stdout and stderr piped) with the tag in its environment."""
    full = {**os.environ, **(env or {}), TAG: tag, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(list(argv), env=full, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_at_default)


def guests(tag: str) -> int:
    """How many UML kernels (host processes running a ``.../linux`` executable) carry the tag."""
    return sum(cmd.split(" ")[0].endswith("/linux") for cmd in tagged(tag).values())


def signal_when(argv: Sequence[str], tag: str, ready: Callable[[], bool], sig: int = signal.SIGINT,
                env: Optional[dict[str, str]] = None, settle: float = 2.0,
                timeout: float = 120) -> tuple[int, str, str]:
    """Start the tagged command, wait until ``ready()`` (then ``settle`` seconds more), send ``sig``
    (SIGINT is what Ctrl-C sends) to the command alone and wait for it: (status, stdout, stderr).

    :raises AssertionError: the command ended before it was ready, or did not end after ``sig``.
    """
    proc = start_tagged(argv, tag, env)
    try:
        if not wait_until(lambda: ready() or proc.poll() is not None, timeout) or proc.poll() is not None:
            out, err = proc.communicate(timeout=timeout)
            raise AssertionError(f"{argv} ended (status {proc.returncode}) or stalled before it was "
                                 f"ready:\n{err[-3000:]}")
        time.sleep(settle)
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{argv} did not end within {timeout} s of signal {sig}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


@contextlib.contextmanager
def process_tag() -> Iterator[str]:
    """A fresh tag; any process still carrying it afterwards is killed (only if a test failed)."""
    tag = uuid.uuid4().hex
    try:
        yield tag
    finally:
        kill_tagged(tag)


def kill_tagged(tag: str) -> None:
    """Clean up after a failed test (never needed when the code under test works)."""
    for pid in tagged(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
