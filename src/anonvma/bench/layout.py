"""The VMA layout every backend builds, so the model and the real kernels fork the same thing.

VMA ``i`` starts at ``BASE + i * VMA_PAGES * 4096``, is ``VMA_PAGES`` pages long, and is mapped
``rw`` when ``i`` is even and ``rwx`` when odd: neighbours differ in vm_flags, so they never merge,
and both are writable, so every scenario can populate them with write faults. Stdlib only: the
worker imports this inside the UML oracle.
"""

from __future__ import annotations

from typing import Dict, Tuple

PAGE_SIZE = 4096
#: Pages per VMA: enough for the seed's 10-page scenario.
VMA_PAGES = 10
VMA_BYTES = VMA_PAGES * PAGE_SIZE
#: Where the VMAs start: inside UML's TASK_SIZE (0x7fc0000000) and far from glibc's mappings.
BASE = 0x4000000000
#: mm/mmap.c default sysctl_max_map_count
MAX_MAP_COUNT = 65530
#: The seed's VMA counts (4000: what Android processes rarely exceed; 65530: the limit).
DEFAULT_COUNTS: Tuple[int, ...] = (1000, 4000, 16000, 65530)
QUICK_COUNTS: Tuple[int, ...] = (200, 1000)
#: Scenario -> pages written per VMA before forking (the seed: unpopulated, 1 page, 10 pages).
SCENARIOS: Dict[str, int] = {"unpopulated": 0, "1page": 1, "10pages": 10}
#: ``none``: unnamed VMAs; ``max``: every VMA named with a 79-character name (the longest allowed).
NAMINGS: Tuple[str, ...] = ("none", "max")
STRATEGIES: Tuple[str, ...] = ("strdup", "refcount")
#: ANON_VMA_NAME_MAX_LEN - 1 (kernel/sys.c: 80 including the NUL)
NAME_LEN = 79


def vma_addr(i: int) -> int:
    """Start address of VMA ``i``."""
    return BASE + i * VMA_BYTES


def vma_prot(i: int) -> str:
    """``"rw"`` for even VMAs, ``"rwx"`` for odd ones (so neighbours never merge)."""
    return "rwx" if i & 1 else "rw"


def vma_name(i: int) -> str:
    """A distinct 79-character name for VMA ``i`` (Dave Hansen's worst case: the longest name)."""
    head = f"anonvma-bench-{i:06d}-"
    return head + "x" * (NAME_LEN - len(head))
