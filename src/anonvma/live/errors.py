"""Errors of the naming API: each is an ``OSError`` carrying the errno the kernel would give.

Validation errors are raised before any syscall, with the errno Linux 6.1 would have returned
(EINVAL), so code that catches ``OSError`` sees the same thing with or without the check.
"""

from __future__ import annotations

import errno

from anonvma.anon_name import InvalidAnonNameError, InvalidRangeError

__all__ = ["AnonNameUnsupportedError", "InvalidAnonNameError", "InvalidRangeError"]


class AnonNameUnsupportedError(OSError):
    """The running kernel was built without CONFIG_ANON_VMA_NAME (every PR_SET_VMA is EINVAL)."""

    def __init__(self, detail: str = "") -> None:
        msg = ("this kernel was built without CONFIG_ANON_VMA_NAME, so it cannot name anonymous "
               "memory (prctl(PR_SET_VMA) answers EINVAL); naming needs Linux 5.17 or later built "
               "with CONFIG_ANON_VMA_NAME=y (see /boot/config-$(uname -r)): boot such a kernel. "
               "anonvma's UML oracle kernel has it but only runs processes inside its own guest; "
               "it cannot make this host's processes name memory")
        super().__init__(errno.EINVAL, f"{msg}{': ' + detail if detail else ''}")
