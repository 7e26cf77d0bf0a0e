#!/usr/bin/env python3
"""Write the merge.c mremap cases as ops scripts: unnamed, same-named and differently named.

Run from the repo root; it rewrites tests/scripts/mremap_*.jsonl. Record every
release's output with ``python tests/recordings.py record --linux RELEASE``, oldest first.
"""

import json
from typing import Any, Optional

P = 4096
Ops = list[dict[str, Any]]
MAPS: Ops = [{"op": "maps"}]


def mm(page: int, pages: int, name: Optional[str]) -> Ops:
    out: Ops = [{"op": "mmap", "addr": page * P, "len": pages * P, "prot": "rw"}]
    if name is not None:
        out.append({"op": "name", "addr": page * P, "len": pages * P, "name": name})
    return out


def remap(page: int, pages: int, new_pages: int, flags: tuple[str, ...] = (),
          dst: Optional[int] = None, addr_extra: int = 0) -> Ops:
    op: dict[str, Any] = {"op": "mremap", "addr": page * P + addr_extra, "len": pages * P,
                          "new_len": new_pages * P, "flags": list(flags)}
    if dst is not None:
        op["new_addr"] = dst
    return [op]


def mv(src: int, pages: int, dst: int, extra: tuple[str, ...] = ()) -> Ops:
    return remap(src, pages, pages, ("maymove", "fixed", *extra), dst * P)


def touch(page: int) -> Ops:
    return [{"op": "touch", "addr": page * P}]


def cases(n1: Optional[str], n2: Optional[str], n3: Optional[str]) -> dict[str, Ops]:
    c: dict[str, Ops] = {}
    c["unfaulted_to_faulted"] = (mm(1, 5, n1) + mm(7, 5, n2) + mv(7, 5, 1007) + touch(1) + mv(1007, 5, 6)
                                 + MAPS)
    c["unfaulted_behind_faulted"] = (mm(6, 5, n1) + mm(12, 5, n2) + mv(12, 5, 1012) + touch(6)
                                     + mv(1012, 5, 1) + MAPS)
    c["unfaulted_between_faulted"] = (mm(1, 5, n1) + mm(7, 5, n2) + mm(14, 5, n3) + mv(7, 5, 1007)
                                      + mv(14, 5, 1014) + touch(1) + touch(1014) + mv(1014, 5, 11)
                                      + mv(1007, 5, 6) + MAPS)
    c["unfaulted_between_faulted_unfaulted"] = (mm(1, 5, n1) + mm(7, 5, n2) + mm(14, 5, n3) + mv(7, 5, 1007)
                                                + mv(14, 5, 1014) + touch(1) + mv(1014, 5, 11)
                                                + mv(1007, 5, 6) + MAPS)
    c["faulted_moved_back_home"] = (mm(1, 15, n1) + touch(1) + touch(6) + touch(11) + mv(6, 5, 1006) + MAPS
                                    + mv(1006, 5, 6) + MAPS)
    c["faulted_to_unfaulted_prev_dontunmap"] = (mm(1, 5, n1) + mm(11, 5, n2) + touch(11)
                                                + mv(11, 5, 6, ("dontunmap",)) + MAPS)
    c["faulted_to_unfaulted_next_dontunmap"] = (mm(6, 5, n1) + mm(11, 5, n2) + touch(11)
                                                + mv(11, 5, 1, ("dontunmap",)) + MAPS)
    c["unfaulted_self_adjacent"] = mm(1, 5, n1) + mv(1, 5, 6) + MAPS + mv(6, 5, 3) + MAPS
    c["grow_in_place_into_named_neighbour"] = (mm(1, 2, n1) + mm(5, 2, n2) + remap(1, 2, 4) + MAPS
                                               + remap(1, 4, 8) + MAPS + remap(1, 4, 2) + MAPS)
    c["errors"] = (mm(1, 4, n1) + remap(1, 1, 1, addr_extra=1) + remap(100, 1, 1) + remap(1, 8, 9)
                   + remap(1, 1, 2, ("maymove", "fixed", "dontunmap"), 50 * P)
                   + remap(1, 2, 2, ("maymove", "fixed"), 2 * P) + remap(1, 1, 0)
                   + remap(1, 4, 4, ("maymove", "fixed"), 50 * P + 1) + MAPS)
    child = mm(20, 5, n2) + mv(20, 5, 6) + MAPS
    c["fork_then_move_in_child"] = (mm(1, 5, n1) + touch(1) + [{"op": "fork"}]
                                    + [dict(o, pid=1) for o in child])
    return c


VARIANTS = {"unnamed": (None, None, None), "samename": ("pool", "pool", "pool"), "diffnames": ("a", "b", "c")}

if __name__ == "__main__":
    for variant, names in VARIANTS.items():
        for case, ops in cases(*names).items():
            with open(f"tests/scripts/mremap_{case}_{variant}.jsonl", "w") as f:
                f.writelines(json.dumps(o) + "\n" for o in ops)
