"""The running kernel: name this process's anonymous memory (:mod:`anonvma.live.naming`).

Raw syscalls are in :mod:`anonvma.live.syscalls`. Nothing here probes the kernel at import time.
"""

from anonvma.live.errors import AnonNameUnsupportedError, InvalidAnonNameError, InvalidRangeError
from anonvma.live.naming import (
    name_buffer,
    name_mmap,
    named_mmap,
    set_anon_name,
    supported,
    validate_name,
    validate_range,
)

__all__ = [
    "AnonNameUnsupportedError",
    "InvalidAnonNameError",
    "InvalidRangeError",
    "name_buffer",
    "name_mmap",
    "named_mmap",
    "set_anon_name",
    "supported",
    "validate_name",
    "validate_range",
]
