"""Run ops scripts (docs/ops-format.md) in real processes on the running kernel.

The runner never executes an op itself. A lean zygote process (:mod:`anonvma.live.worker`,
started once per :class:`LiveSession`) forks each script's process 0, and each ``fork`` op makes
a worker clone itself. Every worker is served over its own ``AF_UNIX`` ``SOCK_SEQPACKET`` pair (a
batch of consecutive ops of that process in, their results out, message boundaries kept;
batching saves round trips, which cost most inside User-Mode Linux), so a script that unmaps a
worker's code kills that worker, never the runner; a dead worker is reported as
:class:`RunnerError`.

Between scripts, a process 0 that is still alive has its whole arena unmapped and its files
closed (in the next script's first round trip) and serves the next script: every VMA a script
can make lies in the arena, so the next script sees the same process state as in a fresh
process 0, without paying for a fork. The
children of a script never outlive it. An ``exit`` result is sent only after the runner has
reaped the process, so its mm is gone (names put, anon_vmas unlinked) before the next op runs,
as in the model. The runner's own interpreter state (garbage collector included) is left alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Optional, Sequence

import anonvma
from anonvma.live.handlers import refusal
from anonvma.live.worker import Channel, send
from anonvma.ops import ARENA_BASE, FILE_SIZE, Op, ok


class RunnerError(RuntimeError):
    """The real-process run broke (a worker died or the protocol failed), not an op's errno."""


@dataclass
class _Proc:
    """One process of the script as the runner sees it: its real pid and its channel."""

    number: int
    pid: int
    sock: socket.socket


def _reap(pid: int) -> str:
    """Wait for ``pid`` (a worker: our child) and say how it ended."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "ended"
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def worker_environment() -> dict[str, str]:
    """The zygote's (and so every worker's) environment: ours, with CPython's small-object
    allocator switched to malloc (PYTHONMALLOC=malloc): pymalloc maps and unmaps 256 KiB arenas
    as objects come and go, which changes the worker's VMA count (see
    :func:`anonvma.live.worker.steady_vma_count`)."""
    return {**os.environ, "PYTHONMALLOC": "malloc"}


class _Zygote:
    """A fresh ``python -S`` that imports only the worker side and forks each process 0."""

    def __init__(self, chan: Channel) -> None:
        self.chan = chan
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        src = str(Path(anonvma.__file__).resolve().parent.parent)
        code = (f"import sys; sys.path.insert(0, {src!r}); from anonvma.live.worker import zygote_main; "
                f"zygote_main({theirs.fileno()})")
        try:
            self.proc = subprocess.Popen([sys.executable, "-S", "-c", code], pass_fds=[theirs.fileno()],
                                         stdin=subprocess.DEVNULL, env=worker_environment())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours

    def spawn(self) -> _Proc:
        """A new process 0 (our child, thanks to CLONE_PARENT), waiting for ``begin``.

        :raises RunnerError: the zygote is gone or could not fork.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            send(self.sock, {"spawn": True}, [theirs.fileno()])
            reply, _ = self.chan.recv(self.sock)
        except OSError as exc:
            ours.close()
            raise RunnerError(f"the worker zygote is gone ({exc})") from None
        finally:
            theirs.close()
        if reply is None or "pid" not in reply:
            ours.close()
            why = "exited" if reply is None else os.strerror(reply.get("errno", 0))
            raise RunnerError(f"the worker zygote could not fork process 0: {why}")
        return _Proc(0, reply["pid"], ours)

    def close(self) -> None:
        """Closing its channel ends the zygote; reap it."""
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class LiveSession:
    """Runs scripts one after another in real processes; use as a context manager.

    :param base: the arena base (:data:`anonvma.ops.ARENA_BASE`).
    :param file_dir: where each script's files are made (a temp dir by default). Each file label
        gets one sparse regular file of :data:`anonvma.ops.FILE_SIZE` bytes, opened O_RDWR and
        shared by every process of the script.
    """

    def __init__(self, base: int = ARENA_BASE, file_dir: Optional[str] = None) -> None:
        self.base = base
        self.file_dir = file_dir
        self.chan = Channel()
        self.procs: dict[int, _Proc] = {}
        self.next_number = 0
        self._zygote: Optional[_Zygote] = None
        self._spare: Optional[_Proc] = None  # process 0 of the last script, arena unmapped

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    # -- one script --------------------------------------------------------------------------

    def run(self, ops: Sequence[Op]) -> list[dict[str, Any]]:
        """Run checked ops (see :func:`anonvma.ops.parse_script`) as one script; their results.

        :raises RunnerError: the running kernel must not run these ops (:func:`refusal`: nothing
            is run), or a process died (the script cannot run live), with the op named.
        """
        refused = refusal(ops)
        if refused is not None:
            raise RunnerError(refused)
        labels = sorted({op.args["file"] for op in ops if "file" in op.args})
        results: list[dict[str, Any]] = []
        with _ScriptFiles(labels, self.file_dir) as files:
            self._begin(files)
            try:
                batch: list[Op] = []
                for op in ops:
                    if batch and op.pid != batch[-1].pid:
                        results += self.run_batch(batch)
                        batch = []
                    batch.append(op)
                    if op.op in ("fork", "exit"):
                        results += self.run_batch(batch)
                        batch = []
                if batch:
                    results += self.run_batch(batch)
            finally:
                self._end()
        return results

    def _begin(self, files: _ScriptFiles) -> None:
        """Process 0 for a new script: the spare one (its arena unmapped first, in the same round
        trip) if it is still alive, else a new one."""
        spec: dict[str, Any] = {"begin": {"base": self.base, "files": files.labels_by_path,
                                          "labels": files.labels}}
        for attempt in (1, 2):
            spare, self._spare = self._spare, None
            proc = spare or self._spawn()
            try:
                send(proc.sock, {"reset": True, **spec} if spare else spec, files.fds)
                reply, _ = self.chan.recv(proc.sock)
            except OSError:
                reply = None
            if reply == {}:
                self.procs = {0: proc}
                self.next_number = 1
                return
            proc.sock.close()
            how = _reap(proc.pid)
            if attempt == 2:
                raise RunnerError(f"a new process 0 (pid {proc.pid}) {how} before the script began")

    def _spawn(self) -> _Proc:
        if self._zygote is None or self._zygote.proc.poll() is not None:
            if self._zygote is not None:
                self._zygote.close()
            self._zygote = _Zygote(self.chan)
        return self._zygote.spawn()

    def _end(self) -> None:
        """End the script's other processes; keep process 0, if alive, for the next script (which
        unmaps its arena first)."""
        first = self.procs.pop(0, None)
        for proc in self.procs.values():
            proc.sock.close()
        for proc in self.procs.values():
            _reap(proc.pid)
        self.procs.clear()
        if first is not None:
            self._spare = first

    def _lost(self, proc: _Proc, op: Op) -> RunnerError:
        """The worker behind ``proc`` is gone: reap it and say how it ended."""
        del self.procs[proc.number]
        proc.sock.close()
        how = _reap(proc.pid)
        return RunnerError(f"process {proc.number} (pid {proc.pid}) {how} while running line "
                           f"{op.lineno}: {op.to_json()}; a real process cannot survive this op "
                           "(e.g. it unmapped its own code), so the script cannot run live")

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
        try:
            send(proc.sock, [{"op": op.op, **op.args} for op in ops], [])
            got, fds = self.chan.recv(proc.sock)
        except (BrokenPipeError, ConnectionResetError):
            raise self._lost(proc, last) from None
        except OSError as exc:
            raise RunnerError(f"line {last.lineno}: {exc}") from None
        if got is None:
            raise self._lost(proc, last)
        results: list[dict[str, Any]] = got
        if last.op == "exit":
            del self.procs[last.pid]
            proc.sock.close()
            _reap(proc.pid)
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
        """End every process (closing its channel makes it exit), reap it, end the zygote."""
        self._end()
        if self._spare is not None:
            self._spare.sock.close()
            _reap(self._spare.pid)
            self._spare = None
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None


class _ScriptFiles:
    """The regular files of one script's labels, open while the script runs; removed after."""

    def __init__(self, labels: Sequence[str], file_dir: Optional[str]) -> None:
        self.labels = list(labels)
        self.fds: list[int] = []
        self.labels_by_path: dict[str, str] = {}
        self._dir: Optional[str] = None
        if not labels:
            return
        try:
            self._dir = os.path.realpath(tempfile.mkdtemp(prefix="anonvma-files-", dir=file_dir))
            for label in self.labels:
                path = os.path.join(self._dir, label)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                self.fds.append(fd)
                os.ftruncate(fd, FILE_SIZE)
                self.labels_by_path[path] = label
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> _ScriptFiles:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def run_ops(ops: Sequence[Op], base: int = ARENA_BASE,
            file_dir: Optional[str] = None) -> list[dict[str, Any]]:
    """Run checked ops (see :func:`anonvma.ops.parse_script`) in real processes; their results.

    One script, one :class:`LiveSession`; to run many, keep a session (it reuses process 0).

    :raises RunnerError: a process died (the script cannot run live), with the op named.
    """
    with LiveSession(base, file_dir) as session:
        return session.run(ops)
