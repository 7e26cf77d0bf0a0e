"""The host's ends of a guest command's stdin, stdout and stderr (``anonvma run``).

A guest sees the host's files (hostfs) but not its file descriptors, so the streams go through
files in a directory both see. Out: the command writes ``out`` and ``err``; :class:`Tail` copies
what they gained to the host's fd 1 and 2 and punches the copied part out of the file, so a
command that prints for hours holds no disk. In: :class:`StdinFeed` reads the host's fd 0 and
drops what it read as numbered chunk files the guest consumes in order, a few at most waiting.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import stat
import threading
from pathlib import Path
from typing import Optional

#: Bytes read per step (from a file the guest writes, or from stdin).
CHUNK = 1 << 20
#: Chunks of stdin written but not yet consumed by the guest before the feeder waits.
PENDING_CHUNKS = 4
#: fallocate(2) mode: free the blocks of a range, keep the file's size.
_FALLOC_PUNCH = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def punch_hole(fd: int, length: int) -> bool:
    """Free the blocks of the first ``length`` bytes of ``fd`` (they read as zeros after);
    False where the file system cannot (the file then just keeps them)."""
    return length > 0 and _fallocate(fd, _FALLOC_PUNCH, 0, length) == 0


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, waiting when it is non-blocking and full.

    :raises BrokenPipeError: the reader went away (``| head``).
    """
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


class Tail:
    """A file the guest appends to, copied to the host's ``fd`` as it grows."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd
        self.copied = 0
        self._file: Optional[int] = None

    def pump(self) -> int:
        """Copy what the file gained since the last call; the number of bytes copied.

        :raises BrokenPipeError: from writing to ``fd``.
        """
        if self._file is None:
            try:
                self._file = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                return 0
        done = 0
        while True:
            data = os.pread(self._file, CHUNK, self.copied)
            if not data:
                break
            write_all(self.fd, data)
            self.copied += len(data)
            done += len(data)
        if done:
            punch_hole(self._file, self.copied)
        return done

    def close(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None


def stdin_source(fd: int = 0) -> str:
    """What the command's stdin should be: ``null`` when ``fd`` is closed, /dev/null, or a
    terminal this process does not own (reading it from the background would stop us with
    SIGTTIN); ``feed`` otherwise (a pipe, a file, the terminal in the foreground)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return "null"
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3):
        return "null"
    if os.isatty(fd):
        try:
            if os.tcgetpgrp(fd) != os.getpgrp():
                return "null"
        except OSError:
            return "null"
    return "feed"


class StdinFeed(threading.Thread):
    """Reads ``fd`` until its end, writing ``work/stdin.0``, ``stdin.1`` ... (each whole, by a
    rename) and finally ``work/stdin.end`` holding their number; waits while
    :data:`PENDING_CHUNKS` are unconsumed. A daemon: a read blocked on a terminal does not keep
    the process alive."""

    def __init__(self, work: Path, fd: int = 0) -> None:
        super().__init__(name="anonvma-run-stdin", daemon=True)
        self.work, self.fd = work, fd
        self.chunks = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                try:
                    data = os.read(self.fd, CHUNK)
                except OSError as err:
                    if err.errno == errno.EINTR:
                        continue
                    data = b""  # EIO (terminal gone) and the like: the input has ended
                if not data:
                    break
                while (self.chunks >= PENDING_CHUNKS and not self.stopped.is_set()
                       and (self.work / f"stdin.{self.chunks - PENDING_CHUNKS}").exists()):
                    self.stopped.wait(0.02)
                self._drop(f"stdin.{self.chunks}", data)
                self.chunks += 1
            self._drop("stdin.end", str(self.chunks).encode())
        except OSError:
            pass  # the run ended and its directory went away

    def _drop(self, name: str, data: bytes) -> None:
        tmp = self.work / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.work / name)
