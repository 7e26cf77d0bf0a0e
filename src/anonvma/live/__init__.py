"""The running kernel: name this process's anonymous memory (:mod:`anonvma.live.naming`).

Raw syscalls are in :mod:`anonvma.live.syscalls`. Nothing here probes the kernel at import time.
Where the kernel cannot name memory, ``fallback=True`` keeps names in this process's registry
(:mod:`anonvma.live.registry`).

The names below are imported on first use (PEP 562): readers of registries (``anonvma show``)
import :mod:`anonvma.live.registry.loading` without loading the syscall layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anonvma.live.errors import AnonNameUnsupportedError, InvalidAnonNameError, InvalidRangeError
    from anonvma.live.naming import (
        RegisteredMmap,
        name_buffer,
        name_mmap,
        named_mmap,
        set_anon_name,
        supported,
        validate_name,
        validate_range,
    )
    from anonvma.live.registry.loading import RegistryWarning

#: public name -> the module that defines it
_WHERE = {
    "AnonNameUnsupportedError": "errors", "InvalidAnonNameError": "errors", "InvalidRangeError": "errors",
    "RegisteredMmap": "naming", "name_buffer": "naming", "name_mmap": "naming", "named_mmap": "naming",
    "set_anon_name": "naming", "supported": "naming", "validate_name": "naming",
    "validate_range": "naming", "RegistryWarning": "registry.loading",
}

__all__ = [
    "AnonNameUnsupportedError", "InvalidAnonNameError", "InvalidRangeError", "RegisteredMmap",
    "RegistryWarning", "name_buffer", "name_mmap", "named_mmap", "set_anon_name", "supported",
    "validate_name", "validate_range",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'anonvma.live' has no attribute {name!r}")
    return getattr(importlib.import_module(f"anonvma.live.{where}"), name)
