"""Run inside the oracle kernel: name memory with anonvma.live, read it back with `anonvma show`.

Prints one JSON object on stdout: what naming did (including the errors the kernel gave) and
what `anonvma show` printed for this process, as JSON and as a table, read by a separate
process so it goes through /proc/PID/smaps like any user's would.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import subprocess
import sys

from anonvma import live

PAGE = mmap.PAGESIZE
#: glibc's mallopt parameter for the size from which malloc maps a block of its own (malloc.h).
M_MMAP_THRESHOLD = -3


def pin_mmap_threshold() -> None:
    """Make glibc map every block of 128 KiB or more on its own. Left alone, glibc raises the
    threshold each time such a block is freed (compiling a module with no .pyc frees large ones),
    and the bytearray below then comes from the heap, whose VMA maps show as [heap], never by
    its name (a clean clone in CI, where no .pyc existed yet, hit that)."""
    ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, ctypes.c_int(128 * 1024))


def show(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "anonvma", "show", str(os.getpid()), *args],
                          capture_output=True, text=True, check=False)


def main() -> None:
    out: dict = {"supported": live.supported()}
    keep = []  # hold the mappings until show has read them

    heap = live.named_mmap(4 * PAGE, "anonvma-test heap")
    for i in range(3):
        heap[i * PAGE] = 1
    keep.append(heap)

    m = mmap.mmap(-1, 2 * PAGE, flags=mmap.MAP_PRIVATE)
    m[0] = 1
    out["name_mmap"] = live.name_mmap(m, "anonvma-test mmap")
    keep.append(m)

    pin_mmap_threshold()
    # large enough for its own mapping, so whole pages exist in it: glibc maps a block of its own
    # only when the heap's free top cannot hold it, and imports may leave megabytes free there
    buf = bytearray(4096 * PAGE)
    buf[::PAGE] = b"\1" * 4096
    out["name_buffer"] = live.name_buffer(buf, "anonvma-test bytearray")
    keep.append(buf)

    for tid in (101, 102, 103):
        t = live.named_mmap(2 * PAGE, f"stack_and_tls:{tid}")
        t[0] = 1
        keep.append(t)

    cleared = live.named_mmap(PAGE, "about to be cleared")
    live.name_mmap(cleared, None)  # NULL clears the name
    keep.append(cleared)

    errors = {}
    shared = mmap.mmap(-1, PAGE, flags=mmap.MAP_SHARED)
    keep.append(shared)
    for what, call in [("shared", lambda: live.name_mmap(shared, "nope")),
                       ("bad name", lambda: live.name_mmap(m, "a$b")),
                       ("too long", lambda: live.name_mmap(m, "x" * 80))]:
        try:
            call()
            errors[what] = None
        except OSError as exc:
            errors[what] = [type(exc).__name__, exc.errno]
    out["errors"] = errors

    with open("/proc/self/maps") as f:
        out["maps"] = f.read()
    js = show("--json")
    folded = show("--json", "--fold", "--sort", "count")
    table = show()
    out["show"] = {"rc": js.returncode, "stderr": js.stderr, "json": json.loads(js.stdout or "null")}
    out["fold"] = {"rc": folded.returncode, "json": json.loads(folded.stdout or "null")}
    out["table"] = {"rc": table.returncode, "stdout": table.stdout}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
