"""Names where the kernel cannot keep them: a per-process registry file, written only on request.

On a kernel without CONFIG_ANON_VMA_NAME every PR_SET_VMA_ANON_NAME is EINVAL. A caller that
opts in (``fallback=True`` on the naming functions of :mod:`anonvma.live.naming`, or
``ANONVMA_FALLBACK=1``) has each naming recorded here instead, with the kernel's semantics
where they can be had from ``/proc/self/maps`` (mm/madvise.c madvise_walk_vmas): the mapped
private anonymous parts of the range are named, ``None`` clears, a new name splits older
registrations, a hole is ENOMEM after naming what is mapped, file-backed and shared memory is
EBADF (the 6.1 rule: the registry names private anonymous memory only).

The file is the process's own: ``$XDG_RUNTIME_DIR/anonvma/PID-STARTTIME.json`` (else
``/tmp/anonvma-UID/``, mode 0700; ``$ANONVMA_REGISTRY_DIR`` instead of both, for writers and
readers, when set), written whole through a temporary file and a rename, removed at exit.
Readers (``anonvma show``, ``export``, see :mod:`anonvma.procmaps.registered`) trust a file
only if the process's user owns it and its directory, and its pid, start time and
address-space fingerprint are the live process's.

A pid and a start time mean something only in the PID namespace (and time namespace, and
boot) that wrote them: a reader in a container, under ``unshare --pid``, or in a guest kernel
sees other processes under those numbers, or none. So the file records its writer's
:class:`Namespace`, and a reader removes a file only when it can prove it stale: the file is
its own user's, in its own user's directory, written in the reader's namespace (as its procfs
shows it), and that process is gone or has exec'd. Anything else (another user's file, a file
from another namespace or boot, a file without a namespace, a reader whose procfs is not its
own namespace's) is left alone.

What a reader can check, and so what it drops, is what ``/proc/PID/maps`` shows: a registered
range must still be covered, without holes, by private anonymous VMAs with the permissions it
had. It cannot tell an anonymous mapping from another one mapped at the same address with the
same permissions (munmap then mmap of the same range): that is why :func:`forget` exists, and
why :func:`~anonvma.live.naming.named_mmap` calls it when its mapping is closed.
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import re
import stat
import threading
import warnings
from typing import TYPE_CHECKING, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from anonvma.anon_name import PAGE_SIZE, check_anon_name, check_range

if TYPE_CHECKING:
    from anonvma.procmaps.records import Vma

#: The environment variable that opts in for code that cannot pass ``fallback=True``.
ENV = "ANONVMA_FALLBACK"
#: The environment variable naming the one directory to write and read registries in (an
#: absolute path), instead of the defaults: ``anonvma run`` gives its guest one of its own.
DIR_ENV = "ANONVMA_REGISTRY_DIR"
#: The file format's version (``"anonvma_registry"`` in the file).
FORMAT = 1
#: Where registries of other users are looked for: systemd's runtime directories, then /tmp.
RUN_USER = "/run/user"
TMP = "/tmp"
#: A registry larger than this is not read (16 MiB: about 200,000 ranges).
MAX_BYTES = 16 << 20
_FILE_NAME = re.compile(r"([0-9]+)-([0-9]+)\.json")
_TMP_DIR = re.compile(r"anonvma-([0-9]+)")
_PERMS = frozenset(r + w + x + "p" for r in "r-" for w in "w-" for x in "x-")
#: /proc/PID/stat fields (1-based) of the address space: startcode, startstack, start_brk,
#: arg_start, env_start. Fixed for the life of an mm, new on exec (randomized by ASLR).
_MM_FIELDS = (26, 28, 47, 48, 50)
_STARTTIME_FIELD = 22


class RegistryWarning(UserWarning):
    """A registry file was ignored (corrupt, another user's, another process's): never trusted."""


class Entry(NamedTuple):
    """One registered range [start, end) with its name and the permissions of its memory then."""

    start: int
    end: int
    name: str
    perms: str


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
    values = [int(fields[n - 3]) for n in (_STARTTIME_FIELD, *_MM_FIELDS)]
    return Identity(pid, values[0], tuple(values[1:]))


def file_name(ident: Identity) -> str:
    """``PID-STARTTIME.json``."""
    return f"{ident.pid}-{ident.starttime}.json"


def is_private_anon(vma: "Vma") -> bool:
    """Private anonymous memory, as maps shows it: no file, ``p``, no special name but the
    heap's and the stack's (which keep those names in maps even when named)."""
    return (vma.inode == 0 and vma.dev in ("00:00", "0:0") and vma.perms.endswith("p")
            and (not vma.name or vma.name in ("[heap]", "[stack]") or vma.name.startswith("[anon:")))


#: Why a registration no longer applies (:func:`gone`), and how a note says it.
GONE = {
    "unmapped": "unmapped or moved away (munmap, mremap)",
    "replaced": "replaced by a file or shared mapping",
    "mprotected": "permissions changed (mprotect, or anonymous memory mapped over it)",
}


def gone(entries: Sequence[Entry], vmas: Sequence["Vma"]) -> List[Optional[str]]:
    """For each entry (in address order), ``None`` if its range is still covered, without a
    hole, by private anonymous VMAs with the permissions it was registered with (``vmas`` in
    address order), else why not: a key of :data:`GONE` (the first thing found wrong, from the
    entry's start). One pass over both.

    ``unmapped`` after munmap or a move (mremap), ``replaced`` when something else (a file, shared
    memory) is mapped there, ``mprotected`` for private anonymous memory with other permissions.
    Another anonymous mapping with the same permissions at the same place counts as still
    there: maps cannot tell them apart.
    """
    out: List[Optional[str]] = []
    i = 0
    for e in entries:
        while i < len(vmas) and vmas[i].end <= e.start:
            i += 1
        at, j, why = e.start, i, "unmapped"
        while j < len(vmas):
            v = vmas[j]
            if v.start > at:
                break  # a hole: unmapped
            if not is_private_anon(v):
                why = "replaced"
                break
            if v.perms != e.perms:
                why = "mprotected"
                break
            at = v.end
            if at >= e.end:
                why = ""
                break
            j += 1
        out.append(why or None)
    return out


def still_there(entries: Sequence[Entry], vmas: Sequence["Vma"]) -> List[bool]:
    """For each entry, whether :func:`gone` finds nothing wrong."""
    return [why is None for why in gone(entries, vmas)]


def kept(entries: Sequence[Entry], vmas: Sequence["Vma"]) -> List[Entry]:
    """The entries :func:`still_there`."""
    return [e for e, ok in zip(entries, still_there(entries, vmas), strict=True) if ok]


# --- the file -------------------------------------------------------------------------------

def encode(ident: Identity, uid: int, entries: Sequence[Entry], ns: Optional[Namespace] = None) -> bytes:
    """The file's bytes: one JSON object. ``ns``: the writer's namespace (``None``: unknown, and
    then no reader may ever remove the file)."""
    doc = {"anonvma_registry": FORMAT, "pid": ident.pid, "starttime": ident.starttime,
           "mm": list(ident.mm), "uid": uid, "page_size": PAGE_SIZE,
           "ns": None if ns is None else {"boot_id": ns.boot_id, "pid": list(ns.pid_ns),
                                          "time": list(ns.time_ns)},
           "entries": [[e.start, e.end, e.name, e.perms] for e in entries]}
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


class Decoded(NamedTuple):
    """A registry file's content: its process, that process's uid, the entries (in address
    order) and the namespace it was written in (``None``: not recorded)."""

    identity: Identity
    uid: int
    entries: List[Entry]
    namespace: Optional[Namespace]


def _namespace_of(value: object) -> Optional[Namespace]:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("boot_id"), str):
        raise ValueError("ns is not {boot_id, pid, time}")
    pairs = []
    for key in ("pid", "time"):
        pair = value.get(key)
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"ns {key} is not [dev, inode]")
        pairs.append((_int(pair[0], f"ns {key}"), _int(pair[1], f"ns {key}")))
    return Namespace(value["boot_id"], pairs[0], pairs[1])


def _int(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value < 1 << 64:
        raise ValueError(f"{what} is not an unsigned 64-bit integer: {value!r}")
    return value


def decode(data: bytes) -> Decoded:
    """Parse and check a registry file.

    :raises ValueError: anything that is not a registry this code wrote: not JSON, another
        format, wrong types, unaligned, unordered or overlapping ranges, invalid names.
    """
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("anonvma_registry") != FORMAT:
        raise ValueError(f"not an anonvma registry of format {FORMAT}")
    if doc.get("page_size") != PAGE_SIZE:
        raise ValueError(f"written for page size {doc.get('page_size')!r}, not {PAGE_SIZE}")
    mm = doc.get("mm")
    if not isinstance(mm, list) or len(mm) != len(_MM_FIELDS):
        raise ValueError("no address-space fingerprint (mm)")
    ident = Identity(_int(doc.get("pid"), "pid"), _int(doc.get("starttime"), "starttime"),
                     tuple(_int(v, "mm") for v in mm))
    uid = _int(doc.get("uid"), "uid")
    ns = _namespace_of(doc.get("ns"))
    raw = doc.get("entries")
    if not isinstance(raw, list):
        raise ValueError("no entries list")
    entries: List[Entry] = []
    for i, item in enumerate(raw):
        if not isinstance(item, list) or len(item) != 4:
            raise ValueError(f"entry {i} is not [start, end, name, perms]")
        start, end = _int(item[0], f"entry {i} start"), _int(item[1], f"entry {i} end")
        name, perms = item[2], item[3]
        if start % PAGE_SIZE or end % PAGE_SIZE or start >= end:
            raise ValueError(f"entry {i}: {start:#x}-{end:#x} is not a page-aligned range")
        if entries and start < entries[-1].end:
            raise ValueError(f"entry {i}: {start:#x} overlaps or precedes the entry before")
        if not isinstance(name, str) or "\0" in name:
            raise ValueError(f"entry {i}: the name is not a string")
        try:
            check_anon_name(name)
        except (OSError, TypeError) as err:
            raise ValueError(f"entry {i}: {err}") from None
        if perms not in _PERMS:
            raise ValueError(f"entry {i}: permissions {perms!r} are not private memory's")
        entries.append(Entry(start, end, name, perms))
    return Decoded(ident, uid, entries, ns)


# --- where the files are ----------------------------------------------------------------------

def _private_dir(path: str) -> str:
    """Create ``path`` mode 0700 if missing; refuse it unless it is a directory this user owns
    that nobody else may write to (another user could otherwise plant or replace files)."""
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
        return _private_dir(chosen)
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        try:
            st = os.stat(runtime)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            return _private_dir(os.path.join(runtime, "anonvma"))
    return _private_dir(os.path.join(TMP, f"anonvma-{os.geteuid()}"))


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


def scan(dirs: Optional[Iterable[str]] = None) -> Dict[int, List[Tuple[int, str]]]:
    """pid -> [(start time, path)] of every registry file in ``dirs`` (default :func:`reader_dirs`)."""
    found: Dict[int, List[Tuple[int, str]]] = {}
    for d in reader_dirs() if dirs is None else dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            m = _FILE_NAME.fullmatch(n)
            if m:
                found.setdefault(int(m.group(1)), []).append((int(m.group(2)), os.path.join(d, n)))
    return found


# --- reading one process's registry ---------------------------------------------------------------

class Loaded(NamedTuple):
    """A registry that passed every check: its path and entries (in address order)."""

    path: str
    entries: List[Entry]


def _euid(pid: int, procfs: str) -> int:
    with open(os.path.join(procfs, str(pid), "status"), "rb") as f:
        for line in f:
            if line.startswith(b"Uid:"):
                return int(line.split()[2])
    raise ValueError(f"no Uid line in {procfs}/{pid}/status")


def _warn(path: str, why: str) -> None:
    warnings.warn(f"ignored anonvma registry {path}: {why}; never trusted", RegistryWarning, stacklevel=3)


def _trusted_bytes(path: str, uid: int) -> Tuple[Optional[bytes], str]:
    """The file's bytes if it and its directory belong to ``uid`` and only ``uid`` may write
    them; else (None, why)."""
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


def _unlink(path: str) -> None:
    """Remove ``path`` (if we may; another reader may be first).

    Through a descriptor of its directory opened without following a symlink, so a directory
    swapped for a link between the listing and now cannot make root remove a file elsewhere.
    """
    try:
        folder = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.unlink(os.path.basename(path), dir_fd=folder)
    except OSError:
        pass
    finally:
        os.close(folder)


def remove_if_stale(path: str, here: Optional[Namespace], procfs: str = "/proc") -> bool:
    """Remove the registry file ``path`` if it is provably stale; whether it was removed.

    Provably stale: the file and its directory are this user's (never another user's, root's
    included), it decodes, it was written in ``here`` (the reader's namespace, from
    :func:`namespace` of the procfs that is read; ``None`` proves nothing), its name is its
    process's, and that process is gone from ``procfs`` or is another one now (another start
    time, or another program since exec). A file from another namespace or boot, or without
    one recorded, is never removed: its pid says nothing here.
    """
    if here is None:
        return False
    data, _ = _trusted_bytes(path, os.geteuid())
    if data is None:
        return False
    try:
        doc = decode(data)
    except ValueError:
        return False  # never trusted, never removed either: someone should look
    if doc.namespace != here or file_name(doc.identity) != os.path.basename(path):
        return False
    try:
        now: Optional[Identity] = identity(doc.identity.pid, procfs)
    except FileNotFoundError:
        now = None
    except (OSError, ValueError):
        return False
    if now is not None and now.starttime == doc.identity.starttime and (
            not any(now.mm) or now.mm == doc.identity.mm):
        return False  # alive (or a zombie, which has no address space to compare)
    _unlink(path)
    return True


def load(pid: int, files: Optional[Sequence[Tuple[int, str]]] = None, procfs: str = "/proc"
         ) -> Optional[Loaded]:
    """The registry of live process ``pid``, or ``None`` if it has none that can be trusted.

    ``files`` are the candidates (from :func:`scan`; default: scanned now). Files of earlier
    processes with this pid (another start time) are skipped, and removed if provably stale
    (:func:`remove_if_stale`). A file that is corrupt, owned by another user than the
    process's, in a directory others may write, or that claims another process, is ignored with
    a :class:`RegistryWarning` (one line). A file whose process has since exec'd another
    program (its address space differs) is skipped, no warning, and removed if provably stale.
    """
    if files is None:
        files = scan().get(pid, [])
    if not files:
        return None
    try:
        now = identity(pid, procfs)
        uid = _euid(pid, procfs)
    except (OSError, ValueError):
        return None  # gone: its files are cleaned up by the next reader that sees it gone
    loaded: Optional[Loaded] = None
    here = namespace(procfs)
    for starttime, path in files:
        if starttime != now.starttime:
            remove_if_stale(path, here, procfs)
            continue
        data, why = _trusted_bytes(path, uid)
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
            remove_if_stale(path, here, procfs)  # the process has exec'd another program since
            continue
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


def clean_stale(found: Dict[int, List[Tuple[int, str]]], procfs: str = "/proc") -> None:
    """Remove the files that are provably stale (:func:`remove_if_stale`) of processes that
    seem gone (no such pid, or another start time): a reader in another namespace than the
    writer's, or of another user, removes nothing."""
    here = namespace(procfs)
    if here is None:
        return
    for pid, files in found.items():
        try:
            now: Optional[int] = identity(pid, procfs).starttime
        except (OSError, ValueError):
            now = None
        for starttime, path in files:
            if starttime != now:
                remove_if_stale(path, here, procfs)


# --- the writer (in the process that names) -----------------------------------------------------

def _maps_of_self() -> List["Vma"]:
    """This process's VMAs, from /proc/self/maps (read at every registration)."""
    from anonvma.procmaps.parser import parse  # only a process that registers needs it

    with open("/proc/self/maps", "rb") as f:
        vmas, _ = parse(f.read(), "/proc/self/maps")
    return vmas


def _special(v: "Vma") -> bool:
    """A kernel special mapping ([vdso], [vvar] ...): no file, but not anonymous memory either."""
    return v.inode == 0 and v.name.startswith("[") and not is_private_anon(v)


def walk(start: int, end: int, vmas: Sequence["Vma"]) -> Tuple[List[Entry], int]:
    """The parts of [start, end) naming would reach, as mm/madvise.c madvise_walk_vmas visits
    them, and the errno it would end with (0: none).

    Parts are visited in address order; the first that cannot be named ends the walk with its
    error, the parts before it named: EBADF for file-backed or shared memory (the registry
    follows the 6.1 rule, private anonymous only), EINVAL for a special mapping that would have
    to be split (a whole one is accepted and never shown, as the kernel does). A hole anywhere
    gives ENOMEM after every mapped part was named. Entries carry an empty name.
    """
    parts: List[Entry] = []
    at, unmapped = start, False
    for v in vmas:
        if v.end <= at:
            continue
        if v.start >= end:
            break
        if at < v.start:
            unmapped, at = True, v.start
        stop = min(v.end, end)
        if _special(v):
            if at > v.start or stop < v.end:
                return parts, errno.EINVAL
        elif not is_private_anon(v):
            return parts, errno.EBADF
        else:
            parts.append(Entry(at, stop, "", v.perms))
        at = stop
        if at >= end:
            break
    if at < end:
        unmapped = True
    return parts, errno.ENOMEM if unmapped else 0


def _cut(entries: Iterable[Entry], start: int, end: int) -> List[Entry]:
    """The entries with [start, end) taken out (an entry across it is split in two)."""
    out: List[Entry] = []
    for e in entries:
        if e.end <= start or e.start >= end:
            out.append(e)
            continue
        if e.start < start:
            out.append(e._replace(end=start))
        if e.end > end:
            out.append(e._replace(start=end))
    return out


def _merged(entries: Sequence[Entry]) -> List[Entry]:
    """Sorted, with neighbours of the same name and permissions joined (as the kernel merges
    VMAs with equal names)."""
    out: List[Entry] = []
    for e in sorted(entries):
        if out and out[-1].end == e.start and out[-1][2:] == e[2:]:
            out[-1] = out[-1]._replace(end=e.end)
        else:
            out.append(e)
    return out


def _max_map_count() -> int:
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65530


class Registry:
    """The registrations of one process and the file that publishes them.

    :ivar entries: the registered ranges, in address order, neighbours of one name joined.
    """

    def __init__(self, ident: Identity, directory: str, entries: Sequence[Entry] = (),
                 ns: Optional[Namespace] = None) -> None:
        self.identity = ident
        self.namespace = ns
        self.path = os.path.join(directory, file_name(ident))
        self.entries: List[Entry] = list(entries)
        self.closed = False

    def set_anon_name(self, addr: int, length: int, name: Optional[bytes]) -> None:
        """Register (``None``: clear) the name of the private anonymous memory in the range,
        with the kernel's semantics (see :func:`walk`); write the file.

        :raises OSError: ENOMEM (a hole: the mapped parts were named), EBADF (file-backed or
            shared memory: the parts before it were named), EINVAL (a special mapping would be
            split), EAGAIN (more ranges than vm.max_map_count); or the file cannot be written.
        """
        end = check_range(addr, length)
        if end == addr:
            return
        vmas = _maps_of_self()
        parts, error = walk(addr, end, vmas)
        entries = kept(self.entries, vmas)
        for p in parts:
            entries = _cut(entries, p.start, p.end)
        if name is not None:
            text = name.decode("ascii")
            entries += [p._replace(name=text) for p in parts]
        entries = _merged(entries)
        if len(entries) > _max_map_count() and name is not None:
            raise OSError(errno.EAGAIN, "naming would split a mapping beyond vm.max_map_count")
        if entries != self.entries:
            self.entries = entries
            self.save()
        if error:
            raise OSError(error, os.strerror(error))

    def forget(self, addr: int, length: int) -> None:
        """Drop the registrations in the range (its memory is being unmapped); write the file."""
        end = addr + -(-length // PAGE_SIZE) * PAGE_SIZE
        kept = _cut(self.entries, addr, end)
        if kept != self.entries:
            self.entries = kept
            self.save()

    def save(self) -> None:
        """Write the file whole (a temporary file, then rename), mode 0600; nothing after close."""
        if self.closed:
            return
        from anonvma.procmaps.files import write_atomically

        _private_dir(os.path.dirname(self.path))
        write_atomically(self.path, encode(self.identity, os.geteuid(), self.entries, self.namespace),
                         mode=0o600)

    def remove(self) -> None:
        """Remove the file (at exit) and write no more."""
        self.closed = True
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class _ThisProcess:
    """The registry of the running process, made at the first registration.

    A process has one address space, so one registry: this holder is the one piece of
    process-wide state, as the address space it mirrors is. It removes the file at exit, and
    gives a forked child (whose memory, names included, is a copy) a file of its own.
    """

    def __init__(self) -> None:
        self.registry: Optional[Registry] = None
        # reentrant: a RegisteredMmap collected by the GC mid-registration forgets from inside
        self.lock = threading.RLock()
        atexit.register(self.exit)
        os.register_at_fork(before=self._acquire, after_in_parent=self._release,
                            after_in_child=self.forked)

    def _acquire(self) -> None:
        self.lock.acquire()  # the lock of now: a forked child has a new one

    def _release(self) -> None:
        self.lock.release()

    def get(self) -> Registry:
        if self.registry is None:
            self.registry = Registry(identity(os.getpid()), writer_dir(), ns=namespace())
        return self.registry

    def exit(self) -> None:
        with self.lock:
            if self.registry is not None and self.registry.identity.pid == os.getpid():
                self.registry.remove()

    def forked(self) -> None:
        """In a new child: a fresh lock, and its own copy of the registrations that it still maps
        (MADV_DONTFORK memory is not copied)."""
        self.lock = threading.RLock()
        parent, self.registry = self.registry, None
        if parent is None or not parent.entries or parent.closed:
            return
        try:
            vmas = _maps_of_self()
            child = Registry(identity(os.getpid()), os.path.dirname(parent.path),
                             kept(parent.entries, vmas), namespace())
            child.save()
            self.registry = child
        except (OSError, ValueError) as err:
            warnings.warn(f"anonvma registry: the forked child {os.getpid()} keeps no names: {err}",
                          RegistryWarning, stacklevel=1)


_THIS_PROCESS = _ThisProcess()


def set_anon_name(addr: int, length: int, name: Optional[bytes]) -> None:
    """Register a naming of this process's memory (see :meth:`Registry.set_anon_name`)."""
    with _THIS_PROCESS.lock:
        _THIS_PROCESS.get().set_anon_name(addr, length, name)


def forget(addr: int, length: int) -> None:
    """Drop this process's registrations in the range, if it has any (its memory is going away)."""
    with _THIS_PROCESS.lock:
        if _THIS_PROCESS.registry is not None:
            _THIS_PROCESS.registry.forget(addr, length)


def entries() -> List[Entry]:
    """This process's registrations (empty if it has made none)."""
    with _THIS_PROCESS.lock:
        return list(_THIS_PROCESS.registry.entries) if _THIS_PROCESS.registry is not None else []


def path() -> Optional[str]:
    """This process's registry file, or ``None`` before its first registration."""
    with _THIS_PROCESS.lock:
        return _THIS_PROCESS.registry.path if _THIS_PROCESS.registry is not None else None
