"""A faithful model of Linux process address spaces with named anonymous VMAs, per release.

``from anonvma.model import Mm``; ``Mm("refcount", linux="6.1.192")``. See :class:`anonvma.model.mm.Mm`
for the syscalls, :mod:`anonvma.releases` for the releases and :mod:`anonvma.model.kernel` for
the rules that differ between them.
"""

from anonvma.model.kernel import Kernel, get_kernel
from anonvma.model.mm import Machine, Mm
from anonvma.model.names import AnonVmaName, NameCounters, RefcountStrategy, StrdupStrategy, UseAfterFree
from anonvma.model.vma import Vma

__all__ = ["Mm", "Machine", "Vma", "Kernel", "get_kernel", "AnonVmaName", "NameCounters",
           "RefcountStrategy", "StrdupStrategy", "UseAfterFree"]
