"""Who wrote a registry file: a process told apart from a later one with its pid, and where that pid is it.

A pid and a start time name one process only in the PID namespace (and time namespace, and
boot) that gave them: a reader in a container, under ``unshare --pid``, or in a guest kernel
sees other processes under those numbers. So a file records its writer's :class:`Identity`
and :class:`Namespace`, and nothing is concluded from a pid read elsewhere.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Optional, Tuple

#: /proc/PID/stat fields (1-based) of the address space: startcode, startstack, start_brk,
#: arg_start, env_start (fs/proc/array.c do_task_stat). Fixed for the life of an mm, new on
#: exec (randomized by ASLR).
MM_FIELDS = (26, 28, 47, 48, 50)
#: /proc/PID/stat field 22: the start time, in clock ticks after boot.
STARTTIME_FIELD = 22


class Identity(NamedTuple):
    """What tells a process apart from a later one with the same pid, or from itself after exec.

    :ivar starttime: clock ticks after boot (/proc/PID/stat field 22): a reused pid differs.
    :ivar mm: the address space's fixed addresses (start of code, stack, brk, arguments,
        environment): a new image after exec differs (unless ASLR is off and it is the same
        program). All 0 when the reader may not see them.
    """

    pid: int
    starttime: int
    mm: Tuple[int, ...]


class Namespace(NamedTuple):
    """Where a pid and a start time mean what they say: the boot, and the PID and time
    namespaces (``(st_dev, st_ino)`` of ``/proc/self/ns/pid`` and ``ns/time``; ``(0, 0)`` on a
    kernel without time namespaces). A guest kernel has another boot id, though its initial
    namespaces have the same inode numbers as the host's."""

    boot_id: str
    pid_ns: Tuple[int, int]
    time_ns: Tuple[int, int]


def namespace(procfs: str = "/proc") -> Optional[Namespace]:
    """The namespace of the calling process, if ``procfs`` is a procfs of that namespace (its
    ``self`` is this process with one pid, ours: NSpid), else ``None`` (a procfs of another
    namespace, an unreadable or a fake one): then pids read through it prove nothing."""
    try:
        with open(os.path.join(procfs, "self", "status"), "rb") as f:
            nspid = next((line.split()[1:] for line in f if line.startswith(b"NSpid:")), [])
        if [int(v) for v in nspid] != [os.getpid()]:
            return None
        with open(os.path.join(procfs, "sys", "kernel", "random", "boot_id"), "rb") as f:
            boot_id = f.read().decode("ascii").strip()
        pid_ns = os.stat(os.path.join(procfs, "self", "ns", "pid"))
        try:
            time_ns = os.stat(os.path.join(procfs, "self", "ns", "time"))
            times = (time_ns.st_dev, time_ns.st_ino)
        except FileNotFoundError:
            times = (0, 0)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not boot_id:
        return None
    return Namespace(boot_id, (pid_ns.st_dev, pid_ns.st_ino), times)


def identity(pid: int, procfs: str = "/proc") -> Identity:
    """The identity of a live process.

    :raises FileNotFoundError: no such process.
    :raises ValueError: an unreadable stat line (a kernel this code does not know).
    """
    with open(os.path.join(procfs, str(pid), "stat"), "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()  # field 3 onwards: comm may hold anything
    values = [int(fields[n - 3]) for n in (STARTTIME_FIELD, *MM_FIELDS)]
    return Identity(pid, values[0], tuple(values[1:]))


def file_name(ident: Identity) -> str:
    """The name of a process's registry file: ``PID-STARTTIME.json``."""
    return f"{ident.pid}-{ident.starttime}.json"


def euid(pid: int, procfs: str = "/proc") -> int:
    """The effective uid of a live process (/proc/PID/status ``Uid:``, the second value).

    :raises OSError: no such process; :raises ValueError: no Uid line.
    """
    with open(os.path.join(procfs, str(pid), "status"), "rb") as f:
        for line in f:
            if line.startswith(b"Uid:"):
                return int(line.split()[2])
    raise ValueError(f"no Uid line in {procfs}/{pid}/status")
