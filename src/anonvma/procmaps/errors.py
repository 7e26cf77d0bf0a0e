"""Errors of :mod:`anonvma.procmaps`, each naming the line, pid or file it is about."""

from __future__ import annotations

import errno
from typing import Optional

_SHOWN = 120


def shown_line(line: str) -> str:
    """A line as an error message quotes it: shortened, and never raw binary."""
    raw = line.encode("utf-8", "surrogateescape")
    if any(b < 32 and b != 9 or b == 127 for b in raw[:_SHOWN]):
        return "(binary data, not text)"
    text = raw.decode("utf-8", "backslashreplace")
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "...")


class ProcmapsParseError(ValueError):
    """The text is not /proc/PID/maps or smaps, or describes an impossible address space.

    ``lineno`` (1-based) says where it went wrong; ``None`` when the whole file is at fault
    (empty, not text).
    """

    def __init__(self, source: str, lineno: Optional[int], line: Optional[str], why: str) -> None:
        where = f"{source}:{lineno}" if lineno is not None else source
        quoted = f": {shown_line(line)}" if line is not None else ""
        super().__init__(f"{where}: {why}{quoted}")
        self.source = source
        self.lineno = lineno
        self.line = line
        self.why = why


class ProcessNotFoundError(ProcessLookupError):
    """No process with that pid (ESRCH), or it exited while being read."""

    def __init__(self, pid: int, detail: str = "") -> None:
        super().__init__(errno.ESRCH, f"no process with pid {pid}{detail}")
        self.pid = pid


class ProcessAccessError(PermissionError):
    """The caller may not read that process's memory map (another user's process: EACCES)."""

    def __init__(self, pid: int, path: str, code: Optional[int] = None) -> None:
        super().__init__(code or errno.EACCES,
                         f"not allowed to read {path} of pid {pid} (another user's process? "
                         "run as that user or as root)")
        self.pid = pid
        self.path = path
