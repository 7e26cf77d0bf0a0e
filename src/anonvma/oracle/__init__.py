"""The oracle: User-Mode Linux 6.1 kernels built with CONFIG_ANON_VMA_NAME, cached and booted.

:mod:`anonvma.oracle.build` fetches Debian's ``linux-source-6.1``, builds the two variants
(``refcount``: the kernel as is; ``strdup``: ``dup_anon_vma_name`` copies the string) and caches
them under ``$XDG_CACHE_HOME/anonvma/oracle``; :mod:`anonvma.oracle.boot` boots one with the host's
file system as root (hostfs) and runs a command inside; :mod:`anonvma.oracle.run` runs ops scripts
there. Nothing here probes or builds anything at import time.
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
