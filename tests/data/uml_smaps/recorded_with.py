"""Run inside the oracle kernel to record parent.smaps and child.smaps (arena entries only).

Usage (from the repo root): anonvma's oracle boots it, e.g.
    python -c "from anonvma.oracle.boot import boot_python; from anonvma.oracle.build import require_kernel;
               boot_python(require_kernel().path, ['tests/data/uml_smaps/recorded_with.py', 'OUTDIR'])"
"""

import ctypes
import os
import sys

from anonvma.live import syscalls as s

ARENA = 0x4000000000
PAGE = 4096
FIXED = s.MAP_PRIVATE | s.MAP_ANONYMOUS | s.MAP_FIXED


def arena_smaps() -> str:
    """The entries of /proc/self/smaps that lie in the arena."""
    keep, on = [], False
    with open("/proc/self/smaps") as f:
        for line in f.read().splitlines():
            head = line.split(" ", 1)[0]
            if "-" in head and all(c in "0123456789abcdef-" for c in head):
                on = ARENA <= int(head.split("-")[0], 16) < ARENA + (1 << 36)  # not ld.so at 0x40000000
            if on:
                keep.append(line)
    return "\n".join(keep) + "\n"


def main(outdir: str) -> None:
    s.mmap(ARENA, 4 * PAGE, 3, FIXED)
    s.prctl_set_vma_anon_name(ARENA + PAGE, PAGE, b"hello world")
    for i in range(4):
        ctypes.c_char.from_address(ARENA + i * PAGE).value = b"x"
    s.mmap(ARENA + 8 * PAGE, 2 * PAGE, 1, FIXED)
    _ = ctypes.c_char.from_address(ARENA + 8 * PAGE).value  # a read fault
    s.madvise(ARENA + 8 * PAGE, PAGE, s.MADV["dontfork"])
    pid = os.fork()
    if pid == 0:
        with open(os.path.join(outdir, "child.smaps"), "w") as f:
            f.write(arena_smaps())
        os._exit(0)
    os.waitpid(pid, 0)
    with open(os.path.join(outdir, "parent.smaps"), "w") as f:
        f.write(arena_smaps())


if __name__ == "__main__":
    main(sys.argv[1])
