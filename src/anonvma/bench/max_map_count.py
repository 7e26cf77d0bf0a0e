"""The host's vm.max_map_count, which a UML guest's populated VMAs count against.

UML backs each written page run of a guest VMA with a host mapping of the guest process's host
process, so a guest with N populated VMAs needs a host vm.max_map_count above N (measured on
6.12.118, one written page per VMA: 16,117 guest VMAs took 17,895 host mappings, 65,498 took
67,213; unpopulated VMAs take none: 65,498 of them took 2,505). A VMA with P written pages may
take up to P: its pages need not be contiguous in UML's physical memory file (a limit of one
mapping per VMA let guests die at 32,000 VMAs of 10 pages, docs/results/2026-12-07-bench-uml-sweep),
so the limit asked for is the upper bound. The bench raises the host's limit for the run when it
may, and puts the old value back on every way out.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

SYSCTL = "/proc/sys/vm/max_map_count"
#: Host mappings of a UML process besides its guest's populated VMAs (2,505 measured at most,
#: 1,715 beside 65,498 populated VMAs), with room to spare.
HOST_SLACK = 4096


def needed(guest_vmas: int, pages: int) -> int:
    """The host vm.max_map_count a guest process with ``guest_vmas`` VMAs of ``pages`` written
    pages each needs."""
    return guest_vmas * pages + HOST_SLACK


def fits(limit: int, pages: int) -> int:
    """The most guest VMAs of ``pages`` written pages each that a host limit of ``limit`` allows
    (every count fits when unpopulated)."""
    return max(0, limit - HOST_SLACK) // pages if pages else 1 << 31


def read(path: str = SYSCTL) -> int:
    """The current vm.max_map_count."""
    with open(path) as f:
        return int(f.read())


def command(value: int) -> str:
    """What a user runs to allow ``value``."""
    return f"sudo sysctl -w vm.max_map_count={value}"


def _write(path: str, value: int) -> None:
    with open(path, "w") as f:
        f.write(f"{value}\n")


@contextmanager
def raised(value: int, path: str = SYSCTL) -> Iterator[Optional[int]]:
    """At least ``value`` while inside; yields the old value when it was raised (None when
    it already sufficed), and writes it back on the way out: normal exit, an exception,
    Ctrl-C, SIGTERM or SIGHUP (turned into SystemExit while inside).

    :raises OSError: EPERM (or EACCES) when the limit is too low and may not be written.
    """
    old = read(path)
    if old >= value:
        yield None
        return
    if not os.access(path, os.W_OK):
        raise OSError(errno.EPERM, f"vm.max_map_count is {old}, {value} needed, and this user may "
                      f"not raise it: run `{command(value)}` first")
    _write(path, value)
    previous: dict[int, Any] = {}

    def leave(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                previous[sig] = signal.signal(sig, leave)
        yield old
    finally:
        _write(path, old)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
