"""struct vm_area_struct as a value, and what hangs off it: flags, anon_vma, backing files, pages.

A :class:`Vma` never changes once built. Where the kernel writes ``vma->vm_end = end`` and
stores the VMA back into the maple tree, the model builds the changed value and stores it in
the index (:meth:`anonvma.model.index.VmaIndex.replace`). Values can therefore be shared: a
fork child holds the very objects of its parent wherever its VMA equals the parent's (each
holder still owns its name reference), and a reader may keep any VMA it was given and print
it later: it stays what it was.
"""

from __future__ import annotations

from typing import Optional

from anonvma.model.names import AnonVmaName

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)

# include/linux/mm.h vm_flags bits (x86-64 values)
VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_EXEC = 0x00000004
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010
VM_MAYWRITE = 0x00000020
VM_MAYEXEC = 0x00000040
VM_MAYSHARE = 0x00000080
VM_GROWSDOWN = 0x00000100
VM_PFNMAP = 0x00000400
#: 6.19+ (7.3: VMA_MAYBE_GUARD_BIT 11): MADV_GUARD_INSTALL ran on the VMA; sticky on merge
VM_MAYBE_GUARD = 0x00000800
VM_LOCKED = 0x00002000
VM_IO = 0x00004000
VM_SEQ_READ = 0x00008000
VM_RAND_READ = 0x00010000
VM_DONTCOPY = 0x00020000
VM_DONTEXPAND = 0x00040000
VM_LOCKONFAULT = 0x00080000
VM_ACCOUNT = 0x00100000
VM_NORESERVE = 0x00200000
VM_WIPEONFORK = 0x02000000
VM_MIXEDMAP = 0x10000000
#: 6.10+ mseal(2); bit 63 in 6.12, bit 42 in 7.3 (printed last in both)
VM_SEALED = 1 << 63
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP
#: 6.1 VM_LOCKED_CLEAR_MASK is its complement; 6.12 calls it VM_LOCKED_MASK
VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT

#: fs/proc/task_mmu.c show_smap_vma_flags mnemonics, by bit number (those the model can set).
#: 6.1 has no entry for VM_LOCKONFAULT, so it prints the table's default "??" (6.12: "lf").
VM_FLAG_MNEMONICS = (
    (VM_READ, "rd"), (VM_WRITE, "wr"), (VM_EXEC, "ex"), (VM_SHARED, "sh"),
    (VM_MAYREAD, "mr"), (VM_MAYWRITE, "mw"), (VM_MAYEXEC, "me"), (VM_MAYSHARE, "ms"),
    (VM_GROWSDOWN, "gd"), (VM_PFNMAP, "pf"), (VM_MAYBE_GUARD, "gu"), (VM_LOCKED, "lo"), (VM_IO, "io"),
    (VM_SEQ_READ, "sr"), (VM_RAND_READ, "rr"), (VM_DONTCOPY, "dc"), (VM_DONTEXPAND, "de"),
    (VM_LOCKONFAULT, "??"), (VM_ACCOUNT, "ac"), (VM_NORESERVE, "nr"), (VM_WIPEONFORK, "wf"),
    (VM_MIXEDMAP, "mm"), (VM_SEALED, "sl"),
)

def _prot_table() -> dict[str, int]:
    from itertools import permutations

    table = {}
    for n in range(4):
        for letters in permutations("rwx", n):
            table["".join(letters)] = ((VM_READ if "r" in letters else 0)
                                       | (VM_WRITE if "w" in letters else 0)
                                       | (VM_EXEC if "x" in letters else 0))
    return table


#: Every valid ``prot`` string (letters from ``rwx`` in any order, each at most once).
PROT_FLAGS = _prot_table()


class AnonVma:
    """struct anon_vma, reduced to its identity: merges compare anon_vmas by pointer."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<AnonVma at {id(self):#x}>"


class File:
    """A backing file: a regular file (label) or the shmem file behind a shared anonymous mapping.

    :ivar anon_shmem: mapped with shmem_anon_vm_ops (shared anonymous memory): 6.2+ can name it.
    :ivar size_pages: its size in pages (i_size): a page past it cannot be faulted in (SIGBUS).
        A shared anonymous mapping's shmem file is as large as the mapping was made; mremap
        can grow the mapping, not the file.
    """

    __slots__ = ("path", "inode", "dev", "anon_shmem", "size_pages", "page_cache")

    def __init__(self, path: str, inode: int, dev: str = "00:00", anon_shmem: bool = False,
                 size_pages: int = 0) -> None:
        self.path = path
        self.inode = inode
        self.dev = dev
        self.anon_shmem = anon_shmem
        self.size_pages = size_pages
        #: file page index -> Page, shared by every mapping of the file
        self.page_cache: dict[int, Page] = {}

    def page(self, index: int) -> "Page":
        page = self.page_cache.get(index)
        if page is None:
            page = self.page_cache[index] = Page(anon=False)
        return page

    def __repr__(self) -> str:
        return f"<File {self.path}>"


class Page:
    """A physical page: anonymous or page cache, with its map count, dirty state and the
    PG_referenced / PG_active bits that mark_page_accessed sets (smaps Referenced)."""

    __slots__ = ("anon", "mapcount", "dirty", "referenced", "active")

    def __init__(self, anon: bool, dirty: bool = False) -> None:
        self.anon = anon
        self.mapcount = 0
        self.dirty = dirty
        self.referenced = False
        self.active = False


#: The shared zero page that read faults on anonymous memory map (never counted in Rss).
ZERO_PAGE = Page(anon=False)

_FIELDS = ("start", "end", "flags", "pgoff", "file", "anon_vma", "anon_chain", "anon_name",
           "anon_pgoff")


class Vma:
    """One VMA, immutable: [start, end), vm_flags, vm_pgoff, vm_file, anon_vma, anon_name.

    ``anon_pgoff`` is the anonymous page offset of its start (7.3 vma_start_anon_pgoff): a new
    mapping's page number, linear through splits and merges, kept by a faulted VMA that moves
    and reset by an unfaulted one. Anonymous VMAs have it equal to ``pgoff``; for private file
    VMAs it differs, and only releases with the rule (merge.py anon_pgoff_of_private_files)
    look at it. Every release's model keeps it up to date, unseen where no rule reads it.
    ``anon_chain`` is the length of its anon_vma_chain: 0 (no anon_vma), 1 (singular: its own
    anon_vma) or more (cloned from a fork parent). The ``with_*`` methods return changed copies;
    none of them touches the name's refcount (whoever stores the copy owns that). Immutable by
    contract, not by a __setattr__ guard (which would cost 4x per copy on the split path).
    """

    __slots__ = _FIELDS

    start: int
    end: int
    flags: int
    pgoff: int
    file: Optional[File]
    anon_vma: Optional[AnonVma]
    anon_chain: int
    anon_name: Optional[AnonVmaName]
    anon_pgoff: int

    def __init__(self, start: int, end: int, flags: int, pgoff: int,
                 file: Optional[File] = None, anon_vma: Optional[AnonVma] = None,
                 anon_chain: int = 0, anon_name: Optional[AnonVmaName] = None,
                 anon_pgoff: Optional[int] = None) -> None:
        """``anon_pgoff`` None: a new mapping's, its start's page number."""
        # The only place a field is assigned (tests/test_model_structure.py holds the model to it).
        self.start = start
        self.end = end
        self.flags = flags
        self.pgoff = pgoff
        self.file = file
        self.anon_vma = anon_vma
        self.anon_chain = anon_chain
        self.anon_name = anon_name
        self.anon_pgoff = start >> PAGE_SHIFT if anon_pgoff is None else anon_pgoff

    @property
    def pages(self) -> int:
        return (self.end - self.start) >> PAGE_SHIFT

    def anon_pgoff_at(self, addr: int) -> int:
        """__linear_anon_page_index: the anonymous page offset of ``addr`` (which may lie
        outside the VMA, for a range that would join it)."""
        return self.anon_pgoff + ((addr - self.start) >> PAGE_SHIFT)

    def with_range(self, start: int, end: int, pgoff: int) -> "Vma":
        """vma_set_range: the same VMA over [start, end) at file offset ``pgoff``, its
        anonymous offset kept linear (a merge's survivor, a split's piece)."""
        return Vma(start, end, self.flags, pgoff, self.file, self.anon_vma, self.anon_chain,
                   self.anon_name, self.anon_pgoff_at(start))

    def with_offsets(self, pgoff: int, anon_pgoff: int) -> "Vma":
        """The same VMA at other page offsets (an emptied MREMAP_DONTUNMAP source)."""
        return Vma(self.start, self.end, self.flags, pgoff, self.file, self.anon_vma,
                   self.anon_chain, self.anon_name, anon_pgoff)

    def with_flags(self, flags: int) -> "Vma":
        """vm_flags_reset: the same VMA with other flags."""
        return Vma(self.start, self.end, flags, self.pgoff, self.file, self.anon_vma,
                   self.anon_chain, self.anon_name, self.anon_pgoff)

    def with_name(self, anon_name: Optional[AnonVmaName]) -> "Vma":
        """The same VMA pointing at another name object (the caller moves the references)."""
        return Vma(self.start, self.end, self.flags, self.pgoff, self.file, self.anon_vma,
                   self.anon_chain, anon_name, self.anon_pgoff)

    def with_anon_vma(self, anon_vma: Optional[AnonVma], chain: int) -> "Vma":
        """The same VMA with another anon_vma and anon_vma_chain length."""
        return Vma(self.start, self.end, self.flags, self.pgoff, self.file, anon_vma, chain,
                   self.anon_name, self.anon_pgoff)

    def perms(self) -> str:
        f = self.flags
        return ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-") + (
            "x" if f & VM_EXEC else "-") + ("s" if f & VM_MAYSHARE else "p")

    def __repr__(self) -> str:
        name = f" [anon:{self.anon_name.name}]" if self.anon_name is not None else ""
        file = f" {self.file.path}" if self.file is not None else ""
        return f"<Vma {self.start:#x}-{self.end:#x} {self.perms()} pgoff={self.pgoff:#x}{file}{name}>"

