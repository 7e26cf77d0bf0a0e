"""Read /proc seq_files in a second thread, in large pieces, while the caller's thread parses.

/proc/PID/smaps hands out at most one page per ``read(2)`` (fs/seq_file.c seq_read_iter fills
one buffer per call), so a 45 MB smaps is ~12,000 reads. Done with ``os.read`` in a thread, each
read would have to win the GIL back from the parsing thread (up to the 5 ms switch interval
each). Instead the thread calls C's ``fread`` through ctypes, which loops over ``read(2)`` with
the GIL released until a whole CHUNK is filled: one GIL hand-over per MB, not per page.
One thread reads any number of files one after the other (``anonvma show --all``).
"""

from __future__ import annotations

import ctypes
import os
import queue
import sys
import threading
from types import TracebackType
from typing import Iterator, Optional, Sequence, Tuple, Type, Union

#: Bytes handed over per piece (about 1,400 smaps entries).
CHUNK = 1 << 20
#: While reading, how soon (s) the busy thread offers the GIL to the reader (default 5 ms).
SWITCH_INTERVAL = 0.0005
_IONBF = 2
#: (index of the file, a piece of it | None at its end | the OSError that ended it)
Piece = Tuple[int, Union[bytes, OSError, None]]


class _Libc:
    """The few stdio calls used, typed once per reader."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fdopen = libc.fdopen
        self.fdopen.restype = ctypes.c_void_p
        self.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
        self.setvbuf = libc.setvbuf
        self.setvbuf.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t]
        self.fread = libc.fread
        self.fread.restype = ctypes.c_size_t
        self.fread.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
        self.ferror = libc.ferror
        self.ferror.argtypes = [ctypes.c_void_p]
        self.fclose = libc.fclose
        self.fclose.argtypes = [ctypes.c_void_p]


def _errno_error() -> OSError:
    code = ctypes.get_errno()
    return OSError(code, os.strerror(code))


class ThreadedReader:
    """Iterate over ``(index, piece)`` of files read ahead, in order, by a second thread.

    Each file gives its pieces, then ``(index, None)`` at its end, or ``(index, OSError)``
    (with the errno of ``open`` or ``read``) instead when it fails. Use as a context manager:
    leaving it stops the thread after its current piece.
    """

    def __init__(self, paths: Sequence[str], chunk: int = CHUNK) -> None:
        self._paths = list(paths)
        self._chunk = chunk
        self._pieces: "queue.SimpleQueue[Optional[Piece]]" = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anonvma reader", daemon=True)
        self._interval: Optional[float] = None  # the switch interval to restore, if we changed it

    def _run(self) -> None:
        libc = _Libc()
        buf = ctypes.create_string_buffer(self._chunk)
        for index, path in enumerate(self._paths):
            if self._stop.is_set():
                break
            self._pieces.put((index, self._read_one(libc, index, path, buf)))
        self._pieces.put(None)

    def _read_one(self, libc: _Libc, index: int, path: str,
                  buf: "ctypes.Array[ctypes.c_char]") -> Optional[OSError]:
        """Put the pieces of one file; return what ends it (None: its end, or the error)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            return err
        fp = libc.fdopen(fd, b"rb")
        if not fp:
            os.close(fd)
            return _errno_error()
        try:
            libc.setvbuf(fp, None, _IONBF, 0)  # fread reads straight into our buffer
            while not self._stop.is_set():
                n = libc.fread(buf, 1, self._chunk, fp)  # the GIL is released for the whole loop
                if n:
                    self._pieces.put((index, ctypes.string_at(buf, n)))
                if n < self._chunk:
                    return _errno_error() if libc.ferror(fp) else None
            return None
        finally:
            libc.fclose(fp)  # closes fd

    def __enter__(self) -> "ThreadedReader":
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            self._interval = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._thread.start()
        return self

    def __iter__(self) -> Iterator[Piece]:
        while True:
            item = self._pieces.get()
            if item is None:
                return
            yield item

    def __exit__(self, kind: Optional[Type[BaseException]], value: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self._stop.set()
        self._thread.join()
        if self._interval is not None:
            sys.setswitchinterval(self._interval)
