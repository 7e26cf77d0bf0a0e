"""Where registry files are: the writer's own private directory, every directory a reader looks in.

A process writes ``$XDG_RUNTIME_DIR/anonvma/PID-STARTTIME.json`` (else ``/tmp/anonvma-UID/``,
mode 0700; ``$ANONVMA_REGISTRY_DIR`` instead of both, for writers and readers, when set).
Readers look in every user's: root reads other users' processes.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import Dict, Iterable, List, Optional, Tuple

#: The environment variable naming the one directory to write and read registries in (an
#: absolute path), instead of the defaults: ``anonvma run`` gives its guest one of its own.
DIR_ENV = "ANONVMA_REGISTRY_DIR"
#: Where registries of other users are looked for: systemd's runtime directories, then /tmp.
RUN_USER = "/run/user"
TMP = "/tmp"
FILE_NAME = re.compile(r"([0-9]+)-([0-9]+)\.json")
_TMP_DIR = re.compile(r"anonvma-([0-9]+)")

#: pid -> [(start time, path)] of the registry files found (:func:`scan`).
Found = Dict[int, List[Tuple[int, str]]]


def private_dir(path: str) -> str:
    """Create ``path`` mode 0700 if missing; refuse it unless it is a directory this user owns
    that nobody else may write to (another user could otherwise plant or replace files).

    :raises OSError: EACCES for a directory of someone else's, or not a directory.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    uid = os.geteuid()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        owner = f"owned by uid {st.st_uid}" if stat.S_ISDIR(st.st_mode) else "not a directory"
        raise OSError(errno.EACCES, f"cannot keep the anonvma registry in {path}: it is {owner}, "
                                    f"not a directory of uid {uid}; remove it or set XDG_RUNTIME_DIR")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def _chosen_dir() -> Optional[str]:
    """``$ANONVMA_REGISTRY_DIR`` if set, else ``None``.

    :raises ValueError: set to a relative path (another directory in each working directory:
        a mistake must not pass for a choice, as with ``ANONVMA_FALLBACK``).
    """
    chosen = os.environ.get(DIR_ENV, "")
    if not chosen:
        return None
    if not os.path.isabs(chosen):
        raise ValueError(f"{DIR_ENV}={chosen!r} is not an absolute path: set it to one, or unset it")
    return os.path.normpath(chosen)


def writer_dir() -> str:
    """This process's registry directory, created if missing: ``$ANONVMA_REGISTRY_DIR`` when
    set, else ``$XDG_RUNTIME_DIR/anonvma`` when that is an absolute directory of this user, else
    ``/tmp/anonvma-UID``.

    :raises OSError: the directory cannot be made, or belongs to someone else.
    :raises ValueError: ``$ANONVMA_REGISTRY_DIR`` is a relative path.
    """
    chosen = _chosen_dir()
    if chosen is not None:
        return private_dir(chosen)
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        try:
            st = os.stat(runtime)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            return private_dir(os.path.join(runtime, "anonvma"))
    return private_dir(os.path.join(TMP, f"anonvma-{os.geteuid()}"))


def reader_dirs() -> List[str]:
    """Every directory a registry may be in: ``$ANONVMA_REGISTRY_DIR`` alone when set; else
    this user's ``$XDG_RUNTIME_DIR/anonvma``, each ``/run/user/UID/anonvma`` and
    ``/tmp/anonvma-UID``.

    :raises ValueError: ``$ANONVMA_REGISTRY_DIR`` is a relative path.
    """
    chosen = _chosen_dir()
    if chosen is not None:
        return [chosen]
    dirs: List[str] = []
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        dirs.append(os.path.join(runtime, "anonvma"))
    for base, pattern, tail in ((RUN_USER, re.compile(r"[0-9]+"), "anonvma"), (TMP, _TMP_DIR, "")):
        try:
            names = os.listdir(base)
        except OSError:
            continue
        dirs += [os.path.join(base, n, tail) if tail else os.path.join(base, n)
                 for n in sorted(names) if pattern.fullmatch(n)]
    return list(dict.fromkeys(os.path.normpath(d) for d in dirs))


def scan(dirs: Optional[Iterable[str]] = None) -> Found:
    """pid -> [(start time, path)] of every registry file in ``dirs`` (default :func:`reader_dirs`)."""
    found: Found = {}
    for d in reader_dirs() if dirs is None else dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            m = FILE_NAME.fullmatch(n)
            if m:
                found.setdefault(int(m.group(1)), []).append((int(m.group(2)), os.path.join(d, n)))
    return found
