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
    out.append("fork: the child's VMAs copy the parent's names")
    out.append(_name_objects(parent))
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
    p = sub.add_parser("demo", help="name, split and fork a model address space under both strategies")
    p.set_defaults(func=_run)
