"""Name anonymous memory of this process: ``prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, ...)`` from Python.

Arguments are validated first, exactly as Linux 6.1 orders its checks (kernel/sys.c prctl_set_vma,
then mm/madvise.c madvise_set_anon_name), so a bad name or range fails with a precise message and
no syscall. What remains goes to the kernel, whose errno is passed on with a hint:

- EINVAL: the kernel lacks CONFIG_ANON_VMA_NAME (:class:`AnonNameUnsupportedError`), or a special
  mapping ([vdso], [vvar]) would have to be split;
- EBADF: the range reaches a file-backed mapping (6.1 names private anonymous memory only; 6.2+
  also shared anonymous memory and memfd);
- ENOMEM: part of the range is unmapped (everything mapped in it *was* named);
- EAGAIN: a split would exceed vm.max_map_count;
- EFAULT, EPERM (an LSM or seccomp said no).

Nothing is probed at import time: :func:`supported` asks the kernel each time it is called.

Where the kernel cannot name memory, a caller may opt in to a fallback: ``fallback=True`` on
each function here (or ``ANONVMA_FALLBACK=1`` in the environment, for code that cannot pass
it) records the naming in this process's registry (:mod:`anonvma.live.registry`) instead,
which ``anonvma show``, ``diff`` and ``export`` read and mark as registered. Only the
unsupported kernel's EINVAL falls back; every other error is raised as it is.
"""

from __future__ import annotations

import ctypes
import errno
import mmap as _mmap_mod
import os
from typing import Optional, Tuple

from anonvma.anon_name import NameArg, check_anon_name, check_range, name_bytes
from anonvma.live import syscalls
from anonvma.live.registry import this_process
from anonvma.live.errors import AnonNameUnsupportedError, InvalidAnonNameError


def validate_name(name: NameArg) -> Optional[bytes]:
    """Check ``name`` by the kernel's rules (:func:`anonvma.anon_name.check_anon_name`) and
    return the bytes to pass (``None`` = clear the name). A ``str`` is passed as UTF-8.

    Stricter than the kernel in one way: a NUL byte is refused, where the kernel would
    silently cut the name there.

    :raises InvalidAnonNameError: (EINVAL) saying which byte at which index is wrong, or the length.
    :raises TypeError: ``name`` is not str, bytes or None.
    """
    if name is None:
        return None
    raw = name_bytes(name)
    if b"\0" in raw:
        index = raw.index(b"\0")
        raise InvalidAnonNameError(name, f"invalid character NUL at index {index} of anon name "
                                         f"{name!r}: the kernel would cut the name there", index)
    return check_anon_name(raw)


def validate_range(addr: int, length: int) -> int:
    """Check ``addr``/``length`` as madvise_set_anon_name does; return the page-rounded length.

    :raises InvalidRangeError: (EINVAL) unaligned or negative address, length overflow, wrap-around.
    """
    return check_range(addr, length) - addr


def supported() -> bool:
    """Whether the running kernel can name anonymous memory (CONFIG_ANON_VMA_NAME).

    Probes now, every call: maps one private anonymous page, names it, unmaps it. A kernel
    without the option answers EINVAL to every PR_SET_VMA call, which is what this detects.

    :raises OSError: the probe page could not be mapped, or the kernel gave another error (EPERM
        from an LSM or seccomp, for instance).
    """
    page = syscalls.PAGE_SIZE
    addr = syscalls.mmap(0, page, syscalls.PROT_READ | syscalls.PROT_WRITE,
                         syscalls.MAP_PRIVATE | syscalls.MAP_ANONYMOUS)
    try:
        syscalls.prctl_set_vma_anon_name(addr, page, b"anonvma-probe")
    except OSError as err:
        if err.errno == errno.EINVAL:
            return False
        raise
    finally:
        syscalls.munmap(addr, page)
    return True


_HINTS = {
    errno.EBADF: "the range reaches a file-backed or shared mapping; Linux 6.1 names only private "
                 "anonymous memory (shared anonymous and memfd from 6.2)",
    errno.ENOMEM: "part of the range is not mapped (the mapped parts were named)",
    errno.EAGAIN: "naming would split a mapping beyond vm.max_map_count",
    errno.EINVAL: "a special mapping such as [vdso] cannot be split",
}


def fallback_wanted(fallback: Optional[bool]) -> bool:
    """Whether to register names the kernel cannot keep: ``fallback`` if given, else
    ``ANONVMA_FALLBACK`` (``1`` yes; unset, empty or ``0`` no).

    :raises ValueError: ANONVMA_FALLBACK has another value (a typo must not pass for "no").
    """
    if fallback is not None:
        return bool(fallback)
    value = os.environ.get(this_process.ENV, "")
    if value not in ("", "0", "1"):
        raise ValueError(f"{this_process.ENV}={value!r}: set it to 1 (register names the kernel cannot "
                         "keep) or 0 (do not)")
    return value == "1"


def _failed(code: int, where: str) -> OSError:
    """The error of a naming that failed with ``code``, with its hint."""
    hint = _HINTS.get(code, os.strerror(code))
    return OSError(code, f"{where}: {os.strerror(code)}: {hint}")


def _set(addr: int, length: int, name: NameArg, fallback: Optional[bool]) -> bool:
    """:func:`set_anon_name`; True if the name went to the registry rather than the kernel."""
    raw = validate_name(name)
    validate_range(addr, length)
    wanted = fallback_wanted(fallback)
    where = f"naming {addr:#x}+{length:#x} as {name!r}"
    try:
        syscalls.prctl_set_vma_anon_name(addr, length, raw)
    except OSError as err:
        code = err.errno or 0
        if code != errno.EINVAL or supported():
            raise _failed(code, where) from err
        if not wanted:
            raise AnonNameUnsupportedError(
                where, f"pass fallback=True, or set {this_process.ENV}=1, to record names in anonvma's "
                       "registry instead") from err
    else:
        return False
    try:
        this_process.set_anon_name(addr, length, raw)
    except OSError as err:
        if err.errno in _HINTS:
            raise _failed(err.errno, f"{where} (in anonvma's registry)") from err
        raise
    return True


def set_anon_name(addr: int, length: int, name: NameArg, *, fallback: Optional[bool] = None) -> None:
    """Name (or with ``None`` clear the name of) the anonymous memory in [addr, addr+length).

    ``length`` is rounded up to whole pages, like the kernel does; 0 is a valid no-op.

    :param fallback: when the kernel lacks CONFIG_ANON_VMA_NAME, record the naming in this
        process's registry instead (:mod:`anonvma.live.registry`); ``None``: as
        ``ANONVMA_FALLBACK`` says (off unless ``1``).
    :raises InvalidAnonNameError: bad name (before any syscall).
    :raises InvalidRangeError: bad address or length (before any syscall).
    :raises ValueError: ANONVMA_FALLBACK is neither 0 nor 1 (before any syscall).
    :raises AnonNameUnsupportedError: the kernel lacks CONFIG_ANON_VMA_NAME, without fallback.
    :raises OSError: the kernel's errno otherwise (see the module docstring); with the
        fallback, the same errno where the kernel would give it (ENOMEM: a hole, the mapped
        parts named; EBADF: file-backed or shared memory; EINVAL; EAGAIN), or the registry
        file cannot be written.
    """
    _set(addr, length, name, fallback)


def buffer_span(buf: object) -> Tuple[int, int]:
    """Address and byte length of a writable, contiguous buffer (bytearray, numpy array, mmap, ...).

    :raises TypeError: the object does not support the buffer protocol.
    :raises ValueError: the buffer is read-only or not contiguous.
    """
    with memoryview(buf) as view:  # type: ignore[arg-type]
        if view.readonly:
            raise ValueError(f"cannot name a read-only {type(buf).__name__} buffer")
        if not view.c_contiguous:
            raise ValueError(f"cannot name a non-contiguous {type(buf).__name__} buffer")
        if view.nbytes == 0:
            return 0, 0
        with view.cast("B") as flat:
            anchor = ctypes.c_char.from_buffer(flat)
            addr = ctypes.addressof(anchor)
            del anchor  # drop the buffer export now, so the memoryview can be released
        return addr, view.nbytes


def whole_pages(addr: int, nbytes: int) -> Tuple[int, int]:
    """The page-aligned sub-range [start, end) of [addr, addr+nbytes); empty if none."""
    page = syscalls.PAGE_SIZE
    start = -(-addr // page) * page
    end = (addr + nbytes) // page * page
    return start, max(start, end)


def name_buffer(buf: object, name: NameArg, *, fallback: Optional[bool] = None) -> Tuple[int, int]:
    """Name the whole pages that a writable buffer covers; returns the (address, length) named.

    Partial pages at either end are left alone: they may belong to other objects.

    :raises ValueError: the buffer covers no whole page, is read-only or not contiguous.
    :raises OSError: as :func:`set_anon_name` (``fallback`` too).
    """
    validate_name(name)
    addr, nbytes = buffer_span(buf)
    start, end = whole_pages(addr, nbytes)
    if end == start:
        raise ValueError(
            f"this {type(buf).__name__} ({nbytes} bytes at {addr:#x}) covers no whole page "
            f"(page size {syscalls.PAGE_SIZE}); only whole pages can be named")
    set_anon_name(start, end - start, name, fallback=fallback)
    return start, end - start


def name_mmap(m: _mmap_mod.mmap, name: NameArg, *, fallback: Optional[bool] = None) -> Tuple[int, int]:
    """Name all of a private anonymous ``mmap.mmap`` (its last page in full); returns (address, length).

    ``mmap.mmap(-1, n)`` is MAP_SHARED by default, which Linux 6.1 refuses (EBADF); create it with
    ``flags=mmap.MAP_PRIVATE`` or use :func:`named_mmap`. ``fallback``: as :func:`set_anon_name`;
    a registered mmap you close yourself stays registered until it is named ``None`` (or
    until a reader sees its memory gone): clear it first, or use :func:`named_mmap`.
    """
    validate_name(name)
    addr, nbytes = buffer_span(m)
    if nbytes == 0:
        raise ValueError("an empty mmap covers no page")
    set_anon_name(addr, nbytes, name, fallback=fallback)
    return addr, nbytes


class RegisteredMmap(_mmap_mod.mmap):
    """An ``mmap.mmap`` named in the registry: closing it (or losing it) drops the registration
    first, so the name never outlives the memory even if another mapping lands at its address."""

    _span: Tuple[int, int] = (0, 0)

    def close(self) -> None:
        self._forget()
        super().close()

    def _forget(self) -> None:
        if self._span[1] and not self.closed:
            this_process.forget(*self._span)
            self._span = (0, 0)

    def __del__(self) -> None:
        try:
            self._forget()
        except Exception:  # noqa: BLE001 - at interpreter exit the registry may be gone already
            pass


def named_mmap(size: int, name: NameArg, *, fallback: Optional[bool] = None) -> _mmap_mod.mmap:
    """A new private anonymous read/write ``mmap.mmap`` of ``size`` bytes, named ``name``.

    With ``fallback`` (see :func:`set_anon_name`) on a kernel that cannot name memory, the name
    is registered and the mapping is a :class:`RegisteredMmap`, whose ``close()`` drops it.

    :raises ValueError: size < 1.
    :raises AnonNameUnsupportedError: the kernel lacks CONFIG_ANON_VMA_NAME, without fallback
        (the mapping is closed).
    """
    validate_name(name)
    if size < 1:
        raise ValueError(f"size must be at least 1 byte, not {size}")
    wanted = fallback_wanted(fallback)
    kind = RegisteredMmap if wanted else _mmap_mod.mmap
    m = kind(-1, size, flags=_mmap_mod.MAP_PRIVATE, prot=_mmap_mod.PROT_READ | _mmap_mod.PROT_WRITE)
    try:
        addr, nbytes = buffer_span(m)
        if _set(addr, nbytes, name, wanted) and isinstance(m, RegisteredMmap):
            m._span = (addr, nbytes)
    except BaseException:
        m.close()
        raise
    return m
