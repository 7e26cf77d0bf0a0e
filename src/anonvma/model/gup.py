"""Populating page tables ahead of access: mm/gup.c populate_vma_page_range and __mm_populate.

mlock, MAP_POPULATE, mprotect of a locked VMA and mremap growth of a locked VMA fault pages in
this way. For the model what matters is that a private writable VMA is *write*-faulted, so it
gets an anon_vma (and then merges like any faulted VMA); other VMAs are read-faulted.
Line numbers: Debian linux-source 6.1.176 mm/gup.c / 6.12.95 mm/gup.c.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from anonvma.model.pagetable import fault_page
from anonvma.model.vma import (PAGE_SHIFT, PAGE_SIZE, VM_ACCESS_FLAGS, VM_IO, VM_LOCKED, VM_LOCKONFAULT,
                               VM_PFNMAP, VM_SHARED, VM_WRITE, ZERO_PAGE, Page, Vma)

if TYPE_CHECKING:
    from anonvma.model.mm import Mm


def populate_vma_page_range(mm: "Mm", vma: Vma, start: int, end: int) -> int:
    """populate_vma_page_range (6.1 1566-1610, 6.12 1888-1939): fault in [start, end) of ``vma``.

    VM_LOCKONFAULT VMAs are left alone. Private writable VMAs get write faults (FOLL_WRITE:
    COW broken, anon_vma prepared), the rest read faults. PROT_NONE VMAs fail with EFAULT
    (6.1: check_vma_flags without FOLL_FORCE; 6.12 says so before it). FOLL_FORCE lets a
    read fault into an exec-only or write-only VMA.

    :return: the number of pages faulted in, fewer than asked when a later page failed.
    :raises OSError: EFAULT when the first page cannot be faulted in (__get_user_pages).
    """
    pages = (end - start) >> PAGE_SHIFT
    flags = vma.flags
    if flags & VM_LOCKONFAULT:
        return pages
    if not flags & VM_ACCESS_FLAGS:
        raise OSError(errno.EFAULT, f"{start:#x}: PROT_NONE pages are never populated")
    write = flags & (VM_WRITE | VM_SHARED) == VM_WRITE
    for done in range(pages):
        addr = start + done * PAGE_SIZE
        page = _follow_page(mm, addr, write)
        if page is None:
            try:
                page = fault_page(mm, vma, addr, write)
            except OSError:
                if done == 0:
                    raise
                return done
            if write and vma.anon_vma is None:  # the fault stored the VMA with its anon_vma
                vma = mm.index.vma_lookup(addr)  # type: ignore[assignment]
        mark_page_accessed(page, unevictable=bool(flags & VM_LOCKED))
    return pages


def _follow_page(mm: "Mm", addr: int, write: bool) -> "Page | None":
    """follow_page_pte: the page mapped at ``addr`` if it serves the access without a fault
    (a write needs a page of our own: anonymous and mapped once); else None."""
    page = mm.ptes.get(addr >> PAGE_SHIFT)
    if page is None or write and not (page.anon and page.mapcount == 1):
        return None
    return page


def mark_page_accessed(page: Page, unevictable: bool) -> None:
    """FOLL_TOUCH's folio_mark_accessed (6.1 mm/swap.c): the first touch sets PG_referenced,
    which smaps counts as Referenced in every mapping of the page (a fork child's too); a
    second touch of an evictable inactive page activates it and clears PG_referenced.
    Mlocked pages are unevictable: ``unevictable`` stands for "touched through a VM_LOCKED
    VMA" (a page locked only through another process's VMA is not tracked)."""
    if page is ZERO_PAGE:
        return  # vm_normal_page: never counted
    if not page.referenced:
        page.referenced = True
    elif not unevictable and not page.active:
        page.active = True
        page.referenced = False


def mm_populate(mm: "Mm", start: int, length: int, ignore_errors: bool) -> None:
    """__mm_populate (6.1 1683-1731, 6.12 2000-2052): populate every VMA piece of the range.

    Holes are skipped; VM_IO/VM_PFNMAP VMAs too. With ``ignore_errors`` (mm_populate:
    MAP_POPULATE, mremap) a failing VMA is skipped, else (mlock) the first error stops.

    :raises OSError: the first EFAULT, when not ignoring errors.
    """
    end = start + length
    nstart = start
    vma = None
    while nstart < end:
        if vma is None or nstart >= vma.end:
            vma = mm.index.find_vma(nstart if vma is None else vma.end)
            if vma is None or vma.start >= end:
                break
        nend = min(end, vma.end)
        if vma.flags & (VM_IO | VM_PFNMAP):
            nstart = nend
            continue
        nstart = max(nstart, vma.start)
        try:
            done = populate_vma_page_range(mm, vma, nstart, nend)
        except OSError:
            if not ignore_errors:
                raise
            nstart = nend
            continue
        nstart += done << PAGE_SHIFT
