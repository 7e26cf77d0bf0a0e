"""Save /proc/PID/{maps,smaps} of a real process as a fixture folder with its expected record.

Usage: python tests/data/procmaps/save_fixture.py NAME [PID]   (default: a fresh python child)

The expected record (expected.json) is computed here by a deliberately naive reader, independent
of anonvma.procmaps: VMA count, sums of Size/Rss/Pss/Swap, and a few names with their counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def naive(smaps: str) -> dict:
    vmas, sums, names = 0, {"Size": 0, "Rss": 0, "Pss": 0, "Swap": 0}, {}
    for line in smaps.splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and not head.endswith(":"):
            vmas += 1
            parts = line.split(None, 5)
            name = parts[5] if len(parts) == 6 else ""
            names[name] = names.get(name, 0) + 1
        elif head[:-1] in sums:
            sums[head[:-1]] += int(line.split()[1])
    keep = {n: c for n, c in names.items() if n.startswith("[") or n == ""}
    return {"vmas": vmas, "total_kb": {k.lower(): v for k, v in sums.items()}, "names": keep}


def main() -> None:
    name = sys.argv[1]
    child = None
    if len(sys.argv) > 2:
        pid = int(sys.argv[2])
    else:
        child = subprocess.Popen([sys.executable, "-c", "import sys, json; sys.stdin.read()"],
                                 stdin=subprocess.PIPE)
        pid = child.pid
        import time
        time.sleep(0.5)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    os.makedirs(out, exist_ok=True)
    for kind in ("maps", "smaps"):
        with open(f"/proc/{pid}/{kind}", "rb") as f, open(os.path.join(out, kind), "wb") as g:
            g.write(f.read())
    with open(os.path.join(out, "smaps")) as f:
        expected = naive(f.read())
    expected["source"] = f"Linux {os.uname().release}, {name}"
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    if child:
        child.stdin.close()  # type: ignore[union-attr]
        child.wait()


if __name__ == "__main__":
    main()
