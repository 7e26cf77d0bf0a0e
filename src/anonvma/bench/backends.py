"""Where the real-process worker runs: the host kernel, or a UML oracle kernel booted with hostfs.

Both run :mod:`anonvma.bench.worker` with a JSON config and read back its JSON. UML timings carry
large constant overheads (every page-table change is a host syscall), so they compare strategies
with each other, never with the host or the model.

Finding the oracle kernels, in order:

1. ``--oracle-kernel VARIANT=PATH`` (VARIANT: ``refcount`` or ``strdup``; a bare PATH is refcount);
2. ``$ANONVMA_ORACLE_KERNEL_REFCOUNT`` / ``$ANONVMA_ORACLE_KERNEL_STRDUP``
   (``$ANONVMA_ORACLE_KERNEL`` is taken for refcount);
3. the cache of :mod:`anonvma.oracle` (``anonvma oracle build``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import anonvma

#: The directory holding the ``anonvma`` package, put on PYTHONPATH for the worker.
SRC_DIR = str(Path(anonvma.__file__).resolve().parent.parent)
UML_LABEL = "UML: large constant overheads"
#: UML backs each guest VMA with host mappings of its own process, so the host's vm.max_map_count
#: (65530) is hit well before the guest's: at 65,498 guest VMAs the guest dies ("UML ran out of
#: memory on the host side"). Counts above this are lowered for UML.
UML_MAX_COUNT = 30000
VARIANTS = ("refcount", "strdup")


def _worker_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_host(config: Dict[str, Any], timeout: float = 3600) -> Dict[str, Any]:
    """Run the worker as a child process of this one on the host kernel; its progress goes to stderr."""
    with tempfile.TemporaryDirectory(prefix="anonvma-bench-") as tmp:
        cfg, out = Path(tmp, "config.json"), Path(tmp, "out.json")
        cfg.write_text(json.dumps(config))
        subprocess.run([sys.executable, "-m", "anonvma.bench.worker", str(cfg), str(out)],
                       env=_worker_env(), check=True, timeout=timeout, stdin=subprocess.DEVNULL)
        result: Dict[str, Any] = json.loads(out.read_text())
    result["backend"] = "host"
    return result


def parse_kernel_options(values: Iterable[str]) -> Dict[str, str]:
    """``["refcount=/a", "strdup=/b", "/c"]`` -> {variant: path}; a bare path is the refcount kernel.

    :raises ValueError: unknown variant, or a path that is not an executable file.
    """
    out: Dict[str, str] = {}
    for value in values:
        variant, sep, path = value.partition("=")
        if not sep:
            variant, path = "refcount", value
        if variant not in VARIANTS:
            raise ValueError(f"unknown oracle variant {variant!r} in {value!r}: "
                             "use refcount=PATH or strdup=PATH")
        if not os.access(path, os.X_OK) or not os.path.isfile(path):
            raise ValueError(f"oracle kernel {path!r} is not an executable file (a UML `linux` binary)")
        out[variant] = path
    return out


def _oracle_package_kernel(variant: str) -> Optional[str]:
    """The kernel ``anonvma oracle build`` cached for ``variant``, if it has built one."""
    from anonvma.oracle.build import find_kernel

    build = find_kernel(variant)
    return str(build.path) if build is not None else None


def find_kernels(options: Iterable[str] = ()) -> Dict[str, str]:
    """{variant: UML binary} for every oracle variant that can be had (see the module docstring)."""
    found = parse_kernel_options(options)
    environ = os.environ
    env = {"refcount": environ.get("ANONVMA_ORACLE_KERNEL_REFCOUNT") or environ.get("ANONVMA_ORACLE_KERNEL"),
           "strdup": environ.get("ANONVMA_ORACLE_KERNEL_STRDUP")}
    for variant in VARIANTS:
        if variant not in found and env[variant]:
            found.update(parse_kernel_options([f"{variant}={env[variant]}"]))
        if variant not in found:
            path = _oracle_package_kernel(variant)
            if path:
                found[variant] = path
    return found


def uml_mem_mb(config: Dict[str, Any]) -> int:
    """Memory for the UML guest: the populated pages plus 768 MB for the system and page tables."""
    from anonvma.bench.layout import PAGE_SIZE, SCENARIOS

    pages = max((SCENARIOS[s] for s in config["scenarios"]), default=0)
    biggest = max(config["counts"], default=0)
    return 768 + (biggest * pages * PAGE_SIZE >> 20) * 5 // 4


def _uml_tmpdir(fallback: str) -> str:
    """Where UML puts the file backing guest memory: tmpfs when there is one."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else fallback


def run_uml(kernel: str, variant: str, config: Dict[str, Any], timeout: float = 3600) -> Dict[str, Any]:
    """Boot ``kernel`` (UML, host / as its root over hostfs) and run the worker inside it.

    The guest's console goes to our stderr (progress); the result comes back through a host file.
    :raises RuntimeError: the guest halted without writing a result (its console output attached).
    """
    with tempfile.TemporaryDirectory(prefix="anonvma-uml-") as tmp:
        cfg, out, init = Path(tmp, "config.json"), Path(tmp, "out.json"), Path(tmp, "init.sh")
        cfg.write_text(json.dumps(config))
        python = os.path.realpath(sys.executable)
        init.write_text(
            "#!/bin/sh\n"
            "mount -t proc proc /proc\n"
            f"cd {tmp}\n"
            f"PYTHONPATH={SRC_DIR} {python} -m anonvma.bench.worker {cfg} {out}\n"
            "exec /sbin/halt -f 2>/dev/null || echo o > /proc/sysrq-trigger\n")
        init.chmod(0o755)
        cmd = [kernel, f"mem={uml_mem_mb(config)}M", "rootfstype=hostfs", "rootflags=/", "rw",
               f"init={init}", "con=null", "con0=fd:0,fd:1"]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": _uml_tmpdir(tmp)})
        console = []
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            console.append(line)
            if "[worker]" in line:
                print(f"[uml {variant}] {line[line.index('[worker]') + 9:]}", file=sys.stderr, flush=True)
            if time.monotonic() - started > timeout:
                proc.kill()
                break
        proc.wait()
        partial = bool(console) and not any("wrote " in line for line in console)
        if not out.exists():
            tail = "\n".join(console[-30:])
            raise RuntimeError(f"UML kernel {kernel} ({variant}) gave no result; console tail:\n{tail}")
        result: Dict[str, Any] = json.loads(out.read_text())
    if partial:
        result["incomplete"] = ("the guest died before the last cell; console tail: "
                                + " | ".join(console[-6:]))
    result.update(backend=f"uml-{variant}", kernel_binary=kernel, label=UML_LABEL,
                  boot_seconds=round(time.monotonic() - started, 1))
    return result
