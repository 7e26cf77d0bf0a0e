"""``anonvma demo``: name, split and fork a model address space under both name strategies."""

from __future__ import annotations

import argparse
from typing import Any

from anonvma.model import Mm

BASE = 0x4000000000
PAGE = 4096


def _name_objects(mm: Mm) -> str:
    seen: dict[int, str] = {}
    for vma in mm.vmas:
        if vma.anon_name is not None:
            obj = vma.anon_name
            seen.setdefault(id(obj),
                            f"  {obj.name!r:14} object {id(obj) & 0xffffff:06x} refcount {obj.refcount}")
    return "\n".join(seen.values()) or "  (none)"


def demo(strategy: str) -> str:
    """The demonstration's text for one strategy."""
    out = [f"=== strategy: {strategy}"]
    parent = Mm(strategy=strategy)
    parent.mmap(BASE, 8 * PAGE, "rw")
    parent.set_anon_name(BASE, 8 * PAGE, "heap-arena")
    out.append("mmap 8 pages, name them 'heap-arena':")
    out.append(parent.maps().rstrip("\n"))
    parent.mprotect(BASE + 2 * PAGE, 2 * PAGE, "r")
    out.append("mprotect pages 2-3 read-only: the VMA splits in three; their name objects:")
    out.append(parent.maps().rstrip("\n"))
    out.append(_name_objects(parent))
    child = parent.fork()
    if strategy == "strdup":
        out.append("fork: each child VMA gets its own copy of its name (new objects, the parent's unchanged)")
    else:
        out.append("fork: each child VMA takes a reference to the parent's name object (no copy)")
    out.append("the parent's name objects:")
    out.append(_name_objects(parent))
    out.append("the child's name objects:")
    out.append(_name_objects(child))
    child.set_anon_name(BASE + 6 * PAGE, 2 * PAGE, "child-scratch")
    out.append("the child renames pages 6-7:")
    out.append(child.maps().rstrip("\n"))
    child.exit()
    parent.exit()
    total = parent.strategy.total
    out.append(f"after both exit: {total.allocs} name allocations, {total.bytes_copied} bytes copied, "
               f"{total.gets} gets, {total.puts} puts, {total.frees} frees, {total.live} live")
    return "\n".join(out)


def _run(args: argparse.Namespace) -> int:
    print("\n\n".join(demo(s) for s in ("refcount", "strdup")))
    return 0


def register(sub: Any) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="name, split and fork a model address space under both strategies",
                       description="Run the same steps on the model under both name strategies and "
                                   "print the maps and each name object with its refcount: mmap and "
                                   "name 8 pages, mprotect 2 of them (a split into three VMAs), fork "
                                   "(refcount: the child takes references; strdup: it copies every "
                                   "name), rename in the child, exit both. No kernel needed.",
                       epilog="example:\n  anonvma demo")
    p.set_defaults(func=_run)
