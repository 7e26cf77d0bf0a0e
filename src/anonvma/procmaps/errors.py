"""Errors of :mod:`anonvma.procmaps`, each naming the line, pid or file it is about."""

from __future__ import annotations

import errno
from typing import Optional


class ProcmapsParseError(ValueError):
    """The text is not /proc/PID/maps or smaps: ``lineno`` (1-based) says where it went wrong."""

    def __init__(self, source: str, lineno: int, line: str, why: str) -> None:
        shown = line if len(line) <= 120 else line[:117] + "..."
        super().__init__(f"{source}:{lineno}: {why}: {shown!r}")
        self.source = source
        self.lineno = lineno
        self.line = line


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
