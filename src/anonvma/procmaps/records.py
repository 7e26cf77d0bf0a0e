"""Typed records: one :class:`Vma` per maps/smaps entry, :class:`Group` totals, :class:`Change` diffs.

Sizes are in kB, as the kernel prints them. ``Vma`` is a NamedTuple (cheap to build 64K of them,
immutable, unpacks like a row); its field order is the kernel's smaps order.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, NamedTuple, Optional, Tuple

from anonvma.procmaps.names import classify


class Smaps(NamedTuple):
    """The per-VMA counters of /proc/PID/smaps, in the kernel's order; sizes in kB.

    A field the kernel did not print is 0 (``thp_eligible``/``protection_key``: ``None``; ``size``:
    the address range); which ones were printed is :attr:`Snapshot.fields`. VMAs with identical
    counters share one object.
    """

    size: int = 0
    kernel_page_size: int = 0
    mmu_page_size: int = 0
    rss: int = 0
    pss: int = 0
    pss_dirty: int = 0
    pss_anon: int = 0
    pss_file: int = 0
    pss_shmem: int = 0
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    referenced: int = 0
    anonymous: int = 0
    ksm: int = 0
    lazy_free: int = 0
    anon_huge_pages: int = 0
    shmem_pmd_mapped: int = 0
    file_pmd_mapped: int = 0
    shared_hugetlb: int = 0
    private_hugetlb: int = 0
    swap: int = 0
    swap_pss: int = 0
    locked: int = 0
    thp_eligible: Optional[int] = None
    protection_key: Optional[int] = None


class Vma(NamedTuple):
    """One VMA as /proc/PID/maps or smaps prints it.

    Header fields: ``start``/``end`` (addresses), ``perms`` (``rw-p``), ``offset`` (bytes),
    ``dev`` (``"fe:00"``), ``inode``, ``name`` (exactly as printed after the padding, never trimmed:
    ``[anon:dalvik-main space]``, ``/lib/x.so (deleted)``, ``""`` for plain anonymous memory).
    ``smaps`` holds the counters (``None`` for maps input), ``vm_flags`` the VmFlags mnemonics,
    and ``extra`` the lines this parser does not know (Android's ``Name:``, future fields) as
    ``(key, value)`` pairs in file order.
    """

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    name: str
    smaps: Optional[Smaps] = None
    vm_flags: Tuple[str, ...] = ()
    extra: Tuple[Tuple[str, str], ...] = ()

    @property
    def kind(self) -> str:
        """One of :data:`anonvma.procmaps.names.KINDS`."""
        return classify(self.name)

    @property
    def size(self) -> int:
        """Size in kB (from smaps, or from the address range for maps input)."""
        return self.smaps.size if self.smaps is not None else (self.end - self.start) >> 10

    @property
    def rss(self) -> int:
        """Rss in kB (0 without smaps)."""
        return self.smaps.rss if self.smaps is not None else 0

    @property
    def pss(self) -> int:
        """Pss in kB (0 without smaps)."""
        return self.smaps.pss if self.smaps is not None else 0

    @property
    def uss(self) -> int:
        """Private_Clean + Private_Dirty in kB: what freeing this VMA would give back."""
        s = self.smaps
        return s.private_clean + s.private_dirty if s is not None else 0

    @property
    def shared(self) -> int:
        """Shared_Clean + Shared_Dirty in kB."""
        s = self.smaps
        return s.shared_clean + s.shared_dirty if s is not None else 0

    @property
    def swap(self) -> int:
        """Swap in kB (0 without smaps)."""
        return self.smaps.swap if self.smaps is not None else 0


#: smaps key -> Smaps field, for every per-VMA field printed in kB (fs/proc/task_mmu.c
#: __show_smap, show_smap; Pss_Anon/File/Shmem appear in smaps_rollup).
KB_FIELDS: Dict[str, str] = {
    "Size": "size", "KernelPageSize": "kernel_page_size", "MMUPageSize": "mmu_page_size",
    "Rss": "rss", "Pss": "pss", "Pss_Dirty": "pss_dirty", "Pss_Anon": "pss_anon",
    "Pss_File": "pss_file", "Pss_Shmem": "pss_shmem", "Shared_Clean": "shared_clean",
    "Shared_Dirty": "shared_dirty", "Private_Clean": "private_clean",
    "Private_Dirty": "private_dirty", "Referenced": "referenced", "Anonymous": "anonymous",
    "KSM": "ksm", "LazyFree": "lazy_free", "AnonHugePages": "anon_huge_pages",
    "ShmemPmdMapped": "shmem_pmd_mapped", "FilePmdMapped": "file_pmd_mapped",
    "Shared_Hugetlb": "shared_hugetlb", "Private_Hugetlb": "private_hugetlb", "Swap": "swap",
    "SwapPss": "swap_pss", "Locked": "locked",
}
#: smaps keys printed as a bare integer.
INT_FIELDS: Dict[str, str] = {"THPeligible": "thp_eligible", "ProtectionKey": "protection_key"}
VMFLAGS_KEY = "VmFlags"
#: Smaps field name -> index in the tuple.
SMAPS_INDEX: Dict[str, int] = {name: i for i, name in enumerate(Smaps._fields)}


class Registered(NamedTuple):
    """What a process's anonvma registry (names kept where the kernel cannot keep them, see
    :mod:`anonvma.procmaps.registered`) changed in its map.

    :ivar path: the registry file.
    :ivar ranges: registered ranges in it.
    :ivar dropped: of them, ranges whose memory is gone or changed (unmapped, moved, replaced,
        mprotected): not attributed to anything.
    :ivar hidden: of them, ranges on the heap or stack, which maps shows as ``[heap]`` and
        ``[stack]`` even when the kernel names them.
    :ivar names: the maps names (``[anon:NAME]``) that came from the registry.
    :ivar estimated: the maps names with counters estimated in part (a VMA shared between
        names whose pages could not all be attributed exactly); may include ``""``.
    :ivar cut: VMAs cut into parts by name; ``parts``: the records they became. The map has
        ``parts - cut`` records more than the kernel has VMAs.
    :ivar why_dropped: (reason, ranges) of the dropped ones, a reason a key of
        :data:`anonvma.live.registry.coverage.GONE`.
    :ivar saved: read from a file ``anonvma snapshot`` saved (:mod:`anonvma.procmaps.saved`):
        ``path`` is that file, ``ranges`` the VMAs it marks registered (nothing was dropped or
        hidden there).
    """

    path: str
    ranges: int
    dropped: int
    hidden: int
    names: FrozenSet[str]
    estimated: FrozenSet[str]
    cut: int = 0
    parts: int = 0
    why_dropped: Tuple[Tuple[str, int], ...] = ()
    saved: bool = False

    @property
    def extra(self) -> int:
        """Records in the map beyond the kernel's VMAs (the parts of the VMAs cut by name)."""
        return self.parts - self.cut


class Snapshot(NamedTuple):
    """The parsed memory map of one process at one time.

    :ivar source: where it came from (``/proc/123/smaps`` or a file path).
    :ivar pid: the process id when read live, else ``None``.
    :ivar vmas: the entries, in address order as the kernel printed them.
    :ivar fields: the smaps keys that were present (empty for a maps file).
    :ivar registry: what the process's registry of names changed, if it has one (then some
        VMAs are the parts of a kernel VMA, named as registered).
    """

    source: str
    pid: Optional[int]
    vmas: Tuple[Vma, ...]
    fields: Tuple[str, ...]
    registry: Optional[Registered] = None

    @property
    def has_smaps(self) -> bool:
        """True if the input had per-VMA counters (smaps), False for plain maps."""
        return bool(self.fields)


#: (maps name, counters) -> how many VMAs have both; counters ``None`` for maps input.
Counts = Dict[Tuple[str, Optional[Smaps]], int]


class Tally(NamedTuple):
    """A memory map reduced to what grouping by name or kind needs, no VMA records.

    Built while reading a live smaps (:func:`~anonvma.procmaps.source.read_tally`), or from a
    :class:`Snapshot` (:func:`~anonvma.procmaps.group.tally_of`).

    :ivar vmas: how many VMAs the map has.
    :ivar counts: (name, counters) -> VMAs, in first-seen order.
    :ivar sizes: name -> kB of its VMAs without counters (maps input: the ranges).
    :ivar registry: as :attr:`Snapshot.registry`.
    """

    source: str
    pid: Optional[int]
    vmas: int
    fields: Tuple[str, ...]
    counts: Counts
    sizes: Dict[str, int]
    registry: Optional[Registered] = None

    @property
    def has_smaps(self) -> bool:
        """True if the input had per-VMA counters (smaps), False for plain maps."""
        return bool(self.fields)


#: Group values that only smaps has: unknown (``None`` from :meth:`Group.value`) for maps input.
SMAPS_ONLY = frozenset({"rss", "pss", "uss", "shared", "swap", "swap_pss", "shared_clean",
                        "shared_dirty", "private_clean", "private_dirty"})
#: Group fields summed by :func:`~anonvma.procmaps.group.total` (kB, except count).
SUMMED = ("count", "size", "rss", "pss", "shared_clean", "shared_dirty", "private_clean",
          "private_dirty", "swap", "swap_pss")


#: The columns users ask for beyond the default ones (:data:`SUMMED`), in Group's field order:
#: kB, except ``thp_eligible`` (VMAs with ``THPeligible: 1``). Each is known or not per group
#: (:attr:`Group.unknown`): a kernel that does not print a field leaves it unknown, never 0.
COLUMNS = ("pss_dirty", "pss_anon", "pss_file", "pss_shmem", "locked", "lazy_free",
           "anon_huge_pages", "thp_eligible")
#: The smaps key each of :data:`COLUMNS` (and ``swap_pss``) is read from.
COLUMN_KEYS: Dict[str, str] = {
    "swap_pss": "SwapPss", "pss_dirty": "Pss_Dirty", "pss_anon": "Pss_Anon", "pss_file": "Pss_File",
    "pss_shmem": "Pss_Shmem", "locked": "Locked", "lazy_free": "LazyFree",
    "anon_huge_pages": "AnonHugePages", "thp_eligible": "THPeligible"}
#: What a Group built without knowing which smaps keys were printed leaves unknown.
UNPRINTED = frozenset(COLUMNS)


class Group(NamedTuple):
    """Totals (kB) over the VMAs sharing one key (a name, folded name, kind, one VMA, a process).

    ``measured`` is False when the VMAs came from a maps file, which has no counters: then
    only ``count`` and ``size`` mean something, and :meth:`value` gives ``None`` for the rest
    (unknown, not zero). ``processes`` is how many processes the VMAs belong to.
    ``registered``: some of the memory was named by a process's anonvma registry, not by the
    kernel; ``estimated``: some counters were estimated (see :class:`Registered`).
    ``unknown``: the fields of :data:`COLUMNS` (and ``swap_pss``) that the kernel did not print
    for some of the VMAs (or, summed over processes, for some process): :meth:`value` gives
    ``None`` for them.
    """

    key: str
    kind: str
    count: int  # type: ignore[assignment]  # shadows tuple.count: the VMA count
    size: int
    rss: int
    pss: int
    shared_clean: int
    shared_dirty: int
    private_clean: int
    private_dirty: int
    swap: int
    swap_pss: int
    processes: int = 1
    measured: bool = True
    registered: bool = False
    estimated: bool = False
    pss_dirty: int = 0
    pss_anon: int = 0
    pss_file: int = 0
    pss_shmem: int = 0
    locked: int = 0
    lazy_free: int = 0
    anon_huge_pages: int = 0
    thp_eligible: int = 0  # VMAs with THPeligible: 1, not kB
    unknown: FrozenSet[str] = UNPRINTED

    @property
    def uss(self) -> int:
        """Private_Clean + Private_Dirty (kB)."""
        return self.private_clean + self.private_dirty

    @property
    def shared(self) -> int:
        """Shared_Clean + Shared_Dirty (kB)."""
        return self.shared_clean + self.shared_dirty

    def value(self, field: str) -> Optional[int]:
        """A field's value, ``None`` if unknown (a smaps-only field of maps input, or a field in
        :attr:`unknown`)."""
        if (not self.measured and field in SMAPS_ONLY) or field in self.unknown:
            return None
        return int(getattr(self, field))


#: Every :attr:`Change.status`.
STATUSES = ("grew", "shrank", "appeared", "vanished", "changed", "same")


class Change(NamedTuple):
    """How one group differs between two snapshots.

    ``status`` is one of :data:`STATUSES`: ``appeared``/``vanished`` when the key exists on one
    side only, else ``grew``/``shrank`` by ``measure`` (the field the diff compared: the one
    asked for, or ``size`` when a side came from maps and has no counters), ``changed`` when
    ``measure`` is the same but another measure known on both sides differs (an RSS change
    under ``--sort size``), and ``same`` when none does.
    """

    key: str
    kind: str
    status: str
    before: Optional[Group]
    after: Optional[Group]
    measure: str = "pss"

    def delta(self, field: str) -> Optional[int]:
        """after - before of a Group field (``"pss"``, ``"uss"``, ``"count"`` ...).

        A side where the group does not exist counts 0; a side whose value is unknown (maps
        input) makes the delta unknown: ``None``.
        """
        old = self.before.value(field) if self.before is not None else 0
        new = self.after.value(field) if self.after is not None else 0
        if old is None or new is None:
            return None
        return new - old
