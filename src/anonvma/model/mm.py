"""struct mm_struct: one process address space, and the machine its process tree runs on.

The syscalls live in modules named after the kernel files that implement them
(:mod:`~anonvma.model.mmap`, :mod:`~anonvma.model.mprotect`, :mod:`~anonvma.model.madvise`,
:mod:`~anonvma.model.mremap`, :mod:`~anonvma.model.fork`); :class:`Mm`'s methods are their
public face. Every syscall raises ``OSError(errno, message)`` on failure and leaves exactly
the state the kernel leaves, including work already done before a hole or a failing VMA.
"""

from __future__ import annotations

import errno
from typing import Iterable, Optional, Union

from anonvma import releases
from anonvma.model.bugs import FIXED, HistoricBugs
from anonvma.model.fork import dup_mmap
from anonvma.model.index import VmaIndex
from anonvma.model.kernel import Kernel, get_kernel
from anonvma.model.madvise import do_madvise, madvise_set_anon_name
from anonvma.model.mlock import do_mlock, do_munlock
from anonvma.model.mmap import do_mmap, do_munmap_syscall, exit_mmap
from anonvma.model.mprotect import do_mprotect
from anonvma.model.mremap import do_mremap
from anonvma.model.names import REFCOUNT_MAX, NameCounters, NameStrategy, make_strategy
from anonvma.model.pagetable import handle_mm_fault
from anonvma.model.task_mmu import render_maps, render_smaps
from anonvma.model.vma import PAGE_SHIFT, PAGE_SIZE, File, Page, Vma

#: x86-64 TASK_SIZE_MAX with 4-level page tables
TASK_SIZE = (1 << 47) - PAGE_SIZE
#: mm/mmap.c default sysctl_max_map_count (DEFAULT_MAX_MAP_COUNT = 65535 - 5)
DEFAULT_MAX_MAP_COUNT = 65530


class Machine:
    """What the Mms of one process tree share: the kernel generation, the name strategy and
    its total counters, the live Mms, the files they map (page cache included), and the
    commit limit.

    :param commit_limit_pages: RAM + swap in pages, the heuristic overcommit limit (a single
        request above it fails with ENOMEM); None: no limit (vm.overcommit_memory=1).
    :param bugs: historic bugs to reintroduce (tests only).
    """

    def __init__(self, strategy: NameStrategy, kernel: Union[Kernel, str, None] = None,
                 file_size: int = 64 << 20, commit_limit_pages: Optional[int] = None,
                 bugs: HistoricBugs = FIXED) -> None:
        if kernel is None:
            kernel = releases.DEFAULT
        self.kernel = get_kernel(kernel) if isinstance(kernel, str) else kernel
        self.strategy = strategy
        self.bugs = bugs
        if bugs.no_saturation_guard:  # the machine's switch decides, whoever made the strategy
            strategy.saturation_guard = False
        self.mms: list[Mm] = []
        self.files: dict[str, File] = {}
        self.file_pages = file_size >> PAGE_SHIFT
        self.commit_limit_pages = commit_limit_pages
        self._next_inode = 1000

    def file(self, label: str) -> File:
        """The regular file behind a label, the same object for every process."""
        f = self.files.get(label)
        if f is None:
            self._next_inode += 1
            f = self.files[label] = File(f"/anonvma/{label}", self._next_inode, dev="fe:01",
                                         size_pages=self.file_pages)
        return f

    def reopen(self, label: str) -> File:
        """The file behind a label through a new open file description (another struct file):
        the same inode and page cache, but VMAs mapped through it never merge with VMAs mapped
        through another (vma_merge compares struct file pointers)."""
        f = self.file(label)
        again = File(f.path, f.inode, dev=f.dev, size_pages=f.size_pages)
        again.page_cache = f.page_cache
        return again

    def shmem_file(self, pages: int) -> File:
        """shmem_zero_setup: each shared anonymous mapping gets its own unlinked shmem file, as
        large as the mapping (``pages``)."""
        self._next_inode += 1
        return File("/dev/zero (deleted)", self._next_inode, dev="00:01", anon_shmem=True, size_pages=pages)


class Mm:
    """One process address space (struct mm_struct) with the memory syscalls of a kernel
    generation.

    :param strategy: how names are shared: ``"refcount"`` (upstream) or ``"strdup"``.
    :param linux: the release whose rules apply, a name of :mod:`anonvma.releases`
        (``"6.1.192"``) or a series (``"6.1"``: its newest); default :data:`anonvma.releases.DEFAULT`.
    :param max_map_count: vm.max_map_count.
    :param refcount_max: REFCOUNT_MAX, lowered in tests to exercise saturation.
    :param task_size: where user space ends.
    :param commit_limit_pages: see :class:`Machine`.
    :param bugs: historic bugs to reintroduce (tests only; see :mod:`anonvma.model.bugs`).
    :param machine: join an existing machine (a fork child's): ``strategy``, ``linux``,
        ``refcount_max``, ``commit_limit_pages`` and ``bugs`` are then the machine's, and
        passing any of them too is a TypeError (they would be ignored).
    """

    def __init__(self, strategy: Optional[str] = None, linux: Optional[str] = None, *,
                 max_map_count: int = DEFAULT_MAX_MAP_COUNT, refcount_max: Optional[int] = None,
                 task_size: int = TASK_SIZE, commit_limit_pages: Optional[int] = None,
                 bugs: Optional[HistoricBugs] = None, machine: Optional[Machine] = None) -> None:
        if machine is None:
            machine = Machine(make_strategy(strategy or "refcount",
                                            REFCOUNT_MAX if refcount_max is None else refcount_max),
                              linux, commit_limit_pages=commit_limit_pages,
                              bugs=FIXED if bugs is None else bugs)
        else:
            ignored = [name for name, value in (
                ("strategy", strategy), ("linux", linux), ("refcount_max", refcount_max),
                ("commit_limit_pages", commit_limit_pages), ("bugs", bugs)) if value is not None]
            if ignored:
                raise TypeError(f"Mm(machine=...) takes {', '.join(ignored)} from the machine: "
                                "pass them to Machine instead")
        self.machine = machine
        self.kernel = machine.kernel
        self.strategy = machine.strategy
        self.max_map_count = max_map_count
        self.task_size = task_size
        self.index = VmaIndex()
        self.ptes: dict[int, Page] = {}
        #: virtual page numbers whose pte is young (accessed since it was set up in this mm)
        self.young: set[int] = set()
        self.name_counters = NameCounters()
        self.strategy.track(self.name_counters)
        self.exited = False
        machine.mms.append(self)

    def __repr__(self) -> str:
        state = "exited" if self.exited else f"{self.map_count} VMAs"
        return f"<Mm Linux {self.kernel.release} {self.strategy.kind} {state}>"

    @property
    def map_count(self) -> int:
        return self.index.count

    @property
    def vmas(self) -> list[Vma]:
        """The VMAs, lowest address first (immutable values: keep them as long as you like)."""
        return self.index.vmas

    def find_vma(self, addr: int) -> Optional[Vma]:
        """The VMA containing ``addr``, or None."""
        return self.index.vma_lookup(addr)

    def remove_vma(self, vma: Vma) -> None:
        """Take a VMA out of the index and free it (vm_area_free drops its name reference)."""
        self.index.remove(vma)
        self.strategy.put(vma.anon_name, self.name_counters)

    def _check_alive(self) -> None:
        if self.exited:
            raise ProcessLookupError(errno.ESRCH, "this mm has exited")

    # -- the syscalls ----------------------------------------------------------------------------

    def mmap(self, addr: int, length: int, prot: str = "rw", shared: bool = False,
             file: Optional[str] = None, pgoff: int = 0, noreserve: bool = False,
             populate: bool = False, readonly: bool = False) -> int:
        """mmap(addr, length, prot, MAP_FIXED | MAP_PRIVATE/SHARED [| MAP_ANONYMOUS]
        [| MAP_NORESERVE] [| MAP_POPULATE]); see :func:`anonvma.model.mmap.do_mmap`.

        :param prot: letters from ``rwx``, each at most once; ``""`` is PROT_NONE.
        :param file: a file label (every Mm of this machine sees the same file), or None.
        :param pgoff: file offset in pages.
        :param readonly: the file is mapped through a descriptor opened read-only.
        :return: addr.
        :raises OSError: EINVAL (bad prot, length 0, unaligned addr), ENOMEM (length
            overflows, beyond TASK_SIZE, map-count limit, commit), EOVERFLOW (pgoff + pages),
            EACCES (a shared writable mapping of a file opened read-only).
        """

        self._check_alive()
        return do_mmap(self, addr, length, prot, shared, file, pgoff, noreserve, populate, readonly)

    def munmap(self, addr: int, length: int) -> None:
        """munmap(addr, length); see :func:`anonvma.model.mmap.do_munmap_syscall`."""

        self._check_alive()
        do_munmap_syscall(self, addr, length)

    def mprotect(self, addr: int, length: int, prot: str) -> None:
        """mprotect(addr, length, prot); see :func:`anonvma.model.mprotect.do_mprotect`."""

        if self.exited:
            self._check_alive()
        do_mprotect(self, addr, length, prot)

    def madvise(self, addr: int, length: int, advice: str) -> None:
        """madvise(addr, length, advice) for dontneed, dontfork, dofork, wipeonfork, keeponfork,
        normal, random, sequential; see :func:`anonvma.model.madvise.do_madvise`."""

        self._check_alive()
        do_madvise(self, addr, length, advice)

    def mlock(self, addr: int, length: int, onfault: bool = False) -> None:
        """mlock(addr, length), or mlock2(addr, length, MLOCK_ONFAULT) with ``onfault``;
        see :func:`anonvma.model.mlock.do_mlock`."""
        self._check_alive()
        do_mlock(self, addr, length, onfault)

    def munlock(self, addr: int, length: int) -> None:
        """munlock(addr, length); see :func:`anonvma.model.mlock.do_munlock`."""
        self._check_alive()
        do_munlock(self, addr, length)

    def set_anon_name(self, addr: int, length: int, name: Union[str, bytes, None]) -> None:
        """prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, length, name); None clears the name.

        A ``str`` is passed as UTF-8. See :func:`anonvma.model.madvise.madvise_set_anon_name`.
        """

        if self.exited:
            self._check_alive()
        madvise_set_anon_name(self, addr, length, name)

    def mremap(self, addr: int, old_len: int, new_len: int, flags: Iterable[str] = (),
               new_addr: Optional[int] = None) -> int:
        """mremap(addr, old_len, new_len, flags, new_addr); flags from maymove, fixed, dontunmap.

        :return: the mapping's address afterwards. See :func:`anonvma.model.mremap.do_mremap`.
        """

        self._check_alive()
        return do_mremap(self, addr, old_len, new_len, flags, new_addr)

    def mseal(self, addr: int, length: int) -> None:
        """mseal(addr, length, 0); see :func:`anonvma.model.mseal.mseal_seals` (ENOSYS before 6.10)."""
        self._check_alive()
        self.kernel.do_mseal(self, addr, length)

    def fault(self, addr: int, write: bool = True) -> None:
        """A page fault touching one byte at ``addr``.

        :raises OSError: EFAULT when ``addr`` is not mapped with 'w' (write) or 'r' (read).
        """

        self._check_alive()
        handle_mm_fault(self, addr, write)

    def fork(self) -> "Mm":
        """fork(): a child Mm built by dup_mmap (see :mod:`anonvma.model.fork`)."""

        self._check_alive()
        return dup_mmap(self)

    def exit(self) -> None:
        """exit_mmap: free every VMA (dropping its name reference) and every page."""

        self._check_alive()
        exit_mmap(self)

    # -- /proc --------------------------------------------------------------------------------------

    def maps(self) -> str:
        """The text of /proc/PID/maps for this mm."""

        return render_maps(self)

    def smaps(self) -> str:
        """The text of /proc/PID/smaps for this mm."""

        return render_smaps(self)
