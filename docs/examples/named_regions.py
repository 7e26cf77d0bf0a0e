"""A program that names its memory: three private anonymous regions, named with prctl(PR_SET_VMA_ANON_NAME).

    python3 named_regions.py [FILE]

Maps a 64 MiB cache (all of it touched), a 32 MiB arena (half touched) and a 4 MiB ring buffer
(untouched), names them ``demo:cache``, ``demo:arena``, ``demo:ring`` (``[anon:demo:cache]`` in
/proc/PID/maps), then holds them for 2 seconds, or until FILE exists when given. Needs a kernel
with CONFIG_ANON_VMA_NAME (the oracle kernels: ``anonvma run -- python3 named_regions.py``);
elsewhere prctl fails with EINVAL and the program says so. Plain ctypes: no anonvma import.
"""
import ctypes
import mmap
import os
import sys
import time

PR_SET_VMA, PR_SET_VMA_ANON_NAME = 0x53564D41, 0
MiB = 1 << 20
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p]


def named(name: str, size: int, touched: int) -> mmap.mmap:
    """A private anonymous mapping of ``size`` bytes named ``name``, its first ``touched`` bytes written."""
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(region))
    if libc.prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, size, name.encode()) != 0:
        err = ctypes.get_errno()
        sys.exit(f"prctl(PR_SET_VMA_ANON_NAME, {name!r}): {os.strerror(err)}"
                 + (" (this kernel lacks CONFIG_ANON_VMA_NAME)" if err == 22 else ""))
    ctypes.memset(addr, 1, touched)  # fault the pages in (no temporary copy of them)
    return region


regions = [named("demo:cache", 64 * MiB, 64 * MiB), named("demo:arena", 32 * MiB, 16 * MiB),
           named("demo:ring", 4 * MiB, 0)]
print(f"pid {os.getpid()}: named {', '.join(f'{len(r) // MiB} MiB' for r in regions)}", flush=True)
if len(sys.argv) > 1:
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.05)
else:
    time.sleep(2)
