"""The rules that differ between the Linux releases the model speaks, and how a release
resolves to them.

A :class:`Kernel` is a frozen set of rule functions, one field per rule that differs between
releases; everything else in the model is the same code for all of them. A rule's versions live
beside the code they change (each model module's ``RULES``), oldest first, each tagged with the
commit that brought it (:func:`rule`). A release of :mod:`anonvma.releases` has a version when
its mainline series is at least the version's ``since``, or when its stable series backported
the version's commit; the newest such version is the release's. The model never compares
version numbers: it calls ``mm.kernel.<rule>``.

Because rules are plain fields, a kernel with one rule taken from another release is one
:func:`dataclasses.replace` away; ``anonvma replay --compare`` uses that to name the rule
behind a difference between two releases.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from anonvma import releases

if TYPE_CHECKING:
    from anonvma.model.mm import Mm
    from anonvma.model.vma import AnonVma, File, Vma

F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class RuleInfo:
    """Where a version of a rule comes from.

    :ivar function: the kernel function (file and name) that implements it.
    :ivar commit: the upstream commit that introduced this behaviour (abbreviated hash, or a
        ``lore`` message id), ``""`` for behaviour older than the feature; a form that only a
        stable series has carries that series in parentheses (``"838bb60dc215 (6.1.y)"``).
    :ivar title: that commit's subject line, or what the behaviour is.
    :ivar since: the first mainline release with it; ``""`` for a form only stable series have.
    """

    function: str
    commit: str
    title: str
    since: str


def rule(function: str, commit: str, title: str, since: str) -> Callable[[F], F]:
    """Tag a version of a rule with its :class:`RuleInfo`."""
    def tag(fn: F) -> F:
        fn.rule_info = RuleInfo(function, commit, title, since)  # type: ignore[attr-defined]
        return fn
    return tag


@dataclass(frozen=True)
class Kernel:
    """One release's versions of the rules that differ between releases.

    :ivar release: the release's name in :mod:`anonvma.releases` (``"6.1.192"``), or a
        description of a hybrid.
    :ivar anon_vma_name_allowed: (vma) -> whether PR_SET_VMA_ANON_NAME may name this VMA
        (madvise_vma_anon_name's EBADF test; madvise_update_vma sets names on the same VMAs).
    :ivar mmap_region_merge: (mm, addr, end, flags, file, pgoff) -> the VMA a new mapping
        merged into (extending a neighbour), or None: which neighbour a new mapping extends.
    :ivar mmap_region_unmap: (mm, addr, end, charge) -> clear what [addr, end) replaces and
        charge ``charge`` pages of commit, raising ENOMEM: what a failed MAP_FIXED leaves.
    :ivar mprotect_unaccount: (vma, newflags) -> newflags, where mprotect may give back the
        commit (VM_ACCOUNT) of a VMA losing write.
    :ivar show_smap_fields: (stats in kB by field) -> the smaps lines from Rss to THPeligible.
    :ivar show_smap_vma_flags: (vm_flags) -> the VmFlags mnemonics.
    :ivar copy_vma_merge: (mm, vma, addr, end, pgoff, anon_pgoff, keep_source) -> the VMA an mremap copy
        of ``vma`` to [addr, end) merged into, or None: whether an MREMAP_DONTUNMAP copy of an
        unfaulted VMA may merge with its own source.
    :ivar move_vma_split_locked: (mm, vma, old_addr, old_len, dontunmap) -> the VMA to move:
        whether a locked source of an MREMAP_DONTUNMAP move is split first.
    :ivar is_mergeable_anon_vma: (target, the range's anon_vma, the chain length of the VMA it
        comes from) -> whether differing anon_vmas allow a merge: whether a faulted range may
        merge into an unfaulted VMA.
    :ivar needs_adjacent_anon_pgoff: (the range's flags, its file) -> whether a merge (and
        anon_vma reuse) also needs the anonymous page offsets contiguous: private file VMAs
        moved while faulted.
    :ivar madvise_behavior_valid: (advice) -> whether madvise knows it (the guard advices).
    :ivar madvise_guard_install: (mm, vma, start, end) -> the VMA: MADV_GUARD_INSTALL on one
        VMA piece (whether it flags the VMA VM_MAYBE_GUARD).
    :ivar do_mseal: (mm, addr, length) -> None: mseal(2), or ENOSYS.
    :ivar do_mremap: (mm, addr, old_len, new_len, flag bits, new_addr) -> the address: the
        body of SYSCALL mremap, which checks come first and whether a fixed move may span
        several VMAs.
    :ivar move_vma_dontunmap_source: (vma, old_addr, old_len) -> what an MREMAP_DONTUNMAP move
        leaves of its source once the page tables are gone (locks dropped, anon_vma, pgoff).
    """

    release: str
    anon_vma_name_allowed: Callable[["Vma"], bool]
    mmap_region_merge: Callable[["Mm", int, int, int, Optional["File"], int], Optional["Vma"]]
    mmap_region_unmap: Callable[["Mm", int, int, int], None]
    mprotect_unaccount: Callable[["Vma", int], int]
    show_smap_fields: Callable[[dict[str, int]], list[str]]
    show_smap_vma_flags: Callable[[int], list[str]]
    copy_vma_merge: Callable[["Mm", "Vma", int, int, int, int, bool], Optional["Vma"]]
    move_vma_split_locked: Callable[["Mm", "Vma", int, int, bool], "Vma"]
    move_vma_dontunmap_source: Callable[["Vma", int, int], "Vma"]
    do_mremap: Callable[["Mm", int, int, int, int, int], int]
    is_mergeable_anon_vma: Callable[["Vma", Optional["AnonVma"], int], bool]
    needs_adjacent_anon_pgoff: Callable[[int, Optional["File"]], bool]
    madvise_behavior_valid: Callable[[str], bool]
    madvise_guard_install: Callable[["Mm", "Vma", int, int], "Vma"]
    do_mseal: Callable[["Mm", int, int], None]

    def rules(self) -> dict[str, RuleInfo]:
        """Each rule's field name and where this generation's version comes from."""
        out = {}
        for f in fields(self):
            info = getattr(getattr(self, f.name), "rule_info", None)
            if info is not None:
                out[f.name] = info
        return out

    def rule_names(self) -> list[str]:
        """The rule fields, in declaration order."""
        return [f.name for f in fields(self) if f.name != "release"]

    def __repr__(self) -> str:
        return f"<Kernel Linux {self.release}>"


def rule_versions() -> dict[str, tuple[Callable[..., Any], ...]]:
    """Every rule's versions, oldest first, from the modules whose code they change."""
    from anonvma.model import madvise, merge, mmap, mprotect, mremap, mseal, task_mmu

    table: dict[str, tuple[Callable[..., Any], ...]] = {}
    for module in (madvise, merge, mmap, mprotect, mremap, mseal, task_mmu):
        table.update(module.RULES)
    return table


def info_of(version: Callable[..., Any]) -> RuleInfo:
    """The :class:`RuleInfo` a version was tagged with."""
    info: RuleInfo = version.rule_info  # type: ignore[attr-defined]
    return info


def has_version(release: releases.Release, info: RuleInfo) -> bool:
    """Whether ``release`` has this version: its series is at least the version's mainline
    release, or its stable series took the version's commit."""
    if info.commit and info.commit in release.backports:
        return True
    return bool(info.since) and releases.version_key(info.since) <= releases.version_key(release.mainline)


def resolve(release: releases.Release) -> Kernel:
    """The frozen :class:`Kernel` of a release: for each rule, the newest version it has.

    :raises LookupError: a rule has no version the release has (the table is incomplete).
    """
    chosen: dict[str, Callable[..., Any]] = {}
    for name, versions in rule_versions().items():
        have = [v for v in versions if has_version(release, info_of(v))]
        if not have:
            raise LookupError(f"rule {name}: no version for Linux {release.name}")
        chosen[name] = have[-1]
    return Kernel(release=release.name, **chosen)


def get_kernel(release: str) -> Kernel:
    """The rules of the release named ``release``: a point release of :mod:`anonvma.releases`
    (``"6.1.192"``) or a series (``"6.1"``: its newest point release); one object per release.

    :raises ValueError: a release the model does not speak.
    """
    return _kernel(releases.resolve(release).name)


@lru_cache(maxsize=None)
def _kernel(name: str) -> Kernel:
    return resolve(releases.resolve(name))


def kernels() -> dict[str, Kernel]:
    """Every release the model speaks, by name, oldest first."""
    return {name: get_kernel(name) for name in releases.names()}
