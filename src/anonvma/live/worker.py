"""The processes of a live script: a zygote that forks process 0, and the worker loop each runs.

Kept lean on purpose: a fork inside User-Mode Linux costs time in proportion to the pages the
forking process has mapped and then writes, so the zygote is a fresh interpreter (``python -S``)
that imports this module and the op handlers only, never the runner's imports, and every
worker of a script descends from it. The runner (:mod:`anonvma.live.runner`) starts the zygote
and speaks to every process over its own ``AF_UNIX`` ``SOCK_SEQPACKET`` channel, in messages
encoded with :mod:`marshal` (built in and compact: decoding JSON instead makes a freshly forked
worker fault in some 130 more pages of the interpreter, about 10 ms inside UML):

- to a worker: a list of consecutive ops of that process (only the last may be ``fork`` or
  ``exit``), answered by the list of their results; a fork's reply carries the child's channel;
- to a worker: ``{"begin": {"base": B, "files": {path: label}, "labels": [...]}}`` with one fd per
  label, answered by ``{}``: the script's arena base and open files;
- to a worker: ``{"reset": true}``: unmap the whole arena and close the script's files, so the
  process can serve the next script as a fresh process 0 would; answered by ``{}`` (sent together
  with the next ``begin``, one round trip for both);
- to the zygote: ``{"spawn": true}`` with the new worker's channel; answered by ``{"pid": PID}``.

Workers fork with ``clone(CLONE_PARENT | SIGCHLD)``: the kernel runs the same dup_mmap as fork(),
but the child's parent is the runner (the zygote's parent), which reaps every process itself.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import errno
import gc
import marshal
import mmap
import os
import signal
import socket
from typing import Any, NoReturn, Optional

from anonvma.live import syscalls
from anonvma.live.handlers import Context, run_op
from anonvma.ops import ARENA_SIZE, err, ok

#: Largest message either side sends (a maps result of a few hundred VMAs is ~20 KiB).
MSG_MAX = 1 << 20

# clone(2): x86-64 and arm64 syscall numbers; flags for a fork whose child is our sibling.
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE_PARENT = 0x00008000
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def clone_parent() -> int:
    """fork() whose child gets the caller's parent as parent; 0 in the child.

    :raises OSError: the kernel refused (its errno), or ENOSYS on an unknown architecture.
    """
    nr = _SYS_CLONE.get(os.uname().machine)
    if nr is None:
        raise OSError(errno.ENOSYS, f"clone syscall number unknown on {os.uname().machine}")
    ret = int(_libc.syscall(ctypes.c_long(nr), ctypes.c_ulong(_CLONE_PARENT | signal.SIGCHLD),
                            ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)))
    if ret < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"clone: {os.strerror(code)}")
    return ret


class Channel:
    """Receiving end of channels, with one buffer mapped once: a recv() of MSG_MAX bytes would
    allocate (mmap) and free a fresh megabyte per message, which costs syscalls and faults, and a
    bytearray would be zeroed (every page resident, copied at each fork). Only the pages that
    messages reach are ever touched."""

    def __init__(self, size: int = MSG_MAX, max_fds: int = 16) -> None:
        self.buf = mmap.mmap(-1, size)
        self.view = memoryview(self.buf)
        self.ancsize = socket.CMSG_SPACE(max_fds * 4)

    def recv(self, sock: socket.socket) -> tuple[Any, list[int]]:
        """The next message (``None`` at end of file) and the fds that came with it.

        :raises OSError: EMSGSIZE when the message did not fit the buffer.
        """
        n, anc, flags, _ = sock.recvmsg_into([self.view], self.ancsize)
        fds: list[int] = []
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += array.array("i", data[:len(data) - len(data) % 4]).tolist()
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            raise OSError(errno.EMSGSIZE, f"message longer than {len(self.buf)} bytes or too many fds")
        return (marshal.loads(self.view[:n]) if n else None), fds


def send(sock: socket.socket, obj: Any, fds: list[int]) -> None:
    """One message, with ``fds`` attached when there are any."""
    data = marshal.dumps(obj)
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


class _Script:
    """What a worker holds for the current script: the arena base and the script's files."""

    def __init__(self) -> None:
        self.ctx: Optional[Context] = None
        self.fds: list[int] = []

    def begin(self, spec: dict[str, Any], fds: list[int]) -> None:
        self.end_files()
        self.fds = fds
        self.ctx = Context(spec["base"], dict(zip(spec["labels"], fds, strict=True)), spec["files"])

    def end_files(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def reset(self) -> None:
        """Unmap the arena (every VMA a script can make lies in it) and close the files."""
        if self.ctx is not None:
            syscalls.munmap(self.ctx.base, ARENA_SIZE)
        self.end_files()
        self.ctx = None


def serve(sock: socket.socket, script: _Script, chan: Channel) -> NoReturn:
    """The worker loop; never returns (a worker must never unwind into its parent's code)."""
    try:
        while True:
            msg, fds = chan.recv(sock)
            if msg is None:
                break
            if isinstance(msg, dict):
                if "reset" in msg:
                    script.reset()
                if "begin" in msg:
                    script.begin(msg["begin"], fds)
                send(sock, {}, [])
                continue
            sock = _batch(sock, msg, script)
    except BaseException:  # noqa: B036 - whatever happens, end here with a status the runner reports
        os._exit(3)
    os._exit(0)


def _batch(sock: socket.socket, ops: list[dict[str, Any]], script: _Script) -> socket.socket:
    """Run one batch; return the channel to serve next (a forked child's own, in the child)."""
    assert script.ctx is not None, "a batch before begin"
    results: list[dict[str, Any]] = []
    for op in ops:
        if op["op"] == "exit":
            send(sock, results, [])
            os._exit(0)
        if op["op"] != "fork":
            results.append(run_op(op, script.ctx))
            continue
        theirs, mine = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            child = clone_parent()
        except OSError as exc:
            theirs.close()
            mine.close()
            results.append(err(exc))
            continue
        if child == 0:  # the new process: serve on its own channel, reply nothing
            sock.close()
            theirs.close()
            return mine
        mine.close()
        results.append(ok(pid=child))
        send(sock, results, [theirs.fileno()])
        theirs.close()
        return sock
    send(sock, results, [])
    return sock


#: glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def steady_vma_count() -> None:
    """Keep this process's VMAs outside the arena from changing while it runs ops: the heap is
    made to exist (a block never freed), never shrinks (no trimming) and serves every allocation
    (no mmap'd chunks; with PYTHONMALLOC=malloc, set by the runner, Python's objects too, instead
    of arenas it maps and unmaps). An op with a ``max_map_count`` field counts those VMAs just
    before its syscall (anonvma.live.handlers); a heap that vanished when its last block was
    freed and came back with the next malloc, or an arena mapped or unmapped meanwhile, shifted
    the limit by one (1-3 flaky mismatches in 2,000 scripts with Debian 12's python3 in the guest)."""
    with contextlib.suppress(AttributeError):
        _libc.malloc_trim(0)  # hand back what the imports freed, so forks copy less
        _libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
        _libc.mallopt(_M_MMAP_MAX, 0)
        _libc.malloc.restype = ctypes.c_void_p
        _libc.free.argtypes = [ctypes.c_void_p]
        _libc.malloc(ctypes.c_size_t(64))
        _libc.free(_libc.malloc(ctypes.c_size_t(1 << 20)))  # room to grow in, kept (no trimming)


def zygote_main(fd: int) -> NoReturn:
    """The zygote: on each ``spawn`` request fork a process 0 that serves the channel it was sent.

    The collector is frozen after the imports, so a worker's collections never walk (and never
    write to) the pages it shares with the zygote.
    """
    gc.collect()
    gc.freeze()
    steady_vma_count()
    sock = socket.socket(fileno=fd)
    chan = Channel()
    try:
        while True:
            msg, fds = chan.recv(sock)
            if msg is None or len(fds) != 1:
                break
            try:
                pid = clone_parent()
            except OSError as exc:
                for f in fds:
                    os.close(f)
                send(sock, {"errno": exc.errno}, [])
                continue
            if pid == 0:
                sock.close()
                serve(socket.socket(fileno=fds[0]), _Script(), chan)
            for f in fds:
                os.close(f)
            send(sock, {"pid": pid}, [])
    except BaseException:  # noqa: B036 - never unwind: the zygote ends here
        os._exit(3)
    os._exit(0)
