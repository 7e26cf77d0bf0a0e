"""A process's cgroup for its memory, from /proc/PID/cgroup (``--by cgroup``, ``--cgroup-label``).

kernel/cgroup/cgroup.c proc_cgroup_show prints one line per hierarchy,
``hierarchy-ID:controller-list:path``: ``0::/path`` for the unified (v2) hierarchy, and
``4:memory:/path`` for a v1 hierarchy holding the memory controller. The cgroup that memory is
charged to is the memory controller's: the v1 ``memory`` line where there is one (a v1 or hybrid
system), else the v2 line. The path is relative to the reader's cgroup namespace root; PIDs stay
the host's (the PID namespace of whoever reads /proc, not of the process), so the processes of
several containers are told apart by path, not by PID.
"""

from __future__ import annotations

from typing import Optional

from anonvma.procmaps.source import proc_path


def memory_cgroup(text: str) -> Optional[str]:
    """The memory controller's path in a /proc/PID/cgroup text: the v1 ``memory`` hierarchy's,
    else the v2 one's (``0::``); ``None`` when the text has neither."""
    unified: Optional[str] = None
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, colon, path = rest.partition(":")
        if not colon:
            continue
        if "memory" in controllers.split(","):
            return path
        if hierarchy == "0" and not controllers:
            unified = path
    return unified


def cgroup_of(pid: int, procfs: str = "/proc") -> Optional[str]:
    """The memory cgroup of a live process (:func:`memory_cgroup`); ``None`` when it is unknown:
    the process exited, or /proc/PID/cgroup cannot be read (a kernel without cgroups)."""
    try:
        with open(proc_path(pid, "cgroup", procfs), encoding="utf-8", errors="replace") as f:
            return memory_cgroup(f.read())
    except OSError:
        return None
