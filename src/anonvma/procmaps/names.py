"""What a maps name is (:func:`classify`) and how names fold into groups (:func:`fold`).

The closed set of kinds, in the order fs/proc/task_mmu.c show_map_vma decides them:

- ``file``: a path (``/usr/lib/libc.so.6``);
- ``deleted``: a path that ends in `` (deleted)`` (also ``/memfd:x (deleted)``, ``/dev/zero (deleted)``);
- ``anon_shmem``: ``[anon_shmem:NAME]``, named shared anonymous memory (Linux 6.2+);
- ``special``: ``[vdso]``, ``[vvar]``, ``[vsyscall]`` and any other bracketed kernel name;
- ``heap``: ``[heap]``;
- ``stack``: ``[stack]`` (and ``[stack:TID]`` of kernels before 4.5);
- ``anon_named``: ``[anon:NAME]``, named with PR_SET_VMA_ANON_NAME (5.17+, Android before);
- ``anonymous``: no name.
"""

from __future__ import annotations

from typing import Tuple

FILE, DELETED, ANON_SHMEM, SPECIAL, HEAP, STACK, ANON_NAMED, ANONYMOUS = (
    "file", "deleted", "anon_shmem", "special", "heap", "stack", "anon_named", "anonymous")
#: Every kind :func:`classify` returns.
KINDS: Tuple[str, ...] = (FILE, DELETED, ANON_SHMEM, SPECIAL, HEAP, STACK, ANON_NAMED, ANONYMOUS)

_DELETED_SUFFIX = " (deleted)"
_FOLD_SEPARATORS = frozenset(":-_+# ")
_DIGITS = "0123456789"


def classify(name: str) -> str:
    """The kind of a maps name (one of :data:`KINDS`)."""
    if not name:
        return ANONYMOUS
    if name[0] == "[":
        if name.startswith("[anon:"):
            return ANON_NAMED
        if name.startswith("[anon_shmem:"):
            return ANON_SHMEM
        if name == "[heap]":
            return HEAP
        if name == "[stack]" or name.startswith("[stack:"):
            return STACK
        return SPECIAL
    if name.endswith(_DELETED_SUFFIX):
        return DELETED
    return FILE


def anon_name(name: str) -> str | None:
    """The user-given part of ``[anon:NAME]`` / ``[anon_shmem:NAME]``; ``None`` for other names."""
    if name.endswith("]"):
        if name.startswith("[anon:"):
            return name[6:-1]
        if name.startswith("[anon_shmem:"):
            return name[12:-1]
    return None


def fold(name: str) -> str:
    """Replace a trailing decimal number in a bracketed name with ``*`` so per-thread names group.

    ``[anon:stack_and_tls:1234]`` -> ``[anon:stack_and_tls:*]``,
    ``[anon: glibc: pthread stack: 77]`` -> ``[anon: glibc: pthread stack: *]``,
    ``[stack:42]`` -> ``[stack:*]``. File paths and names without such a number are unchanged.
    """
    if len(name) < 3 or name[0] != "[" or name[-1] != "]":
        return name
    inner = name[:-1]
    stem = inner.rstrip(_DIGITS)
    if stem == inner or not stem or stem[-1] not in _FOLD_SEPARATORS:
        return name
    return stem + "*]"
