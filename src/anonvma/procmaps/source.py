"""Where maps/smaps text comes from: a live process or a saved file. The one place OS errors are translated.

:func:`read_pid` and :func:`read_file` both end in the same parser, so live and saved data give
the same records (saved files may come from other machines, Android included; gzip-compressed
ones too).

Reading a large process's smaps is mostly kernel time (it walks every page table to print
~700 bytes per VMA), so :func:`read_pid` reads in a second thread
(:class:`~anonvma.procmaps.reader.ThreadedReader`) while this thread parses the entries
already read (:class:`~anonvma.procmaps.parser.ChunkParser`).
"""

from __future__ import annotations

import errno
import os
from typing import Any, Iterator, List, Optional, Tuple, Union

from anonvma.procmaps.errors import ProcessAccessError, ProcessNotFoundError, ProcmapsParseError
from anonvma.procmaps.group import tally_of
from anonvma.procmaps.parser import ChunkParser, ChunkTally, Chunked, gc_paused, parse
from anonvma.procmaps.reader import ThreadedReader
from anonvma.procmaps.records import Snapshot, Tally
from anonvma.procmaps.saved import registry_of

PathLike = Union[str, "os.PathLike[str]"]
#: Bytes asked per read(2) (seq_file gives at most a page or one entry per call).
CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"


def proc_path(pid: int, what: str, procfs: str = "/proc") -> str:
    """``/proc/PID/WHAT``."""
    return os.path.join(procfs, str(pid), what)


def _open_proc(pid: int, path: str) -> int:
    """Open a /proc file of ``pid`` for reading, translating the errors (see :func:`read_pid_bytes`)."""
    if pid < 0:
        raise ProcessNotFoundError(pid, " (pids are not negative)")
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise _translate(err, pid, path) from err


def _translate(err: OSError, pid: int, path: str) -> OSError:
    if isinstance(err, FileNotFoundError):
        return ProcessNotFoundError(pid, f" ({path} does not exist)")
    if isinstance(err, PermissionError):
        return ProcessAccessError(pid, path, err.errno)
    if err.errno == errno.ESRCH:
        return ProcessNotFoundError(pid, " (it exited while being read)")
    return err


def _chunks(fd: int, pid: int, path: str) -> Iterator[bytes]:
    """Read ``fd`` to the end in CHUNK pieces."""
    while True:
        try:
            data = os.read(fd, CHUNK)
        except OSError as err:
            raise _translate(err, pid, path) from err
        if not data:
            return
        yield data


def read_pid_bytes(pid: int, *, smaps: bool = True, procfs: str = "/proc") -> bytes:
    """The raw bytes of ``/proc/PID/smaps`` (or ``maps``) of a live process.

    :raises ProcessNotFoundError: (ESRCH) no such process, or it exited while being read.
    :raises ProcessAccessError: (EACCES/EPERM) another user's process.
    :raises OSError: anything else, chained.
    """
    path = proc_path(pid, "smaps" if smaps else "maps", procfs)
    fd = _open_proc(pid, path)
    try:
        data = b"".join(_chunks(fd, pid, path))
    finally:
        os.close(fd)
    _check_alive(pid, data, procfs)
    return data


def _check_alive(pid: int, data: bytes, procfs: str) -> None:
    """An empty map is a kernel thread's, or a process that exited while we read it."""
    if not data and not os.path.exists(os.path.join(procfs, str(pid))):
        raise ProcessNotFoundError(pid, " (it exited while being read)")


def stream(pid: int, path: str, procfs: str, reader: "Chunked[Any, Any]") -> None:
    """Feed ``path`` of live process ``pid`` to ``reader`` as it is read: a reader thread reads
    ahead while this thread parses what has arrived. The caller then calls ``reader.finish()``
    (with the GC paused, as here).

    :raises ProcessNotFoundError, ProcessAccessError, OSError: see :func:`read_pid_bytes`.
    """
    if pid < 0:
        raise ProcessNotFoundError(pid, " (pids are not negative)")
    with gc_paused(), ThreadedReader([path]) as pieces:
        for _, piece in pieces:
            if isinstance(piece, OSError):
                raise _translate(piece, pid, path) from piece
            if piece is not None:
                reader.feed(piece)
    if reader.empty:
        _check_alive(pid, b"", procfs)


def read_pid(pid: int, *, smaps: bool = True, procfs: str = "/proc") -> Snapshot:
    """Parse the memory map of a live process (``smaps=False`` reads the cheaper maps).

    A kernel thread has an empty map (no VMAs).

    :raises ProcessNotFoundError, ProcessAccessError, OSError: see :func:`read_pid_bytes`.
    :raises ProcmapsParseError: the kernel printed something this parser does not know.
    """
    path = proc_path(pid, "smaps" if smaps else "maps", procfs)
    if smaps:
        reader = ChunkParser(path)
        with gc_paused():
            stream(pid, path, procfs, reader)
            vmas, fields = reader.finish()
    else:
        vmas, fields = parse(read_pid_bytes(pid, smaps=False, procfs=procfs), path)
    return Snapshot(path, pid, tuple(vmas), fields)


def read_tally(pid: int, *, procfs: str = "/proc") -> Tally:
    """A live process's smaps counted per (name, counters) as it is read: what ``group`` needs
    by name or kind, without a VMA record each (much cheaper for large maps).

    Same errors as :func:`read_pid`.
    """
    path = proc_path(pid, "smaps", procfs)
    reader = ChunkTally(path)
    with gc_paused():
        stream(pid, path, procfs, reader)
        n, fields, counts, sizes = reader.finish()
    return Tally(path, pid, n, fields, counts, sizes)


def tally(target: Union[int, PathLike], *, procfs: str = "/proc") -> Tally:
    """:func:`read` as a :class:`Tally`: counted while read for a live process."""
    pid = pid_of(target)
    if pid is not None:
        return read_tally(pid, procfs=procfs)
    return tally_of(read_file(os.fspath(target)))  # type: ignore[arg-type]  # an int is a pid


def _decompress(data: bytes, source: str) -> bytes:
    import gzip  # only for gzip files
    import zlib

    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise ProcmapsParseError(source, None, None, f"gzip data is corrupt or cut short ({err})") from err


#: The file name that means standard input (``anonvma show -``); ``./-`` is a file named ``-``.
STDIN = "-"


def read_file(path: PathLike) -> Snapshot:
    """Parse a saved maps or smaps file (any machine, any kernel version; gzip-compressed too);
    :data:`STDIN` reads standard input to its end.

    A file ``anonvma snapshot`` saved with a process's registered names has them marked
    (:attr:`Snapshot.registry`, see :mod:`anonvma.procmaps.saved`).

    :raises FileNotFoundError, PermissionError, IsADirectoryError: as ``open`` does (they carry
        the file name).
    :raises ProcmapsParseError: the file is not maps/smaps (names the line), or it is empty.
    """
    source = os.fspath(path)
    if source == STDIN:
        import sys  # only for standard input

        data = sys.stdin.buffer.read()
        source = "<stdin>"
    else:
        with open(path, "rb") as f:
            data = f.read()
    if data.startswith(_GZIP_MAGIC):
        data = _decompress(data, source)
    vmas, fields = parse(data, source)
    if not vmas:
        raise ProcmapsParseError(source, None, None, "no VMAs in it: an empty file is not a saved maps "
                                                     "or smaps (even the smallest process has a few)")
    return Snapshot(source, None, tuple(vmas), fields, registry_of(vmas, source))


def looks_like_pid(target: str) -> bool:
    """``self`` or a string of digits."""
    return target == "self" or target.isdigit()


def read(target: Union[int, PathLike], *, procfs: str = "/proc") -> Snapshot:
    """A pid (int, ``self``, or a string of digits that is not an existing file) or a file path."""
    pid = pid_of(target)
    if pid is not None:
        return read_pid(pid, procfs=procfs)
    return read_file(os.fspath(target))  # type: ignore[arg-type]  # an int is a pid


def pid_of(target: Union[int, PathLike]) -> Optional[int]:
    """The process a target names (an int, ``self``, or digits that are not an existing file),
    or ``None`` for a file."""
    if isinstance(target, int):
        return target
    text = os.fspath(target)
    if looks_like_pid(text) and not os.path.exists(text):
        return os.getpid() if text == "self" else int(text)
    return None


def pids(procfs: str = "/proc") -> List[int]:
    """Every process id in ``procfs``, ascending."""
    return sorted(int(d) for d in os.listdir(procfs) if d.isdigit())


def cmdline(pid: int, procfs: str = "/proc") -> Tuple[str, str]:
    """(command line with spaces, comm) of a process; ``("", "")`` if it is gone.

    A kernel thread or zombie has an empty command line; callers show ``[comm]`` then.
    """
    try:
        with open(proc_path(pid, "cmdline", procfs), "rb") as f:
            raw = f.read()
        with open(proc_path(pid, "comm", procfs), "rb") as f:
            comm = f.read().rstrip(b"\n")
    except OSError:
        return "", ""
    args = raw.rstrip(b"\0").replace(b"\0", b" ")
    return args.decode("utf-8", "backslashreplace"), comm.decode("utf-8", "backslashreplace")


def owner(pid: int, procfs: str = "/proc") -> Optional[int]:
    """The effective uid of a process (what ``ps -u`` and top's USER go by), from the ``Uid:``
    line of /proc/PID/status; ``None`` if it is gone. (The owner of /proc/PID is no answer: it
    is root for a process that changed its uid, which the kernel makes not dumpable.)"""
    try:
        with open(proc_path(pid, "status", procfs), "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[2])
    except (OSError, ValueError, IndexError):
        return None
    return None


def describe(pid: Optional[int], procfs: str = "/proc") -> str:
    """``pid 123 (python3 -m http.server)`` for headers; ``[comm]`` for kernel threads."""
    if pid is None:
        return ""
    args, comm = cmdline(pid, procfs)
    shown = " ".join(args.split()) or (f"[{comm}]" if comm else "")  # on one line
    return f"pid {pid} ({shown})" if shown else f"pid {pid}"
