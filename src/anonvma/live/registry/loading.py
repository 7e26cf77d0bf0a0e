"""Reading one live process's registry: trusted whole, or ignored with one warning. Never removes a file.

A reader (``anonvma show``, ``export``, :mod:`anonvma.procmaps.registered`) trusts a file only
if the process's user owns it and its directory and nobody else may write them, and its pid,
start time and address-space fingerprint are the live process's. Files of earlier processes
with the pid, or of the process before it exec'd, are skipped and left where they are:
``anonvma registry clean`` (:mod:`anonvma.live.registry.stale`) removes them.
"""

from __future__ import annotations

import os
import stat
import warnings
from typing import List, NamedTuple, Optional, Sequence, Tuple

from anonvma.live.registry.fileformat import MAX_BYTES, Entry, decode
from anonvma.live.registry.process_identity import euid, identity
from anonvma.live.registry.places import scan


class RegistryWarning(UserWarning):
    """A registry file was ignored (corrupt, another user's, another process's): never trusted."""


class Loaded(NamedTuple):
    """A registry that passed every check: its path and entries (in address order)."""

    path: str
    entries: List[Entry]


def trusted_bytes(path: str, uid: int) -> Tuple[Optional[bytes], str]:
    """The file's bytes if it and its directory belong to ``uid`` and only ``uid`` may write
    them; else (None, why). Opened without following a symlink."""
    folder = os.path.dirname(path)
    try:
        st = os.lstat(folder)
    except OSError as err:
        return None, f"its directory cannot be read ({err.strerror})"
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o022:
        return None, (f"its directory is owned by uid {st.st_uid} (mode {stat.S_IMODE(st.st_mode):o}), "
                      f"but the process runs as uid {uid}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        return None, f"it cannot be opened ({err.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "it is not a regular file"
        if st.st_uid != uid:
            return None, f"it belongs to uid {st.st_uid}, but the process runs as uid {uid}"
        if st.st_mode & 0o022:
            return None, f"others may write it (mode {stat.S_IMODE(st.st_mode):o})"
        if st.st_size > MAX_BYTES:
            return None, f"it is {st.st_size} bytes, more than a registry can be ({MAX_BYTES})"
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(MAX_BYTES + 1), ""
    finally:
        os.close(fd)


def _warn(path: str, why: str) -> None:
    warnings.warn(f"ignored anonvma registry {path}: {why}; never trusted", RegistryWarning, stacklevel=3)


def load(pid: int, files: Optional[Sequence[Tuple[int, str]]] = None, procfs: str = "/proc"
         ) -> Optional[Loaded]:
    """The registry of live process ``pid``, or ``None`` if it has none that can be trusted.

    ``files`` are the candidates (from :func:`~anonvma.live.registry.places.scan`; default:
    scanned now). Files of earlier processes with this pid (another start time) are skipped. A
    file that is corrupt, owned by another user than the process's, in a directory others may
    write, or that claims another process, is ignored with a :class:`RegistryWarning` (one
    line). A file whose process has since exec'd another program (its address space differs)
    is skipped, no warning. No file is ever removed here.
    """
    if files is None:
        files = scan().get(pid, [])
    if not files:
        return None
    try:
        now = identity(pid, procfs)
        uid = euid(pid, procfs)
    except (OSError, ValueError):
        return None  # gone
    loaded: Optional[Loaded] = None
    for starttime, path in files:
        if starttime != now.starttime:
            continue  # an earlier process's (stale: `anonvma registry clean` removes it)
        data, why = trusted_bytes(path, uid)
        if data is None:
            _warn(path, why)
            continue
        try:
            ident, owner, entries, _ = decode(data)
        except ValueError as err:
            _warn(path, f"corrupt: {err}")
            continue
        if (ident.pid, ident.starttime, owner) != (pid, now.starttime, uid):
            _warn(path, f"it claims pid {ident.pid} started at {ident.starttime} as uid {owner}, "
                        f"not pid {pid} started at {now.starttime} as uid {uid}")
            continue
        if any(now.mm) and ident.mm != now.mm:
            continue  # the process has exec'd another program since: not its names
        if loaded is None:
            loaded = Loaded(path, entries)
    return loaded


def unchanged(before: Optional[Loaded], after: Optional[Loaded]) -> Optional[Loaded]:
    """The registrations in both of two loads of one registry, taken before and after reading
    the process's map: a range registered, or forgotten and mapped anew, while the map was
    read is left out rather than given the wrong memory."""
    if before is None or after is None:
        return None
    kept = set(before.entries)
    return after._replace(entries=[e for e in after.entries if e in kept])
