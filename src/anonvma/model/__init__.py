"""A faithful model of Linux process address spaces with named anonymous VMAs, per generation.

``from anonvma.model import Mm``; ``Mm("refcount", linux="6.12")``. See :class:`anonvma.model.mm.Mm`
for the syscalls and :mod:`anonvma.model.kernel` for what differs between generations.
"""

from anonvma.model.kernel import RELEASES, Kernel, get_kernel
from anonvma.model.mm import Machine, Mm
from anonvma.model.names import AnonVmaName, NameCounters, RefcountStrategy, StrdupStrategy, UseAfterFree
from anonvma.model.vma import Vma

__all__ = ["Mm", "Machine", "Vma", "Kernel", "RELEASES", "get_kernel", "AnonVmaName", "NameCounters",
           "RefcountStrategy", "StrdupStrategy", "UseAfterFree"]
