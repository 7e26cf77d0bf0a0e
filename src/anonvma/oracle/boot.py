"""Boot a cached oracle kernel with the host's file system as root and run one command inside.

User-Mode Linux runs as an ordinary host process. With ``rootfstype=hostfs rootflags=/`` the
guest sees the host's files (same paths, same Python, same checkout), so the command is an
ordinary argv; its output goes to files in a host temp dir (hostfs writes land on the host).
A generated init script mounts /proc, runs the command, records its exit status, syncs and halts.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import anonvma

#: Environment passed into the guest (the init script starts with an empty one).
_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


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


def boot(kernel: Path, argv: Sequence[str], *, cwd: Optional[Path] = None,
         env: Optional[Mapping[str, str]] = None, mem: str = "512M", timeout: float = 900.0,
         tmp_root: Optional[str] = None) -> BootResult:
    """Boot ``kernel`` (a UML executable), run ``argv`` inside, return its output.

    :param timeout: seconds before the whole guest is killed (its host processes form one
        process group, started here).
    :raises OracleBootError: the guest halted without the command finishing, or timed out.
    """
    cwd = Path.cwd() if cwd is None else cwd
    with tempfile.TemporaryDirectory(prefix="anonvma-boot-", dir=tmp_root) as tmp:
        outdir = Path(tmp).resolve()
        init = outdir / "init"
        init.write_text(init_script(argv, outdir, cwd, guest_env(env)))
        init.chmod(0o755)
        cmd = [str(kernel), f"mem={mem}", "rootfstype=hostfs", "rootflags=/", "rw", f"init={init}",
               "con=null", "con0=fd:0,fd:1", "quiet"]
        started = time.monotonic()
        with open(outdir / "console", "wb") as console:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, "TMPDIR": str(outdir)})
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise OracleBootError(f"{kernel} did not halt within {timeout:.0f} s running {argv!r}; "
                                      f"console:\n{_tail(outdir / 'console')}") from None
            finally:
                _reap_group(proc.pid)
        seconds = time.monotonic() - started
        rc_file = outdir / "rc"
        if not rc_file.exists():
            raise OracleBootError(f"{kernel} halted (exit {proc.returncode}) before {argv!r} finished; "
                                  f"console:\n{_tail(outdir / 'console')}\n"
                                  f"stderr:\n{_tail(outdir / 'stderr')}")
        return BootResult(int(rc_file.read_text().strip() or 255), _read(outdir / "stdout"),
                          _read(outdir / "stderr"), _read(outdir / "console"), seconds)


def boot_python(kernel: Path, args: Sequence[str], **kwargs: object) -> BootResult:
    """:func:`boot` running this interpreter (``sys.executable``) with ``args``."""
    return boot(kernel, [sys.executable, *args], **kwargs)  # type: ignore[arg-type]


def _reap_group(pgid: int) -> None:
    """Kill what is left of the guest's host processes (UML helpers), by the group started here."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _tail(path: Path, lines: int = 25) -> str:
    return "\n".join(_read(path).splitlines()[-lines:])
