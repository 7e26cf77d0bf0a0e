"""A program that names its memory with anonvma.live, falling back to the registry where the
kernel cannot keep names (docs/live.md).

    python3 names_fallback.py [SECONDS]

Names a 256 KiB ``named_mmap`` ("cache", 40 of its 64 pages written), the pages of a 1 MiB
``bytearray`` ("arena") and a 48-page mapping ("pool"), then 16 pages in its middle again
("middle"); prints its pid and how each name was kept, then sleeps SECONDS (default 60) so that
``anonvma show PID`` can read it; half-way it unmaps the 48-page mapping with a plain
``close()``, behind the registry's back. On a kernel with CONFIG_ANON_VMA_NAME
(``anonvma run -- python3 names_fallback.py``) the kernel keeps the names; elsewhere the
process's registry does.
"""

import mmap
import os
import sys
import time

from anonvma import live

PAGE = mmap.PAGESIZE

cache = live.named_mmap(64 * PAGE, "cache", fallback=True)
cache[:40 * PAGE] = b"c" * (40 * PAGE)
arena = bytearray(b"a" * (1 << 20))
live.name_buffer(arena, "arena", fallback=True)
pool = mmap.mmap(-1, 48 * PAGE, flags=mmap.MAP_PRIVATE)
pool[:] = b"p" * (48 * PAGE)
base, _ = live.name_mmap(pool, "pool", fallback=True)
live.set_anon_name(base + 16 * PAGE, 16 * PAGE, "middle", fallback=True)
kept = "by the kernel" if live.supported() else "in the anonvma registry (the kernel cannot name)"
print(f"pid {os.getpid()}: named cache, arena, pool, middle {kept}", flush=True)
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60
time.sleep(seconds / 2)
pool.close()  # unmapped behind the registry's back: readers drop "pool" and "middle"
print(f"pid {os.getpid()}: unmapped pool", flush=True)
time.sleep(seconds / 2)
