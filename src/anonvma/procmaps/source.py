"""Where maps/smaps text comes from: a live process or a saved file. The one place OS errors are translated.

:func:`read_pid` and :func:`read_file` both end in the same parser, so live and saved data give
the same records (saved files may come from other machines, Android included).
"""

from __future__ import annotations

import errno
import os
from typing import Union

from anonvma.procmaps.errors import ProcessAccessError, ProcessNotFoundError
from anonvma.procmaps.parser import parse
from anonvma.procmaps.records import Snapshot

PathLike = Union[str, "os.PathLike[str]"]


def read_pid_bytes(pid: int, *, smaps: bool = True, procfs: str = "/proc") -> bytes:
    """The raw bytes of ``/proc/PID/smaps`` (or ``maps``) of a live process.

    :raises ProcessNotFoundError: (ESRCH) no such process, or it exited while being read.
    :raises ProcessAccessError: (EACCES/EPERM) another user's process.
    :raises OSError: anything else, chained.
    """
    if pid < 0:
        raise ProcessNotFoundError(pid, " (pids are not negative)")
    path = os.path.join(procfs, str(pid), "smaps" if smaps else "maps")
    try:
        with open(path, "rb", buffering=0) as f:
            data = f.readall()
    except FileNotFoundError as err:
        raise ProcessNotFoundError(pid, f" ({path} does not exist)") from err
    except PermissionError as err:
        raise ProcessAccessError(pid, path, err.errno) from err
    except ProcessLookupError as err:
        raise ProcessNotFoundError(pid, " (it exited while being read)") from err
    except OSError as err:
        if err.errno == errno.ESRCH:
            raise ProcessNotFoundError(pid, " (it exited while being read)") from err
        raise
    if not data and not os.path.exists(os.path.join(procfs, str(pid))):
        raise ProcessNotFoundError(pid, " (it exited while being read)")
    return data


def read_pid(pid: int, *, smaps: bool = True, procfs: str = "/proc") -> Snapshot:
    """Parse the memory map of a live process (``smaps=False`` reads the cheaper maps)."""
    data = read_pid_bytes(pid, smaps=smaps, procfs=procfs)
    source = os.path.join(procfs, str(pid), "smaps" if smaps else "maps")
    vmas, fields = parse(data, source)
    return Snapshot(source, pid, tuple(vmas), fields)


def read_file(path: PathLike) -> Snapshot:
    """Parse a saved maps or smaps file (any machine, any kernel version).

    :raises FileNotFoundError, PermissionError: as ``open`` does (they carry the file name).
    :raises ProcmapsParseError: the file is not maps/smaps; names the line.
    """
    with open(path, "rb") as f:
        data = f.read()
    source = os.fspath(path)
    vmas, fields = parse(data, source)
    return Snapshot(source, None, tuple(vmas), fields)


def read(target: Union[int, PathLike], *, procfs: str = "/proc") -> Snapshot:
    """A pid (int, or a string of digits that is not an existing file) or a file path."""
    if isinstance(target, int):
        return read_pid(target, procfs=procfs)
    text = os.fspath(target)
    if text.isdigit() and not os.path.exists(text):
        return read_pid(int(text), procfs=procfs)
    return read_file(text)
