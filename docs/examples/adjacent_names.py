"""Adjacent memory named differently, three ways: for `anonvma show --merges` (docs/budget.md).

Three regions of 4 pages, each between PROT_NONE guard pages, pages 0-1 named "demo:a" and 2-3
"demo:b": never written; written whole and then named (the halves share one anon_vma); each
half written while the halves could not share one (MADV_DONTFORK on one half). Then it sleeps
for $SLEEP seconds (default 3) so that it can be read. Plain ctypes; needs a kernel that names memory.
"""

import ctypes
import mmap
import os
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p]
PAGE = mmap.PAGESIZE
PR_SET_VMA, PR_SET_VMA_ANON_NAME = 0x53564D41, 0
MAP_FIXED, MADV_DONTFORK, MADV_DOFORK = 0x10, 10, 11
PRIVATE = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS


def region():
    guard = libc.mmap(None, 6 * PAGE, 0, PRIVATE, -1, 0)
    return libc.mmap(guard + PAGE, 4 * PAGE, mmap.PROT_READ | mmap.PROT_WRITE, PRIVATE | MAP_FIXED, -1, 0)


def name(addr, pages, text):
    if libc.prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, pages * PAGE, text) != 0:
        raise OSError(ctypes.get_errno(), f"prctl(PR_SET_VMA_ANON_NAME, {text!r})")


unwritten, together, apart = region(), region(), region()
ctypes.memset(together, 1, 4 * PAGE)
libc.madvise(apart + 2 * PAGE, 2 * PAGE, MADV_DONTFORK)
ctypes.memset(apart, 1, 4 * PAGE)
libc.madvise(apart + 2 * PAGE, 2 * PAGE, MADV_DOFORK)
for base in (unwritten, together, apart):
    name(base, 2, b"demo:a")
    name(base + 2 * PAGE, 2, b"demo:b")
print(f"pid {os.getpid()}: unwritten {unwritten + 2 * PAGE:x}, together {together + 2 * PAGE:x}, "
      f"apart {apart + 2 * PAGE:x}", flush=True)
time.sleep(float(os.environ.get("SLEEP", "3")))
