"""Page tables of the model: which pages are present, what they map, and the page-fault path.

Each mm maps virtual page numbers to :class:`Page` objects. Anonymous pages are shared
copy-on-write after fork (their map count says by how many ptes), page-cache pages by every
mapping of the file. Read faults on anonymous memory map the zero page, which Rss ignores.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Optional

from anonvma.model.merge import anon_vma_compatible
from anonvma.model.vma import (PAGE_SHIFT, VM_MAYBE_GUARD, VM_READ, VM_SHARED, VM_WRITE, ZERO_PAGE,
                               AnonVma, Page, Vma)

if TYPE_CHECKING:
    from anonvma.model.mm import Mm


def find_mergeable_anon_vma(mm: "Mm", vma: Vma) -> Optional[AnonVma]:
    """mm/mmap.c find_mergeable_anon_vma: reuse a compatible neighbour's singular anon_vma,
    trying next first, then prev."""
    nxt = mm.index.next_of(vma)
    prev = mm.index.prev_of(vma)
    anon_pgoff = mm.kernel.needs_adjacent_anon_pgoff(vma.flags, vma.file)
    if nxt is not None:
        if (anon_vma_compatible(vma, nxt, anon_pgoff) and nxt.anon_vma is not None
                and nxt.anon_chain == 1):
            return nxt.anon_vma
    if prev is not None:
        if (anon_vma_compatible(prev, vma, anon_pgoff) and prev.anon_vma is not None
                and prev.anon_chain == 1):
            return prev.anon_vma
    return None


def anon_vma_prepare(mm: "Mm", vma: Vma) -> Vma:
    """mm/rmap.c __anon_vma_prepare: give a VMA its anon_vma on the first write fault.

    :return: the VMA as it is stored now.
    """
    if vma.anon_vma is None:
        prepared = vma.with_anon_vma(find_mergeable_anon_vma(mm, vma) or AnonVma(), 1)
        mm.index.replace(vma, prepared)
        return prepared
    return vma


def _set_pte(mm: "Mm", vpn: int, page: Page) -> None:
    old = mm.ptes.get(vpn)
    if old is not None:
        old.mapcount -= 1
    page.mapcount += 1
    mm.ptes[vpn] = page


def handle_mm_fault(mm: "Mm", addr: int, write: bool) -> None:
    """A page fault at ``addr``: the zero page, a page-cache page, or an anonymous page (COW).

    :raises OSError: EFAULT when no VMA maps ``addr`` with the needed permission (read needs
        'r', write needs 'w'), or the page lies beyond the end of its file (SIGBUS).
    """
    vma = mm.index.vma_lookup(addr)
    if vma is None or not vma.flags & (VM_WRITE if write else VM_READ):
        raise OSError(errno.EFAULT, f"no {'writable' if write else 'readable'} mapping at {addr:#x}")
    fault_page(mm, vma, addr, write)


def fault_page(mm: "Mm", vma: Vma, addr: int, write: bool) -> Page:
    """The fault itself, once the access is allowed (get_user_pages' FOLL_FORCE also reads
    VMAs without VM_READ): map the page at ``addr`` of ``vma``, breaking COW on a write.

    :return: the page now mapped there (a write fault on private memory may have given
        the VMA an anon_vma: look it up again in the index).
    :raises OSError: EFAULT when the page lies beyond the end of its file (SIGBUS).
    """
    vpn = addr >> PAGE_SHIFT
    mm.young.add(vpn)  # the access sets the pte's accessed bit (smaps Referenced)
    file = vma.file
    file_index = vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT)
    if file is not None and file_index >= file.size_pages:  # shmem too: mremap grows a mapping, not its file
        raise OSError(errno.EFAULT, f"{addr:#x} lies beyond the end of {file.path} (SIGBUS)")
    pte = mm.ptes.get(vpn)
    if vma.flags & VM_SHARED:
        page = file.page(file_index) if file is not None else ZERO_PAGE
        if pte is not page:
            _set_pte(mm, vpn, page)
        if write:
            page.dirty = True
        return page
    if not write:
        if pte is None:
            pte = file.page(file_index) if file is not None else ZERO_PAGE
            _set_pte(mm, vpn, pte)
        return pte
    anon_vma_prepare(mm, vma)
    if pte is not None and pte.anon and pte.mapcount == 1:
        pte.dirty = True  # already ours: write-enable in place
        return pte
    page = Page(anon=True, dirty=True)  # new page, or the copy of a COW page
    _set_pte(mm, vpn, page)
    return page


def zap_range(mm: "Mm", start: int, end: int) -> None:
    """Unmap every present page in [start, end) (munmap, MADV_DONTNEED, exit)."""
    ptes = mm.ptes
    if not ptes:
        return
    lo, hi = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    if hi - lo > len(ptes):
        victims = [vpn for vpn in ptes if lo <= vpn < hi]
    else:
        victims = [vpn for vpn in range(lo, hi) if vpn in ptes]
    young = mm.young
    for vpn in victims:
        ptes.pop(vpn).mapcount -= 1
        young.discard(vpn)


def copy_page_range(dst: "Mm", src: "Mm", vma: Vma) -> int:
    """mm/memory.c copy_page_range for fork: share the parent's ptes of ``vma`` with the child.

    Like 6.1 (vma_needs_copy), VMAs without an anon_vma are skipped: faults refill them.
    The child's ptes are old (copy_present_pte's pte_mkold), so not yet Referenced.
    :return: the number of ptes copied.
    """
    # vma_needs_copy: VM_MAYBE_GUARD (only 6.19+ sets it) copies the page tables too
    if vma.anon_vma is None and not vma.flags & VM_MAYBE_GUARD or not src.ptes:
        return 0
    sptes, dptes = src.ptes, dst.ptes
    copied = 0
    for vpn in range(vma.start >> PAGE_SHIFT, vma.end >> PAGE_SHIFT):
        page = sptes.get(vpn)
        if page is not None:
            page.mapcount += 1
            dptes[vpn] = page
            copied += 1
    return copied
