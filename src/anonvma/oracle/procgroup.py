"""Child commands in their own process group, killed as a group whatever happens.

Build steps (make, apt-get, tar), UML guests and benchmark workers each start in a new
session, so a terminal's Ctrl-C reaches only us; we then kill the child's whole group
(make's compilers, a guest's host helpers) before re-raising. The group is killed while its
leader is still unreaped, so the group id cannot have been reused by an unrelated process.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from types import FrameType, TracebackType
from typing import Any, Iterator, Optional, Sequence


#: How long :meth:`ProcessGroup.close` waits for the members of a killed group to be gone.
GROUP_EXIT_SECONDS = 30.0


class ProcessGroup:
    """``argv`` started in a new session; :meth:`close` (or leaving the ``with``) kills the group.

    :param popen: passed to :class:`subprocess.Popen` (``stdout``, ``cwd``, ``env``, ...).
    """

    def __init__(self, argv: Sequence[str], **popen: Any) -> None:
        self.proc = subprocess.Popen(list(argv), start_new_session=True, **popen)
        self.pid = self.proc.pid
        self._pidfd: Optional[int] = os.pidfd_open(self.pid)
        self.returncode: Optional[int] = None

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def exited(self, timeout: Optional[float] = 0.0) -> bool:
        """Wait up to ``timeout`` seconds (``None``: for ever) for the leader to exit; do not reap it."""
        if self._pidfd is None:
            return True
        ready, _, _ = select.select([self._pidfd], [], [], timeout)
        return bool(ready)

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Wait for the leader; kill the group and return its exit status, or ``None`` on timeout
        (the group is still running: call :meth:`close`)."""
        if not self.exited(timeout):
            return None
        self.close()
        return self.returncode

    def close(self) -> None:
        """SIGKILL every process of the group, reap the leader, and wait until the whole group is
        gone (a process with much memory takes a while to die); idempotent."""
        if self._pidfd is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.returncode = self.proc.wait()
        os.close(self._pidfd)
        self._pidfd = None
        # The group id stays reserved while any member lives, so it still names only our group.
        started = time.monotonic()
        while time.monotonic() < started + GROUP_EXIT_SECONDS:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                return
            if time.monotonic() > started + 0.05 and not _live_members(self.pid):
                return  # only zombies left, waiting for an init that reaps slowly (or never)
            time.sleep(0.01)


def _live_members(pgid: int) -> list[int]:
    """Pids of the members of process group ``pgid`` that are not zombies (from /proc)."""
    live = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(entry))
    return live


def run(argv: Sequence[str], timeout: Optional[float] = None, **popen: Any) -> int:
    """Run ``argv`` to completion in its own group; its exit status.

    :raises subprocess.TimeoutExpired: after ``timeout`` seconds (the group is killed first).
    """
    with ProcessGroup(argv, **popen) as group:
        status = group.wait(timeout)
    if status is None:
        raise subprocess.TimeoutExpired(list(argv), timeout or 0.0)
    return status


def _interrupt(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside: SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C, so the clean-up that
    Ctrl-C runs (killing child groups, removing half-written files) runs for a batch system's
    kill too. Main thread only; the previous handlers are restored on the way out."""
    saved = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
