"""This process's registry: made by the first fallback naming, which also installs its exit and fork hooks.

A process has one address space, so one registry, held by one :class:`ThisProcess`. Nothing
happens at import: the first :func:`set_anon_name` creates the holder (:func:`this_process`)
and installs its hooks, once: at exit the file is removed; at fork the child (whose memory,
names included, is a copy) gets a file of its own. A process that never names memory through
the registry (every reader) never has a holder, hooks or file. The holder, and the lock that
makes its creation happen once, are this module's only state.
"""

from __future__ import annotations

import atexit
import os
import threading
import warnings
from typing import TYPE_CHECKING, List, Optional

from anonvma.live.registry.coverage import kept
from anonvma.live.registry.fileformat import Entry
from anonvma.live.registry.process_identity import identity, namespace
from anonvma.live.registry.loading import RegistryWarning
from anonvma.live.registry.places import writer_dir

if TYPE_CHECKING:  # the writer imports the model: loaded at the first naming, not at import
    from anonvma.live.registry.writer import Registry

#: The environment variable that opts in for code that cannot pass ``fallback=True``.
ENV = "ANONVMA_FALLBACK"


class ThisProcess:
    """The registry of the running process (``registry``: ``None`` until its first naming,
    and in a forked child that inherited no names) and the lock its users take."""

    def __init__(self) -> None:
        from anonvma.live.registry.writer import Registry  # only a process that names loads the model

        self._make = Registry
        self.registry: Optional[Registry] = None
        # reentrant: a RegisteredMmap collected by the GC mid-registration forgets from inside
        self.lock = threading.RLock()

    def install_hooks(self) -> None:
        """Remove the file at exit; hold the lock across fork, and give a child its own file."""
        atexit.register(self.exit)
        os.register_at_fork(before=self._acquire, after_in_parent=self._release,
                            after_in_child=self.forked)

    def _acquire(self) -> None:
        self.lock.acquire()  # the lock of now: a forked child makes a new one

    def _release(self) -> None:
        self.lock.release()

    def get(self) -> "Registry":
        """The registry, made now if there is none (its file is written at its first change)."""
        if self.registry is None:
            self.registry = self._make(identity(os.getpid()), writer_dir(), ns=namespace())
        return self.registry

    def exit(self) -> None:
        """At exit: remove the file (only the process that wrote it)."""
        with self.lock:
            if self.registry is not None and self.registry.identity.pid == os.getpid():
                self.registry.remove()

    def forked(self) -> None:
        """In a new child: a fresh lock, and its own copy of the registrations that it still maps
        (MADV_DONTFORK memory is not copied)."""
        from anonvma.live.registry.writer import maps_of_self

        self.lock = threading.RLock()
        parent, self.registry = self.registry, None
        if parent is None or not parent.entries or parent.closed:
            return
        try:
            child = self._make(identity(os.getpid()), os.path.dirname(parent.path),
                               kept(parent.entries, maps_of_self()), namespace(), parent.limit)
            child.save()
            self.registry = child
        except (OSError, ValueError) as err:
            warnings.warn(f"anonvma registry: the forked child {os.getpid()} keeps no names: {err}",
                          RegistryWarning, stacklevel=1)


_this: Optional[ThisProcess] = None
_making = threading.Lock()


def this_process() -> ThisProcess:
    """The holder of this process's registry: made, and its hooks installed, at the first call."""
    global _this
    if _this is None:
        with _making:
            if _this is None:
                holder = ThisProcess()
                holder.install_hooks()
                _this = holder
    return _this


def current() -> Optional[ThisProcess]:
    """The holder if this process has named memory through the registry, else ``None`` (and
    nothing is made)."""
    return _this


def set_anon_name(addr: int, length: int, name: Optional[bytes]) -> None:
    """Register a naming of this process's memory, making its registry (and hooks) if need be
    (see :meth:`anonvma.live.registry.writer.Registry.set_anon_name`)."""
    holder = this_process()
    with holder.lock:
        holder.get().set_anon_name(addr, length, name)


def forget(addr: int, length: int) -> None:
    """Drop this process's registrations in the range, if it has any (its memory is going away)."""
    holder = _this
    if holder is None:
        return
    with holder.lock:
        if holder.registry is not None:
            holder.registry.forget(addr, length)


def entries() -> List[Entry]:
    """This process's registrations (empty if it has made none)."""
    holder = _this
    if holder is None:
        return []
    with holder.lock:
        return list(holder.registry.entries) if holder.registry is not None else []


def path() -> Optional[str]:
    """This process's registry file, or ``None`` before its first registration."""
    holder = _this
    if holder is None:
        return None
    with holder.lock:
        return holder.registry.path if holder.registry is not None else None
