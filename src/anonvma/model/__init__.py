"""A faithful model of Linux 6.1 process address spaces with named anonymous VMAs.

``from anonvma.model import Mm``; see :class:`anonvma.model.mm.Mm` for the syscalls.
"""

from anonvma.model.mm import Machine, Mm, check_anon_name
from anonvma.model.names import AnonVmaName, NameCounters, RefcountStrategy, StrdupStrategy

__all__ = ["Mm", "Machine", "AnonVmaName", "NameCounters", "RefcountStrategy", "StrdupStrategy",
           "check_anon_name"]
