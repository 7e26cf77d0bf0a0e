"""Boot a cached oracle kernel with the host's file system as root and run one command inside.

User-Mode Linux runs as an ordinary host process. With ``rootfstype=hostfs rootflags=/`` the
guest sees the host's files (same paths, same Python, same checkout), so the command is an
ordinary argv; its output goes to files in a host temp dir (hostfs writes land on the host at
once, so the host can follow them while the guest runs). A generated init script mounts /proc,
runs the command, records its exit status, syncs and halts.

Every guest runs in its own host process group (:class:`~anonvma.oracle.procgroup.ProcessGroup`):
on timeout, Ctrl-C or any error the whole group (the kernel and its host helper processes) is
killed and the temp dir removed. This is the one booter: the difftest, the benchmarks and the
tests all boot through :class:`Guest`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Callable, Mapping, Optional, Sequence

import anonvma
from anonvma.oracle.procgroup import ProcessGroup

#: Environment passed into the guest (the init script starts with an empty one).
_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
#: How often a waiting host looks at the files the guest writes.
POLL_SECONDS = 0.2


class OracleBootError(RuntimeError):
    """The guest did not run the command to completion (panic, timeout, halt before the end)."""


@dataclass(frozen=True)
class BootResult:
    """What a command printed inside the guest and how it ended.

    :ivar returncode: the command's exit status inside the guest.
    :ivar seconds: wall time from starting the kernel to its halt.
    :ivar console: the kernel console (boot messages, init script errors).
    """

    returncode: int
    stdout: str
    stderr: str
    console: str
    seconds: float


def init_script(argv: Sequence[str], outdir: Path, cwd: Path, env: Mapping[str, str]) -> str:
    """The guest's /sbin/init: mount /proc, run ``argv`` in ``cwd`` with ``env``, record, halt."""
    q = shlex.quote
    exports = "".join(f"export {k}={q(v)}\n" for k, v in sorted(env.items()))
    return (
        "#!/bin/sh\n"
        "mount -t proc proc /proc\n"
        f"{exports}"
        f"cd {q(str(cwd))} || echo 127 > {q(str(outdir / 'rc'))}\n"
        f"{' '.join(q(a) for a in argv)} > {q(str(outdir / 'stdout'))} 2> {q(str(outdir / 'stderr'))} "
        "</dev/null\n"
        f"echo $? > {q(str(outdir / 'rc.tmp'))} && mv {q(str(outdir / 'rc.tmp'))} {q(str(outdir / 'rc'))}\n"
        "sync\n"
        "/sbin/halt -f 2>/dev/null || /sbin/poweroff -f 2>/dev/null || echo o > /proc/sysrq-trigger\n"
    )


def guest_env(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The host's PATH/HOME/locale, this checkout on PYTHONPATH, no .pyc writes, plus ``extra``."""
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    src = str(Path(anonvma.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def memory_dir(fallback: str, need: int) -> str:
    """Where UML puts the (unlinked) file backing ``need`` bytes of guest memory: /dev/shm (tmpfs:
    no writeback to disk) when it has that much room (containers often give it 64 MiB), else
    ``fallback``."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return fallback
    roomy = st.f_bavail * st.f_frsize >= need
    return "/dev/shm" if roomy and os.access("/dev/shm", os.W_OK) else fallback


def mem_bytes(mem: str) -> int:
    """UML's ``mem=`` size (``512M``, ``2G``, ``1048576K``, bytes) in bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    unit = units.get(mem[-1:].upper(), 1)
    return int(mem[:-1] if unit > 1 else mem) * unit


class Guest:
    """``kernel`` booted, running ``argv``; use as a context manager (leaving it kills the guest's
    process group and removes its temp dir).

    The command's stdout and stderr and any file it writes under :attr:`outdir` are host files
    the caller can read while the guest runs (:meth:`follow_stderr`).

    :param cpu: run the guest (the kernel and every host process it makes) on this CPU only.
        A guest is a ping-pong of host processes under ptrace; kept on one CPU, each hand-over is
        a local context switch, not a wake-up on another CPU (about 25% more scripts per second
        with two guests on two CPUs).
    """

    def __init__(self, kernel: Path, argv: Sequence[str], *, cwd: Optional[Path] = None,
                 env: Optional[Mapping[str, str]] = None, mem: str = "512M",
                 tmp_root: Optional[str] = None, cpu: Optional[int] = None) -> None:
        self.kernel = kernel
        self.argv = list(argv)
        self._tmp = tempfile.TemporaryDirectory(prefix="anonvma-boot-", dir=tmp_root)
        self.outdir = Path(self._tmp.name).resolve()
        self._group: Optional[ProcessGroup] = None
        self._stderr_seen = 0
        try:
            init = self.outdir / "init"
            workdir = Path.cwd() if cwd is None else cwd
            init.write_text(init_script(argv, self.outdir, workdir, guest_env(env)))
            init.chmod(0o755)
            cmd = [str(kernel), f"mem={mem}", "rootfstype=hostfs", "rootflags=/", "rw", f"init={init}",
                   "con=null", "con0=fd:0,fd:1", "quiet"]
            self.started = time.monotonic()
            pin = {} if cpu is None else {"preexec_fn": lambda: os.sched_setaffinity(0, {cpu})}
            with open(self.outdir / "console", "wb") as console:
                self._group = ProcessGroup(
                    cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                    env={**os.environ, "TMPDIR": memory_dir(str(self.outdir), mem_bytes(mem))}, **pin)
        except BaseException:
            self._tmp.cleanup()
            raise
        self.seconds = 0.0

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    @property
    def pid(self) -> Optional[int]:
        """The kernel's host pid, which is also its process group's id (``None`` once killed)."""
        return None if self._group is None or self._group.returncode is not None else self._group.pid

    def halted(self, timeout: Optional[float] = 0.0) -> bool:
        """Whether the guest has ended, waiting up to ``timeout`` seconds (``None``: for ever)."""
        assert self._group is not None
        done = self._group.exited(timeout)
        if done and not self.seconds:
            self.seconds = time.monotonic() - self.started
        return done

    def kill(self) -> None:
        """Kill the guest's whole process group now (keeps the output files)."""
        if self._group is not None:
            self._group.close()
            if not self.seconds:
                self.seconds = time.monotonic() - self.started

    def close(self) -> None:
        """Kill the group (if still running) and remove the temp dir and its files."""
        try:
            self.kill()
        finally:
            self._tmp.cleanup()

    def wait(self, timeout: Optional[float] = None,
             on_stderr: Optional[Callable[[str], None]] = None) -> bool:
        """Wait for the halt, up to ``timeout`` seconds, passing each new line the command writes
        to stderr to ``on_stderr``; False on timeout (the guest is still running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = POLL_SECONDS if on_stderr is not None else None
            if deadline is not None:
                left = deadline - time.monotonic()
                step = left if step is None else min(step, left)
                if step <= 0:
                    return False
            done = self.halted(step)
            if on_stderr is not None:
                self.follow_stderr(on_stderr, final=done)
            if done:
                return True

    def follow_stderr(self, callback: Callable[[str], None], final: bool = False) -> None:
        """Pass the complete lines the command added to its stderr since the last call (and, when
        ``final``, an unterminated last line) to ``callback``."""
        data = appended(self.outdir / "stderr", self._stderr_seen, whole_lines=not final)
        self._stderr_seen += len(data)
        for line in data.decode(errors="replace").splitlines():
            callback(line)

    def read(self, name: str) -> str:
        """A file of the guest's output directory (``stdout``, ``stderr``, ``console``, ...); '' if absent."""
        return _read(self.outdir / name)

    def result(self) -> BootResult:
        """How the command ended, once the guest has halted.

        :raises OracleBootError: the guest halted (or was killed) before the command finished.
        """
        rc_file = self.outdir / "rc"
        if not rc_file.exists():
            raise OracleBootError(f"{self.kernel} halted before {self.argv!r} finished; "
                                  f"console:\n{_tail(self.outdir / 'console')}\n"
                                  f"stderr:\n{_tail(self.outdir / 'stderr')}")
        return BootResult(int(rc_file.read_text().strip() or 255), self.read("stdout"), self.read("stderr"),
                          self.read("console"), self.seconds)


def appended(path: Path, offset: int, whole_lines: bool = True) -> bytes:
    """What a file the guest writes holds past ``offset`` (up to its last newline when
    ``whole_lines``: a line still being written waits for the next look); b"" if it is absent."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return b""
    return data[:data.rfind(b"\n") + 1] if whole_lines else data


def boot(kernel: Path, argv: Sequence[str], *, cwd: Optional[Path] = None,
         env: Optional[Mapping[str, str]] = None, mem: str = "512M", timeout: float = 900.0,
         tmp_root: Optional[str] = None) -> BootResult:
    """Boot ``kernel`` (a UML executable), run ``argv`` inside, return its output.

    :param timeout: seconds before the whole guest is killed (its host processes form one
        process group, started here).
    :raises OracleBootError: the guest halted without the command finishing, or timed out.
    """
    with Guest(kernel, argv, cwd=cwd, env=env, mem=mem, tmp_root=tmp_root) as guest:
        if not guest.wait(timeout):
            guest.kill()
            raise OracleBootError(f"{kernel} did not halt within {timeout:.0f} s running {argv!r}; "
                                  f"console:\n{_tail(guest.outdir / 'console')}")
        guest.kill()  # the kernel has halted: reap it and anything it left
        return guest.result()


def boot_python(kernel: Path, args: Sequence[str], **kwargs: object) -> BootResult:
    """:func:`boot` running this interpreter (``sys.executable``) with ``args``."""
    return boot(kernel, [sys.executable, *args], **kwargs)  # type: ignore[arg-type]


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _tail(path: Path, lines: int = 25) -> str:
    return "\n".join(_read(path).splitlines()[-lines:])
