"""Seeded random ops scripts for differential testing (model vs a real kernel).

Every address and length stays inside the first :data:`WINDOW` bytes of the arena, so no
op can reach the worker's own memory and no file page lies beyond its file's end; the
script is still free to be wrong in every other way (unaligned addresses, odd lengths,
holes, bad names, permission faults), because the errno paths are part of what we compare.
"""

from __future__ import annotations

import random
from typing import Any, Optional

from anonvma.ops import ADVICES, READ_ADVICES, Op, parse_script, script_text

PAGE = 4096
#: Ops touch only [0, WINDOW) of the arena.
WINDOW = 1 << 20
#: Most ops aim at the first HOT pages, so VMAs meet, split and merge often.
HOT = 48

#: Valid names, few and repeated so that neighbours share names (merges), plus edge lengths.
GOOD_NAMES = ("a", "heap", "x y", "libc_malloc", "stack_and_tls:7", "dalvik-main space", "~!@#%^&*()",
              "n" * 79, "")
#: Names 6.1 refuses: forbidden or non-printable characters, 80 chars; and a NUL (cuts the C string).
BAD_NAMES = ("a\\b", "a`b", "$x", "[x", "x]", "tab\there", "\x01", "del\x7f", "\x85", "caf\xe9",
             "\xa0", "n" * 80, "n" * 200, "cut\x00here")


def _page(rng: random.Random, hot: bool = True, window: int = WINDOW, hot_pages: int = HOT) -> int:
    limit = hot_pages if hot and rng.random() < 0.85 else window // PAGE
    return rng.randrange(limit)


def _addr(rng: random.Random, window: int = WINDOW, hot_pages: int = HOT) -> int:
    """Mostly page-aligned, sometimes not (EINVAL for most syscalls)."""
    addr = _page(rng, window=window, hot_pages=hot_pages) * PAGE
    if rng.random() < 0.06:
        addr += rng.randrange(1, PAGE)
    return addr


def _len(rng: random.Random, addr: int, window: int = WINDOW) -> int:
    """1-12 pages mostly; sometimes 0 or not a page multiple; never past the window."""
    r = rng.random()
    if r < 0.04:
        return 0
    length = rng.randint(1, 12) * PAGE
    if r < 0.12:
        length -= rng.randrange(1, PAGE)
    return max(0, min(length, window - addr))


def _prot(rng: random.Random) -> str:
    return rng.choice(("rw", "rw", "r", "", "rwx", "w", "rx"))


def _name(rng: random.Random) -> Optional[str]:
    r = rng.random()
    if r < 0.1:
        return None
    if r < 0.3:
        return rng.choice(BAD_NAMES)
    return rng.choice(GOOD_NAMES[:4]) if rng.random() < 0.6 else rng.choice(GOOD_NAMES)


class OpStream:
    """The random mix as an endless stream of script lines (dicts), for scripts of any length.

    :param rng: the source of randomness (the stream is the same for the same state).
    :param files, names, mremap, fork: as for :func:`random_script`.
    :param window: ops touch only [0, window) of the arena (bytes, a page multiple).
    :param hot_pages: most ops aim at the first ``hot_pages`` pages.
    :ivar alive: the script processes alive after the lines handed out so far.
    """

    def __init__(self, rng: random.Random, files: bool = True, names: bool = True, mremap: bool = True,
                 fork: bool = True, window: int = WINDOW, hot_pages: int = HOT) -> None:
        self.rng = rng
        self.files = files
        self.window = window
        self.hot_pages = hot_pages
        self.alive = [0]
        self.next_pid = 1
        weights = {"mmap": 14, "munmap": 5, "mprotect": 8, "madvise": 6, "name": 16 if names else 0,
                   "touch": 10, "fork": 4 if fork else 0, "exit": 3 if fork else 0, "maps": 8,
                   "mremap": 4 if mremap else 0, "mlock": 3, "munlock": 2}
        self.kinds, self.weights = list(weights), list(weights.values())

    def next_ops(self) -> list[dict[str, Any]]:
        """The next op, sometimes followed by a ``maps`` op (one or two lines)."""
        rng, alive, window, hot = self.rng, self.alive, self.window, self.hot_pages
        while True:
            kind = rng.choices(self.kinds, self.weights)[0]
            pid = rng.choice(alive)
            obj: dict[str, Any] = {"op": kind}
            if pid:
                obj["pid"] = pid
            if kind in ("mmap", "munmap", "mprotect", "madvise", "name", "mlock", "munlock"):
                obj["addr"] = _addr(rng, window, hot)
                obj["len"] = _len(rng, obj["addr"], window)
            if kind == "mmap":
                obj["addr"] -= obj["addr"] % PAGE if rng.random() < 0.5 else 0
                obj["prot"] = _prot(rng)
                r = rng.random()
                if r < 0.15:
                    obj["share"] = "shared"
                if self.files and 0.15 <= r < 0.3:
                    obj["file"] = rng.choice(("f0", "f0", "f1"))
                    obj["pgoff"] = rng.choice((0, 0, obj["addr"] // PAGE, rng.randrange(64)))
                    if rng.random() < 0.5:
                        obj["share"] = "shared"
                if rng.random() < 0.1:
                    obj["noreserve"] = True
                if rng.random() < 0.1:
                    obj["populate"] = True
            elif kind == "mprotect":
                obj["prot"] = _prot(rng)
            elif kind == "madvise":
                obj["advice"] = rng.choice(READ_ADVICES if rng.random() < 0.25 else ADVICES)
            elif kind == "mlock":
                if rng.random() < 0.4:
                    obj["onfault"] = True
            elif kind == "name":
                obj["name"] = _name(rng)
                if rng.random() < 0.02:
                    obj["len"] = (1 << 64) - rng.randrange(1, 2 * PAGE)  # rounds to 0 or wraps: EINVAL
            elif kind == "touch":
                obj["addr"] = _page(rng, window=window, hot_pages=hot) * PAGE + rng.randrange(PAGE)
                obj["write"] = rng.random() < 0.6
            elif kind == "fork":
                if len(alive) >= 4:
                    continue
                alive.append(self.next_pid)
                self.next_pid += 1
            elif kind == "exit":
                if len(alive) < 2:
                    continue
                alive.remove(pid)
            elif kind == "mremap":
                addr = _page(rng, window=window, hot_pages=hot) * PAGE
                old = rng.randint(1, 8) * PAGE
                new = rng.randint(1, 12) * PAGE
                obj.update(addr=addr, len=min(old, window - addr), new_len=min(new, window - addr))
                r = rng.random()
                if r < 0.5:
                    obj["flags"] = []
                else:
                    obj["flags"] = ["maymove", "fixed"] + (["dontunmap"] if r > 0.8 else [])
                    obj["new_addr"] = min(_page(rng, window=window, hot_pages=hot) * PAGE,
                                          window - obj["new_len"])
            out = [obj]
            if rng.random() < 0.15:
                out.append({"op": "maps", **({"pid": pid} if pid else {})} if pid in alive
                           else {"op": "maps"} if 0 in alive else {"op": "maps", "pid": alive[0]})
            return out


def random_script(seed: int, length: Optional[int] = None, files: bool = True,
                  names: bool = True, mremap: bool = True, fork: bool = True,
                  window: int = WINDOW, hot_pages: int = HOT) -> list[Op]:
    """One random script, the same for the same arguments.

    :param files: allow file mappings (labels ``f0``, ``f1``).
    :param names: allow ``name`` ops (turn off to compare with a kernel that cannot name).
    :param mremap: allow ``mremap`` ops (turn off for kernels whose mremap differs from 6.1's:
        6.17 reordered its checks, e.g. an overlapping fixed move is EINVAL before EFAULT).
    :param fork: allow ``fork`` and ``exit`` (turn off for kernels after 6.1 whose vma_merge
        also merges VMAs whose anon_vmas came from a fork, which 6.1 does not).
    :param window: ops touch only [0, window) of the arena (default :data:`WINDOW`).
    :param hot_pages: most ops aim at the first ``hot_pages`` pages (default :data:`HOT`).
    """
    rng = random.Random(seed)
    length = length if length is not None else rng.randint(8, 40)
    stream = OpStream(rng, files, names, mremap, fork, window, hot_pages)
    lines: list[dict[str, Any]] = []
    while len(lines) < length:
        lines.extend(stream.next_ops())
    for pid in stream.alive:
        lines.append({"op": "maps", **({"pid": pid} if pid else {})})
    return _checked(lines)


def _checked(lines: list[dict[str, Any]]) -> list[Op]:
    """Round-trip through the parser: what we generate is exactly what a script file would hold."""
    import json

    ops = parse_script("".join(json.dumps(obj) + "\n" for obj in lines))
    return parse_script(script_text(ops))


def random_scripts(count: int, seed: int = 0, **kwargs: Any) -> list[list[Op]]:
    """``count`` scripts with seeds ``seed``, ``seed + 1``, ..."""
    return [random_script(seed + i, **kwargs) for i in range(count)]
