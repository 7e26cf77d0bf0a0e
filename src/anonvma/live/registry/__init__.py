"""Names where the kernel cannot keep them: a per-process registry file, written only on request.

On a kernel without CONFIG_ANON_VMA_NAME every PR_SET_VMA_ANON_NAME is EINVAL. A caller that
opts in (``fallback=True`` on the naming functions of :mod:`anonvma.live.naming`, or
``ANONVMA_FALLBACK=1``) has each naming recorded in a file of its own instead, with the
kernel's semantics where they can be had from ``/proc/self/maps``. One job per module:

- :mod:`~anonvma.live.registry.process_identity`: who wrote a file (pid, start time, address space)
  and the namespace where that pid means that process;
- :mod:`~anonvma.live.registry.fileformat`: the file's bytes, checked whole when read;
- :mod:`~anonvma.live.registry.places`: where files are written and looked for;
- :mod:`~anonvma.live.registry.coverage`: whether a registration still applies to what maps shows;
- :mod:`~anonvma.live.registry.loading`: a reader's load of one process's registry (never removes a file);
- :mod:`~anonvma.live.registry.stale`: which files are provably stale (``anonvma registry clean``);
- :mod:`~anonvma.live.registry.kernel_naming`: a naming's effect, by the model's mm/madvise.c;
- :mod:`~anonvma.live.registry.writer`: the :class:`Registry` of one process and its file;
- :mod:`~anonvma.live.registry.this_process`: this process's registry, made (and its exit and
  fork hooks installed) by its first fallback naming;
- :mod:`~anonvma.live.registry.cli`: ``anonvma registry clean``.

Nothing happens at import, of this package or of any of them. The names below are imported
from their modules on first use (PEP 562), so a reader importing one warning class loads
neither the writer nor the model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anonvma.live.registry.coverage import GONE, gone, is_private_anon, kept, still_there
    from anonvma.live.registry.fileformat import FORMAT, MAX_BYTES, Decoded, Entry, decode, encode
    from anonvma.live.registry.process_identity import Identity, Namespace, file_name, identity, namespace
    from anonvma.live.registry.loading import Loaded, RegistryWarning, load, unchanged
    from anonvma.live.registry.places import DIR_ENV, RUN_USER, TMP, reader_dirs, scan, writer_dir
    from anonvma.live.registry.stale import Stale, survey, why_stale
    from anonvma.live.registry.this_process import ENV, entries, forget, path, set_anon_name
    from anonvma.live.registry.writer import Registry

#: public name -> the module that defines it
_WHERE = {
    **dict.fromkeys(("GONE", "gone", "is_private_anon", "kept", "still_there"), "coverage"),
    **dict.fromkeys(("FORMAT", "MAX_BYTES", "Decoded", "Entry", "decode", "encode"), "fileformat"),
    **dict.fromkeys(("Identity", "Namespace", "file_name", "identity", "namespace"), "process_identity"),
    **dict.fromkeys(("Loaded", "RegistryWarning", "load", "unchanged"), "loading"),
    **dict.fromkeys(("DIR_ENV", "RUN_USER", "TMP", "reader_dirs", "scan", "writer_dir"), "places"),
    **dict.fromkeys(("Stale", "survey", "why_stale"), "stale"),
    **dict.fromkeys(("ENV", "entries", "forget", "path", "set_anon_name"), "this_process"),
    "Registry": "writer",
}

__all__ = [
    "DIR_ENV", "ENV", "FORMAT", "GONE", "MAX_BYTES", "RUN_USER", "TMP", "Decoded", "Entry", "Identity",
    "Loaded", "Namespace", "Registry", "RegistryWarning", "Stale", "decode", "encode", "entries",
    "file_name", "forget", "gone", "identity", "is_private_anon", "kept", "load", "namespace", "path",
    "reader_dirs", "scan", "set_anon_name", "still_there", "survey", "unchanged", "why_stale",
    "writer_dir",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'anonvma.live.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(f"anonvma.live.registry.{where}"), name)
