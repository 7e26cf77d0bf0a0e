"""Raw memory syscalls of the running kernel through ctypes; each raises ``OSError(errno)``.

These are thin: no validation beyond what C would do, so callers see exactly the kernel's
answer. The naming API (:mod:`anonvma.live`) and the real-process ops runner build on them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from typing import Optional

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_FIXED_NOREPLACE = 0x100000
MAP_NORESERVE, MAP_POPULATE = 0x4000, 0x8000
MADV = {"normal": 0, "random": 1, "sequential": 2, "dontneed": 4, "dontfork": 10, "dofork": 11,
        "wipeonfork": 18, "keeponfork": 19, "guard_install": 102, "guard_remove": 103}
MLOCK_ONFAULT = 0x01
#: mlock2(2) syscall numbers (called directly, so the kernel's answer is never glibc's fallback)
_SYS_MLOCK2 = {"x86_64": 325, "aarch64": 284}
#: mseal(2) (Linux 6.10+; ENOSYS before): the same number in both tables, and in User-Mode
#: Linux, whose syscall table is x86_64's
_SYS_MSEAL = {"x86_64": 462, "aarch64": 462}
MREMAP = {"maymove": 1, "fixed": 2, "dontunmap": 4}
PR_SET_VMA = 0x53564D41
PR_SET_VMA_ANON_NAME = 0
MAX_MAP_COUNT_SYSCTL = "/proc/sys/vm/max_map_count"

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_munmap = _libc.munmap
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_mprotect = _libc.mprotect
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_madvise = _libc.madvise
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_mremap = _libc.mremap
_mremap.restype = ctypes.c_void_p
_mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
_mlock = _libc.mlock
_mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_munlock = _libc.munlock
_munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p]

_MAP_FAILED = ctypes.c_void_p(-1).value


def prot_bits(prot: str) -> int:
    """``"rwx"`` letters to PROT_* bits; ``""`` is PROT_NONE."""
    return (PROT_READ if "r" in prot else 0) | (PROT_WRITE if "w" in prot else 0) | (
        PROT_EXEC if "x" in prot else 0)


def _raise(what: str) -> None:
    code = ctypes.get_errno()
    raise OSError(code, f"{what}: {os.strerror(code)}")


def mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
    """mmap(2); returns the mapping's address."""
    ret = _mmap(addr, length, prot, flags, fd, offset)
    if ret == _MAP_FAILED:
        _raise("mmap")
    return int(ret or 0)


def munmap(addr: int, length: int) -> None:
    if _munmap(addr, length) != 0:
        _raise("munmap")


def mprotect(addr: int, length: int, prot: int) -> None:
    if _mprotect(addr, length, prot) != 0:
        _raise("mprotect")


def madvise(addr: int, length: int, advice: int) -> None:
    if _madvise(addr, length, advice) != 0:
        _raise("madvise")


def mremap(addr: int, old_len: int, new_len: int, flags: int, new_addr: int = 0) -> int:
    """mremap(2); returns the mapping's (possibly new) address."""
    ret = _mremap(addr, old_len, new_len, flags, new_addr)
    if ret == _MAP_FAILED:
        _raise("mremap")
    return int(ret or 0)


def mlock(addr: int, length: int) -> None:
    if _mlock(addr, length) != 0:
        _raise("mlock")


def mlock2(addr: int, length: int, flags: int) -> None:
    """The mlock2 syscall itself (glibc's wrapper may fall back to mlock on old kernels)."""
    nr = _SYS_MLOCK2.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"mlock2 syscall number unknown on {platform.machine()}")
    if _syscall(ctypes.c_long(nr), ctypes.c_ulong(addr), ctypes.c_size_t(length), ctypes.c_int(flags)) != 0:
        _raise("mlock2")


def mseal(addr: int, length: int, flags: int = 0) -> None:
    """The mseal syscall (no glibc wrapper before 2.41)."""
    nr = _SYS_MSEAL.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"mseal syscall number unknown on {platform.machine()}")
    if _syscall(ctypes.c_long(nr), ctypes.c_ulong(addr), ctypes.c_size_t(length), ctypes.c_ulong(flags)) != 0:
        _raise("mseal")


def munlock(addr: int, length: int) -> None:
    if _munlock(addr, length) != 0:
        _raise("munlock")


def prctl_set_vma_anon_name(addr: int, length: int, name: Optional[bytes]) -> None:
    """prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, length, name); ``None`` passes NULL."""
    if _prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, length, name) != 0:
        _raise("prctl(PR_SET_VMA_ANON_NAME)")


class SysctlRefused(RuntimeError):
    """A sysctl this process may not (or must not) set; not an errno of the op that needed it."""


def in_uml_guest() -> bool:
    """Whether this kernel is User-Mode Linux (the oracle's guests): its /proc/cpuinfo says so."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            return b"User Mode Linux" in f.read(4096)
    except OSError:
        return False


def set_max_map_count(value: int) -> int:
    """Write vm.max_map_count and return the value it had.

    Only inside a User-Mode Linux guest, whose sysctls are its own: on any other machine the
    value is machine-wide, and lowering it can make other processes' mmap fail.

    :raises SysctlRefused: not a UML guest, or the write failed (not root).
    """
    if not in_uml_guest():
        raise SysctlRefused("vm.max_map_count is set only inside a User-Mode Linux guest (the oracle): "
                            "on this machine it is machine-wide and lowering it can break other processes")
    try:
        fd = os.open(MAX_MAP_COUNT_SYSCTL, os.O_RDWR)
        try:
            old = int(os.read(fd, 32))
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, b"%d\n" % value)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SysctlRefused(f"cannot set vm.max_map_count: {exc.strerror}") from None
    return old
