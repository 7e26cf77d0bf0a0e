"""Kernel generations: the rules that differ between the Linux releases the model speaks.

A :class:`Kernel` is a frozen set of rule functions, one field per rule that differs between
generations; everything else in the model is the same code for all of them. Each generation's
rules live in its own module (:mod:`anonvma.model.linux_6_1`, :mod:`anonvma.model.linux_6_12`),
each rule named after the kernel function it models and tagged with the commit that made it
so (:func:`rule`). The model never compares version numbers: it calls ``mm.kernel.<rule>``.

Because rules are plain fields, a kernel with one rule taken from another generation is one
:func:`dataclasses.replace` away; ``anonvma replay --compare`` uses that to name the rule
behind a difference between two generations.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

if TYPE_CHECKING:
    from anonvma.model.mm import Mm
    from anonvma.model.vma import File, Vma

F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class RuleInfo:
    """Where a generation's version of a rule comes from.

    :ivar function: the kernel function (file and name) that implements it.
    :ivar commit: the upstream commit that introduced this behaviour (abbreviated hash), or
        ``""`` for behaviour older than the feature.
    :ivar title: that commit's subject line, or what the behaviour is.
    :ivar since: the first release with it.
    """

    function: str
    commit: str
    title: str
    since: str


def rule(function: str, commit: str, title: str, since: str) -> Callable[[F], F]:
    """Tag a generation's rule function with its :class:`RuleInfo`."""
    def tag(fn: F) -> F:
        fn.rule_info = RuleInfo(function, commit, title, since)  # type: ignore[attr-defined]
        return fn
    return tag


@dataclass(frozen=True)
class Kernel:
    """One kernel generation's versions of the rules that differ between generations.

    :ivar release: ``"6.1"``, ``"6.12"``, ...
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
    """

    release: str
    anon_vma_name_allowed: Callable[["Vma"], bool]
    mmap_region_merge: Callable[["Mm", int, int, int, Optional["File"], int], Optional["Vma"]]
    mmap_region_unmap: Callable[["Mm", int, int, int], None]
    mprotect_unaccount: Callable[["Vma", int], int]
    show_smap_fields: Callable[[dict[str, int]], list[str]]
    show_smap_vma_flags: Callable[[int], list[str]]

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


def kernels() -> dict[str, Kernel]:
    """Every generation the model speaks, by release."""
    from anonvma.model.linux_6_1 import LINUX_6_1
    from anonvma.model.linux_6_12 import LINUX_6_12

    return {k.release: k for k in (LINUX_6_1, LINUX_6_12)}


#: The releases :func:`get_kernel` accepts, oldest first.
RELEASES = ("6.1", "6.12")


def get_kernel(release: str) -> Kernel:
    """The generation named ``release`` (``"6.1"`` or ``"6.12"``).

    :raises ValueError: a release the model does not speak.
    """
    try:
        return kernels()[release]
    except KeyError:
        raise ValueError(f"unknown Linux generation {release!r}: the model speaks "
                         f"{', '.join(RELEASES)}") from None
