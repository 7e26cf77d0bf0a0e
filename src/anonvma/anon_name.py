"""What Linux checks in a PR_SET_VMA_ANON_NAME request before it looks at any VMA.

kernel/sys.c prctl_set_vma copies the name (strndup_user, at most 80 bytes with the NUL) and
checks each byte (is_valid_name_char); mm/madvise.c madvise_set_anon_name then checks the
range. The name is checked first. These rules are the same in every kernel since 5.17; the
model (:mod:`anonvma.model`) and the live API (:mod:`anonvma.live`) both apply them from here.
"""

from __future__ import annotations

import errno
import operator
from typing import Optional, Union

#: kernel/sys.c ANON_VMA_NAME_MAX_LEN: the copy's size including the NUL.
ANON_VMA_NAME_MAX_LEN = 80
#: kernel/sys.c is_valid_name_char: printable ASCII except these.
FORBIDDEN_CHARS = "\\`$[]"
PAGE_SIZE = 4096
ULONG_MAX = (1 << 64) - 1

NameArg = Union[str, bytes, bytearray, None]
#: is_valid_name_char's bytes
VALID_BYTES = bytes(c for c in range(0x20, 0x7F) if chr(c) not in FORBIDDEN_CHARS)


class InvalidAnonNameError(OSError, ValueError):
    """The name breaks the rules of kernel/sys.c prctl_set_vma: EINVAL.

    :ivar name: the rejected name as given.
    :ivar index: index of the offending byte (``None`` for a length error).
    """

    def __init__(self, name: object, message: str, index: Optional[int] = None) -> None:
        super().__init__(errno.EINVAL, message)
        self.name = name
        self.index = index


class InvalidRangeError(OSError, ValueError):
    """The address range breaks madvise_set_anon_name's checks (unaligned, overflow, wrap): EINVAL."""

    def __init__(self, addr: int, length: int, message: str) -> None:
        super().__init__(errno.EINVAL, message)
        self.addr = addr
        self.length = length


def name_bytes(name: Union[str, bytes, bytearray]) -> bytes:
    """The bytes a C caller would pass for ``name``: a ``str`` as UTF-8, bytes as they are.

    :raises TypeError: neither str nor bytes.
    """
    if isinstance(name, str):
        return name.encode("utf-8", "surrogatepass")
    if isinstance(name, (bytes, bytearray)):
        return bytes(name)
    raise TypeError(f"an anon name must be str, bytes or None, not {type(name).__name__}")


def check_anon_name(name: Union[str, bytes, bytearray]) -> bytes:
    """The name as the kernel stores it, or EINVAL: cut at the first NUL (the copy is a C
    string), then fewer than 80 bytes, then every byte in 0x20..0x7e but ``\\ ` $ [ ]``.

    :raises InvalidAnonNameError: naming the length, or the offending byte and its index.
    :raises TypeError: ``name`` is neither str nor bytes.
    """
    raw = name.encode("utf-8", "surrogatepass") if isinstance(name, str) else name_bytes(name)
    nul = raw.find(0)
    if nul >= 0:
        raw = raw[:nul]
    if len(raw) >= ANON_VMA_NAME_MAX_LEN:
        raise InvalidAnonNameError(
            name, f"anon name is {len(raw)} bytes long; Linux allows at most "
                  f"{ANON_VMA_NAME_MAX_LEN - 1} (80 including the NUL)")
    if not raw.translate(None, VALID_BYTES):  # every byte valid (checked in C: a hot path)
        return raw
    for index, code in enumerate(raw):
        if code in VALID_BYTES:
            continue
        why = ("is one of the forbidden \\ ` $ [ ]" if 0x20 <= code <= 0x7E
               else "is not printable ASCII (0x20..0x7e)")
        shown = repr(chr(code)) if 0x20 <= code <= 0x7E else f"byte 0x{code:02x}"
        raise InvalidAnonNameError(name, f"invalid character {shown} at index {index} of anon "
                                         f"name {name!r}: it {why}", index)
    raise AssertionError("unreachable: translate() found an invalid byte")


def check_range(addr: int, length: int) -> int:
    """madvise_set_anon_name's (and madvise's) range checks; returns the end (== addr: no-op).

    :raises InvalidRangeError: (EINVAL) a value outside 0..2**64-1, an unaligned address, a
        length that overflows when rounded to a page, or a range that wraps around.
    :raises TypeError: ``addr`` or ``length`` is not an integer (a float, a string, None).
    """
    addr, length = operator.index(addr), operator.index(length)
    if not 0 <= addr <= ULONG_MAX or not 0 <= length <= ULONG_MAX:
        raise InvalidRangeError(addr, length, f"address {addr:#x} and length {length} must be "
                                              "unsigned 64-bit values")
    if addr % PAGE_SIZE:
        raise InvalidRangeError(addr, length, f"address {addr:#x} is not page-aligned "
                                              f"(page size {PAGE_SIZE})")
    rounded = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & ULONG_MAX
    if length and not rounded:
        raise InvalidRangeError(addr, length, f"length {length:#x} overflows when rounded up to a page")
    if addr + rounded > ULONG_MAX:
        raise InvalidRangeError(addr, length, f"range {addr:#x}+{rounded:#x} wraps around the "
                                              "address space")
    return addr + rounded
