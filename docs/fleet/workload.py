"""The workload recorded in docs/fleet/record.jsonl: a memfd cache fills, 96 MiB come and go, the cache is dropped."""
import mmap, os, time
MiB = 1 << 20
fd = os.memfd_create("demo-cache")          # /memfd:demo-cache (deleted) in maps
os.ftruncate(fd, 256 * MiB)
cache = mmap.mmap(fd, 256 * MiB)
time.sleep(1)
for i in range(0, 160 * MiB, 4 * MiB):       # the cache fills: 4 MiB every 0.15 s
    cache[i:i + 4 * MiB] = b"x" * (4 * MiB)
    time.sleep(0.15)
scratch = bytearray(96 * MiB)                # 96 MiB of plain anonymous memory
time.sleep(3)
del scratch                                  # ... given back
time.sleep(2)
os.ftruncate(fd, 0)                          # the cache is dropped
time.sleep(3)
