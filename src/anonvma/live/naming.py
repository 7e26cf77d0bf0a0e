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
"""

from __future__ import annotations

import ctypes
import errno
import mmap as _mmap_mod
import os
from typing import Optional, Tuple

from anonvma.anon_name import NameArg, check_anon_name, check_range, name_bytes
from anonvma.live import syscalls
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


def set_anon_name(addr: int, length: int, name: NameArg) -> None:
    """Name (or with ``None`` clear the name of) the anonymous memory in [addr, addr+length).

    ``length`` is rounded up to whole pages, like the kernel does; 0 is a valid no-op.

    :raises InvalidAnonNameError: bad name (before any syscall).
    :raises InvalidRangeError: bad address or length (before any syscall).
    :raises AnonNameUnsupportedError: the kernel lacks CONFIG_ANON_VMA_NAME.
    :raises OSError: the kernel's errno otherwise (see the module docstring).
    """
    raw = validate_name(name)
    validate_range(addr, length)
    try:
        syscalls.prctl_set_vma_anon_name(addr, length, raw)
    except OSError as err:
        code = err.errno or 0
        where = f"naming {addr:#x}+{length:#x} as {name!r}"
        if code == errno.EINVAL and not supported():
            raise AnonNameUnsupportedError(where) from err
        hint = _HINTS.get(code, os.strerror(code))
        raise OSError(code, f"{where}: {os.strerror(code)}: {hint}") from err


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


def name_buffer(buf: object, name: NameArg) -> Tuple[int, int]:
    """Name the whole pages that a writable buffer covers; returns the (address, length) named.

    Partial pages at either end are left alone: they may belong to other objects.

    :raises ValueError: the buffer covers no whole page, is read-only or not contiguous.
    :raises OSError: as :func:`set_anon_name`.
    """
    validate_name(name)
    addr, nbytes = buffer_span(buf)
    start, end = whole_pages(addr, nbytes)
    if end == start:
        raise ValueError(
            f"this {type(buf).__name__} ({nbytes} bytes at {addr:#x}) covers no whole page "
            f"(page size {syscalls.PAGE_SIZE}); only whole pages can be named")
    set_anon_name(start, end - start, name)
    return start, end - start


def name_mmap(m: _mmap_mod.mmap, name: NameArg) -> Tuple[int, int]:
    """Name all of a private anonymous ``mmap.mmap`` (its last page in full); returns (address, length).

    ``mmap.mmap(-1, n)`` is MAP_SHARED by default, which Linux 6.1 refuses (EBADF); create it with
    ``flags=mmap.MAP_PRIVATE`` or use :func:`named_mmap`.
    """
    validate_name(name)
    addr, nbytes = buffer_span(m)
    if nbytes == 0:
        raise ValueError("an empty mmap covers no page")
    set_anon_name(addr, nbytes, name)
    return addr, nbytes


def named_mmap(size: int, name: NameArg) -> _mmap_mod.mmap:
    """A new private anonymous read/write ``mmap.mmap`` of ``size`` bytes, named ``name``.

    :raises ValueError: size < 1.
    :raises AnonNameUnsupportedError: the kernel lacks CONFIG_ANON_VMA_NAME (the mapping is closed).
    """
    validate_name(name)
    if size < 1:
        raise ValueError(f"size must be at least 1 byte, not {size}")
    m = _mmap_mod.mmap(-1, size, flags=_mmap_mod.MAP_PRIVATE,
                       prot=_mmap_mod.PROT_READ | _mmap_mod.PROT_WRITE)
    try:
        name_mmap(m, name)
    except BaseException:
        m.close()
        raise
    return m
