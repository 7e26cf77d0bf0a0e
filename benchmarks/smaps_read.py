"""Benchmark: `anonvma show PID --json`, the whole command, on a process with 64,000 VMAs.

Times, side by side in one run, interleaved round by round, on the same child process:

- ``cat``: ``cat /proc/PID/smaps > /dev/null``, the plain read any tool pays (the kernel walks
  every VMA's page tables to print ~45 MB);
- ``anonvma_show_json``: ``anonvma show PID --json > /dev/null`` as a user runs it: interpreter
  start, imports, read, parse, group, JSON;
- ``anonvma_show_json_one_cpu``: the same pinned to one CPU with taskset (anonvma reads in a
  second thread while it parses: this shows what the second CPU gives; a special setting);
- ``psutil_command``: ``python -c "psutil.Process(PID).memory_maps(grouped=True)"``, the
  same as a whole command (if psutil is installed: the ``compare`` extra);
- in this process: ``python_read`` (``open(...).read()``), ``anonvma_read_group``
  (``procmaps.read_pid`` + ``group``) and ``psutil_memory_maps_grouped``.

Commands run with this interpreter's default settings (PYTHONDONTWRITEBYTECODE is dropped from
their environment, and a warm-up run writes the bytecode cache, as an installed package has);
the garbage collector is left as each program sets it. Wall and CPU time (user + system,
every thread) are recorded; the load average and CPU pressure before and after say how busy
the machine was (anonvma overlaps its read with its parsing on a second CPU, so a busy
machine costs it more than it costs cat). Writes JSON.

The child maps 1-page private anonymous VMAs side by side at 0x4000000000 (MAP_FIXED), with
alternating protections so they cannot merge, and dirties the writable ones. The default
vm.max_map_count is 65530, so 64,000 plus the interpreter's own ~100 fit.

Usage: ``python benchmarks/smaps_read.py [--vmas 64000] [--repeat 7] [--out results/smaps_read.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple, TypeVar

CHILD = r"""
import ctypes, sys
from anonvma.live import syscalls as s
n, base, page = int(sys.argv[1]), 0x4000000000, s.PAGE_SIZE
rw, ro = s.PROT_READ | s.PROT_WRITE, s.PROT_READ
flags = s.MAP_PRIVATE | s.MAP_ANONYMOUS | s.MAP_FIXED_NOREPLACE
for i in range(n):
    addr = s.mmap(base + i * page, page, rw if i % 2 == 0 else ro, flags)
    if i % 2 == 0:
        ctypes.memset(addr, 1, 1)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.read()
"""
PSUTIL = "import psutil, sys; psutil.Process(int(sys.argv[1])).memory_maps(grouped=True)"


def spawn(vmas: int) -> "subprocess.Popen[str]":
    """Start the child and wait until its mappings exist."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(vmas)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        child.kill()
        raise SystemExit(f"child failed to map {vmas} VMAs (exit {child.wait()})")
    return child


T = TypeVar("T")


def timed_children(fn: Callable[[], T]) -> Tuple[T, float, float]:
    """``fn()``, its wall seconds, and the CPU seconds its child processes used (all threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    value = fn()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return value, wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def user_command() -> Tuple[str, Dict[str, str]]:
    """The ``anonvma`` script beside this interpreter, and the environment a user's shell would
    give it (ours, without PYTHONDONTWRITEBYTECODE: a user's run uses the .pyc files)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return shutil.which("anonvma", path=os.path.dirname(sys.executable)) or "anonvma", env


def command(argv: List[str], env: Dict[str, str]) -> Callable[[], Tuple[float, float]]:
    """A whole command: (wall ms, CPU ms of the child, all threads) per call."""
    def run() -> Tuple[float, float]:
        _, wall, cpu = timed_children(
            lambda: subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True))
        return wall * 1000, cpu * 1000
    return run


def in_process(fn: Callable[[], object]) -> Callable[[], Tuple[float, float]]:
    """A call in this process: (wall ms, CPU ms of this process, all threads)."""
    def run() -> Tuple[float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
    return run


def busy() -> Dict[str, object]:
    """How busy the machine is: load averages and CPU pressure (avg10, %)."""
    out: Dict[str, object] = {"loadavg": list(os.getloadavg())}
    try:
        with open("/proc/pressure/cpu") as f:
            out["cpu_pressure_some_avg10"] = float(f.readline().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        pass
    return out


def write_json(path: str, result: Dict[str, object]) -> None:
    """Write a benchmark's result and say where."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmas", type=int, default=64000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", default="results/smaps_read.json")
    args = ap.parse_args(argv)

    from anonvma import procmaps

    anonvma, env = user_command()
    child = spawn(args.vmas)
    try:
        pid = child.pid
        path = f"/proc/{pid}/smaps"
        cases: Dict[str, Callable[[], Tuple[float, float]]] = {
            "cat": command(["cat", path], env),
            "anonvma_show_json": command([anonvma, "show", str(pid), "--json"], env),
        }
        if shutil.which("taskset"):  # the same on one CPU: what overlapping read and parse gains
            cases["anonvma_show_json_one_cpu"] = command(["taskset", "-c", "0", anonvma, "show", str(pid),
                                                          "--json"], env)
        try:
            import psutil
        except ImportError:
            psutil = None
        if psutil is not None:
            cases["psutil_command"] = command([sys.executable, "-c", PSUTIL, str(pid)], env)

        def plain() -> bytes:
            with open(path, "rb", buffering=0) as f:
                return f.readall()

        cases["python_read"] = in_process(plain)
        cases["anonvma_read_group"] = in_process(lambda: procmaps.group(procmaps.read_pid(pid)))
        if psutil is not None:
            proc = psutil.Process(pid)
            cases["psutil_memory_maps_grouped"] = in_process(lambda: proc.memory_maps(grouped=True))

        for run in cases.values():  # warm-up: bytecode cache, page cache
            run()
        load_before = busy()
        runs: Dict[str, List[Tuple[float, float]]] = {k: [] for k in cases}
        names = list(cases)
        for r in range(args.repeat):
            for k in names[r % len(names):] + names[:r % len(names)]:  # rotate the order
                runs[k].append(cases[k]())
        load_after = busy()
        snap = procmaps.read_pid(pid)
        size = len(plain())
    finally:
        child.stdin.close()  # type: ignore[union-attr]
        child.wait()

    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    commands = [k for k in ("cat", "anonvma_show_json", "anonvma_show_json_one_cpu", "psutil_command")
                if k in wall]
    inside = [k for k in ("python_read", "anonvma_read_group", "psutil_memory_maps_grouped") if k in wall]
    result = {
        "benchmark": "smaps_read",
        "vmas_in_child": args.vmas,
        "vmas_parsed": len(snap.vmas),
        "smaps_bytes": size,
        "repeat": args.repeat,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "settings": "default interpreter settings; bytecode cached; PYTHONDONTWRITEBYTECODE dropped "
                    "from the commands' environment",
        "busy_before": load_before,
        "busy_after": load_after,
        "ms_median_wall": wall,
        "ms_median_cpu": cpu,
        "ms_all_wall_cpu": runs,
        "ratio_to_cat_wall": {k: wall[k] / wall["cat"] for k in commands},
        "ratio_to_cat_cpu": {k: cpu[k] / cpu["cat"] for k in commands},
        "ratio_to_python_read_wall": {k: wall[k] / wall["python_read"] for k in inside},
    }
    print(f"{len(snap.vmas)} VMAs, smaps {size / 1e6:.1f} MB, median of {args.repeat} "
          f"(load {load_before['loadavg'][0]:.2f} -> {load_after['loadavg'][0]:.2f}):")
    print("  whole commands              wall ms  x cat     CPU ms  x cat")
    for k in commands:
        print(f"  {k:26s} {wall[k]:8.1f}  {wall[k] / wall['cat']:5.2f}  {cpu[k]:9.1f}  "
              f"{cpu[k] / cpu['cat']:5.2f}")
    print("  in this process             wall ms  x read    CPU ms")
    for k in inside:
        print(f"  {k:26s} {wall[k]:8.1f}  {wall[k] / wall['python_read']:5.2f}  {cpu[k]:9.1f}")
    if "psutil_command" in wall:
        ratio = wall["psutil_command"] / wall["anonvma_show_json"]
        print(f"  psutil command / anonvma show --json: {ratio:.2f}x")
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
