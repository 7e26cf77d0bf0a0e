"""``anonvma demo``: the fork step shows the child's name objects next to the parent's."""

from __future__ import annotations

import re

from anonvma.demo import demo


def _objects_after(text: str, heading: str) -> list[tuple[str, int]]:
    """(object id, refcount) of the lines listed under ``heading``."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    out = []
    for line in lines[start:]:
        m = re.match(r"\s+'heap-arena'\s+object (\w+) refcount (\d+)$", line)
        if not m:
            break
        out.append((m.group(1), int(m.group(2))))
    return out


def test_strdup_fork_shows_the_child_its_own_copies():
    text = demo("strdup")
    parent = _objects_after(text, "the parent's name objects:")
    child = _objects_after(text, "the child's name objects:")
    assert len(parent) == len(child) == 3
    assert not {o for o, _ in parent} & {o for o, _ in child}  # new objects: copies
    assert all(r == 1 for _, r in parent + child)


def test_refcount_fork_shows_the_child_sharing_the_parents_object():
    text = demo("refcount")
    parent = _objects_after(text, "the parent's name objects:")
    child = _objects_after(text, "the child's name objects:")
    assert parent == child and len(parent) == 1 and parent[0][1] == 6  # 3 VMAs in each process
