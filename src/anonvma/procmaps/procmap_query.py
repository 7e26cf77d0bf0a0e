"""List a process's VMAs (range and name) with the PROCMAP_QUERY ioctl, or from its maps text.

PROCMAP_QUERY (Linux 6.11, fs/proc/task_mmu.c do_procmap_query; struct procmap_query in
include/uapi/linux/fs.h) asks an open /proc/PID/maps for the VMA covering or following an
address: one ioctl per VMA, no text to print or parse, and no page-table walk (as maps, unlike
smaps). Where the ioctl is missing (an older kernel, or a file that is not procfs: ENOTTY; a
kernel that does not know this struct or flag: EINVAL) the maps text is parsed instead.

The ioctl walks the process's mm only: the gate VMA (``[vsyscall]`` on x86-64, fs/proc/task_mmu.c
m_next adds it to maps from get_gate_vma) is not listed, so :func:`list_vmas` adds the gate VMAs
this process's own maps shows (one for every 64-bit process of the machine).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from typing import List, NamedTuple, Optional, Tuple

from anonvma.procmaps.parser import parse
from anonvma.procmaps.source import proc_path

#: include/uapi/linux/fs.h: _IOWR(PROCFS_IOCTL_MAGIC 'f', 17, struct procmap_query), 104 bytes.
PROCMAP_QUERY = 0xC0686611
#: enum procmap_query_flags: the VMA covering query_addr, or else the next one.
PROCMAP_QUERY_COVERING_OR_NEXT_VMA = 0x10
#: Errors that say the ioctl is not there (then: maps text).
MISSING = (errno.ENOTTY, errno.EINVAL)
#: How a listing was made: by the ioctl, or from maps text.
HOW = ("procmap_query", "maps")
_NAME_BUF = 4096 + 64  # PATH_MAX and " (deleted)"; doubled on ENAMETOOLONG

#: (start, end, name as maps prints it) of one VMA.
Range = Tuple[int, int, str]


class procmap_query(ctypes.Structure):  # noqa: N801  (the kernel's name)
    """struct procmap_query of include/uapi/linux/fs.h (Linux 6.11), field for field."""

    _fields_ = [
        ("size", ctypes.c_uint64),
        ("query_flags", ctypes.c_uint64),
        ("query_addr", ctypes.c_uint64),
        ("vma_start", ctypes.c_uint64),
        ("vma_end", ctypes.c_uint64),
        ("vma_flags", ctypes.c_uint64),
        ("vma_page_size", ctypes.c_uint64),
        ("vma_offset", ctypes.c_uint64),
        ("inode", ctypes.c_uint64),
        ("dev_major", ctypes.c_uint32),
        ("dev_minor", ctypes.c_uint32),
        ("vma_name_size", ctypes.c_uint32),
        ("build_id_size", ctypes.c_uint32),
        ("vma_name_addr", ctypes.c_uint64),
        ("build_id_addr", ctypes.c_uint64),
    ]


class Listing(NamedTuple):
    """A process's VMAs as ``(start, end, name)`` in address order, and how they were listed
    (one of :data:`HOW`)."""

    vmas: List[Range]
    how: str


def query_vmas(fd: int) -> List[Range]:
    """Every VMA of the mm behind ``fd`` (an open /proc/PID/maps), by PROCMAP_QUERY; the gate
    VMA is not among them (module docstring).

    Hot path (one ioctl per VMA, 64K for a large process): one struct and one name buffer reused.

    :raises OSError: ENOTTY or EINVAL (no such ioctl here: see :data:`MISSING`); ESRCH (no mm:
        a kernel thread, or the process exited); EACCES.
    """
    q = procmap_query()
    size = _NAME_BUF
    buf = ctypes.create_string_buffer(size)
    q.size, q.query_flags = ctypes.sizeof(q), PROCMAP_QUERY_COVERING_OR_NEXT_VMA
    q.vma_name_addr = ctypes.addressof(buf)
    out: List[Range] = []
    add, ioctl = out.append, fcntl.ioctl
    addr = 0
    while True:  # the kernel writes every field back: only the address and the name's size change
        q.query_addr, q.vma_name_size = addr, size
        try:
            ioctl(fd, PROCMAP_QUERY, q, True)
        except OSError as err:
            if err.errno == errno.ENOENT:  # no VMA at or above addr: the end
                return out
            if err.errno == errno.ENAMETOOLONG:
                size *= 2
                buf = ctypes.create_string_buffer(size)
                q.vma_name_addr = ctypes.addressof(buf)
                continue
            raise
        addr = q.vma_end
        # vma_name_size: the name's length with its NUL, 0 for plain anonymous memory
        add((q.vma_start, addr, buf.value.decode("utf-8", "surrogateescape") if q.vma_name_size else ""))


def maps_vmas(data: bytes) -> List[Range]:
    """The VMAs of maps text (the same parser as ``anonvma show``)."""
    return [(v.start, v.end, v.name) for v in parse(data)[0]]


def _read_all(fd: int) -> bytes:
    parts: List[bytes] = []
    while True:
        piece = os.read(fd, 1 << 20)
        if not piece:
            return b"".join(parts)
        parts.append(piece)


class Lister:
    """Lists processes' VMAs, PROCMAP_QUERY first; remembers the gate VMAs once found.

    :param query: try the ioctl (``False``: maps text only, for comparison).
    """

    def __init__(self, procfs: str = "/proc", query: bool = True) -> None:
        self.procfs, self.query = procfs, query
        self._gate: Optional[List[Range]] = None

    def list_vmas(self, pid: int) -> Listing:
        """The VMAs of ``pid`` (a kernel thread or a process that exited: none).

        :raises OSError: opening or reading its maps (EACCES: another user's; ENOENT: gone).
        """
        fd = os.open(proc_path(pid, "maps", self.procfs), os.O_RDONLY | os.O_CLOEXEC)
        try:
            if self.query:
                try:
                    vmas = query_vmas(fd)
                except OSError as err:
                    if err.errno == errno.ESRCH:  # no mm: as maps, which reads empty then
                        return Listing([], HOW[0])
                    if err.errno not in MISSING:
                        raise
                else:
                    return Listing(vmas + self.gate() if vmas else vmas, HOW[0])
            return Listing(maps_vmas(_read_all(fd)), HOW[1])
        finally:
            os.close(fd)

    def gate(self) -> List[Range]:
        """The VMAs this process's maps shows above its own last VMA by PROCMAP_QUERY: the gate
        VMA (``[vsyscall]``), or none (``vsyscall=none``, or no such VMA on this architecture)."""
        if self._gate is None:
            self._gate = []
            try:
                fd = os.open(proc_path(os.getpid(), "maps", self.procfs), os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return self._gate
            try:
                own = query_vmas(fd)
                os.lseek(fd, 0, os.SEEK_SET)
                text = maps_vmas(_read_all(fd))
            except OSError:
                return self._gate
            finally:
                os.close(fd)
            top = own[-1][1] if own else 0
            self._gate = [v for v in text if v[0] >= top]
        return self._gate
