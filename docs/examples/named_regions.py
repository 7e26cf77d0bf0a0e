"""A program that names its memory: three private anonymous regions, named with prctl(PR_SET_VMA_ANON_NAME).

    python3 named_regions.py [FILE]

Maps a 64 MiB cache, a 32 MiB arena (half of it written at once) and a 4 MiB ring buffer (never
written), names them ``demo:cache``, ``demo:arena``, ``demo:ring`` (``[anon:demo:cache]`` in
/proc/PID/maps), fills the cache 8 MiB at a time every 0.25 s, then holds everything for 1 s,
or until FILE exists when given. Needs a kernel with CONFIG_ANON_VMA_NAME (the oracle kernels:
``anonvma run -- python3 named_regions.py``); elsewhere prctl fails with EINVAL and the program
says so. Plain ctypes: no anonvma import.
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


def named(name: str, size: int) -> int:
    """The address of a new private anonymous mapping of ``size`` bytes named ``name``."""
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    regions.append(region)  # kept: a collected mmap object unmaps its memory
    addr = ctypes.addressof(ctypes.c_char.from_buffer(region))
    if libc.prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, size, name.encode()) != 0:
        err = ctypes.get_errno()
        sys.exit(f"prctl(PR_SET_VMA_ANON_NAME, {name!r}): {os.strerror(err)}"
                 + (" (this kernel lacks CONFIG_ANON_VMA_NAME)" if err == 22 else ""))
    return addr


regions: list = []
cache, arena, ring = named("demo:cache", 64 * MiB), named("demo:arena", 32 * MiB), named("demo:ring", 4 * MiB)
ctypes.memset(arena, 1, 16 * MiB)           # write pages: they become resident (RSS)
print(f"pid {os.getpid()}: named 64 MiB, 32 MiB, 4 MiB", flush=True)
for step in range(8):                       # the cache fills, 8 MiB every 0.25 s
    ctypes.memset(cache + step * 8 * MiB, 1, 8 * MiB)
    time.sleep(0.25)
if len(sys.argv) > 1:
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.05)
else:
    time.sleep(1)
