"""A program whose workers share its memory copy-on-write: what RSS counts several times and PSS once.

    python3 forked_cache.py [WORKERS]

Names a 32 MiB private anonymous region ``demo:cache`` with prctl(PR_SET_VMA_ANON_NAME), writes
all of it, then forks WORKERS (default 3) workers that only read it, so every page of it is
shared by all the processes until one writes it; each worker names and writes 4 MiB of its own
(``demo:worker``). Everything is held for 2 s. Needs a kernel with CONFIG_ANON_VMA_NAME (the
oracle kernels: ``anonvma run -- python3 forked_cache.py``). Plain ctypes: no anonvma import.
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
regions: list = []  # kept: a collected mmap object unmaps its memory


def named(name: str, size: int) -> int:
    """The address of a new private anonymous mapping of ``size`` bytes named ``name``, written."""
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    regions.append(region)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(region))
    if libc.prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, size, name.encode()) != 0:
        sys.exit(f"prctl(PR_SET_VMA_ANON_NAME, {name!r}): {os.strerror(ctypes.get_errno())}")
    ctypes.memset(addr, 1, size)
    return addr


cache = named("demo:cache", 32 * MiB)
workers = []
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
    pid = os.fork()
    if pid == 0:
        named("demo:worker", 4 * MiB)
        sum(ctypes.string_at(cache + offset, 1)[0] for offset in range(0, 32 * MiB, mmap.PAGESIZE))
        time.sleep(2)
        os._exit(0)
    workers.append(pid)
print(f"pid {os.getpid()}: 32 MiB cache shared with {len(workers)} workers", flush=True)
time.sleep(2)
for pid in workers:
    os.waitpid(pid, 0)
