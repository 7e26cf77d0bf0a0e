"""Errors of the naming API: each is an ``OSError`` carrying the errno the kernel would give.

Validation errors are raised before any syscall, with the errno Linux 6.1 would have returned
(EINVAL), so code that catches ``OSError`` sees the same thing with or without the check.
"""

from __future__ import annotations

import errno

from anonvma.anon_name import InvalidAnonNameError, InvalidRangeError

__all__ = ["AnonNameUnsupportedError", "InvalidAnonNameError", "InvalidRangeError"]


class AnonNameUnsupportedError(OSError):
    """The running kernel was built without CONFIG_ANON_VMA_NAME (every PR_SET_VMA is EINVAL).

    ``str()`` is one line saying what failed and why, then :attr:`hint` on the next: what to
    do (``strerror`` is the first line alone).
    """

    def __init__(self, where: str = "", hint: str = "") -> None:
        line = "this kernel was built without CONFIG_ANON_VMA_NAME: it cannot name anonymous memory"
        super().__init__(errno.EINVAL, f"{where}: {line}" if where else line)
        self.hint = ((f"{hint}; or " if hint else "") + "boot such a kernel: Linux 5.17 or later "
                     "with CONFIG_ANON_VMA_NAME=y (see /boot/config-$(uname -r)); anonvma's UML "
                     "oracle kernel has it, but names only its own guest's memory")

    def __str__(self) -> str:
        return f"{self.strerror}\n{self.hint}"
