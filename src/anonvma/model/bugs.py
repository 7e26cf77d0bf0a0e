"""Historic bugs of named anonymous memory, reintroduced on demand.

Both were found by syzbot in the code the model follows and fixed before 5.17 shipped. Tests
switch them back on to prove that the invariant checker and the differential tests notice.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HistoricBugs:
    """Which fixes to leave out (all False: the kernel as released).

    :ivar no_transient_name_ref: 942341dcc574 reverted: madvise_vma_behavior holds no
        reference on the VMA's name across madvise_update_vma, so a merge that frees the VMA
        frees the name the update then compares (use after free).
    :ivar no_saturation_guard: 96403e11283d reverted: anon_vma_name_reuse shares the object
        even at REFCOUNT_MAX, so its refcount saturates (refcount_t warns and leaks it).
    """

    no_transient_name_ref: bool = False
    no_saturation_guard: bool = False


#: The kernel as released: every fix in.
FIXED = HistoricBugs()
