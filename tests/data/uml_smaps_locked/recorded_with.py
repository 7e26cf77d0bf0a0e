"""Run inside the oracle kernel to record parent.smaps and child.smaps (arena entries only) of
locked, read-ahead-hinted, MAP_NORESERVE and MAP_POPULATE mappings; both are read while both
processes are alive, so the locked pages are shared (Pss and Locked halved).

parent.smaps and child.smaps come from the UML 6.1.176 oracle; parent.smaps-6.12 and
child.smaps-6.12 from the UML 6.12.95 one (`boot_python(Path(KERNEL), ...)`): the same numbers,
but VM_LOCKONFAULT shows as `lf` (6.1: `??`), and 6.12 adds a `KSM:` line and pads THPeligible.

Usage (from the repo root):
    python -c "from anonvma.oracle.boot import boot_python; from anonvma.oracle.build import require_kernel;
               boot_python(require_kernel().path, ['tests/data/uml_smaps_locked/recorded_with.py', 'OUTDIR'])"
"""

import ctypes
import os
import runpy
import sys
from pathlib import Path

from anonvma.live import syscalls as s

#: The entries of /proc/self/smaps that lie in the arena (the first recorder's function).
FIRST = Path(__file__).parent.parent / "uml_smaps" / "recorded_with.py"
arena_smaps = runpy.run_path(str(FIRST))["arena_smaps"]

ARENA = 0x4000000000
PAGE = 4096
FIXED = s.MAP_PRIVATE | s.MAP_ANONYMOUS | s.MAP_FIXED
RW, R = s.PROT_READ | s.PROT_WRITE, s.PROT_READ


def main(outdir: str) -> None:
    s.mmap(ARENA, 4 * PAGE, RW, FIXED)
    s.prctl_set_vma_anon_name(ARENA + PAGE, 2 * PAGE, b"locked")
    s.mlock(ARENA + PAGE, 2 * PAGE)  # populates: two write faults
    ctypes.c_char.from_address(ARENA).value = b"x"
    s.mmap(ARENA + 8 * PAGE, 2 * PAGE, R, FIXED | s.MAP_NORESERVE)
    s.madvise(ARENA + 8 * PAGE, PAGE, s.MADV["random"])
    s.madvise(ARENA + 9 * PAGE, PAGE, s.MADV["sequential"])
    _ = ctypes.c_char.from_address(ARENA + 8 * PAGE).value  # a read fault: the zero page
    s.mmap(ARENA + 12 * PAGE, 2 * PAGE, RW, FIXED)
    s.mlock2(ARENA + 12 * PAGE, 2 * PAGE, s.MLOCK_ONFAULT)
    ctypes.c_char.from_address(ARENA + 12 * PAGE).value = b"x"
    s.mmap(ARENA + 16 * PAGE, 2 * PAGE, RW, FIXED | s.MAP_POPULATE)
    to_parent, from_child = os.pipe()
    to_child, from_parent = os.pipe()
    pid = os.fork()
    if pid == 0:
        with open(os.path.join(outdir, "child.smaps"), "w") as f:
            f.write(arena_smaps())
        os.write(from_child, b"1")
        os.read(to_child, 1)
        os._exit(0)
    os.read(to_parent, 1)
    with open(os.path.join(outdir, "parent.smaps"), "w") as f:
        f.write(arena_smaps())
    os.write(from_parent, b"1")
    os.waitpid(pid, 0)


if __name__ == "__main__":
    main(sys.argv[1])
