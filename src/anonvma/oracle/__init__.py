"""The oracle: User-Mode Linux kernels of every release in :mod:`anonvma.releases`, built with
CONFIG_ANON_VMA_NAME, cached and booted.

:mod:`anonvma.oracle.build` fetches each release's Debian source package, builds the two variants
of each (``refcount``: the kernel as is; ``strdup``: ``dup_anon_vma_name`` copies
the string) and caches them under ``$XDG_CACHE_HOME/anonvma/oracle``; :mod:`anonvma.oracle.boot`
boots one with the host's file system as root (hostfs) and runs a command inside, in a process
group it always kills (:mod:`anonvma.oracle.procgroup`); :mod:`anonvma.oracle.pool` runs many ops
scripts on several guests at once and :mod:`anonvma.oracle.run` is its simple front. Nothing here
probes or builds anything at import time.
"""

from anonvma.oracle.build import (
    VARIANTS,
    KernelBuild,
    OracleBuildError,
    OracleMissingError,
    build_kernel,
    cache_dir,
    cached_kernels,
    find_kernel,
    require_kernel,
)

__all__ = [
    "VARIANTS",
    "KernelBuild",
    "OracleBuildError",
    "OracleMissingError",
    "build_kernel",
    "cache_dir",
    "cached_kernels",
    "find_kernel",
    "require_kernel",
]
