"""The memory ops of a script as syscalls of the calling process (the real-process runner's table).

Each handler takes the op's fields and the :class:`Context` of the worker process running it and
returns the result object; an ``OSError`` from the syscall becomes ``{"errno": NAME}``. Process
lifecycle ops (``fork``, ``exit``) are the runner's own (:data:`anonvma.ops.LIFECYCLE_OPS`).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from anonvma.live import syscalls
from anonvma.ops import arena_maps, err, ok


@dataclass(frozen=True)
class Context:
    """What a worker knows: the arena base, the script's open files by label, and each file's
    real path -> label (for ``maps``)."""

    base: int
    fds: Mapping[str, int]
    files: Mapping[str, str]


Handler = Callable[[Mapping[str, Any], Context], dict[str, Any]]


def _signed64(value: int) -> int:
    """An unsigned 64-bit value as the C ``long`` with the same bits (mmap's offset)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _mapped_with(addr: int, perm: str) -> bool:
    """Whether ``addr`` lies in a VMA of this process whose maps permissions include ``perm``."""
    with open("/proc/self/maps", "rb") as f:
        for line in f:
            lo, _, rest = line.partition(b"-")
            hi, _, rest = rest.partition(b" ")
            if int(lo, 16) <= addr < int(hi, 16):
                return perm.encode() in rest[:4]
    return False


def _mmap(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    share = syscalls.MAP_SHARED if op.get("share") == "shared" else syscalls.MAP_PRIVATE
    label = op.get("file")
    flags = syscalls.MAP_FIXED | share | (0 if label else syscalls.MAP_ANONYMOUS)
    if op.get("noreserve"):
        flags |= syscalls.MAP_NORESERVE
    if op.get("populate"):
        flags |= syscalls.MAP_POPULATE
    syscalls.mmap(ctx.base + op["addr"], op["len"], syscalls.prot_bits(op["prot"]), flags,
                  ctx.fds[label] if label else -1, _signed64(op.get("pgoff", 0) << 12))
    return ok()


def _munmap(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    syscalls.munmap(ctx.base + op["addr"], op["len"])
    return ok()


def _mprotect(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    syscalls.mprotect(ctx.base + op["addr"], op["len"], syscalls.prot_bits(op["prot"]))
    return ok()


def _madvise(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    syscalls.madvise(ctx.base + op["addr"], op["len"], syscalls.MADV[op["advice"]])
    return ok()


def _mlock(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """mlock(2), or mlock2(2) with MLOCK_ONFAULT when ``onfault``."""
    if op.get("onfault"):
        syscalls.mlock2(ctx.base + op["addr"], op["len"], syscalls.MLOCK_ONFAULT)
    else:
        syscalls.mlock(ctx.base + op["addr"], op["len"])
    return ok()


def _munlock(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    syscalls.munlock(ctx.base + op["addr"], op["len"])
    return ok()


def _name(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    val = op["name"]
    syscalls.prctl_set_vma_anon_name(ctx.base + op["addr"], op["len"],
                                     None if val is None else val.encode("latin-1"))
    return ok()


def _mremap(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    flags = 0
    for flag in op["flags"]:
        flags |= syscalls.MREMAP[flag]
    new_addr = op.get("new_addr")
    got = syscalls.mremap(ctx.base + op["addr"], op["len"], op["new_len"], flags,
                          0 if new_addr is None else ctx.base + new_addr)
    return ok(addr=got - ctx.base)


def _touch(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """A real access; refused with EFAULT beforehand where it would kill the process."""
    addr = ctx.base + op["addr"]
    write = op.get("write", True)
    if not _mapped_with(addr, "w" if write else "r"):
        return {"errno": "EFAULT"}
    if write:
        ctypes.memset(addr, 0x5A, 1)
    else:
        ctypes.string_at(addr, 1)
    return ok()


def _maps(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    with open("/proc/self/maps", encoding="latin-1") as f:
        return {"maps": arena_maps(f.read(), ctx.files, ctx.base)}


#: Every op but fork and exit (see :data:`anonvma.ops.OPS`).
HANDLERS: dict[str, Handler] = {
    "mmap": _mmap,
    "munmap": _munmap,
    "mremap": _mremap,
    "mprotect": _mprotect,
    "madvise": _madvise,
    "mlock": _mlock,
    "munlock": _munlock,
    "name": _name,
    "touch": _touch,
    "maps": _maps,
}


def run_op(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """Execute one op (other than fork and exit) in this process; OSError becomes the errno."""
    try:
        return HANDLERS[op["op"]](op, ctx)
    except OSError as exc:
        return err(exc)
