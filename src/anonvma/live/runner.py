"""Run an ops script (OPS-FORMAT v1) in real processes on the running kernel.

The runner never executes an op itself: process 0 is a forked worker, and each ``fork`` op
makes a worker clone itself. Every worker is served over its own ``AF_UNIX`` ``SOCK_SEQPACKET``
pair (a batch of consecutive ops of that process in, their results out, message boundaries
kept; batching saves round trips, which cost most inside User-Mode Linux), so a script that unmaps a worker's
code kills that worker, never the runner; a dead worker is reported as :class:`RunnerError`.

Workers fork with ``clone(CLONE_PARENT | SIGCHLD)`` rather than fork(): the kernel runs the same
dup_mmap, but the child's parent is the runner, which can then reap every process of the script
itself. An ``exit`` result is sent only after the runner has reaped the process, so its mm is
gone (names put, anon_vmas unlinked) before the next op runs, as in the model.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import platform
import shutil
import signal
import socket
import tempfile
from dataclasses import dataclass
from typing import Any, NoReturn, Optional, Sequence

from anonvma.live.handlers import Context, run_op
from anonvma.ops import ARENA_BASE, FILE_SIZE, Op, err, ok

#: Largest message either side sends (a maps result of a few hundred VMAs is ~20 KiB).
_MSG_MAX = 1 << 20

# clone(2): x86-64 and arm64 syscall numbers; flags for a fork whose child is our sibling.
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE_PARENT = 0x00008000


class RunnerError(RuntimeError):
    """The real-process run broke (a worker died or the protocol failed), not an op's errno."""


@dataclass
class _Proc:
    """One process of the script as the runner sees it: its real pid and its channel."""

    number: int
    pid: int
    sock: socket.socket


# ---------------------------------------------------------------------------------------------
# Worker side: runs in the forked processes, never returns.

def _clone_parent() -> int:
    """fork() whose child gets the caller's parent (the runner) as parent; 0 in the child."""
    libc = ctypes.CDLL(None, use_errno=True)
    nr = _SYS_CLONE.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"clone syscall number unknown on {platform.machine()}")
    libc.syscall.restype = ctypes.c_long
    ret = int(libc.syscall(ctypes.c_long(nr), ctypes.c_ulong(_CLONE_PARENT | signal.SIGCHLD),
                           ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)))
    if ret < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"clone: {os.strerror(code)}")
    return ret


def _send(sock: socket.socket, obj: Any, fds: Sequence[int] = ()) -> None:
    data = json.dumps(obj).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def _serve(sock: socket.socket, ctx: Context) -> NoReturn:
    """The worker loop: a batch of ops per message, their results in one reply.

    Only the last op of a batch may be ``fork`` or ``exit``. For ``exit`` the worker replies
    with the results before it and ends; for ``fork`` the reply carries the child's channel.
    """
    try:
        while True:
            data = sock.recv(_MSG_MAX)
            if not data:
                break
            results: list[dict[str, Any]] = []
            fd: list[int] = []
            for op in json.loads(data):
                if op["op"] == "exit":
                    _send(sock, results)
                    os._exit(0)
                if op["op"] != "fork":
                    results.append(run_op(op, ctx))
                    continue
                theirs, mine = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                try:
                    child = _clone_parent()
                except OSError as exc:
                    theirs.close()
                    mine.close()
                    results.append(err(exc))
                    continue
                if child == 0:  # the new process: serve on its own channel, reply nothing
                    sock.close()
                    theirs.close()
                    sock = mine
                    break
                mine.close()
                results.append({"ret": 0, "pid": child})
                fd = [theirs.fileno()]
                _send(sock, results, fd)
                theirs.close()
                break
            else:
                _send(sock, results)
    except BaseException:  # a worker must end here, never unwind into the runner's code
        os._exit(3)
    os._exit(0)


# ---------------------------------------------------------------------------------------------
# Runner side.

class LiveRunner:
    """Runs one script's ops in real processes; use as a context manager (ends every process).

    :param base: the arena base (:data:`anonvma.ops.ARENA_BASE`).
    :param labels: the script's file labels; each gets one sparse regular file of
        :data:`anonvma.ops.FILE_SIZE` bytes, opened O_RDWR and shared by every process.
    """

    def __init__(self, labels: Sequence[str] = (), base: int = ARENA_BASE,
                 file_dir: Optional[str] = None) -> None:
        self.base = base
        self.procs: dict[int, _Proc] = {}
        self.next_number = 0
        self._dir: Optional[str] = None
        self.files: dict[str, str] = {}  # real path -> label, for maps
        fds: dict[str, int] = {}
        try:
            if labels:
                self._dir = os.path.realpath(tempfile.mkdtemp(prefix="anonvma-files-", dir=file_dir))
                for label in sorted(set(labels)):
                    path = os.path.join(self._dir, label)
                    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                    fds[label] = fd
                    os.ftruncate(fd, FILE_SIZE)
                    self.files[path] = label
            self._spawn(fds)
        except BaseException:
            self.close()
            raise
        finally:
            for fd in fds.values():
                os.close(fd)

    def _spawn(self, fds: dict[str, int]) -> None:
        """Fork process 0; it keeps the files open, the runner does not."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Under UML every page a new process touches costs a host fault; the collector would
        # touch every object, so freeze what exists (runner) and do not collect (worker).
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            gc.disable()
            ours.close()
            for proc in self.procs.values():
                proc.sock.close()
            _serve(theirs, Context(self.base, fds, self.files))
        theirs.close()
        self.procs[0] = _Proc(0, pid, ours)
        self.next_number = 1

    def __enter__(self) -> LiveRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lost(self, proc: _Proc, op: Op) -> RunnerError:
        """The worker behind ``proc`` is gone: reap it and say how it ended."""
        del self.procs[proc.number]
        proc.sock.close()
        how = "ended"
        try:
            _, status = os.waitpid(proc.pid, 0)
            if os.WIFSIGNALED(status):
                how = f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
            else:
                how = f"exited with status {os.WEXITSTATUS(status)}"
        except ChildProcessError:
            pass
        return RunnerError(f"process {proc.number} (pid {proc.pid}) {how} while running line "
                           f"{op.lineno}: {op.to_json()}; a real process cannot survive this op "
                           "(e.g. it unmapped its own code), so the script cannot run live")

    def run(self, op: Op) -> dict[str, Any]:
        """Run one op in its process and return the result object.

        :raises RunnerError: the process does not exist or died.
        """
        return self.run_batch([op])[0]

    def run_batch(self, ops: Sequence[Op]) -> list[dict[str, Any]]:
        """Run consecutive ops of one process in one round trip; only the last may fork or exit.

        :raises RunnerError: the process does not exist or died.
        """
        last = ops[-1]
        proc = self.procs.get(last.pid)
        if proc is None:
            raise RunnerError(f"line {last.lineno}: no process {last.pid} (check scripts with parse_script)")
        if any(op.pid != last.pid or op.op in ("fork", "exit") for op in ops[:-1]):
            raise ValueError("a batch is ops of one process, with fork or exit only last")
        msg = [{"op": op.op, **op.args} for op in ops]
        try:
            proc.sock.send(json.dumps(msg).encode())
            data, fds, flags, _ = socket.recv_fds(proc.sock, _MSG_MAX, 1)
        except (BrokenPipeError, ConnectionResetError):
            raise self._lost(proc, last) from None
        if not data:
            raise self._lost(proc, last)
        if flags & socket.MSG_TRUNC:
            raise RunnerError(f"line {last.lineno}: results longer than {_MSG_MAX} bytes")
        results: list[dict[str, Any]] = json.loads(data)
        if last.op == "exit":
            del self.procs[last.pid]
            proc.sock.close()
            os.waitpid(proc.pid, 0)
            results.append(ok())
        elif last.op == "fork" and "pid" in results[-1]:
            number = self.next_number
            self.next_number += 1
            self.procs[number] = _Proc(number, results[-1]["pid"], socket.socket(fileno=fds.pop()))
            results[-1] = ok(child=number)
        for fd in fds:
            os.close(fd)
        if len(results) != len(ops):
            raise RunnerError(f"line {last.lineno}: {len(results)} results for {len(ops)} ops")
        return results

    def close(self) -> None:
        """End every process still alive (closing its channel makes it exit), reap it, drop the files."""
        for proc in list(self.procs.values()):
            proc.sock.close()
        for proc in list(self.procs.values()):
            try:
                os.waitpid(proc.pid, 0)
            except ChildProcessError:
                pass
        self.procs.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def run_ops(ops: Sequence[Op], base: int = ARENA_BASE,
            file_dir: Optional[str] = None) -> list[dict[str, Any]]:
    """Run checked ops (see :func:`anonvma.ops.parse_script`) in real processes; their results.

    :raises RunnerError: a process died (the script cannot run live), with the op named.
    """
    labels = [op.args["file"] for op in ops if "file" in op.args]
    results: list[dict[str, Any]] = []
    with LiveRunner(labels, base, file_dir) as runner:
        batch: list[Op] = []
        for op in ops:
            if batch and op.pid != batch[-1].pid:
                results += runner.run_batch(batch)
                batch = []
            batch.append(op)
            if op.op in ("fork", "exit"):
                results += runner.run_batch(batch)
                batch = []
        if batch:
            results += runner.run_batch(batch)
    return results
