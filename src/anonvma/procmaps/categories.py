"""Categories of memory by maps name, as Android's ``dumpsys meminfo`` counts them (``--by category``).

A table is ordered ``(category, regular expression)`` rules: the first whose expression matches
(``re.search``) the maps name, with a trailing `` (deleted)`` taken off as libmeminfo does, gives
the category; a name no rule matches is :data:`FALLBACK` (only plain anonymous memory, in the
built-in table). :data:`BUILTIN` follows libmeminfo's classification rule by rule, in its order
(AOSP system/memory/libmeminfo, androidprocheaps.cpp ExtractAndroidHeapStatsFromFile, formerly
frameworks/base core/jni/android_os_Debug.cpp load_maps), with the names other runtimes give
their memory put before its catch-all for ``[anon:``; docs/categories.md lists where each name
comes from. A user's table (:func:`load`, a TOML file) is tried before the built-in one.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Dict, List, NamedTuple, Optional, Pattern, Tuple

#: The category of a name no rule matches.
FALLBACK = "Unknown"
_DELETED = " (deleted)"

#: The built-in rules, first match wins. Category names are dumpsys's rows; ``Dalvik Heap: .LOS``
#: and the like are its "Dalvik Details" rows (dumpsys -d), one category each.
BUILTIN: Tuple[Tuple[str, str], ...] = (
    # libmeminfo androidprocheaps.cpp: HEAP_NATIVE
    ("Native Heap", r"^\[heap\]"),
    ("Native Heap", r"^\[anon:libc_malloc\]"),
    ("Native Heap", r"^\[anon:scudo:"),
    ("Native Heap", r"^\[anon:GWP-ASan"),
    # HEAP_STACK; glibc 2.41+ nptl/allocatestack.c names thread stacks " glibc: pthread stack: TID"
    # (and " glibc: pthread user stack: TID") with glibc.mem.decorate_maps=1
    ("Stack", r"^\[stack"),
    ("Stack", r"^\[anon:stack_and_tls:"),
    ("Stack", r"^\[anon: glibc: pthread (user )?stack"),
    # HEAP_SO ... HEAP_ART, tested in this order (a .dex name is any longer than 4 holding ".dex")
    (".so mmap", r"\.so(\.[0-9]+)*$"),  # and the versioned names of other systems: libc.so.6
    (".jar mmap", r"\.jar$"),
    (".apk mmap", r"\.apk$"),
    (".ttf mmap", r"\.ttf$"),
    (".dex mmap", r"\.odex$|^(?=.{5}).*\.dex"),
    (".dex mmap", r"\.vdex$"),
    (".oat mmap", r"\.oat$"),
    (".art mmap", r"\.art\]?$"),
    # HEAP_GL_DEV, then /dev/: HEAP_CURSOR, the zygote's JIT cache, HEAP_ASHMEM, HEAP_UNKNOWN_DEV
    ("Gfx dev", r"kgsl-3d0"),
    # not libmeminfo's (Android has none of these names): Linux's shared memory, POSIX (/dev/shm),
    # System V (mm/shmem.c names the file SYSV%08x), shared anonymous (mm/shmem.c shmem_zero_setup:
    # /dev/zero) and named shared anonymous ([anon_shmem:NAME], 6.2+)
    ("Shmem", r"^/dev/shm/|^/SYSV[0-9a-f]{8}$|^/dev/zero$|^\[anon_shmem:"),
    ("Cursor", r"^/dev/ashmem/CursorWindow"),
    ("Dalvik Other: .ZygoteJIT", r"^/dev/ashmem/jit-zygote-cache"),
    ("Ashmem", r"^/dev/ashmem"),
    ("Other dev", r"^/dev/"),
    # HEAP_MEMFD and its JIT caches and cursors
    ("Dalvik Other: .AppJIT", r"^/memfd:jit-cache"),
    ("Dalvik Other: .ZygoteJIT", r"^/memfd:jit-zygote-cache"),
    ("Cursor", r"^/memfd:CursorWindow"),
    ("Other memfd", r"^/memfd:"),
    # [anon:dalvik-...]: HEAP_DALVIK by kind, else HEAP_DALVIK_OTHER by kind (accounting by default)
    ("Dalvik Other: .LinearAlloc", r"^\[anon:dalvik-LinearAlloc"),
    ("Dalvik Heap: .Heap", r"^\[anon:dalvik-(alloc|main) space"),
    ("Dalvik Heap: .LOS", r"^\[anon:dalvik-(free list )?large object space"),
    ("Dalvik Heap: .NonMoving", r"^\[anon:dalvik-non moving space"),
    ("Dalvik Heap: .Zygote", r"^\[anon:dalvik-zygote space"),
    ("Dalvik Other: .IndirectRef", r"^\[anon:dalvik-indirect ref"),
    ("Dalvik Other: .AppJIT", r"^\[anon:dalvik-(jit|data)-code-cache"),
    ("Dalvik Other: .CompilerMetadata", r"^\[anon:dalvik-CompilerMetadata"),
    ("Dalvik Other: .GC", r"^\[anon:dalvik-"),
    # other runtimes' names, before libmeminfo's catch-all for [anon:
    # glibc 2.41+ malloc/arena.c and malloc.c __set_vma_name: " glibc: malloc arena", " glibc: malloc"
    ("Native Heap: glibc", r"^\[anon: glibc: malloc"),
    ("glibc: other", r"^\[anon: glibc: "),
    # mimalloc src/prim/unix/prim.c unix_mmap_prim: prctl(..., "mimalloc") on every mmap
    ("Native Heap: mimalloc", r"^\[anon:mimalloc\]"),
    # Chromium partition_alloc page_allocator_internals_posix.h NameRegion, one name per PageTag
    ("Native Heap: PartitionAlloc", r"^\[anon:partition_alloc\]"),
    ("Chromium: V8", r"^\[anon:v8\]"),
    ("Chromium: Blink GC", r"^\[anon:blink_gc\]"),
    ("Chromium: other", r"^\[anon:(chromium|simulation)\]"),
    # Go 1.25+ runtime/set_vma_name_linux.go setVMAName: " Go: " + name (GODEBUG=decoratemappings=1)
    ("Go: heap", r"^\[anon: Go: heap"),
    ("Go: other", r"^\[anon: Go: "),
    # CPython 3.13+ Include/internal/pycore_mmap.h _PyAnnotateMemoryMap (-X dev or a debug build):
    # "cpython:jit" (Python/jit.c) and the other "cpython:" names
    ("CPython: JIT", r"^\[anon:cpython:jit"),
    ("CPython", r"^\[anon:cpython:"),
    # HEAP_UNKNOWN: any other [anon:NAME]; HEAP_UNKNOWN_MAP: any other name ([vdso], files, shmem)
    ("Unknown", r"^\[anon:"),
    ("Other mmap", r"."),
)


class CategoriesError(ValueError):
    """A ``--categories`` file that cannot be used: its one line names the file and the category."""


class Categories(NamedTuple):
    """An ordered table of compiled rules (first match wins) and where it came from.

    :ivar source: ``built-in``, or the user's file and ``+ built-in``.
    """

    rules: Tuple[Tuple[str, Pattern[str]], ...]
    source: str = "built-in"
    fallback: str = FALLBACK

    def of(self, name: str) -> str:
        """The category of a maps name (a trailing `` (deleted)`` is ignored, as libmeminfo does)."""
        if name.endswith(_DELETED):
            name = name[:-len(_DELETED)]
        for category, pattern in self.rules:
            if pattern.search(name):
                return category
        return self.fallback

    def names(self) -> List[str]:
        """Every category this table can give, in rule order, then the fallback."""
        return list(dict.fromkeys([c for c, _ in self.rules] + [self.fallback]))


def builtin() -> Categories:
    """The built-in table (:data:`BUILTIN`)."""
    return Categories(tuple((c, re.compile(p)) for c, p in BUILTIN))


def _parse_toml(path: str) -> Dict[str, Any]:
    """The TOML document of ``path``.

    :raises CategoriesError: not TOML, unreadable, or this Python has no tomllib (3.11+).
    """
    if sys.version_info < (3, 11):
        raise CategoriesError(f"--categories {path}: reading TOML needs Python 3.11 or later (tomllib)")
    import tomllib  # type: ignore[import-not-found, unused-ignore]  # only --categories needs it (3.11+)

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as err:
        raise CategoriesError(f"--categories {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise CategoriesError(f"--categories {path}: not TOML: {err}") from None


def rules_of(doc: Dict[str, Any], path: str) -> List[Tuple[str, Pattern[str]]]:
    """The rules of a parsed ``--categories`` document: each key a category, its value a list of
    regular expressions, in file order.

    :raises CategoriesError: a value that is not a list of strings, or a bad regular expression.
    """
    rules: List[Tuple[str, Pattern[str]]] = []
    for category, patterns in doc.items():
        where = f"--categories {path}: category {category!r}"
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise CategoriesError(f"{where}: wants a list of regular expressions (strings), not "
                                  f"{_shown(patterns)}")
        for p in patterns:
            try:
                rules.append((category, re.compile(p)))
            except re.error as err:
                quoted = "'" + p.replace("'", "'\\''") + "'"  # as typed, for a shell (group.shown_regex)
                raise CategoriesError(f"{where}: bad regular expression {quoted}: {err}") from None
    return rules


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load(path: str, base: Optional[Categories] = None) -> Categories:
    """The user's table from the TOML file ``path``, tried before ``base`` (default: the built-in).

    A file may replace the built-in table in effect: a last category of ``[""]`` (the empty
    expression matches every name) leaves nothing to the built-in rules.

    :raises CategoriesError: the file is unreadable, not TOML, or holds a bad entry.
    """
    base = base if base is not None else builtin()
    own = rules_of(_parse_toml(path), path)
    return Categories(tuple(own) + base.rules, f"{path} + {base.source}", base.fallback)


def table(path: Optional[str]) -> Categories:
    """The table of ``--categories PATH`` (``None``: the built-in one).

    :raises CategoriesError: see :func:`load`.
    """
    return load(path) if path is not None else builtin()

