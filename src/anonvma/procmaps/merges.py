"""VMA boundaries that exist only because names differ: adjacent VMAs the model would merge if
their names were equal, judged from what /proc shows.

Each pair of adjacent records (one ends where the next starts) whose kernel names differ is
built as two model VMAs (:class:`anonvma.model.vma.Vma`: flags from VmFlags, else from the
perms; the file by device and inode, its page offset from the maps offset) and put to the
model's own merge test with the names made equal: :func:`anonvma.model.merge.can_vma_merge_after`
(the upper VMA renamed to the lower's name, as PR_SET_VMA_ANON_NAME on it would do) or
:func:`~anonvma.model.merge.can_vma_merge_before` (the lower renamed), with the release's
is_mergeable_anon_vma and needs_adjacent_anon_pgoff, and vma_merge's VM_SPECIAL refusal.

What /proc cannot show is tried every way it could be (each a *world*):

- whether a VMA has an anon_vma: smaps says it has one when the VMA has Anonymous or Swap
  pages, and none otherwise (a VMA whose anonymous pages were all freed by MADV_DONTNEED keeps
  its anon_vma, which /proc does not show: then the answer is too kind); maps, without
  counters, leaves both open; a shared VMA never has one;
- whether two faulted VMAs share one anon_vma (a VMA faulted and then split by naming: they
  do) or not (faulted apart);
- whether a faulted VMA's anon_vma came from a fork parent (its anon_vma_chain not singular);
- whether a faulted anonymous VMA was moved by mremap (it keeps its page offset, which maps
  prints as 0 for anonymous memory: an unmoved or unfaulted one has the linear offset of its
  address, mm/mmap.c do_mmap and mm/vma.c copy_vma);
- with maps input (no VmFlags), whether flags the perms do not show differ.

A boundary the model merges in every world is *certain*; in some, *possible* (the upper bound
counts it, the lower does not), with the worlds that keep it apart as the reason. Hot enough
to matter on 64K-VMA maps: the verdict of a pair depends only on a small key, memoized.
"""

from __future__ import annotations

import itertools
from typing import AbstractSet, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from anonvma.model.kernel import Kernel
from anonvma.model.merge import can_vma_merge_after, can_vma_merge_before
from anonvma.model.names import AnonVmaName
from anonvma.model.vma import (PAGE_SHIFT, VM_DONTEXPAND, VM_EXEC, VM_FLAG_MNEMONICS, VM_LOCKONFAULT,
                               VM_MAYSHARE, VM_READ, VM_SHARED, VM_SPECIAL, VM_WRITE, AnonVma, File,
                               Vma)
from anonvma.procmaps.records import Vma as Record

#: VmFlags mnemonic -> vm_flags bit, for the flags the model knows (6.12+ prints VM_LOCKONFAULT
#: as "lf", 6.1 as "??"). Others get a bit of their own per map (:class:`_Flags`): flags the
#: model does not know still keep VMAs apart when they differ (is_mergeable_vma compares all).
_MNEMONIC_BITS: Dict[str, int] = {**{m: bit for bit, m in VM_FLAG_MNEMONICS}, "lf": VM_LOCKONFAULT}
#: mm/vma.c is_mergeable_vma ignores VM_SOFTDIRTY ("sd") when it compares flags.
_IGNORED = frozenset({"sd"})
#: A flag no record shows: the one that differs in the world where hidden flags differ.
_HIDDEN_FLAG = 1 << 1000
#: Names maps prints for VMAs whose anon_name it does not show (fs/proc/task_mmu.c
#: show_map_vma prints [heap] and [stack] by address, before the name).
_NAME_NOT_SHOWN = frozenset({"[heap]", "[stack]"})
#: The two VMAs of a pair, as the reasons name them.
BELOW, ABOVE = "the lower VMA", "the upper VMA"


class Boundary(NamedTuple):
    """One boundary between adjacent VMAs whose names differ and that would merge if they were
    equal: ``address`` (where ``below`` ends and ``above`` starts), the two maps names,
    whether the merge is ``certain``, and ``why`` (certain: what /proc showed that settles it;
    possible: the worlds that keep them apart)."""

    address: int
    below: str
    above: str
    certain: bool
    why: str


class Merges(NamedTuple):
    """The boundaries of one map and the release whose rules judged them.

    Per name (:meth:`per_name`), each boundary is counted once for each of its two names: a
    name with N boundaries against other names has N, and the names' counts add up to twice
    the boundaries.
    """

    release: str
    boundaries: Tuple[Boundary, ...]

    @property
    def lower(self) -> int:
        """Boundaries that certainly exist only because names differ."""
        return sum(b.certain for b in self.boundaries)

    @property
    def upper(self) -> int:
        """Boundaries that may: certain and possible ones."""
        return len(self.boundaries)

    def per_name(self) -> Dict[str, Tuple[int, int]]:
        """Maps name -> (lower, upper) bound of its boundaries, most first."""
        out: Dict[str, List[int]] = {}
        for b in self.boundaries:
            for name in (b.below, b.above):
                counts = out.setdefault(name, [0, 0])
                counts[0] += b.certain
                counts[1] += 1
        return {k: (v[0], v[1]) for k, v in sorted(out.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))}


class _Unknown:
    """A kernel name maps does not show ([heap], [stack])."""


UNKNOWN = _Unknown()


def kernel_name(name: str) -> Union[Optional[str], _Unknown]:
    """The anon_vma_name behind a maps name: ``[anon:X]`` and ``[anon_shmem:X]`` -> X, anything
    else -> None (unnamed: plain anonymous memory, files, special mappings), [heap] and [stack]
    -> :data:`UNKNOWN`."""
    if name in _NAME_NOT_SHOWN:
        return UNKNOWN
    for lead in ("[anon:", "[anon_shmem:"):
        if name.startswith(lead) and name.endswith("]"):
            return name[len(lead):-1]
    return None


class _Flags:
    """vm_flags of records: VmFlags mnemonics as bits, unknown mnemonics given bits of their own."""

    def __init__(self) -> None:
        self.extra: Dict[str, int] = {}

    def of(self, v: Record) -> Tuple[int, bool]:
        """(flags, whether they are all known: the record has VmFlags)."""
        special = VM_DONTEXPAND if v.name.startswith("[") and kernel_name(v.name) is None else 0
        if v.vm_flags:
            flags = 0
            for m in v.vm_flags:
                if m in _IGNORED:
                    continue
                bit = _MNEMONIC_BITS.get(m)
                if bit is None:
                    bit = self.extra.setdefault(m, 1 << (64 + len(self.extra)))
                flags |= bit
            return flags, True
        # maps: the perms only; special mappings ([vdso], [vvar] ...) are VM_DONTEXPAND
        # (mm/mmap.c __install_special_mapping)
        p = v.perms
        flags = ((VM_READ if p[0] == "r" else 0) | (VM_WRITE if p[1] == "w" else 0)
                 | (VM_EXEC if p[2] == "x" else 0) | (VM_SHARED | VM_MAYSHARE if p[3] == "s" else 0))
        return flags | special, False


class _Side(NamedTuple):
    """What /proc shows of one VMA of a pair, reduced to what the verdict depends on."""

    flags: int
    flags_known: bool
    file: bool  # file-backed (a shmem file too)
    faulted: Optional[bool]  # None: not shown (maps input)


def _side(v: Record, flags: _Flags) -> _Side:
    bits, known = flags.of(v)
    faulted: Optional[bool] = None
    if bits & VM_SHARED:
        faulted = False  # shared VMAs never get an anon_vma (mm/memory.c: only private COW faults)
    elif v.smaps is not None:
        faulted = v.smaps.anonymous > 0 or v.smaps.swap > 0
    return _Side(bits, known, v.inode != 0, faulted)


class _World(NamedTuple):
    vmas: Tuple[Vma, Vma]
    tags: Tuple[str, ...]  # what this world assumes beyond the likeliest (empty: the likeliest)


def _states(side: _Side, who: str) -> List[Tuple[bool, int, bool, Tuple[str, ...]]]:
    """(faulted, chain, moved, tags) a side may be in."""
    out: List[Tuple[bool, int, bool, Tuple[str, ...]]] = []
    if side.faulted is not True:
        out.append((False, 0, False, ()))
    if side.faulted is not False:
        lead = (f"{who} is faulted",) if side.faulted is None else ()
        for chain, moved in itertools.product((1, 2), (False, True) if not side.file else (False,)):
            tags = (*lead, *((f"{who}'s anon_vma came from a fork",) if chain == 2 else ()),
                    *((f"{who} was moved by mremap while faulted",) if moved else ()))
            out.append((True, chain, moved, tags))
    return out


def _worlds(a: _Side, b: _Side, same_file: bool, contiguous: bool) -> Iterator[_World]:
    """Every pair of model VMAs /proc leaves possible for the two sides (the lower at pages
    [1, 2), the upper at [2, 3); file offsets 0 and 1 when contiguous)."""
    files = (File("a", 1), File("b", 2)) if a.file or b.file else (None, None)
    file_a = files[0] if a.file else None
    file_b = (file_a if same_file else files[1]) if b.file else None
    flag_worlds: List[Tuple[int, Tuple[str, ...]]] = [(b.flags, ())]
    if not (a.flags_known and b.flags_known):
        flag_worlds.append((b.flags | _HIDDEN_FLAG, ("flags the perms do not show differ",)))
    for sa, sb in itertools.product(_states(a, BELOW), _states(b, ABOVE)):
        both = sa[0] and sb[0]
        for shared_anon_vma, (flags_b, flag_tags) in itertools.product((True, False) if both else (True,),
                                                                     flag_worlds):
            anon_a = AnonVma() if sa[0] else None
            anon_b = (anon_a if both and shared_anon_vma else AnonVma()) if sb[0] else None
            pg_a = 0 if a.file else 1 + (1000 if sa[2] else 0)
            pg_b = (1 if contiguous else 7) if b.file else 2 + (1000 if sb[2] else 0)
            va = Vma(1 << PAGE_SHIFT, 2 << PAGE_SHIFT, a.flags, pg_a, file_a, anon_a, sa[1], None, pg_a)
            vb = Vma(2 << PAGE_SHIFT, 3 << PAGE_SHIFT, flags_b, pg_b, file_b, anon_b, sb[1], None, pg_b)
            tags = (*sa[3], *sb[3], *(() if shared_anon_vma else ("their anon_vmas differ",)), *flag_tags)
            yield _World((va, vb), tags)


def _merges(kernel: Kernel, a: Vma, b: Vma) -> bool:
    """Whether the model merges ``a`` and the ``b`` above it once one takes the other's name
    (the same name object on both: names equal)."""
    if (a.flags | b.flags) & VM_SPECIAL:
        return False  # vma_merge: VM_SPECIAL VMAs never merge
    name = AnonVmaName("")
    anon_ok = kernel.is_mergeable_anon_vma
    pages_a = a.pages
    # the upper one renamed: a range [b.start, b.end) joining a from above
    off_b = merge_anon_pgoff_of(kernel, b)
    if can_vma_merge_after(a.with_name(name), b.flags, b.anon_vma, b.file, b.pgoff,
                           None if off_b is None else b.anon_pgoff, name, anon_ok, b.anon_chain):
        return True
    # the lower one renamed: a range [a.start, a.end) joining b from below
    off_a = merge_anon_pgoff_of(kernel, a)
    return can_vma_merge_before(b.with_name(name), a.flags, a.anon_vma, a.file, a.pgoff + pages_a,
                                None if off_a is None else a.anon_pgoff + pages_a, name, anon_ok,
                                a.anon_chain)


def merge_anon_pgoff_of(kernel: Kernel, v: Vma) -> Optional[int]:
    """The anonymous offset a merge of ``v`` as a range must find contiguous, None when the
    release does not compare it (vma_merge's use of merge.merge_anon_pgoff, whose Mm we lack)."""
    return v.anon_pgoff if v.file is not None and kernel.needs_adjacent_anon_pgoff(v.flags, v.file) else None


def _verdict(kernel: Kernel, a: _Side, b: _Side, same_file: bool,
             contiguous: bool) -> Optional[Tuple[bool, str]]:
    """(certain, why) for a pair, or None when the model never merges it."""
    merged: List[Tuple[str, ...]] = []
    apart: List[Tuple[str, ...]] = []
    for world in _worlds(a, b, same_file, contiguous):
        (merged if _merges(kernel, *world.vmas) else apart).append(world.tags)
    if not merged:
        return None
    if not apart:
        return True, _settled(a, b)
    least = [t for t in apart if not any(set(o) < set(t) for o in apart)]
    reasons = sorted({" and ".join(t) if t else "as /proc shows them" for t in least})
    return False, "not if " + "; or ".join(reasons)


def _settled(a: _Side, b: _Side) -> str:
    """What /proc showed that makes a merge certain."""
    if a.file and b.file:
        return "same file, offsets contiguous, flags equal, no anon_vma"
    return "flags equal (VmFlags), neither has an anon_vma (no Anonymous or Swap pages)"


#: Why a boundary inside one kernel VMA (cut by a process's anonvma registry) is certain.
REGISTRY_CUT = ("one kernel VMA cut by the registry's names: a kernel that keeps names splits it "
                "here and merges it back once they agree")


def name_boundaries(vmas: Sequence[Record], kernel: Kernel,
                    kernel_starts: Optional[AbstractSet[int]] = None) -> Merges:
    """The boundaries of a map (records in address order) that exist only because names differ,
    as ``kernel``'s rules judge them (:class:`Merges`).

    :param kernel_starts: where the kernel's own VMAs start, for a map whose names came in part
        from a process's anonvma registry (which cuts kernel VMAs into records by name): a
        boundary elsewhere lies inside one kernel VMA, whose parts would share everything
        (:data:`REGISTRY_CUT`)."""
    flags = _Flags()
    memo: Dict[Tuple[_Side, _Side, bool, bool], Optional[Tuple[bool, str]]] = {}
    out = []
    for lo, hi in zip(vmas, vmas[1:], strict=False):
        if lo.end != hi.start or lo.name == hi.name:
            continue
        na, nb = kernel_name(lo.name), kernel_name(hi.name)
        if na is UNKNOWN or nb is UNKNOWN or na == nb:
            continue  # the names may already be equal, or are: something else keeps them apart
        if kernel_starts is not None and hi.start not in kernel_starts:
            out.append(Boundary(hi.start, lo.name, hi.name, True, REGISTRY_CUT))
            continue
        a, b = _side(lo, flags), _side(hi, flags)
        same_file = a.file and b.file and (lo.dev, lo.inode) == (hi.dev, hi.inode)
        if a.file != b.file or (a.file and not same_file):
            continue  # another file (or none): vma_merge compares vm_file
        contiguous = hi.offset == lo.offset + (lo.end - lo.start) if a.file else True
        key = (a, b, bool(same_file), contiguous)
        if key not in memo:
            memo[key] = _verdict(kernel, a, b, bool(same_file), contiguous)
        found = memo[key]
        if found is not None:
            out.append(Boundary(hi.start, lo.name, hi.name, *found))
    return Merges(kernel.release, tuple(out))


def running_release() -> str:
    """The release of the model's table nearest the running kernel (``uname -r``): the newest of
    its series not newer than it, or of an unknown series the newest older one
    (:func:`anonvma.oracle.labels.nearest_rules`)."""
    import platform

    from anonvma.oracle.labels import nearest_rules

    return nearest_rules(platform.release().split("-")[0])
