"""struct mm_struct: one process address space and its memory syscalls, with Linux 6.1's rules.

Every syscall raises ``OSError(errno, message)`` on failure and leaves exactly the state the
kernel leaves, including work already done before a hole or a failing VMA.
"""

from __future__ import annotations

import errno
from typing import Callable, Iterable, Optional, Union

from anonvma.model.gup import mm_populate, populate_vma_page_range
from anonvma.model.index import VmaIndex
from anonvma.model.merge import can_vma_merge_after, can_vma_merge_before, split_vma, split_vma_at, vma_merge
from anonvma.model.names import (ANON_VMA_NAME_MAX_LEN, REFCOUNT_MAX, AnonVmaName, NameCounters,
                                 NameStrategy, anon_vma_name_eq, make_strategy)
from anonvma.model.pagetable import handle_mm_fault, zap_range
from anonvma.model.vma import (PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, VM_ACCOUNT, VM_DONTCOPY, VM_IO,
                               VM_LOCKED, VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE,
                               VM_NORESERVE, VM_PFNMAP, VM_RAND_READ, VM_SEQ_READ, VM_SHARED,
                               VM_SPECIAL, VM_WIPEONFORK, VM_WRITE, File, Page, Vma, prot_to_vm_flags)

U64 = (1 << 64) - 1
#: x86-64 TASK_SIZE_MAX with 4-level page tables
TASK_SIZE = (1 << 47) - PAGE_SIZE
#: mm/mmap.c default sysctl_max_map_count (DEFAULT_MAX_MAP_COUNT = 65535 - 5)
DEFAULT_MAX_MAP_COUNT = 65530
#: include/linux/fs.h MAX_LFS_FILESIZE on 64-bit (mm/mmap.c file_mmap_ok)
MAX_LFS_FILESIZE = (1 << 63) - 1
#: kernel/sys.c is_valid_name_char: printable ASCII except these
FORBIDDEN_NAME_CHARS = frozenset(b"\\`$[]")
ADVICE = ("dontneed", "dontfork", "dofork", "wipeonfork", "keeponfork", "normal", "random", "sequential")
#: mm/madvise.c madvise_vma_behavior: the read-ahead hints, as (flag cleared, flag set)
READ_HINTS = {"normal": (VM_RAND_READ | VM_SEQ_READ, 0), "random": (VM_SEQ_READ, VM_RAND_READ),
              "sequential": (VM_RAND_READ, VM_SEQ_READ)}


def page_align(length: int) -> int:
    """PAGE_ALIGN on an unsigned long: rounds up, wrapping to 0 past 2**64."""
    return (length + PAGE_SIZE - 1) & PAGE_MASK & U64


class Machine:
    """What the Mms of one process tree share: the name strategy and its total counters,
    the live Mms, and the files they map (page cache included)."""

    def __init__(self, strategy: NameStrategy, file_size: int = 64 << 20) -> None:
        self.strategy = strategy
        self.mms: list[Mm] = []
        self.files: dict[str, File] = {}
        self.file_pages = file_size >> PAGE_SHIFT
        self._next_inode = 1000

    def file(self, label: str) -> File:
        """The regular file behind a label, the same object for every process."""
        f = self.files.get(label)
        if f is None:
            self._next_inode += 1
            f = self.files[label] = File(f"/anonvma/{label}", self._next_inode, dev="fe:01")
        return f

    def shmem_file(self) -> File:
        """shmem_zero_setup: each shared anonymous mapping gets its own unlinked shmem file."""
        self._next_inode += 1
        return File("/dev/zero (deleted)", self._next_inode, dev="00:01", shmem=True)


def _name_bytes(name: Union[str, bytes]) -> bytes:
    raw = name.encode("latin-1") if isinstance(name, str) else bytes(name)
    return raw.split(b"\0", 1)[0]  # strndup_user stops at the first NUL


def check_anon_name(name: Union[str, bytes]) -> str:
    """kernel/sys.c prctl_set_vma name checks: < 80 bytes, printable, none of \\ ` $ [ ].

    :return: the name as the kernel stores it (up to the first NUL).
    :raises OSError: EINVAL naming the offending length or character.
    """
    raw = _name_bytes(name)
    if len(raw) >= ANON_VMA_NAME_MAX_LEN:
        raise OSError(errno.EINVAL, f"name is {len(raw)} bytes; at most {ANON_VMA_NAME_MAX_LEN - 1} allowed")
    for i, c in enumerate(raw):
        if not 0x20 <= c <= 0x7E or c in FORBIDDEN_NAME_CHARS:
            raise OSError(errno.EINVAL, f"name byte {i} ({c:#04x}) is not allowed: "
                                        "printable ASCII except \\ ` $ [ ]")
    return raw.decode("latin-1")


class Mm:
    """One process address space (struct mm_struct) with the memory syscalls of Linux 6.1.

    :param strategy: how names are shared: ``"refcount"`` (upstream) or ``"strdup"``.
    :param max_map_count: vm.max_map_count.
    :param refcount_max: REFCOUNT_MAX, lowered in tests to exercise saturation.
    """

    def __init__(self, strategy: str = "refcount", max_map_count: int = DEFAULT_MAX_MAP_COUNT,
                 refcount_max: int = REFCOUNT_MAX, task_size: int = TASK_SIZE,
                 machine: Optional[Machine] = None) -> None:
        self.machine = machine if machine is not None else Machine(make_strategy(strategy, refcount_max))
        self.strategy = self.machine.strategy
        self.max_map_count = max_map_count
        self.task_size = task_size
        self.index = VmaIndex()
        self.ptes: dict[int, Page] = {}
        #: virtual page numbers whose pte is young (accessed since it was set up in this mm)
        self.young: set[int] = set()
        self.name_counters = NameCounters()
        self.exited = False
        self.machine.mms.append(self)

    # -- bookkeeping shared by the syscalls -------------------------------------------------

    @property
    def map_count(self) -> int:
        return len(self.index)

    @property
    def vmas(self) -> list[Vma]:
        """The VMAs, lowest address first (do not modify)."""
        return self.index.vmas

    def remove_vma(self, vma: Vma) -> None:
        """Take a VMA out of the index and free it (vm_area_free drops its name reference)."""
        self.index.remove(vma)
        self.strategy.put(vma.anon_name, self.name_counters)
        vma.anon_name = None

    def _check_alive(self) -> None:
        if self.exited:
            raise ProcessLookupError(errno.ESRCH, "this mm has exited")

    # -- mmap / munmap ------------------------------------------------------------------------

    def mmap(self, addr: int, length: int, prot: str = "rw", shared: bool = False,
             file: Optional[str] = None, pgoff: int = 0, noreserve: bool = False,
             populate: bool = False) -> int:
        """mmap(addr, length, prot, MAP_FIXED | MAP_PRIVATE/SHARED [| MAP_ANONYMOUS]
        [| MAP_NORESERVE] [| MAP_POPULATE]).

        :param file: a file label (every Mm of this machine sees the same file), or None.
        :param pgoff: file offset in pages.
        :param noreserve: MAP_NORESERVE: VM_NORESERVE, so the mapping gets no VM_ACCOUNT (the
            model assumes vm.overcommit_memory is not 2, OVERCOMMIT_NEVER, which ignores it).
        :param populate: MAP_POPULATE: fault the new range in after mapping it, errors ignored.
        :return: addr.
        :raises OSError: EINVAL (length 0, unaligned addr), ENOMEM (length overflows, beyond
            TASK_SIZE, map-count limit), EOVERFLOW (pgoff + pages wraps).
        """
        self._check_alive()
        if length == 0:
            raise OSError(errno.EINVAL, "mmap length is 0")
        length = page_align(length)
        if length == 0:
            raise OSError(errno.ENOMEM, "mmap length overflows when rounded to a page")
        if self.map_count > self.max_map_count:
            raise OSError(errno.ENOMEM, "map count above max_map_count")
        if length > self.task_size or addr > self.task_size - length:
            raise OSError(errno.ENOMEM, "mapping would end above TASK_SIZE")
        if addr & ~PAGE_MASK:
            raise OSError(errno.EINVAL, f"address {addr:#x} is not page-aligned")
        flags = prot_to_vm_flags(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
        backing: Optional[File] = None
        if file is not None:
            if pgoff > (MAX_LFS_FILESIZE - length) >> PAGE_SHIFT:
                raise OSError(errno.EOVERFLOW, "file offset + length beyond the largest file size")
            backing = self.machine.file(file)
            if shared:
                flags |= VM_SHARED | VM_MAYSHARE
        elif shared:
            flags |= VM_SHARED | VM_MAYSHARE
            pgoff = 0
        else:
            pgoff = addr >> PAGE_SHIFT  # mm/mmap.c do_mmap: anonymous pgoff is the page number
        if noreserve:
            flags |= VM_NORESERVE  # do_mmap (6.1 mm/mmap.c 1426-1434, 6.12 496-504)
        self._mmap_region(addr, length, flags, backing, pgoff, shmem=shared and file is None)
        if populate:
            # do_mmap sets *populate = len (6.1 1437-1440, 6.12 507-510); vm_mmap_pgoff then
            # calls mm_populate, which ignores errors (mm/util.c 6.1 524-525)
            mm_populate(self, addr, length, ignore_errors=True)
        return addr

    def _mmap_region(self, addr: int, length: int, flags: int, file: Optional[File], pgoff: int,
                     shmem: bool) -> int:
        """mm/mmap.c __mmap_region: replace what was there, then extend a neighbour or insert."""
        end = addr + length
        self._do_munmap(addr, end)  # ENOMEM at the map-count limit
        if flags & (VM_NORESERVE | VM_SHARED | VM_WRITE) == VM_WRITE:
            flags |= VM_ACCOUNT  # mm/mmap.c accountable_mapping: private and writable
        index = self.index
        prev, nxt = index.around(addr)
        pglen = length >> PAGE_SHIFT
        target: Optional[Vma] = None
        merge_start, merge_end, vm_pgoff = addr, end, pgoff
        if not flags & VM_SPECIAL and not shmem:
            # New mappings try next first, with no name: a named neighbour never grows.
            if nxt is not None and nxt.start == end and can_vma_merge_before(
                    nxt, flags, None, file, pgoff + pglen, None):
                merge_end, target, vm_pgoff = nxt.end, nxt, nxt.pgoff - pglen
            if prev is not None and prev.end == addr and can_vma_merge_after(
                    prev, flags, target.anon_vma if target is not None else None, file, pgoff, None):
                merge_start, target, vm_pgoff = prev.start, prev, prev.pgoff
        if target is not None:
            # mm/mmap.c vma_expand: grow target over [merge_start, merge_end), absorbing next
            if target is prev and nxt is not None and merge_end == nxt.end:
                if target.anon_vma is None and nxt.anon_vma is not None:
                    target.anon_vma, target.anon_chain = nxt.anon_vma, nxt.anon_chain
                self.remove_vma(nxt)
            target.start, target.end, target.pgoff = merge_start, merge_end, vm_pgoff
            return addr
        backing = self.machine.shmem_file() if shmem else file
        index.insert(Vma(addr, end, flags, pgoff, backing))
        return addr

    def munmap(self, addr: int, length: int) -> None:
        """munmap(addr, length).

        :raises OSError: EINVAL (unaligned, length 0, beyond TASK_SIZE), ENOMEM (punching a
            hole would exceed max_map_count).
        """
        self._check_alive()
        if addr & ~PAGE_MASK or addr > self.task_size or length > self.task_size - addr:
            raise OSError(errno.EINVAL, "bad munmap range")
        end = addr + page_align(length)
        if end == addr:
            raise OSError(errno.EINVAL, "munmap length is 0")
        self._do_munmap(addr, end)

    def _do_munmap(self, start: int, end: int) -> None:
        """mm/mmap.c do_mas_munmap: split the edges, then drop every VMA in [start, end).

        :raises OSError: EINVAL for an empty range (mremap's unmap of a 0-length source sees it).
        """
        if end <= start:
            raise OSError(errno.EINVAL, "empty range")
        vmas = self.index.intersecting(start, end)
        if not vmas:
            return
        first = vmas[0]
        if start > first.start:
            if end < first.end and self.map_count >= self.max_map_count:
                raise OSError(errno.ENOMEM, "munmap would exceed max_map_count")
            upper = split_vma_at(self, first, start, new_below=False)
            vmas[0] = upper
        last = vmas[-1]
        if last.end > end:
            lower = split_vma_at(self, last, end, new_below=True)
            vmas[-1] = lower
        zap_range(self, start, end)
        for vma in vmas:
            self.remove_vma(vma)

    # -- mprotect -----------------------------------------------------------------------------

    def mprotect(self, addr: int, length: int, prot: str) -> None:
        """mprotect(addr, length, prot).

        :raises OSError: EINVAL (unaligned), ENOMEM (start or a later part unmapped, overflow,
            map-count limit), EACCES (permission the mapping may not have). Work done on
            earlier VMAs stays.
        """
        self._check_alive()
        if addr & ~PAGE_MASK:
            raise OSError(errno.EINVAL, f"address {addr:#x} is not page-aligned")
        if length == 0:
            return
        end = (addr + page_align(length)) & U64
        if end <= addr:
            raise OSError(errno.ENOMEM, "mprotect range overflows")
        new_prot = prot_to_vm_flags(prot)

        def fixup(vma: Vma, prev: Optional[Vma], start: int, end: int) -> Vma:
            newflags = new_prot | (vma.flags & ~0x7)
            if (newflags & ~(newflags >> 4)) & 0x7:
                raise OSError(errno.EACCES, "mapping may not get that protection")
            return self._mprotect_fixup(vma, prev, start, end, newflags)

        self.fixup_walk(addr, end, fixup)

    def fixup_walk(self, start: int, end: int,
                   fixup: Callable[[Vma, Optional[Vma], int, int], Vma]) -> None:
        """The VMA walk of mm/mprotect.c do_mprotect_pkey and mm/mlock.c apply_vma_lock_flags:
        ``fixup`` each VMA piece of [start, end) in turn, each returning the new prev. Unlike
        madvise's walk, an unmapped start or a hole stops it with ENOMEM at once (pieces
        already changed stay changed)."""
        index = self.index
        before, vma = index.around(start)
        if vma is None or vma.start > start:
            raise OSError(errno.ENOMEM, f"{start:#x} is not mapped")
        prev = vma if start > vma.start else before
        nstart = start
        while True:
            tmp = min(vma.end, end)
            prev = fixup(vma, prev, nstart, tmp)
            nstart = max(tmp, prev.end)
            if nstart >= end:
                return
            vma = index.find_vma(prev.end)
            if vma is None or vma.start != nstart:
                raise OSError(errno.ENOMEM, f"{nstart:#x} is not mapped")

    def _mprotect_fixup(self, vma: Vma, prev: Optional[Vma], start: int, end: int,
                        newflags: int) -> Vma:
        """mm/mprotect.c mprotect_fixup: merge or split, then set the flags. Returns the new prev."""
        oldflags = vma.flags
        if newflags == oldflags:
            return vma
        if newflags & VM_WRITE and not oldflags & (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE):
            newflags |= VM_ACCOUNT  # charged once; kept when write is removed later
        vma = self.vma_modify_flags(vma, prev, start, end, newflags)
        if oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED) == VM_LOCKED and newflags & VM_WRITE:
            # a private locked VMA becoming writable is write-faulted at once ("trigger COW"),
            # so it gets an anon_vma; errors ignored (6.1 mm/mprotect.c 649-656, 6.12 687-694)
            try:
                populate_vma_page_range(self, vma, start, end)
            except OSError:
                pass
        return vma

    def vma_modify_flags(self, vma: Vma, prev: Optional[Vma], start: int, end: int,
                         newflags: int) -> Vma:
        """Give [start, end) of ``vma`` new flags: merge with prev/next, else split off the
        range; the piece keeps its name. 6.1 open-codes this in mprotect_fixup and mlock_fixup
        (vma_merge, then split_vma at start and end, ENOMEM at max_map_count); 6.12 calls it
        vma_modify_flags (mm/vma.c). Returns the VMA now covering the range."""
        pgoff = vma.pgoff + ((start - vma.start) >> PAGE_SHIFT)
        merged = vma_merge(self, prev, start, end, newflags, vma.anon_vma, vma.file, pgoff,
                           vma.anon_name)
        if merged is not None:
            merged.flags = newflags
            return merged
        if start != vma.start:
            split_vma(self, vma, start, new_below=True)
        if end != vma.end:
            split_vma(self, vma, end, new_below=False)
        vma.flags = newflags
        return vma

    # -- mlock -----------------------------------------------------------------------------------

    def mlock(self, addr: int, length: int, onfault: bool = False) -> None:
        """mlock(addr, length), or mlock2(addr, length, MLOCK_ONFAULT) with ``onfault``.

        See :func:`anonvma.model.mlock.do_mlock` for the errors and what stays done.
        """
        from anonvma.model.mlock import do_mlock

        self._check_alive()
        do_mlock(self, addr, length, onfault)

    def munlock(self, addr: int, length: int) -> None:
        """munlock(addr, length): clear VM_LOCKED and VM_LOCKONFAULT.

        :raises OSError: EINVAL (the range wraps), ENOMEM (start unmapped, or a hole; the VMAs
            before it stay unlocked).
        """
        from anonvma.model.mlock import do_munlock

        self._check_alive()
        do_munlock(self, addr, length)

    # -- madvise and the prctl: the madvise_walk_vmas family -----------------------------------

    def _walk(self, start: int, end: int,
              visit: Callable[[Vma, Optional[Vma], int, int], Vma]) -> None:
        """mm/madvise.c madvise_walk_vmas: visit each VMA piece of [start, end); holes give
        ENOMEM at the end, a visitor's error stops the walk at once."""
        index = self.index
        before, vma = index.around(start)
        prev = vma if vma is not None and start > vma.start else before
        unmapped = False
        while True:
            if vma is None:
                raise OSError(errno.ENOMEM, f"{start:#x} is not mapped")
            if start < vma.start:
                unmapped = True
                start = vma.start
                if start >= end:
                    break
            tmp = min(vma.end, end)
            prev = visit(vma, prev, start, tmp)
            start = tmp
            if prev is not None and start < prev.end:
                start = prev.end
            if start >= end:
                break
            vma = index.find_vma(prev.end if prev is not None else start)
        if unmapped:
            raise OSError(errno.ENOMEM, "part of the range is not mapped")

    def _madvise_update_vma(self, vma: Vma, prev: Optional[Vma], start: int, end: int,
                            new_flags: int, anon_name: Optional[AnonVmaName]) -> Vma:
        """mm/madvise.c madvise_update_vma: no-op, merge, or split; then set flags and name."""
        if new_flags == vma.flags and anon_vma_name_eq(vma.anon_name, anon_name):
            return vma  # early no-op: no split and no merge attempt
        pgoff = vma.pgoff + ((start - vma.start) >> PAGE_SHIFT)
        merged = vma_merge(self, prev, start, end, new_flags, vma.anon_vma, vma.file, pgoff, anon_name)
        if merged is not None:
            vma = merged
        else:
            if start != vma.start:
                if self.map_count >= self.max_map_count:
                    raise OSError(errno.ENOMEM, "split would exceed max_map_count")
                split_vma_at(self, vma, start, new_below=True)
            if end != vma.end:
                if self.map_count >= self.max_map_count:
                    raise OSError(errno.ENOMEM, "split would exceed max_map_count")
                split_vma_at(self, vma, end, new_below=False)
        vma.flags = new_flags
        if vma.file is None:
            self._replace_anon_vma_name(vma, anon_name)
        return vma

    def _replace_anon_vma_name(self, vma: Vma, anon_name: Optional[AnonVmaName]) -> None:
        """mm/madvise.c replace_anon_vma_name: clear, keep an equal name's object, or adopt."""
        old = vma.anon_name
        if anon_name is None:
            vma.anon_name = None
            self.strategy.put(old, self.name_counters)
        elif not anon_vma_name_eq(old, anon_name):
            vma.anon_name = self.strategy.adopt(anon_name, self.name_counters)
            self.strategy.put(old, self.name_counters)

    def _check_madvise_range(self, addr: int, length: int) -> int:
        """The address checks of madvise and madvise_set_anon_name; returns end (== addr: no-op)."""
        if addr & ~PAGE_MASK:
            raise OSError(errno.EINVAL, f"address {addr:#x} is not page-aligned")
        rounded = page_align(length)
        if length and not rounded:
            raise OSError(errno.EINVAL, "length overflows when rounded to a page")
        end = addr + rounded
        if end > U64:
            raise OSError(errno.EINVAL, "range wraps around the address space")
        return end

    def set_anon_name(self, addr: int, length: int, name: Union[str, bytes, None]) -> None:
        """prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, length, name); None clears the name.

        The name is checked before the address. ``""`` is a name (shown as ``[anon:]``).
        :raises OSError: EINVAL (bad name or address), EBADF (a file or shared-anonymous VMA;
            the walk stops there), EAGAIN (max_map_count reached while splitting; stops),
            ENOMEM (holes in the range: every mapped part was still renamed).
        """
        self._check_alive()
        obj: Optional[AnonVmaName] = None
        if name is not None:
            obj = self.strategy.alloc(check_anon_name(name), self.name_counters)
        try:
            end = self._check_madvise_range(addr, length)
            if end != addr:
                self._walk(addr, end, lambda vma, prev, s, e: self._vma_anon_name(vma, prev, s, e, obj))
        finally:
            self.strategy.put(obj, self.name_counters)  # the prctl's own reference

    def _vma_anon_name(self, vma: Vma, prev: Optional[Vma], start: int, end: int,
                       anon_name: Optional[AnonVmaName]) -> Vma:
        """mm/madvise.c madvise_vma_anon_name: EBADF for file VMAs; ENOMEM becomes EAGAIN."""
        if vma.file is not None:
            raise OSError(errno.EBADF, f"{start:#x}: only private anonymous memory can be named")
        try:
            return self._madvise_update_vma(vma, prev, start, end, vma.flags, anon_name)
        except OSError as exc:
            if exc.errno == errno.ENOMEM:
                raise OSError(errno.EAGAIN, exc.strerror) from exc
            raise

    def madvise(self, addr: int, length: int, advice: str) -> None:
        """madvise(addr, length, advice) for dontneed, dontfork, dofork, wipeonfork, keeponfork,
        normal, random, sequential.

        :raises OSError: EINVAL (unaligned, unknown advice, wipeonfork on file/shared memory,
            dontneed on locked memory; the walk stops there), EAGAIN (max_map_count while
            splitting), ENOMEM (holes; the rest was done).
        """
        self._check_alive()
        if advice not in ADVICE:
            raise OSError(errno.EINVAL, f"unknown advice {advice!r}")
        end = self._check_madvise_range(addr, length)
        if end != addr:
            self._walk(addr, end, lambda vma, prev, s, e: self._vma_behavior(vma, prev, s, e, advice))

    def _vma_behavior(self, vma: Vma, prev: Optional[Vma], start: int, end: int, advice: str) -> Vma:
        """mm/madvise.c madvise_vma_behavior for the advices the model knows."""
        if advice == "dontneed":
            # madvise_dontneed_free_valid_vma (6.1 mm/madvise.c 797-812, 6.12 853-868)
            if vma.flags & (VM_LOCKED | VM_PFNMAP):
                raise OSError(errno.EINVAL, f"{start:#x}: MADV_DONTNEED on locked memory")
            zap_range(self, start, end)
            return vma
        flags = vma.flags
        if advice in READ_HINTS:  # 6.1 mm/madvise.c 1038-1046, 6.12 1061-1069
            clear, add = READ_HINTS[advice]
            flags = (flags & ~clear) | add
        elif advice == "dontfork":
            flags |= VM_DONTCOPY
        elif advice == "dofork":
            if flags & VM_IO:
                raise OSError(errno.EINVAL, "VM_IO mapping")
            flags &= ~VM_DONTCOPY
        elif advice == "wipeonfork":
            if vma.file is not None or flags & VM_SHARED:
                raise OSError(errno.EINVAL, "wipeonfork needs private anonymous memory")
            flags |= VM_WIPEONFORK
        else:
            flags &= ~VM_WIPEONFORK
        name = vma.anon_name
        counters = self.name_counters
        if name is not None:
            self.strategy.get(name, counters)  # 942341dcc574: a merge may free the VMA
        try:
            return self._madvise_update_vma(vma, prev, start, end, flags, name)
        except OSError as exc:
            if exc.errno == errno.ENOMEM:
                raise OSError(errno.EAGAIN, exc.strerror) from exc
            raise
        finally:
            self.strategy.put(name, counters)

    def mremap(self, addr: int, old_len: int, new_len: int, flags: Iterable[str] = (),
               new_addr: Optional[int] = None) -> int:
        """mremap(addr, old_len, new_len, flags, new_addr); flags from maymove, fixed, dontunmap.

        :return: the mapping's address afterwards. See :func:`anonvma.model.mremap.do_mremap`.
        """
        from anonvma.model.mremap import do_mremap

        self._check_alive()
        return do_mremap(self, addr, old_len, new_len, flags, new_addr)

    # -- faults, fork, exit ---------------------------------------------------------------------

    def fault(self, addr: int, write: bool = True) -> None:
        """A page fault touching one byte at ``addr``.

        :raises OSError: EFAULT when ``addr`` is not mapped with 'w' (write) or 'r' (read).
        """
        self._check_alive()
        handle_mm_fault(self, addr, write)

    def fork(self) -> "Mm":
        """fork(): a child Mm built by dup_mmap (see :mod:`anonvma.model.fork`)."""
        from anonvma.model.fork import dup_mmap

        self._check_alive()
        return dup_mmap(self)

    def exit(self) -> None:
        """exit_mmap: free every VMA (dropping its name reference) and every page."""
        self._check_alive()
        self._exit_ptes()
        self._exit_names()
        self._exit_vmas()

    # exit_mmap in phases (``anonvma bench fork --profile`` times each)
    def _exit_ptes(self) -> None:
        for page in self.ptes.values():
            page.mapcount -= 1
        self.ptes = {}
        self.young = set()

    def _exit_names(self) -> None:
        self.strategy.put_vmas(self.index, self.name_counters)

    def _exit_vmas(self) -> None:
        self.index = VmaIndex()
        self.exited = True
        self.machine.mms.remove(self)

    # -- /proc ----------------------------------------------------------------------------------

    def maps(self) -> str:
        """The text of /proc/PID/maps for this mm."""
        from anonvma.model.procfs import render_maps

        return render_maps(self)

    def smaps(self) -> str:
        """The text of /proc/PID/smaps for this mm."""
        from anonvma.model.procfs import render_smaps

        return render_smaps(self)
