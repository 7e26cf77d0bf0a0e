"""Which registry files are provably stale, and removing them: the job of ``anonvma registry clean`` alone.

A process removes its own file at exit, but not after ``_exit``, a crash, SIGKILL or exec. Such
a file is stale only when that can be proven: it and its directory are this user's (never
another user's, root's included), it decodes, it was written in the PID namespace (and boot,
and time namespace) of the procfs read, as that procfs shows
(:func:`~anonvma.live.registry.process_identity.namespace`), and its process is gone from that
procfs or is another one now (another start time, or another program since exec). Anything
else (another user's file, a file from another namespace or boot, a file without a namespace,
a reader whose procfs is not its own namespace's, a corrupt file someone should look at) is
left alone. Readers never call this.
"""

from __future__ import annotations

import os
from typing import Iterable, List, NamedTuple, Optional

from anonvma.live.registry.fileformat import decode
from anonvma.live.registry.process_identity import Identity, Namespace, file_name, identity, namespace
from anonvma.live.registry.loading import trusted_bytes
from anonvma.live.registry.places import scan


class Stale(NamedTuple):
    """A provably stale file and why: its process exited, its pid is another process's now,
    or its process runs another program."""

    path: str
    why: str


def why_stale(path: str, here: Optional[Namespace], procfs: str = "/proc") -> Optional[str]:
    """Why the registry file ``path`` is provably stale (module docstring), or ``None`` if it
    is not, or that cannot be proven. ``here``: the namespace of ``procfs``, from
    :func:`~anonvma.live.registry.process_identity.namespace` (``None`` proves nothing)."""
    if here is None:
        return None
    data, _ = trusted_bytes(path, os.geteuid())
    if data is None:
        return None
    try:
        doc = decode(data)
    except ValueError:
        return None  # never trusted, never removed either: someone should look
    if doc.namespace != here or file_name(doc.identity) != os.path.basename(path):
        return None
    pid = doc.identity.pid
    try:
        now: Optional[Identity] = identity(pid, procfs)
    except FileNotFoundError:
        now = None
    except (OSError, ValueError):
        return None
    if now is None:
        return f"pid {pid} has exited"
    if now.starttime != doc.identity.starttime:
        return f"pid {pid} has exited (the pid is another process's now)"
    if any(now.mm) and now.mm != doc.identity.mm:
        return f"pid {pid} runs another program now (exec)"
    return None  # alive (or a zombie, which has no address space to compare)


def remove(path: str) -> bool:
    """Remove ``path``; whether it was removed (another cleaner may be first).

    Through a descriptor of its directory opened without following a symlink, so a directory
    swapped for a link between the check and now cannot make root remove a file elsewhere.
    """
    try:
        folder = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.unlink(os.path.basename(path), dir_fd=folder)
    except OSError:
        return False
    finally:
        os.close(folder)
    return True


class Survey(NamedTuple):
    """The registry files found: the provably stale ones, how many others were left alone,
    and whether the procfs was this process's namespace's (else nothing can be proven)."""

    stale: List[Stale]
    others: int
    provable: bool


def survey(dirs: Optional[Iterable[str]] = None, procfs: str = "/proc") -> Survey:
    """Every registry file in ``dirs`` (default: every directory readers look in), judged by
    :func:`why_stale`; nothing is removed.

    :raises ValueError: ``$ANONVMA_REGISTRY_DIR`` is a relative path.
    """
    here = namespace(procfs)
    stale: List[Stale] = []
    others = 0
    for files in scan(dirs).values():
        for _, path in sorted(files):
            why = why_stale(path, here, procfs)
            if why is None:
                others += 1
            else:
                stale.append(Stale(path, why))
    return Survey(sorted(stale), others, here is not None)
