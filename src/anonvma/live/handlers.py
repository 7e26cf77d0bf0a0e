"""The memory ops of a script as syscalls of the calling process (the real-process runner's table).

Each handler takes the op's fields and the :class:`Context` of the worker process running it and
returns the result object; an ``OSError`` from the syscall becomes ``{"errno": NAME}``. Process
lifecycle ops (``fork``, ``exit``) are the runner's own (:data:`anonvma.ops.LIFECYCLE_OPS`).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from anonvma.live import syscalls
from anonvma.ops import ARENA_SIZE, INT_MAX, Op, arena_maps, err, ok
from anonvma.procmaps import own


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


def _touchable(addr: int, perm: str) -> bool:
    """Whether an access to ``addr`` is safe: it lies in a VMA of this process whose maps
    permissions include ``perm``, and not past the end of the file the VMA maps (a regular file,
    or the shmem file of a shared anonymous mapping that mremap grew), where it would be SIGBUS.
    The file's size is read through /proc/self/map_files (root only; else not checked)."""
    for v in own.vmas():
        if not v.start <= addr < v.end:
            continue
        if perm not in v.perms:
            return False
        if v.inode == 0:
            return True
        try:
            size = os.stat(f"/proc/self/map_files/{v.start:x}-{v.end:x}").st_size
        except OSError:
            return True
        page = v.offset + ((addr - v.start) & ~(syscalls.PAGE_SIZE - 1))
        return page < -(-size // syscalls.PAGE_SIZE) * syscalls.PAGE_SIZE
    return False


def _mmap(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    share = syscalls.MAP_SHARED if op.get("share") == "shared" else syscalls.MAP_PRIVATE
    label = op.get("file")
    flags = syscalls.MAP_FIXED | share | (0 if label else syscalls.MAP_ANONYMOUS)
    if op.get("noreserve"):
        flags |= syscalls.MAP_NORESERVE
    if op.get("populate"):
        flags |= syscalls.MAP_POPULATE
    args = (ctx.base + op["addr"], op["len"], syscalls.prot_bits(op["prot"]), flags)
    offset = _signed64(op.get("pgoff", 0) << 12)
    if not op.get("readonly"):
        syscalls.mmap(*args, ctx.fds[label] if label else -1, offset)
        return ok()
    path = next(p for p, name in ctx.files.items() if name == label)
    fd = os.open(path, os.O_RDONLY)  # the same file, through a read-only descriptor
    try:
        syscalls.mmap(*args, fd, offset)
    finally:
        os.close(fd)
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


def _mseal(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    syscalls.mseal(ctx.base + op["addr"], op["len"])
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
    if not _touchable(addr, "w" if write else "r"):
        return {"errno": "EFAULT"}
    if write:
        ctypes.memset(addr, 0x5A, 1)
    else:
        ctypes.string_at(addr, 1)
    return ok()


def _maps(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    return {"maps": arena_maps(own.maps_bytes(), ctx.files, ctx.base)}


#: Every op but fork and exit (see :data:`anonvma.ops.OPS`).
HANDLERS: dict[str, Handler] = {
    "mmap": _mmap,
    "munmap": _munmap,
    "mremap": _mremap,
    "mprotect": _mprotect,
    "madvise": _madvise,
    "mlock": _mlock,
    "munlock": _munlock,
    "mseal": _mseal,
    "name": _name,
    "touch": _touch,
    "maps": _maps,
}


def run_op(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """Execute one op (other than fork and exit) in this process; OSError becomes the errno."""
    try:
        if "max_map_count" in op:
            return _limited(op, ctx)
        return HANDLERS[op["op"]](op, ctx)
    except OSError as exc:
        return err(exc)


def vmas_outside_arena(base: int) -> int:
    """How many VMAs this process has outside the arena (mm->map_count minus the arena's):
    the lines of /proc/self/maps, without the arena's and the gate area's ([vsyscall], which
    maps shows but map_count does not count)."""
    return sum(1 for v in own.vmas()
               if not base <= v.start < base + ARENA_SIZE and v.name != "[vsyscall]")


def _limited(op: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """An op with the ``max_map_count`` field: vm.max_map_count is the field's value plus the VMAs
    this process holds outside the arena while the op runs, and is restored at once after it
    (only inside a UML guest: see :func:`anonvma.live.syscalls.set_max_map_count`)."""
    outside = vmas_outside_arena(ctx.base)
    saved = syscalls.set_max_map_count(min(op["max_map_count"] + outside, INT_MAX))
    try:
        # counted again until two counts agree: the interpreter's own memory (the heap, a buffer
        # the count itself needs) may add or drop a VMA outside the arena as it goes
        for _ in range(8):
            again = vmas_outside_arena(ctx.base)
            if again == outside:
                break
            outside = again
            syscalls.set_max_map_count(min(op["max_map_count"] + outside, INT_MAX))
        return HANDLERS[op["op"]](op, ctx)
    finally:
        syscalls.set_max_map_count(saved)


def refusal(ops: Sequence[Op]) -> Optional[str]:
    """Why the running kernel must not run these ops (None: it may). A ``max_map_count`` field
    needs the oracle: here vm.max_map_count is machine-wide (see
    :func:`anonvma.live.syscalls.set_max_map_count`)."""
    for op in ops:
        if "max_map_count" in op.args and not syscalls.in_uml_guest():
            return (f"line {op.lineno}: the max_map_count field runs only in the oracle (--oracle): on this "
                    "machine vm.max_map_count is machine-wide, and lowering it could make other processes' "
                    "mmap fail, so scripts that set it are refused here")
    return None
