"""The writer: one process's registrations and the file that publishes them.

Each naming reads ``/proc/self/maps``, drops the registrations whose memory is gone
(:func:`~anonvma.live.registry.coverage.kept`), applies the kernel's rules to the rest
(:mod:`anonvma.live.registry.kernel_naming`) and rewrites the file whole (a temporary file,
then a rename), mode 0600.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, List, Optional, Sequence

from anonvma.anon_name import PAGE_SIZE, check_range
from anonvma.live.registry.coverage import kept
from anonvma.live.registry.fileformat import Entry, encode
from anonvma.live.registry.process_identity import Identity, Namespace, file_name
from anonvma.live.registry.kernel_naming import cut_out, rename
from anonvma.live.registry.places import private_dir

if TYPE_CHECKING:
    from anonvma.procmaps.records import Vma

#: mm/mmap.c DEFAULT_MAX_MAP_COUNT, when /proc/sys/vm/max_map_count cannot be read.
DEFAULT_MAX_MAP_COUNT = 65530


def maps_of_self() -> List["Vma"]:
    """This process's VMAs, from /proc/self/maps (read at every registration)."""
    from anonvma.procmaps import own  # only a process that registers needs it

    return own.vmas()


def max_map_count() -> int:
    """vm.max_map_count now."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return DEFAULT_MAX_MAP_COUNT


class Registry:
    """The registrations of one process and the file that publishes them.

    :ivar entries: the registered ranges, in address order, neighbours of one name joined.
    :param limit: vm.max_map_count to name against (``None``: read at each naming).
    """

    def __init__(self, ident: Identity, directory: str, entries: Sequence[Entry] = (),
                 ns: Optional[Namespace] = None, limit: Optional[int] = None) -> None:
        self.identity = ident
        self.namespace = ns
        self.path = os.path.join(directory, file_name(ident))
        self.entries: List[Entry] = list(entries)
        self.limit = limit
        self.closed = False

    def set_anon_name(self, addr: int, length: int, name: Optional[bytes]) -> None:
        """Register (``None``: clear) the name of the range, with the kernel's semantics
        (:func:`~anonvma.live.registry.kernel_naming.rename`); write the file if anything changed.

        :raises OSError: ENOMEM (a hole: the mapped parts were named), EBADF (file-backed or
            shared memory: the parts before it were named), EINVAL (a special mapping would be
            split), EAGAIN (a split beyond vm.max_map_count VMAs); or the file cannot be written.
        """
        end = check_range(addr, length)
        if end == addr:
            return
        vmas = maps_of_self()
        limit = self.limit if self.limit is not None else max_map_count()
        entries, error = rename(vmas, kept(self.entries, vmas), addr, end,
                                None if name is None else name.decode("ascii"), limit)
        if entries != self.entries:
            self.entries = entries
            self.save()
        if error:
            raise OSError(error, os.strerror(error))

    def forget(self, addr: int, length: int) -> None:
        """Drop the registrations in the range (its memory is being unmapped); write the file."""
        end = addr + -(-length // PAGE_SIZE) * PAGE_SIZE
        left = cut_out(self.entries, addr, end)
        if left != self.entries:
            self.entries = left
            self.save()

    def save(self) -> None:
        """Write the file whole (a temporary file, then rename), mode 0600; nothing after close."""
        if self.closed:
            return
        from anonvma.procmaps.files import write_atomically

        private_dir(os.path.dirname(self.path))
        write_atomically(self.path, encode(self.identity, os.geteuid(), self.entries, self.namespace),
                         mode=0o600)

    def remove(self) -> None:
        """Remove the file (at exit) and write no more."""
        self.closed = True
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
