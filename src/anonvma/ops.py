"""Ops scripts (format v1): parse and check them, and turn what a backend saw into result lines.

The same script runs on the model, on the running kernel and inside the oracle kernel; every
backend prints its results with :func:`format_result`, so outputs compare byte for byte.
"""

from __future__ import annotations

import errno as _errno
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from anonvma.procmaps.parser import parse

#: Arena base used by every runner: page-aligned, free on the host and inside User-Mode Linux.
ARENA_BASE = 0x4000000000
#: Only mappings that start inside [ARENA_BASE, ARENA_BASE + ARENA_SIZE) are reported by `maps`.
ARENA_SIZE = 1 << 36
#: Each file label stands for one regular file at least this large.
FILE_SIZE = 64 << 20

U64 = (1 << 64) - 1
PROT_LETTERS = frozenset("rwx")
ADVICES = ("dontfork", "dofork", "wipeonfork", "keeponfork", "dontneed")
#: Advices added to format v1 later (VM_SEQ_READ / VM_RAND_READ); kept apart so the old tuple stays.
READ_ADVICES = ("normal", "random", "sequential")
#: Lightweight guard regions (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE; Linux 6.13+, EINVAL before).
GUARD_ADVICES = ("guard_install", "guard_remove")
MREMAP_FLAGS = ("maymove", "fixed", "dontunmap")
SHMEM_PATH = "/dev/zero (deleted)"
#: Largest arena offset: base + offset must still fit in 64 bits.
ADDR_LIMIT = U64 - ARENA_BASE
#: vm.max_map_count is a C int (proc_dointvec_minmax, at least 0).
INT_MAX = (1 << 31) - 1
#: Ops that take the optional ``max_map_count`` field: every op that can create or split a VMA.
MAP_COUNT_OPS = frozenset(("mmap", "munmap", "mremap", "mprotect", "madvise", "mlock", "munlock", "name",
                           "mseal"))


class ScriptError(ValueError):
    """A broken script: bad JSON, an unknown op, a missing or bad field, or an unknown pid."""

    def __init__(self, lineno: int, message: str) -> None:
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno


@dataclass(frozen=True)
class Op:
    """One operation of a script: its name, the process that runs it, and its fields."""

    op: str
    pid: int = 0
    args: Mapping[str, Any] = field(default_factory=dict)
    lineno: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.args.get(key, default)

    def to_json(self) -> str:
        """The op as one script line (keys in a stable order)."""
        obj: dict[str, Any] = {"op": self.op}
        if self.pid:
            obj["pid"] = self.pid
        obj.update(self.args)
        return json.dumps(obj)


def _int(obj: Mapping[str, Any], key: str, lineno: int, required: bool = True,
         limit: int = U64) -> Optional[int]:
    if key not in obj:
        if required:
            raise ScriptError(lineno, f"missing field {key!r}")
        return None
    val = obj[key]
    if isinstance(val, bool) or not isinstance(val, int) or not 0 <= val <= limit:
        raise ScriptError(lineno, f"field {key!r} must be an integer in [0, {limit:#x}], not {val!r}")
    return val


def _prot(obj: Mapping[str, Any], lineno: int) -> str:
    if "prot" not in obj:
        raise ScriptError(lineno, "missing field 'prot'")
    prot = obj["prot"]
    if not isinstance(prot, str) or not set(prot) <= PROT_LETTERS or len(set(prot)) != len(prot):
        raise ScriptError(lineno, f"field 'prot' must be letters from 'rwx', not {prot!r}")
    return prot


def _range(obj: Mapping[str, Any], lineno: int) -> dict[str, Any]:
    return {"addr": _int(obj, "addr", lineno, limit=ADDR_LIMIT), "len": _int(obj, "len", lineno)}


def _flag(obj: Mapping[str, Any], key: str, lineno: int, args: dict[str, Any]) -> None:
    """An optional boolean field, kept in ``args`` only when true (false is the default)."""
    val = obj.get(key, False)
    if not isinstance(val, bool):
        raise ScriptError(lineno, f"field {key!r} must be true or false, not {val!r}")
    if val:
        args[key] = True


def _mmap(obj: Mapping[str, Any], lineno: int) -> dict[str, Any]:
    args = _range(obj, lineno)
    args["prot"] = _prot(obj, lineno)
    _flag(obj, "noreserve", lineno, args)
    _flag(obj, "populate", lineno, args)
    _flag(obj, "readonly", lineno, args)
    share = obj.get("share", "private")
    if share not in ("private", "shared"):
        raise ScriptError(lineno, f"field 'share' must be 'private' or 'shared', not {share!r}")
    if "share" in obj:
        args["share"] = share
    if "file" in obj:
        label = obj["file"]
        if not isinstance(label, str) or not label or not label.isidentifier():
            raise ScriptError(lineno, f"field 'file' must be a label such as 'f0', not {label!r}")
        args["file"] = label
        pgoff = _int(obj, "pgoff", lineno, required=False, limit=U64 >> 12)
        args["pgoff"] = pgoff or 0
    elif "pgoff" in obj:
        raise ScriptError(lineno, "field 'pgoff' needs a 'file'")
    if "readonly" in args and "file" not in args:
        raise ScriptError(lineno, "field 'readonly' needs a 'file'")
    return args


def _mprotect(obj: Mapping[str, Any], lineno: int) -> dict[str, Any]:
    return {**_range(obj, lineno), "prot": _prot(obj, lineno)}


def _madvise(obj: Mapping[str, Any], lineno: int) -> dict[str, Any]:
    args = _range(obj, lineno)
    advice = obj.get("advice")
    known = ADVICES + READ_ADVICES + GUARD_ADVICES
    if advice not in known:
        raise ScriptError(lineno, f"field 'advice' must be one of {', '.join(known)}, not {advice!r}")
    args["advice"] = advice
    return args


def _mlock(obj: Mapping[str, Any], lineno: int) -> dict[str, Any]:
    args = _range(obj, lineno)
    _flag(obj, "onfault", lineno, args)
    return args


def _name(obj: Mapping[str, Any], lineno: int) -> dict[str, Any]:
    args = _range(obj, lineno)
    if "name" not in obj:
        raise ScriptError(lineno, "missing field 'name' (a string, or null to clear)")
    val = obj["name"]
    if val is not None:
        if not isinstance(val, str):
            raise ScriptError(lineno, f"field 'name' must be a string or null, not {val!r}")
        try:
            val.encode("latin-1")
        except UnicodeEncodeError:
            raise ScriptError(lineno, "field 'name' must be latin-1 (passed byte for byte)") from None
    args["name"] = val
    return args


def _touch(obj: Mapping[str, Any], lineno: int) -> dict[str, Any]:
    write = obj.get("write", True)
    if not isinstance(write, bool):
        raise ScriptError(lineno, f"field 'write' must be true or false, not {write!r}")
    return {"addr": _int(obj, "addr", lineno, limit=ADDR_LIMIT), "write": write}


def _mremap(obj: Mapping[str, Any], lineno: int) -> dict[str, Any]:
    args = _range(obj, lineno)
    args["new_len"] = _int(obj, "new_len", lineno)
    flags = obj.get("flags", [])
    if not isinstance(flags, list) or any(f not in MREMAP_FLAGS for f in flags):
        raise ScriptError(lineno, f"field 'flags' must be a list of {', '.join(MREMAP_FLAGS)}, not {flags!r}")
    args["flags"] = list(flags)
    if "fixed" in flags or "new_addr" in obj:
        args["new_addr"] = _int(obj, "new_addr", lineno, limit=ADDR_LIMIT)
    return args


def _no_fields(obj: Mapping[str, Any], lineno: int) -> dict[str, Any]:
    return {}


def _max_map_count(obj: Mapping[str, Any], lineno: int, args: dict[str, Any]) -> None:
    """The optional ``max_map_count`` field: vm.max_map_count while this op runs, counting only
    the process's VMAs in the arena (a real runner adds the VMAs it holds outside it)."""
    limit = _int(obj, "max_map_count", lineno, required=False, limit=INT_MAX)
    if limit is not None:
        args["max_map_count"] = limit


#: Checks the fields of one op and returns them (without 'op' and 'pid').
FieldCheck = Callable[[Mapping[str, Any], int], dict[str, Any]]

#: Every op of the format and how its fields are checked. Each runner (the model's, the
#: real-process runner's) keeps a handler table with exactly these keys; a test holds them to it.
OPS: dict[str, FieldCheck] = {
    "mmap": _mmap,
    "munmap": _range,
    "mremap": _mremap,
    "mprotect": _mprotect,
    "madvise": _madvise,
    "mlock": _mlock,
    "munlock": _range,
    "mseal": _range,
    "name": _name,
    "touch": _touch,
    "fork": _no_fields,
    "exit": _no_fields,
    "maps": _no_fields,
}
#: Ops that create or end a process: a real-process runner handles them itself, not in a worker.
LIFECYCLE_OPS = frozenset(("fork", "exit"))


def parse_script(text: str) -> list[Op]:
    """Parse a JSON Lines ops script and check it, including that every pid is alive when used.

    :raises ScriptError: naming the line, for bad JSON, unknown ops, missing or bad fields,
        and ops naming a process that does not exist (never forked, or already exited).
    """
    ops: list[Op] = []
    alive = {0}
    next_pid = 1
    # JSON Lines end at "\n" only: str.splitlines() would also cut at U+0085, U+2028, U+001C..,
    # which JSON strings may hold, and then name the wrong line
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ScriptError(lineno, f"bad JSON: {err.msg}") from None
        except (ValueError, RecursionError) as err:  # an integer of over 4300 digits, deep nesting
            raise ScriptError(lineno, f"bad JSON: {err}") from None
        if not isinstance(obj, dict):
            raise ScriptError(lineno, "each line must be a JSON object")
        name = obj.get("op")
        if not isinstance(name, str) or name not in OPS:
            raise ScriptError(lineno, f"unknown op {name!r}")
        pid = obj.get("pid", 0)
        if isinstance(pid, bool) or not isinstance(pid, int) or pid not in alive:
            raise ScriptError(lineno, f"no process {pid!r} at this point of the script")
        args = OPS[name](obj, lineno)
        if name in MAP_COUNT_OPS:
            _max_map_count(obj, lineno, args)
        elif "max_map_count" in obj:
            raise ScriptError(lineno, f"op {name!r} takes no field 'max_map_count'")
        if name == "fork":
            alive.add(next_pid)
            next_pid += 1
        elif name == "exit":
            alive.discard(pid)
        ops.append(Op(name, pid, args, lineno))
    return ops


def ok(**extra: Any) -> dict[str, Any]:
    """A success result: ``{"ret": 0}`` plus e.g. ``child`` or ``addr``."""
    return {"ret": 0, **extra}


def err(exc: OSError) -> dict[str, Any]:
    """A failure result naming the errno as Python does."""
    assert exc.errno is not None, exc
    return {"errno": _errno.errorcode[exc.errno]}


def format_result(result: Mapping[str, Any]) -> str:
    """One result line, exactly as every backend must print it."""
    return json.dumps(result)


def maps_name(path: str, files: Mapping[str, str]) -> str:
    """The ops-format NAME for the name column of a /proc/PID/maps line (without pgoff)."""
    if path in files:
        return f"file:{files[path]}"
    if path == SHMEM_PATH:
        return "shmem"
    return path


def arena_maps(maps: Union[str, bytes], files: Mapping[str, str], base: int = ARENA_BASE,
               size: int = ARENA_SIZE) -> list[str]:
    """Turn /proc/PID/maps text (read through :func:`anonvma.procmaps.parser.parse`) into the
    ops-format lines for the mappings inside the arena.

    :param files: real path of each file to its script label.
    """
    lines: list[str] = []
    for v in parse(maps, "maps")[0]:
        if not base <= v.start < base + size:
            continue
        entry = f"{v.start - base:x}-{v.end - base:x} {v.perms}"
        if v.name:
            name = maps_name(v.name, files)
            if name.startswith("file:"):
                name += f"@{v.offset >> 12:x}"
            entry += " " + name
        lines.append(entry)
    return lines


def results_text(results: Iterable[Mapping[str, Any]]) -> str:
    """All result lines of a run, newline-terminated."""
    return "".join(format_result(r) + "\n" for r in results)


def script_text(ops: Sequence[Op]) -> str:
    """A script back as JSON Lines (used when shrinking and saving failing scripts)."""
    return "".join(op.to_json() + "\n" for op in ops)
