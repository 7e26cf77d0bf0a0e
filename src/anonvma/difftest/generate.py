"""Seeded random ops scripts for differential testing (model vs a real kernel).

Most ops are drawn one by one, aimed at the first pages of a small window of the arena, so VMAs
meet, split and merge often; the script is free to be wrong in every way a program can be
(unaligned addresses, odd and huge lengths, holes, bad names, permission faults), because the
errno paths are part of what we compare. Between them come *scenarios*: short runs of ops that
set up a state random ops almost never reach (a DONTUNMAP move onto the end of its own VMA, a
DONTUNMAP move of a VMA moved before with a new neighbour beside the source it empties, a locked
VMA grown in place, a VMA at vm.max_map_count, a file mapping past its file's end, more VMAs than
one chunk of the model's index holds) and then act on it.

What a script may touch, so that it can run in a real process (``python -m anonvma.difftest
--coverage`` shows what the scripts reach):

- random ops stay in the first :data:`WINDOW` bytes of the arena, and no file page they can
  touch lies past its file's end (a touch there is SIGBUS);
- scenarios that map a file past its end do it above the window (:data:`FAR`), where no touch
  goes, and unmap it before they end;
- nothing a script maps reaches past :data:`REACH`; an op with a longer range fails before it
  changes anything (the length wraps, or passes TASK_SIZE), or walks VMAs only up to the first
  hole (mprotect, mlock, munlock), which lies below REACH;
- a huge length never goes to an op that would fault in or unmap its whole range.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Optional

from anonvma.model.index import CHUNK
from anonvma.releases import RELEASES
from anonvma.ops import (ADVICES, ARENA_BASE, FILE_SIZE, MAP_COUNT_OPS, READ_ADVICES, Op, parse_script,
                         script_text)

PAGE = 4096
#: Random ops touch only [0, WINDOW) of the arena.
WINDOW = 1 << 20
#: Most ops aim at the first HOT pages, so VMAs meet, split and merge often.
HOT = 48
#: Scenarios that must stay out of the random ops' reach (a file mapping past its end) run in
#: [FAR, FAR + FAR_SIZE); so does the crowd of VMAs.
FAR = WINDOW
FAR_SIZE = 16 << 20
#: No mapping a script makes reaches past this arena offset.
REACH = 1 << 33
FILE_PAGES = FILE_SIZE // PAGE
U64 = (1 << 64) - 1
#: Lengths past every TASK_SIZE (the host's 2**47, the guests' below 2**39).
BEYOND_TASK = 1 << 48
#: The largest TASK_SIZE of the oracle guests (UML with four-level page tables).
LARGEST_TASK = max(release.uml_task_size for release in RELEASES)
#: Private writable lengths past the RAM of any oracle guest (512 MiB): the commit check fails.
OVER_COMMIT = 1 << 30
#: One-page VMAs a crowd makes: the (2 * CHUNK + 1)-th splits the first chunk of the model's
#: index, the rest fill the second to one short of 2 * CHUNK (a 4-page VMA completes it).
CROWD = 3 * CHUNK - 1

#: Valid names, few and repeated so that neighbours share names (merges), plus edge lengths.
GOOD_NAMES = ("a", "heap", "x y", "libc_malloc", "stack_and_tls:7", "dalvik-main space", "~!@#%^&*()",
              "n" * 79, "")
#: Names 6.1 refuses: forbidden or non-printable characters, 80 chars; and a NUL (cuts the C string).
BAD_NAMES = ("a\\b", "a`b", "$x", "[x", "x]", "tab\there", "\x01", "del\x7f", "\x85", "caf\xe9",
             "\xa0", "n" * 80, "n" * 200, "cut\x00here")
#: vm.max_map_count values of random ops: around the few VMAs a random script holds.
LIMITS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24)
#: vm.max_map_count minus the VMAs there are, around where each op starts to fail (scenarios).
MARGINS = {"mmap": (-1, 0, 1)}
#: Changes that split a VMA and the change that undoes each (so the pieces merge back).
TOGGLES = (
    ({"op": "mprotect", "prot": "r"}, {"op": "mprotect", "prot": "rw"}),
    ({"op": "madvise", "advice": "random"}, {"op": "madvise", "advice": "normal"}),
    ({"op": "madvise", "advice": "dontfork"}, {"op": "madvise", "advice": "dofork"}),
    ({"op": "madvise", "advice": "wipeonfork"}, {"op": "madvise", "advice": "keeponfork"}),
    ({"op": "mlock", "onfault": True}, {"op": "munlock"}),
    ({"op": "mlock"}, {"op": "munlock"}),
    ({"op": "name", "name": "z"}, {"op": "name", "name": "a"}),
    ({"op": "name", "name": "z"}, {"op": "name", "name": None}),
    ({"op": "munmap"}, {"op": "mmap", "prot": "rw"}),
)


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


def _wrapping(rng: random.Random, addr: int) -> int:
    """A length that rounds up to 0, or makes base + addr + length wrap past 2**64 (it falls
    short of 2**64 by less than the arena base): EINVAL or ENOMEM before anything changes."""
    return U64 - rng.randrange(0, ARENA_BASE) if rng.random() < 0.7 else U64 - rng.randrange(0, PAGE)


def _huge_len(rng: random.Random, kind: str, addr: int, limits: bool = True) -> int:
    """A length far past the window, of a kind that op ``kind`` can take safely (module doc);
    past the commit limit only with ``limits`` (the oracle's RAM)."""
    if kind in ("madvise", "name", "mlock", "munlock", "mseal"):
        # madvise and the prctl visit every VMA of the range; mlock would leave what it locked
        # before the first hole locked, and a later mprotect would fault all of it in
        return _wrapping(rng, addr)
    r = rng.random()
    if kind == "mmap" and r < 0.45 and limits:  # private writable: over the commit limit; else it maps
        return rng.randrange(OVER_COMMIT, REACH - WINDOW) & ~(PAGE - 1)
    if kind == "mmap" and r < 0.6:
        return rng.randrange(2 << 20, 64 << 20) & ~(PAGE - 1)
    if r < 0.8:
        return rng.randrange(BEYOND_TASK, 1 << 63)
    return _wrapping(rng, addr)


def _prot(rng: random.Random) -> str:
    return rng.choice(("rw", "rw", "r", "", "rwx", "w", "rx"))


def _name(rng: random.Random) -> Optional[str]:
    r = rng.random()
    if r < 0.1:
        return None
    if r < 0.3:
        return rng.choice(BAD_NAMES)
    return rng.choice(GOOD_NAMES[:4]) if rng.random() < 0.6 else rng.choice(GOOD_NAMES)


class _Builder:
    """The lines of one script as it is drawn: the ops, the processes alive, what is allowed."""

    def __init__(self, rng: random.Random, files: bool, names: bool, mremap: bool, fork: bool,
                 limits: bool, window: int = WINDOW, hot_pages: int = HOT) -> None:
        self.rng = rng
        self.files, self.names, self.mremap, self.fork, self.limits = files, names, mremap, fork, limits
        self.window, self.hot_pages = window, hot_pages
        self.alive = [0]
        self.next_pid = 1
        self.lines: list[dict[str, Any]] = []

    def add(self, pid: int, obj: dict[str, Any]) -> None:
        if pid:
            obj["pid"] = pid
        self.lines.append(obj)

    def maps(self, pid: int) -> None:
        self.add(pid, {"op": "maps"})

    def page(self) -> int:
        """A page of the window for a random op, most often a hot one."""
        return _page(self.rng, window=self.window, hot_pages=self.hot_pages)

    def do_fork(self, pid: int) -> Optional[int]:
        """A fork by ``pid`` if fewer than 4 processes live; the child's number, or None."""
        if not self.fork or len(self.alive) >= 4:
            return None
        self.add(pid, {"op": "fork"})
        child = self.next_pid
        self.next_pid += 1
        self.alive.append(child)
        return child

    # -- one random op ----------------------------------------------------------------------------

    def random_op(self) -> None:
        rng = self.rng
        weights = {"mmap": 14, "munmap": 5, "mprotect": 8, "madvise": 6, "name": 16 if self.names else 0,
                   "touch": 10, "fork": 4 if self.fork else 0, "exit": 3 if self.fork else 0, "maps": 8,
                   "mremap": 4 if self.mremap else 0, "mlock": 3, "munlock": 2, "mseal": 1}
        kind = rng.choices(list(weights), list(weights.values()))[0]
        pid = rng.choice(self.alive)
        obj: dict[str, Any] = {"op": kind}
        if kind in ("mmap", "munmap", "mprotect", "madvise", "name", "mlock", "munlock", "mseal"):
            obj["addr"] = _addr(rng, self.window, self.hot_pages)
            obj["len"] = _len(rng, obj["addr"], self.window)
            if rng.random() < 0.03:
                obj["len"] = _huge_len(rng, kind, obj["addr"], self.limits)
        if kind == "mmap":
            obj["addr"] -= obj["addr"] % PAGE if rng.random() < 0.5 else 0
            obj["prot"] = _prot(rng)
            r = rng.random()
            if r < 0.15:
                obj["share"] = "shared"
            if self.files and 0.15 <= r < 0.3 and obj["len"] <= WINDOW:
                obj["file"] = rng.choice(("f0", "f0", "f1"))
                obj["pgoff"] = rng.choice((0, 0, obj["addr"] // PAGE, rng.randrange(64)))
                if rng.random() < 0.5:
                    obj["share"] = "shared"
                if rng.random() < 0.15:  # through a read-only descriptor: no VM_MAYWRITE when shared
                    obj["readonly"] = True
                if rng.random() < 0.02:  # past the largest file offset: EOVERFLOW
                    obj["pgoff"] = rng.randrange(1 << 51, 1 << 52)
            if rng.random() < 0.1:
                obj["noreserve"] = True
            if rng.random() < 0.1 and obj["len"] <= WINDOW:
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
            obj["addr"] = self.page() * PAGE + rng.randrange(PAGE)
            obj["write"] = rng.random() < 0.6
        elif kind == "fork":
            if self.do_fork(pid) is not None:
                self.maybe_maps(pid)
            return
        elif kind == "exit":
            if len(self.alive) < 2:
                return
            self.alive.remove(pid)
        elif kind == "mremap":
            self.random_mremap(obj)
        if kind in MAP_COUNT_OPS and self.limits and rng.random() < 0.04:
            obj["max_map_count"] = rng.choice(LIMITS)
        self.add(pid, obj)
        self.maybe_maps(pid)

    def maybe_maps(self, pid: int) -> None:
        alive = self.alive
        if self.rng.random() < 0.15:
            self.maps(pid if pid in alive else 0 if 0 in alive else alive[0])

    def random_mremap(self, obj: dict[str, Any]) -> None:
        """Shrink, grow, or move (always to a fixed address in the window: a move the kernel
        places itself lands outside the arena); a DONTUNMAP move keeps its length, as it must."""
        rng = self.rng
        addr = self.page() * PAGE
        old = rng.randint(1, 8) * PAGE
        new = rng.randint(1, 12) * PAGE
        r = rng.random()
        if r < 0.05:
            old = 0  # duplicates a shared mapping; EINVAL on a private one
        window = self.window
        obj.update(addr=addr, len=min(old, window - addr), new_len=min(new, window - addr))
        if r < 0.45 and r >= 0.05:
            obj["flags"] = []
            if rng.random() < 0.1:
                obj["new_len"] = obj["len"]  # the same size: nothing to do
        else:
            flags = ["maymove", "fixed"]
            if r >= 0.75:
                flags.append("dontunmap")
                obj["new_len"] = obj["len"]
            elif rng.random() < 0.1:
                flags = rng.choice((["fixed"], ["dontunmap"], ["fixed", "dontunmap"]))  # EINVAL
            obj["flags"] = flags
            where = rng.random()
            if where < 0.2:  # just past the old range, or just below it
                target = addr + obj["len"] if where < 0.1 else addr - obj["new_len"]
            else:
                target = self.page() * PAGE
            obj["new_addr"] = max(0, min(target, window - obj["new_len"]))
            if rng.random() < 0.03:
                obj["new_addr"] += rng.randrange(1, PAGE)  # EINVAL
        r = rng.random()
        if r < 0.03:
            obj["addr"] += rng.randrange(1, PAGE)  # EINVAL
        elif r < 0.05:
            obj["new_len"] = 0  # EINVAL
        elif r < 0.08 and "dontunmap" not in obj["flags"]:
            obj["new_len"] = rng.randrange(BEYOND_TASK, 1 << 63)  # past TASK_SIZE: ENOMEM or EINVAL

    # -- scenarios ----------------------------------------------------------------------------------

    def scenario(self) -> None:
        """A run of ops that sets up a rare state and acts on it (see the module doc)."""
        rng = self.rng
        pid = rng.choice(self.alive)
        choices: list[tuple[Callable[[int], None], int]] = [
            (self.sc_merge_back, 7), (self.sc_fork_chain, 2 if self.fork else 0),
            (self.sc_eof, 2 if self.files else 0), (self.sc_map_count, 4 if self.limits else 0),
            (self.sc_locked_grow, 2 if self.mremap else 0),
            (self.sc_commit, 1 if self.limits and self.mremap else 0),
            (self.sc_move_own_vma, 6 if self.mremap else 0), (self.sc_move_next_to, 3 if self.mremap else 0),
            (self.sc_dontunmap_moved_source, 2 if self.mremap else 0),
            (self.sc_shared_dup, 1 if self.mremap else 0),
            (self.sc_placed_move, 1 if self.mremap and self.limits else 0),
            (self.sc_readonly, 1 if self.files else 0), (self.sc_refused, 3),
            (self.sc_guard, 3), (self.sc_move_many, 4 if self.mremap else 0),
            (self.sc_faulted_into_unfaulted, 4), (self.sc_seal, 3),
            (self.sc_private_file_moved, 3 if self.files and self.mremap else 0),
            (self.sc_unfaulted_absorbs_faulted, 1), (self.sc_equal_names_merge, 1),
        ]
        fn = rng.choices([c for c, _ in choices], [w for _, w in choices])[0]
        fn(pid)

    def _base(self, pages: int) -> int:
        """A page in the hot window where a scenario of ``pages`` pages starts."""
        return self.rng.randrange(0, HOT) * PAGE if pages * PAGE < WINDOW - HOT * PAGE else 0

    def _fresh(self, pid: int, addr: int, pages: int, prot: str = "rw", faulted: Optional[bool] = None,
               named: Optional[bool] = None) -> None:
        """A new private anonymous VMA at ``addr``, maybe named and faulted (some or every page)."""
        rng = self.rng
        self.add(pid, {"op": "mmap", "addr": addr, "len": pages * PAGE, "prot": prot})
        if (rng.random() < 0.5 if named is None else named) and self.names:
            self.add(pid, {"op": "name", "addr": addr, "len": pages * PAGE,
                           "name": rng.choice(GOOD_NAMES[:3])})
        if rng.random() < 0.5 if faulted is None else faulted:
            for page in rng.sample(range(pages), rng.randint(1, pages)):
                self.add(pid, {"op": "touch", "addr": addr + page * PAGE})

    def sc_merge_back(self, pid: int) -> None:
        """Split part of a VMA off by a flag change, then make it whole again: undo the change, or
        make the same change beside it, or on both sides and then between (merging with prev,
        next or both; or not, when a fault or a fork came between)."""
        rng = self.rng
        pages = rng.randint(3, 9)
        base = self._base(pages)
        self._fresh(pid, base, pages)
        lo = rng.randint(0, pages - 1)
        hi = rng.randint(lo + 1, pages)
        toggles = [t for t in TOGGLES if self.names or t[0]["op"] != "name"]
        # lock changes twice as often: their merges are rarer (a populated VMA has an anon_vma)
        do, undo = rng.choices(toggles, [2 if t[0]["op"] == "mlock" else 1 for t in toggles])[0]
        how = rng.random()
        if how < 0.4:  # undo
            steps = [(do, lo, hi), (undo, lo, hi)]
        elif how < 0.55:  # the whole VMA, then undone in part (the undo splits)
            steps = [(do, 0, pages), (undo, lo, hi)]
        elif how < 0.75:  # the same change next to it: merges with prev (after) or next (before)
            steps = [(do, lo, hi), (do, hi, pages) if hi < pages and rng.random() < 0.5 else (do, 0, lo)]
        else:  # both sides first, then the gap between
            steps = [(do, 0, lo), (do, hi, pages), (do, lo, hi)]
        for change, start, end in steps:
            if start >= end:
                continue
            if rng.random() < 0.3:
                self.touch_some(pid, base, pages)
            self.add(pid, {**change, "addr": base + start * PAGE, "len": (end - start) * PAGE})
        self.maps(pid)

    def sc_unfaulted_absorbs_faulted(self, pid: int) -> None:
        """Three one-page VMAs, only the upper one faulted; the middle one made like its
        neighbours (mprotected, or mapped anew into the hole): the lower one, unfaulted,
        absorbs both and takes the upper one's anon_vma (random ops rarely line this up)."""
        rng = self.rng
        base = self._base(4)
        self._fresh(pid, base, 1, faulted=False, named=False)
        self._fresh(pid, base + 2 * PAGE, 1, faulted=True, named=False)
        if rng.random() < 0.6:
            self.add(pid, {"op": "mmap", "addr": base + PAGE, "len": PAGE, "prot": "r"})
            self.add(pid, {"op": "mprotect", "addr": base + PAGE, "len": PAGE, "prot": "rw"})
        else:
            self.add(pid, {"op": "munmap", "addr": base + PAGE, "len": PAGE})
            self.add(pid, {"op": "mmap", "addr": base + PAGE, "len": PAGE, "prot": "rw"})
        self.maps(pid)

    def sc_equal_names_merge(self, pid: int) -> None:
        """Two neighbours named alike by two calls (two name objects, one holder each), kept
        apart by a flag, then given the same flags over one of them or both: the merge frees
        the absorbed VMA's name while the change still compares with it (942341dcc574, the use
        after free that the transient reference fixed)."""
        rng = self.rng
        if not self.names:
            return
        base = self._base(4)
        self._fresh(pid, base, 2, named=False)
        do = rng.choice([t for t in TOGGLES[:6] if t[0]["op"] != "mprotect"])[0]
        lower = rng.random() < 0.5  # which one the flag keeps apart
        apart = base if lower else base + PAGE
        self.add(pid, {**do, "addr": apart, "len": PAGE})
        name = rng.choice(GOOD_NAMES[:3])
        for addr in (base, base + PAGE):
            self.add(pid, {"op": "name", "addr": addr, "len": PAGE, "name": name})
        whole = rng.random() < 0.3
        other = base + PAGE if lower else base
        self.add(pid, {**do, "addr": base if whole else other, "len": (2 if whole else 1) * PAGE})
        self.maps(pid)

    def misalign(self, rate: float) -> int:
        """With probability ``rate``, an offset that makes a page address unaligned (EINVAL)."""
        return self.rng.randrange(1, PAGE) if self.rng.random() < rate else 0

    def touch_some(self, pid: int, base: int, pages: int) -> None:
        self.add(pid, {"op": "touch", "addr": base + self.rng.randrange(pages) * PAGE,
                       "write": self.rng.random() < 0.7})

    def sc_locked_grow(self, pid: int) -> None:
        """mremap grows a (maybe locked) VMA in place into a hole, up to (or into) a neighbour;
        with MREMAP_MAYMOVE too, which it then does not need."""
        rng = self.rng
        pages, grow = rng.randint(1, 4), rng.randint(1, 4)
        base = self._base(pages + grow + 4)
        self._fresh(pid, base, pages, prot="r" if rng.random() < 0.2 else "rw")  # "r": not accounted
        lock = rng.random()
        if lock < 0.6:
            self.add(pid, {"op": "mlock", "addr": base, "len": pages * PAGE,
                           **({"onfault": True} if lock < 0.2 else {})})
        self.add(pid, {"op": "munmap", "addr": base + pages * PAGE, "len": grow * PAGE})
        if rng.random() < 0.5:  # a neighbour just past the hole, maybe faulted (its anon_vma then
            # goes to the grown VMA when they merge)
            self.add(pid, {"op": "mmap", "addr": base + (pages + grow) * PAGE, "len": 2 * PAGE, "prot": "rw"})
            if rng.random() < 0.5:
                self.add(pid, {"op": "touch", "addr": base + (pages + grow) * PAGE})
        flags = ["maymove"] if rng.random() < 0.5 else []
        if rng.random() < 0.2:  # no room: a neighbour right above (then it may not move: ENOMEM)
            self.add(pid, {"op": "mmap", "addr": base + pages * PAGE, "len": PAGE, "prot": "r"})
            flags = []
        self.add(pid, {"op": "mremap", "addr": base, "len": pages * PAGE, "new_len": (pages + grow) * PAGE,
                       "flags": flags})
        if lock < 0.6 and rng.random() < 0.5:  # a locked VMA moved with DONTUNMAP: its source is
            # unlocked, all of it or (6.1.192, 6.12.118, 7.3: split first) only the moved part
            dest = base + (pages + grow + 2) * PAGE
            part = rng.randrange(pages) if rng.random() < 0.5 else 0
            self.add(pid, {"op": "mremap", "addr": base + part * PAGE, "len": (pages - part) * PAGE,
                           "new_len": (pages - part) * PAGE, "flags": ["maymove", "fixed", "dontunmap"],
                           "new_addr": dest})
        self.maps(pid)

    def sc_move_own_vma(self, pid: int) -> None:
        """Move part of a VMA onto another part of the same VMA (fixed, maybe DONTUNMAP): the copy
        may merge back into its own source (6.1 copy_vma, unfaulted)."""
        rng = self.rng
        pages = rng.randint(2, 10)
        base = self._base(pages)
        self._fresh(pid, base, pages, prot=rng.choice(("rw", "rw", "r")))
        moved = rng.randint(1, pages // 2)
        src = rng.choice((0, pages - moved, rng.randint(0, pages - moved)))
        free = [p for p in range(pages - moved + 1) if p + moved <= src or p >= src + moved]
        if not free:
            return
        dest = rng.choice((free[0], free[-1], rng.choice(free)))
        flags = ["maymove", "fixed", "dontunmap"] if rng.random() < 0.7 else ["maymove", "fixed"]
        new_len = moved if "dontunmap" in flags or rng.random() < 0.6 else rng.randint(1, moved)
        self.add(pid, {"op": "mremap", "addr": base + src * PAGE, "len": moved * PAGE,
                       "new_len": new_len * PAGE, "flags": flags,
                       "new_addr": base + dest * PAGE + self.misalign(0.05)})
        if rng.random() < 0.3:
            self.touch_some(pid, base, pages)
        self.maps(pid)

    def sc_move_next_to(self, pid: int) -> None:
        """Move a range to just past (or just below) itself or its VMA: the copy meets its source."""
        rng = self.rng
        pages = rng.randint(1, 6)
        base = self._base(pages * 3) + 8 * PAGE
        self._fresh(pid, base, pages)
        moved = rng.randint(1, pages)
        src = rng.choice((0, pages - moved))
        flags = ["maymove", "fixed", "dontunmap"] if rng.random() < 0.5 else ["maymove", "fixed"]
        new_len = moved if "dontunmap" in flags else rng.randint(1, moved + 2)
        ends = (base + (src + moved) * PAGE, base + pages * PAGE, base + (src - new_len) * PAGE,
                base - new_len * PAGE)
        self.add(pid, {"op": "mremap", "addr": base + src * PAGE, "len": moved * PAGE,
                       "new_len": new_len * PAGE, "flags": flags, "new_addr": max(0, rng.choice(ends))})
        self.maps(pid)

    def sc_dontunmap_moved_source(self, pid: int) -> None:
        """Move a VMA, so its page offset no longer says where it is; move all of it on with
        DONTUNMAP; map a neighbour beside the emptied source: they merge only where the second
        move reset the source's offset (35b0fb391b0d)."""
        rng = self.rng
        pages = rng.randint(1, 4)
        base = self._base(pages * 4 + 8)
        self._fresh(pid, base, pages, named=False)
        moved = base + (pages + rng.randint(1, 3)) * PAGE
        self.add(pid, {"op": "mremap", "addr": base, "len": pages * PAGE, "new_len": pages * PAGE,
                       "flags": ["maymove", "fixed"], "new_addr": moved})
        away = moved + (pages + rng.randint(4, 6)) * PAGE
        self.add(pid, {"op": "mremap", "addr": moved, "len": pages * PAGE, "new_len": pages * PAGE,
                       "flags": ["maymove", "fixed", "dontunmap"], "new_addr": away})
        size = rng.randint(1, 3)
        beside = moved + pages * PAGE if rng.random() < 0.5 else moved - size * PAGE
        self._fresh(pid, beside, size, named=False, faulted=rng.random() < 0.3)
        self.maps(pid)

    def sc_guard(self, pid: int) -> None:
        """MADV_GUARD_INSTALL on part of a VMA (6.13+; EINVAL before, and on locked VMAs): no split,
        an anon_vma for private anonymous memory, and from 6.19 VM_MAYBE_GUARD on the whole VMA,
        which never blocks a merge and stays on the merged VMA. Then a merge next to it, and
        MADV_GUARD_REMOVE of the same range before anything can touch it (a touch of a guard page
        is SIGSEGV, which no runner survives)."""
        rng = self.rng
        pages = rng.randint(2, 6)
        base = self._base(pages + 6) + 2 * PAGE
        kind = rng.random()
        if kind < 0.65:
            self._fresh(pid, base, pages)
        else:
            m: dict[str, Any] = {"op": "mmap", "addr": base, "len": pages * PAGE, "prot": "rw"}
            if self.files and kind < 0.85:
                m.update(file="f0", pgoff=rng.randrange(8))
            if kind >= 0.85 or rng.random() < 0.5:
                m["share"] = "shared"
            self.add(pid, m)
        if rng.random() < 0.15:  # locked: EINVAL, no markers
            self.add(pid, {"op": "mlock", "addr": base, "len": pages * PAGE, "onfault": rng.random() < 0.5})
        lo = rng.randrange(pages)
        hi = rng.randint(lo + 1, pages)
        guarded = {"addr": base + lo * PAGE, "len": (hi - lo) * PAGE}
        self.add(pid, {"op": "madvise", **guarded, "advice": "guard_install"})
        whole = rng.random() < 0.2
        if whole:  # again, over the whole VMA: it has gu already
            self.add(pid, {"op": "madvise", "addr": base, "len": pages * PAGE, "advice": "guard_install"})
        self.maps(pid)
        after = rng.random()
        if after < 0.25:  # a new mapping just above: it merges into the guarded VMA, which keeps gu
            self.add(pid, {"op": "mmap", "addr": base + pages * PAGE, "len": rng.randint(1, 2) * PAGE,
                           "prot": "rw"})
        elif after < 0.45:  # one just below, faulted or not
            self._fresh(pid, base - 2 * PAGE, 2, named=False)
        elif after < 0.65:  # split off by a flag change, then merged back (the pieces keep gu)
            toggle = rng.choice(TOGGLES[:4])
            self.add(pid, {**toggle[0], "addr": base, "len": PAGE})
            self.add(pid, {**toggle[1], "addr": base, "len": PAGE})
        elif after < 0.8 and self.names:  # renamed in part, then as the rest (a rename keeps the
            self.add(pid, {"op": "name", "addr": base, "len": PAGE, "name": "g"})  # range's own flags)
            self.add(pid, {"op": "name", "addr": base, "len": pages * PAGE, "name": "g"})
        elif self.names:  # a VMA below named otherwise; then one takes the other's name
            self.add(pid, {"op": "name", "addr": base, "len": pages * PAGE, "name": "g"})
            self.add(pid, {"op": "mmap", "addr": base - 2 * PAGE, "len": 2 * PAGE, "prot": "rw"})
            self.add(pid, {"op": "name", "addr": base - 2 * PAGE, "len": 2 * PAGE, "name": "h"})
            self.maps(pid)
            if rng.random() < 0.5:  # the guarded VMA merges into the one below, which takes gu
                self.add(pid, {"op": "name", "addr": base, "len": pages * PAGE, "name": "h"})
            else:  # the one below merges into the guarded VMA (a rename keeps its own flags)
                self.add(pid, {"op": "name", "addr": base - 2 * PAGE, "len": 2 * PAGE, "name": "g"})
        self.maps(pid)
        self.add(pid, {"op": "madvise", **guarded, "advice": "guard_remove"})
        again = rng.random() < 0.3  # drawn either way: the scripts after stay what they were
        if whole or again:  # every page guarded must lose its marker
            self.add(pid, {"op": "madvise", "addr": base, "len": pages * PAGE, "advice": "guard_remove"})
        self.maps(pid)

    def sc_move_many(self, pid: int) -> None:
        """A fixed mremap of unchanged length over several VMAs and the gaps between them: 6.17+
        moves every VMA (cut at the range's edges) and keeps the gaps; a gap at the start is
        EFAULT; before 6.17 it is EFAULT when the range leaves the first VMA."""
        rng = self.rng
        base = self._base(24)
        at = base
        spans = []
        for _ in range(rng.randint(2, 4)):
            pages = rng.randint(1, 3)
            self._fresh(pid, at, pages, prot=rng.choice(("rw", "rw", "r", "rx")))
            spans.append((at, at + pages * PAGE))
            at += pages * PAGE + rng.choice((0, PAGE, PAGE, 2 * PAGE))
        start, end = spans[0][0], spans[-1][1]
        r = rng.random()
        if r < 0.2:  # inside the first VMA
            start += PAGE * rng.randrange((spans[0][1] - spans[0][0]) // PAGE)
        elif r < 0.3 and start >= PAGE:  # a gap at the start: EFAULT (none below address 0)
            self.add(pid, {"op": "munmap", "addr": start - PAGE, "len": PAGE})
            start -= PAGE
        if rng.random() < 0.2:  # ending inside the last VMA
            end -= PAGE * rng.randrange((spans[-1][1] - spans[-1][0]) // PAGE)
        length = end - start
        dest = end + PAGE * rng.randint(0, 4)
        if rng.random() < 0.3:  # something already there: unmapped per moved VMA, the gaps keep it
            self.add(pid, {"op": "mmap", "addr": dest, "len": length, "prot": "r"})
        flags = ["maymove", "fixed"] + (["dontunmap"] if rng.random() < 0.3 else [])
        move: dict[str, Any] = {"op": "mremap", "addr": start, "len": length, "new_len": length,
                                "flags": flags, "new_addr": dest}
        if self.limits and rng.random() < 0.1:
            move["max_map_count"] = rng.choice(LIMITS)
        self.add(pid, move)
        self.maps(pid)

    def sc_faulted_into_unfaulted(self, pid: int) -> None:
        """A faulted range that ends up with an unfaulted neighbour's flags and name: 6.18+
        merges them unless the faulted one is a fork child's (before, an unfaulted VMA takes only
        an unfaulted range). Through madvise, naming, mprotect, mlock, an mremap grown in place
        into the unfaulted VMA, or an mremap moved next to it."""
        rng = self.rng
        base = self._base(12) + 2 * PAGE
        who = pid
        target_first = rng.random() < 0.5
        target, faulted = (base + PAGE, base) if target_first else (base, base + PAGE)
        how = rng.choice(("madvise", "name" if self.names else "madvise", "mprotect", "mlock",
                          "grow" if self.mremap else "mprotect", "move" if self.mremap else "madvise",
                          "back" if self.mremap else "mlock"))
        if how == "back":  # moved away and back next to an unfaulted VMA: its pgoff fits again
            away = base + 6 * PAGE
            self.add(pid, {"op": "mmap", "addr": faulted, "len": PAGE, "prot": "rw"})
            self.add(pid, {"op": "touch", "addr": faulted})
            fixed = ["maymove", "fixed"]
            self.add(pid, {"op": "mremap", "addr": faulted, "len": PAGE, "new_len": PAGE, "flags": fixed,
                           "new_addr": away})
            self.add(pid, {"op": "mmap", "addr": target, "len": PAGE, "prot": "rw"})
            if rng.random() < 0.3:
                child = self.do_fork(pid)
                who = child if child is not None else pid
            self.add(who, {"op": "mremap", "addr": away, "len": PAGE, "new_len": PAGE, "flags": fixed,
                           "new_addr": faulted})
            self.maps(who)
            return
        if how == "grow":
            self.add(pid, {"op": "mmap", "addr": base, "len": PAGE, "prot": "rw"})
            self.add(pid, {"op": "touch", "addr": base})
            self.add(pid, {"op": "munmap", "addr": base + PAGE, "len": PAGE})
            self.add(pid, {"op": "mmap", "addr": base + 2 * PAGE, "len": PAGE, "prot": "rw"})
            if rng.random() < 0.3:
                child = self.do_fork(pid)
                who = child if child is not None else pid
            self.add(who, {"op": "mremap", "addr": base, "len": PAGE, "new_len": 2 * PAGE, "flags": []})
            self.maps(who)
            return
        if how == "move":
            src = base + 6 * PAGE
            self.add(pid, {"op": "mmap", "addr": src, "len": PAGE, "prot": "rw"})
            self.add(pid, {"op": "touch", "addr": src})
            self.add(pid, {"op": "mmap", "addr": target, "len": PAGE, "prot": "rw"})
            self.add(pid, {"op": "munmap", "addr": faulted, "len": PAGE})
            if rng.random() < 0.3:
                child = self.do_fork(pid)
                who = child if child is not None else pid
            self.add(who, {"op": "mremap", "addr": src, "len": PAGE, "new_len": PAGE,
                           "flags": ["maymove", "fixed"] + (["dontunmap"] if rng.random() < 0.3 else []),
                           "new_addr": faulted})
            self.maps(who)
            return
        changes: dict[str, dict[str, Any]] = {
            "madvise": {"op": "madvise", "advice": rng.choice(("random", "sequential", "dontfork"))},
            "name": {"op": "name", "name": "x"},
            "mprotect": {"op": "mprotect", "prot": "r"},
            "mlock": {"op": "mlock", "onfault": True},
        }
        change = changes[how]
        self.add(pid, {"op": "mmap", "addr": target, "len": PAGE, "prot": "rw"})
        self.add(pid, {**change, "addr": target, "len": PAGE})
        self.add(pid, {"op": "mmap", "addr": faulted, "len": PAGE, "prot": "rw"})
        self.add(pid, {"op": "touch", "addr": faulted})
        if rng.random() < 0.3:
            child = self.do_fork(pid)
            who = child if child is not None else pid
        self.add(who, {**change, "addr": faulted, "len": PAGE})
        self.maps(who)

    def sc_private_file_moved(self, pid: int) -> None:
        """A private file VMA moved by mremap, faulted or not, then given a neighbour whose file
        offsets run on (mapped there, mprotected to match, or moved there; the new VMA maybe
        written first, so a fault may reuse the moved one's anon_vma): 7.3+ merges, and reuses
        an anon_vma, only where the anonymous offsets run on too. An unfaulted move takes new
        ones, a faulted move keeps the old ones, so it fits again only once moved back."""
        rng = self.rng
        base = self._base(16) + 2 * PAGE
        file, off, pages = rng.choice(("f0", "f0", "f1")), rng.randrange(1, 5), rng.randint(1, 2)
        src, dest = base + 10 * PAGE, base + 2 * PAGE
        self.add(pid, {"op": "mmap", "addr": src, "len": pages * PAGE, "prot": "rw", "file": file,
                       "pgoff": off})
        if rng.random() < 0.7:
            self.add(pid, {"op": "touch", "addr": src + rng.randrange(pages) * PAGE})
        who = pid
        if rng.random() < 0.2:
            child = self.do_fork(pid)
            who = child if child is not None else pid
        fixed = ["maymove", "fixed"]
        self.add(who, {"op": "mremap", "addr": src, "len": pages * PAGE, "new_len": pages * PAGE,
                       "flags": fixed + (["dontunmap"] if rng.random() < 0.2 else []), "new_addr": dest})
        home = dest
        if rng.random() < 0.25:  # back where its anonymous offsets came from
            self.add(who, {"op": "mremap", "addr": dest, "len": pages * PAGE, "new_len": pages * PAGE,
                           "flags": fixed, "new_addr": src})
            home = src
        above = rng.random() < 0.6
        at, at_off = (home + pages * PAGE, off + pages) if above else (home - PAGE, off - 1)
        how = rng.choice(("mmap", "mprotect", "move"))
        first = {"mmap": "rw", "mprotect": rng.choice(("r", "rwx")), "move": "rw"}[how]
        where = base + 14 * PAGE if how == "move" else at
        self.add(who, {"op": "mmap", "addr": where, "len": PAGE, "prot": first, "file": file,
                       "pgoff": at_off})
        if "w" in first and rng.random() < 0.5:
            self.add(who, {"op": "touch", "addr": where})
        if how == "mprotect":
            self.add(who, {"op": "mprotect", "addr": at, "len": PAGE, "prot": "rw"})
        elif how == "move":
            self.add(who, {"op": "mremap", "addr": where, "len": PAGE, "new_len": PAGE, "flags": fixed,
                           "new_addr": at})
        self.maps(who)

    def sc_seal(self, pid: int) -> None:
        """mseal part of a VMA (6.10+; ENOSYS on 6.1): it splits off like an mprotect, and then
        refuses munmap, MAP_FIXED over it, mremap, mprotect and (read-only anonymous) discarding
        advice with EPERM, while naming, mlock and other advice still work. The seal stays for the
        rest of the script."""
        rng = self.rng
        pages = rng.randint(2, 6)
        base = self._base(pages + 8)
        self._fresh(pid, base, pages, prot=rng.choice(("rw", "r", "r")))
        lo = rng.randrange(pages)
        hi = rng.randint(lo + 1, pages)
        seal: dict[str, Any] = {"op": "mseal", "addr": base + lo * PAGE, "len": (hi - lo) * PAGE}
        r = rng.random()
        if r < 0.1:
            seal["len"] = (pages + 2) * PAGE  # past the VMA into a hole (maybe): ENOMEM
        elif r < 0.15:
            seal["addr"] += rng.randrange(1, PAGE)  # EINVAL
        elif r < 0.2 and self.limits:
            seal["max_map_count"] = rng.choice(LIMITS)
        self.add(pid, seal)
        if rng.random() < 0.6:  # the seal extended: the new piece merges with the sealed one
            way = rng.choice(("above", "below", "between", "between"))
            if way == "above" and hi < pages:
                self.add(pid, {"op": "mseal", "addr": base + hi * PAGE, "len": (pages - hi) * PAGE})
            elif way == "below" and lo > 0:
                self.add(pid, {"op": "mseal", "addr": base, "len": lo * PAGE})
            elif way == "between" and hi + 1 < pages:  # a page apart above, then the page
                # between: both merge
                self.add(pid, {"op": "mseal", "addr": base + (hi + 1) * PAGE, "len": (pages - hi - 1) * PAGE})
                self.add(pid, {"op": "mseal", "addr": base + hi * PAGE, "len": PAGE})
            elif way == "between" and lo > 1:  # the same below
                self.add(pid, {"op": "mseal", "addr": base, "len": (lo - 1) * PAGE})
                self.add(pid, {"op": "mseal", "addr": base + (lo - 1) * PAGE, "len": PAGE})
        self.maps(pid)
        sealed = {"addr": base + lo * PAGE, "len": (hi - lo) * PAGE}
        tries: list[dict[str, Any]] = [
            {"op": "munmap", **sealed}, {"op": "mprotect", **sealed, "prot": "rw"},
            {"op": "madvise", **sealed,
             "advice": rng.choice(("dontneed", "dontfork", "wipeonfork", "random"))},
            {"op": "mlock", **sealed, "onfault": True}, {"op": "mmap", **sealed, "prot": "r"},
            {"op": "mseal", "addr": base, "len": pages * PAGE},
            {"op": "munmap", "addr": base, "len": pages * PAGE},
        ]
        if self.names:
            tries.append({"op": "name", **sealed, "name": "sealed"})
        if self.mremap:
            tries.append({"op": "mremap", **sealed, "new_len": sealed["len"], "flags": ["maymove", "fixed"],
                          "new_addr": base + (pages + 2) * PAGE})
        for obj in rng.sample(tries, rng.randint(1, 3)):
            self.add(pid, obj)
        self.maps(pid)

    def sc_shared_dup(self, pid: int) -> None:
        """mremap with old_len 0 duplicates a shared mapping (EINVAL on a private one)."""
        rng = self.rng
        pages = rng.randint(1, 4)
        base = self._base(pages * 2 + 2)
        self.add(pid, {"op": "mmap", "addr": base, "len": pages * PAGE, "prot": "rw",
                       **({"share": "shared"} if rng.random() < 0.8 else {})})
        # to itself: with old_len 0 the ranges do not overlap, so the fixed move first unmaps its source
        dest = base if rng.random() < 0.2 else base + (pages + 1) * PAGE
        self.add(pid, {"op": "mremap", "addr": base, "len": 0, "new_len": rng.randint(1, pages) * PAGE,
                       "flags": ["maymove", "fixed"], "new_addr": dest})
        self.maps(pid)

    def placed_move(self, base: int, pages: int) -> dict[str, Any]:
        """An mremap of part of the accounted VMA at ``base`` (``pages`` long) that must move and
        may place the copy itself (MREMAP_MAYMOVE alone), to a size that makes it fail before it
        moves anything: past the commit limit, or past every gap of the address space (so the
        copy never lands outside the arena)."""
        rng = self.rng
        kind = rng.random()
        if kind < 0.5:
            huge = rng.randrange(OVER_COMMIT, 2 * OVER_COMMIT)
        elif kind < 0.8:
            huge = rng.randrange(300 << 30, 500 << 30)
        else:  # under the largest guest TASK_SIZE, but larger than any gap beside the arena
            huge = rng.randrange(LARGEST_TASK - ARENA_BASE + PAGE, LARGEST_TASK)
        huge &= ~(PAGE - 1)
        moved = rng.randint(1, pages - 1)
        return {"op": "mremap", "addr": base, "len": moved * PAGE, "new_len": huge, "flags": ["maymove"]}

    def sc_placed_move(self, pid: int) -> None:
        """A move the kernel would place itself, which fails first (see :meth:`placed_move`)."""
        pages = self.rng.randint(2, 4)
        base = self._base(pages)
        self._fresh(pid, base, pages)
        move = self.placed_move(base, pages)
        if self.rng.random() < 0.4:  # move_vma's map-count check comes first
            move["max_map_count"] = self.rng.choice(LIMITS)
        self.add(pid, move)
        self.maps(pid)

    def sc_refused(self, pid: int) -> None:
        """A call the kernel refuses on a VMA that is there (so the check is reached, not an
        earlier EFAULT or ENOMEM for a hole): each of the rarer errnos of each syscall."""
        rng = self.rng
        base = self._base(4)
        self._fresh(pid, base, 4)
        locked = rng.random() < 0.3
        if locked:
            self.add(pid, {"op": "mlock", "addr": base, "len": 4 * PAGE, "onfault": True})
        dest = base + 8 * PAGE
        move: dict[str, Any] = {"op": "mremap", "addr": base, "len": PAGE, "new_len": PAGE,
                                "flags": ["maymove", "fixed"], "new_addr": dest}
        choices: list[dict[str, Any]] = [
            {"op": "madvise", "addr": base, "len": PAGE, "advice": "dontneed"},  # EINVAL when locked
            {"op": "madvise", "addr": base, "len": PAGE, "advice": "wipeonfork"},
            {"op": "mprotect", "addr": base, "len": U64 - rng.randrange(ARENA_BASE), "prot": "r"},  # overflow
            {"op": "mlock", "addr": base, "len": _wrapping(rng, base)},
            {"op": "munlock", "addr": base, "len": _wrapping(rng, base)},
            {"op": "munmap", "addr": base, "len": rng.randrange(BEYOND_TASK, 1 << 63)},
            {"op": "mmap", "addr": base, "len": PAGE, "prot": "r", "file": "f0",
             "pgoff": rng.randrange(1 << 51, 1 << 52)},  # past the largest file: EOVERFLOW
        ]
        if self.mremap:
            choices += [
                {**move, "new_addr": dest + rng.randrange(1, PAGE)},  # unaligned new_addr
                {**move, "new_len": rng.randrange(BEYOND_TASK, 1 << 63)},  # past TASK_SIZE
                {**move, "flags": ["fixed"]},  # MREMAP_FIXED without MREMAP_MAYMOVE
                {**move, "flags": ["maymove", "fixed", "dontunmap"], "new_len": 2 * PAGE},  # a size change
                {**move, "new_len": 0},
                {**move, "addr": base + rng.randrange(1, PAGE)},
                {**move, "new_addr": base},  # overlapping
                {**move, "len": 8 * PAGE},  # more than the VMA (EFAULT)
            ]
        if self.names:
            choices.append({"op": "name", "addr": base, "len": PAGE, "name": rng.choice(BAD_NAMES)})
        obj = rng.choice(choices)
        if obj["op"] == "mmap" and not self.files:
            return
        self.add(pid, obj)
        self.maps(pid)

    def sc_readonly(self, pid: int) -> None:
        """A file mapped through a read-only descriptor: shared, it may never become writable
        (no VM_MAYWRITE: EACCES); private, it may (copy on write)."""
        rng = self.rng
        pages = rng.randint(1, 4)
        base = self._base(pages)
        m: dict[str, Any] = {"op": "mmap", "addr": base, "len": pages * PAGE, "file": "f0", "readonly": True,
                             "prot": rng.choice(("r", "rx", "rw")), "pgoff": rng.randrange(8)}
        if rng.random() < 0.7:
            m["share"] = "shared"
        self.add(pid, m)
        self.add(pid, {"op": "mprotect", "addr": base, "len": pages * PAGE,
                       "prot": rng.choice(("rw", "w", "rx"))})
        self.maps(pid)

    def sc_fork_chain(self, pid: int) -> None:
        """Fork, and fork again in the child; the child moves pages it never touched (their ptes are
        old) and changes the VMAs it shares with its parent."""
        rng = self.rng
        pages = rng.randint(2, 5)
        base = self._base(pages * 2 + 2)
        self._fresh(pid, base, pages, faulted=True)
        if rng.random() < 0.2:  # nothing to copy: every VMA is MADV_DONTFORK
            self.add(pid, {"op": "madvise", "addr": 0, "len": REACH, "advice": "dontfork"})
        child = self.do_fork(pid)
        if child is None:
            return
        grandchild = self.do_fork(child) if rng.random() < 0.7 else None
        who = grandchild if grandchild is not None else child
        if self.mremap:
            self.add(who, {"op": "mremap", "addr": base, "len": pages * PAGE, "new_len": pages * PAGE,
                           "flags": ["maymove", "fixed"] + (["dontunmap"] if rng.random() < 0.5 else []),
                           "new_addr": base + (pages + 1) * PAGE})
        else:
            self.add(who, {"op": "mprotect", "addr": base, "len": PAGE, "prot": "r"})
        self.maps(who)
        if rng.random() < 0.5:
            self.add(who, {"op": "exit"})
            self.alive.remove(who)

    def sc_eof(self, pid: int) -> None:
        """A file mapping that ends past its file's end, above the window: populating it stops at
        the end of the file (MAP_POPULATE and mremap ignore that; mlock says ENOMEM). Unmapped at
        the end: a touch there would be SIGBUS."""
        rng = self.rng
        inside = rng.randint(0, 2)
        pages = inside + rng.randint(1, 3)
        prot = rng.choice(("r", "rw"))
        m: dict[str, Any] = {"op": "mmap", "addr": FAR, "len": pages * PAGE, "prot": prot,
                             "file": rng.choice(("f0", "f1")), "pgoff": FILE_PAGES - inside}
        if rng.random() < 0.5:
            m["share"] = "shared"
        if rng.random() < 0.4:
            m["populate"] = True
            if rng.random() < 0.5:  # populated again: a second touch of the same page-cache pages
                self.add(pid, dict(m))
        self.add(pid, m)
        step = rng.random()
        if step < 0.4:
            self.add(pid, {"op": "mlock", "addr": FAR, "len": pages * PAGE})
        elif step < 0.7:  # a locked private read-only mapping made writable is write-faulted at once
            self.add(pid, {"op": "mlock", "addr": FAR, "len": pages * PAGE, "onfault": True})
            self.add(pid, {"op": "mprotect", "addr": FAR, "len": pages * PAGE, "prot": "rw"})
        elif self.mremap:  # a locked mapping grown in place is populated
            self.add(pid, {"op": "mlock", "addr": FAR, "len": inside * PAGE or PAGE, "onfault": True})
            self.add(pid, {"op": "mremap", "addr": FAR, "len": pages * PAGE, "new_len": (pages + 2) * PAGE,
                           "flags": []})
        self.maps(pid)
        self.add(pid, {"op": "munmap", "addr": FAR, "len": FAR_SIZE})

    def sc_commit(self, pid: int) -> None:
        """Requests past the commit limit (RAM + swap) of a private writable mapping: mprotect
        adding write, mremap growing in place or moving to a larger size."""
        rng = self.rng
        base = self._base(4)
        huge = rng.randrange(OVER_COMMIT, 2 * OVER_COMMIT) & ~(PAGE - 1)
        step = rng.random()
        if step < 0.4:
            m = {"op": "mmap", "addr": FAR, "len": huge, "prot": "r"}
            if rng.random() < 0.3:
                m["noreserve"] = True  # never charged: the mprotect succeeds
            self.add(pid, m)
            self.add(pid, {"op": "mprotect", "addr": FAR, "len": huge, "prot": "rw"})
            self.add(pid, {"op": "munmap", "addr": FAR, "len": huge})
        elif step < 0.7:
            self.add(pid, {"op": "mmap", "addr": FAR, "len": PAGE, "prot": "rw"})
            self.add(pid, {"op": "mremap", "addr": FAR, "len": PAGE, "new_len": huge, "flags": []})
            self.add(pid, {"op": "munmap", "addr": FAR, "len": PAGE})
        else:
            self.add(pid, {"op": "mmap", "addr": base, "len": PAGE, "prot": "rw"})
            self.add(pid, {"op": "mremap", "addr": base, "len": PAGE, "new_len": huge,
                           "flags": ["maymove", "fixed"], "new_addr": FAR})
        self.maps(pid)

    def sc_map_count(self, pid: int) -> None:
        """Start from an empty arena, make a known number of VMAs, and run one op with
        vm.max_map_count just below, at and just above what it needs."""
        rng = self.rng
        self.add(pid, {"op": "munmap", "addr": 0, "len": REACH})
        count = rng.randint(1, 5)
        for i in range(count - 1):  # one-page VMAs that cannot merge (a page apart)
            self.add(pid, {"op": "mmap", "addr": (HOT + 2 * i) * PAGE, "len": PAGE, "prot": "r"})
        base = self._base(8) % (HOT * PAGE - 8 * PAGE)
        self._fresh(pid, base, 6, named=rng.random() < 0.5, faulted=False)
        # (op, VMAs it needs past `count`): one split, two splits, a new VMA, a move
        kind = rng.choice(("mprotect", "madvise", "name", "mlock", "munlock", "munmap", "mmap", "mmap_inside")
                          + (("mremap", "mremap_many") if self.mremap else ()))
        if kind == "mremap_many":  # 6.17+: every DONTUNMAP copy of a multi-VMA move adds a VMA,
            # and each move checks the headroom again
            for i in range(count - 1, 4):
                self.add(pid, {"op": "mmap", "addr": (HOT + 2 * i) * PAGE, "len": PAGE, "prot": "r"})
            count = 5
        # around where the op starts to fail: mmap when the count passes the limit, a split when
        # it reaches it (the second split of two one later), mremap_to 5 below it
        margin = rng.choice(MARGINS.get(kind, (-1, 0, 1, 2)))
        obj: dict[str, Any] = {"addr": base + PAGE * rng.choice((0, 1, 2)),
                               "len": PAGE * rng.choice((1, 2, 4))}
        if kind == "mprotect":
            obj.update(op="mprotect", prot="r")
        elif kind == "madvise":
            obj.update(op="madvise", advice=rng.choice(("dontfork", "random", "wipeonfork")))
        elif kind == "name":
            obj.update(op="name", name="limit") if self.names else obj.update(op="mprotect", prot="")
        elif kind == "mlock":
            obj.update(op="mlock", onfault=True)
        elif kind == "munlock":
            self.add(pid, {"op": "mlock", "addr": base, "len": 6 * PAGE, "onfault": True})
            obj.update(op="munlock")
        elif kind == "munmap":  # a hole in the middle: the only munmap that needs a VMA more
            obj.update(op="munmap", addr=base + PAGE * rng.choice((1, 2)), len=PAGE * rng.choice((1, 2)))
        elif kind == "mmap":
            obj.update(op="mmap", addr=(HOT + 20) * PAGE, prot="rw")
        elif kind == "mmap_inside":
            obj.update(op="mmap", prot=rng.choice(("rw", "r")))
        elif kind == "mremap_many":  # the 6-page VMA and the four above it, to far above them
            length = (HOT + 7) * PAGE - base
            obj = {"op": "mremap", "addr": base, "len": length, "new_len": length,
                   "flags": ["maymove", "fixed", "dontunmap"], "new_addr": (HOT + 24) * PAGE}
            margin = rng.choice((4, 5, 6))
        elif rng.random() < 0.7:
            obj.update(op="mremap", new_len=obj["len"], new_addr=(HOT + 24) * PAGE,
                       flags=["maymove", "fixed"] + (["dontunmap"] if rng.random() < 0.5 else []))
            margin = rng.choice((4, 5, 6))
        else:  # move_vma's own check (3 below the limit): a move the kernel places, failing anyway
            obj = self.placed_move(base, 6)
            margin = rng.choice((2, 3, 4))
        obj["max_map_count"] = max(0, count + margin)
        self.add(pid, obj)
        self.maps(pid)

    def crowd(self, pid: int) -> None:
        """More VMAs than one chunk of the model's index holds, above the window: one VMA past a
        full chunk splits it (insert), a later chunk filled to the brim is split by a split VMA;
        then ops across the seam between chunks and anywhere, a fork, every VMA merged at once,
        and all unmapped."""
        rng = self.rng
        for i in range(CROWD):
            self.add(pid, {"op": "mmap", "addr": FAR + i * PAGE, "len": PAGE, "prot": "r" if i % 2 else "rw"})
        last = FAR + CROWD * PAGE  # the second chunk's last VMA: changing its middle splits the chunk
        self.add(pid, {"op": "mmap", "addr": last, "len": 4 * PAGE, "prot": "x"})
        self.add(pid, {"op": "mprotect", "addr": last + PAGE, "len": PAGE, "prot": "r"})
        size = (CROWD + 4) * PAGE
        seam = FAR + CHUNK * PAGE  # the first VMA of the second chunk
        self.add(pid, {"op": "mprotect", "addr": seam, "len": PAGE, "prot": "x"})
        self.add(pid, {"op": "mprotect", "addr": seam - 2 * PAGE, "len": 5 * PAGE, "prot": "rw"})
        for _ in range(rng.randint(2, 6)):
            obj = {"op": "mprotect", "addr": FAR + rng.randrange(CROWD) * PAGE,
                   "len": rng.randint(1, 8) * PAGE, "prot": "rw"}
            if rng.random() < 0.5:
                obj = {"op": "munmap", "addr": obj["addr"], "len": obj["len"]}
            self.add(pid, obj)
        self.maps(pid)
        if rng.random() < 0.5:
            child = self.do_fork(pid)
            if child is not None:
                self.add(child, {"op": "mprotect", "addr": FAR, "len": size, "prot": "r"})
                self.maps(child)
        self.add(pid, {"op": "mprotect", "addr": FAR, "len": size, "prot": "r"})
        self.add(pid, {"op": "mprotect", "addr": FAR + 7 * PAGE, "len": PAGE, "prot": "rw"})
        self.maps(pid)
        self.add(pid, {"op": "munmap", "addr": FAR, "len": FAR_SIZE})


#: Chance that a step of a script is a scenario rather than one random op.
SCENARIO_RATE = 0.06
#: random_script's arguments for scripts run on the running kernel (difftest --host): no names
#: (hosts lack CONFIG_ANON_VMA_NAME), no mremap (6.17 reordered its checks), nothing that needs
#: the oracle's own limits.
HOST_KWARGS: dict[str, bool] = {"names": False, "mremap": False, "limits": False}
#: One script in this many (by seed) builds a crowd of VMAs.
CROWD_EVERY = 500


class OpStream:
    """The random ops (no scenarios, no limits of one machine) as an endless stream of script
    lines, for runs of any length (``anonvma soak``).

    :param rng: the source of randomness (the stream is the same for the same state).
    :param files, names, mremap, fork: as for :func:`random_script`.
    :param window: ops touch only [0, window) of the arena (bytes, a page multiple).
    :param hot_pages: most ops aim at the first ``hot_pages`` pages.
    """

    def __init__(self, rng: random.Random, files: bool = True, names: bool = True, mremap: bool = True,
                 fork: bool = True, window: int = WINDOW, hot_pages: int = HOT) -> None:
        self._builder = _Builder(rng, files, names, mremap, fork, False, window, hot_pages)

    @property
    def alive(self) -> list[int]:
        """The script processes alive after the lines handed out so far."""
        return self._builder.alive

    def next_ops(self) -> list[dict[str, Any]]:
        """The next op, sometimes followed by a ``maps`` op (one or two lines)."""
        lines = self._builder.lines
        lines.clear()
        while not lines:
            self._builder.random_op()
        return list(lines)


def random_script(seed: int, length: Optional[int] = None, files: bool = True,
                  names: bool = True, mremap: bool = True, fork: bool = True,
                  limits: bool = True, scenarios: bool = True) -> list[Op]:
    """One random script, the same for the same arguments.

    :param length: about how many ops (a scenario may end a few past it).
    :param files: allow file mappings (labels ``f0``, ``f1``).
    :param names: allow ``name`` ops (turn off to compare with a kernel that cannot name).
    :param mremap: allow ``mremap`` ops (turn off for kernels whose mremap differs from 6.1's:
        6.17 reordered its checks, e.g. an overlapping fixed move is EINVAL before EFAULT).
    :param fork: allow ``fork`` and ``exit`` (turn off for kernels after 6.1 whose vma_merge
        also merges VMAs whose anon_vmas came from a fork, which 6.1 does not).
    :param limits: allow what depends on the oracle guest's own limits: the ``max_map_count``
        field (the oracle alone honours it) and private writable requests past its RAM (turn
        off for the running kernel, whose commit limit is another machine's).
    :param scenarios: allow scenarios (runs of ops that set up rare states).
    """
    rng = random.Random(seed)
    length = length if length is not None else rng.randint(8, 40)
    b = _Builder(rng, files, names, mremap, fork, limits)
    if scenarios and seed % CROWD_EVERY == CROWD_EVERY // 2:
        b.crowd(0)
    while len(b.lines) < length:
        if scenarios and rng.random() < SCENARIO_RATE:
            b.scenario()
        else:
            b.random_op()
    for pid in b.alive:
        b.maps(pid)
    return _checked(b.lines)


def _checked(lines: list[dict[str, Any]]) -> list[Op]:
    """Round-trip through the parser: what we generate is exactly what a script file would hold."""
    import json

    ops = parse_script("".join(json.dumps(obj) + "\n" for obj in lines))
    return parse_script(script_text(ops))


def random_scripts(count: int, seed: int = 0, **kwargs: Any) -> list[list[Op]]:
    """``count`` scripts with seeds ``seed``, ``seed + 1``, ..."""
    return [random_script(seed + i, **kwargs) for i in range(count)]
