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
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import anonvma
from anonvma import releases

#: The directory holding the ``anonvma`` package, put on PYTHONPATH for the worker.
SRC_DIR = str(Path(anonvma.__file__).resolve().parent.parent)
UML_LABEL = "UML: large constant overheads"
VARIANTS = ("refcount", "strdup")


def _worker_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_host(config: Dict[str, Any], timeout: float = 3600) -> Dict[str, Any]:
    """Run the worker as a child process of this one on the host kernel; its progress goes to stderr.

    The worker runs in its own process group, killed whole on timeout or Ctrl-C.
    :raises RuntimeError: the worker failed or timed out.
    """
    from anonvma.oracle.procgroup import run

    with tempfile.TemporaryDirectory(prefix="anonvma-bench-") as tmp:
        cfg, out = Path(tmp, "config.json"), Path(tmp, "out.json")
        cfg.write_text(json.dumps(config))
        try:
            status = run([sys.executable, "-m", "anonvma.bench.worker", str(cfg), str(out)],
                         timeout=timeout, env=_worker_env(), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the host worker did not finish within {timeout:.0f} s (killed)") from None
        if status != 0:
            raise RuntimeError(f"the host worker failed (exit {status})")
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


def _oracle_package_kernel(variant: str, linux: str) -> Optional[str]:
    """The kernel ``anonvma oracle build`` cached for ``variant`` of release ``linux``, if any."""
    from anonvma.oracle.build import find_kernel

    build = find_kernel(variant, linux=linux)
    return str(build.path) if build is not None else None


def find_kernels(options: Iterable[str] = (), linux: str = releases.DEFAULT) -> Dict[str, str]:
    """{variant: UML binary} for every oracle variant of release ``linux`` that can be had (see
    the module docstring; the options and environment name one release's kernels)."""
    found = parse_kernel_options(options)
    environ = os.environ
    env = {"refcount": environ.get("ANONVMA_ORACLE_KERNEL_REFCOUNT") or environ.get("ANONVMA_ORACLE_KERNEL"),
           "strdup": environ.get("ANONVMA_ORACLE_KERNEL_STRDUP")}
    for variant in VARIANTS:
        if variant not in found and env[variant]:
            found.update(parse_kernel_options([f"{variant}={env[variant]}"]))
        if variant not in found:
            path = _oracle_package_kernel(variant, linux)
            if path:
                found[variant] = path
    return found


def uml_mem_mb(config: Dict[str, Any]) -> int:
    """Memory for the UML guest: the populated pages (of two processes: unnamed and named are
    held at once, see :class:`anonvma.bench.worker.Twin`) plus 768 MB for the system and page
    tables."""
    from anonvma.bench.layout import PAGE_SIZE, SCENARIOS

    pages = max((SCENARIOS[s] for s in config["scenarios"]), default=0)
    biggest = max(config["counts"], default=0)
    return 768 + 2 * (biggest * pages * PAGE_SIZE >> 20) * 5 // 4


def run_uml(kernel: str, variant: str, config: Dict[str, Any], timeout: float = 3600) -> Dict[str, Any]:
    """Boot ``kernel`` (UML, host / as its root over hostfs) and run the worker inside it.

    The worker's progress goes to our stderr as it comes; the result comes back through a host
    file. The guest is killed with its whole process group after ``timeout`` seconds (a silent
    guest included), on Ctrl-C, or on any error.
    :raises RuntimeError: the guest halted without writing a result (its console output attached).
    """
    from anonvma.oracle.boot import Guest

    def progress(line: str) -> None:
        if "[worker]" in line:
            print(f"[uml {variant}] {line[line.index('[worker]') + 9:]}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="anonvma-uml-") as tmp:
        cfg, out = Path(tmp, "config.json"), Path(tmp, "out.json")
        cfg.write_text(json.dumps(config))
        argv = [os.path.realpath(sys.executable), "-m", "anonvma.bench.worker", str(cfg), str(out)]
        with Guest(Path(kernel), argv, cwd=Path(tmp), mem=f"{uml_mem_mb(config)}M") as guest:
            finished = guest.wait(timeout, on_stderr=progress)
            guest.kill()
            stderr = guest.read("stderr").splitlines()
            console = guest.read("console").splitlines()
            seconds = guest.seconds
        if not out.exists():
            tail = "\n".join((console + stderr)[-30:])
            why = f"did not finish within {timeout:.0f} s (killed)" if not finished else "gave no result"
            raise RuntimeError(f"UML kernel {kernel} ({variant}) {why}; console and stderr tail:\n{tail}")
        result: Dict[str, Any] = json.loads(out.read_text())
    if not finished or not any("wrote " in line for line in stderr):
        reason = "timed out" if not finished else "died"
        result["incomplete"] = (f"the guest {reason} before the last cell; tail: "
                                + " | ".join((console + stderr)[-6:]))
    result.update(backend=f"uml-{result['kernel']}", kernel_binary=kernel, label=UML_LABEL,
                  boot_seconds=round(seconds, 1))
    return result
