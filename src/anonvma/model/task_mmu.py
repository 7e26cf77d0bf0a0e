"""fs/proc/task_mmu.c: /proc/PID/maps and /proc/PID/smaps of a model mm, byte for byte."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from anonvma.model.vma import PAGE_SHIFT, VM_FLAG_MNEMONICS, VM_LOCKED, VM_LOCKONFAULT, ZERO_PAGE, Vma
from anonvma.model.kernel import rule

if TYPE_CHECKING:
    from anonvma.model.mm import Mm

#: seq_setwidth(m, 25 + sizeof(void *) * 6 - 1) on 64-bit: names start one column after this
NAME_COLUMN = 72


def get_vma_name(vma: Vma) -> Optional[str]:
    """get_vma_name (6.1 show_map_vma): a file VMA shows ``[anon_shmem:NAME]`` when named
    (only anonymous shmem can be, from 6.2) or else its path; an anonymous one ``[anon:NAME]``."""
    name = vma.anon_name
    if vma.file is not None:
        if name is not None:
            return f"[anon_shmem:{name.name}]"
        return vma.file.path.replace("\n", "\\012")
    if name is not None:
        return f"[anon:{name.name}]"
    return None


def maps_line(vma: Vma) -> str:
    """One /proc/PID/maps line without its newline."""
    f = vma.file
    if f is not None:
        pgoff, dev, inode = vma.pgoff << PAGE_SHIFT, f.dev, f.inode
    else:
        pgoff, dev, inode = 0, "00:00", 0
    line = f"{vma.start:08x}-{vma.end:08x} {vma.perms()} {pgoff:08x} {dev} {inode} "
    name = get_vma_name(vma)
    if name is None:
        return line
    return f"{line:<{NAME_COLUMN}} {name}"


def render_maps(mm: "Mm") -> str:
    """The whole /proc/PID/maps text."""
    return "".join(maps_line(vma) + "\n" for vma in mm.index)


_SMAP_FIELDS = ("Rss", "Pss", "Pss_Dirty", "Shared_Clean", "Shared_Dirty", "Private_Clean",
                "Private_Dirty", "Referenced", "Anonymous", "LazyFree", "AnonHugePages",
                "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb", "Private_Hugetlb", "Swap",
                "SwapPss", "Locked")
PSS_SHIFT = 12


def smap_stats(mm: "Mm", vma: Vma) -> dict[str, int]:
    """smap_gather_stats for one VMA, in kB (Pss summed in bytes << PSS_SHIFT like the kernel)."""
    kb = 4
    one = 4096 << PSS_SHIFT
    stats = dict.fromkeys(_SMAP_FIELDS, 0)
    pss = pss_dirty = 0
    ptes, young = mm.ptes, mm.young
    for vpn in range(vma.start >> PAGE_SHIFT, vma.end >> PAGE_SHIFT):
        page = ptes.get(vpn)
        if page is None or page is ZERO_PAGE:
            continue
        stats["Rss"] += kb
        if vpn in young or page.referenced:
            stats["Referenced"] += kb
        if page.anon:
            stats["Anonymous"] += kb
        share = one // page.mapcount if page.mapcount >= 2 else one
        pss += share
        if page.dirty:
            pss_dirty += share
        kind = ("Shared_" if page.mapcount >= 2 else "Private_") + ("Dirty" if page.dirty else "Clean")
        stats[kind] += kb
    stats["Pss"] = pss >> PSS_SHIFT >> 10
    stats["Pss_Dirty"] = pss_dirty >> PSS_SHIFT >> 10
    if vma.flags & VM_LOCKED:  # smaps_page_accumulate: pss_locked sums the same shares as Pss
        stats["Locked"] = stats["Pss"]
    return stats


def smaps_entry(mm: "Mm", vma: Vma) -> str:
    """One VMA's /proc/PID/smaps entry (show_smap); the generation decides the field lines
    after the header and the VmFlags mnemonics."""
    kernel = mm.kernel
    out = [maps_line(vma), f"Size:           {(vma.end - vma.start) >> 10:8d} kB",
           "KernelPageSize: {:8d} kB".format(4), "MMUPageSize:    {:8d} kB".format(4)]
    out += kernel.show_smap_fields(smap_stats(mm, vma))
    flags = "".join(m + " " for m in kernel.show_smap_vma_flags(vma.flags))
    out.append(f"VmFlags: {flags}")
    return "\n".join(out) + "\n"


def smap_field_line(key: str, kb: int) -> str:
    """One ``Key:   value kB`` line of __show_smap (Private_Hugetlb's label is one column longer)."""
    if key == "Private_Hugetlb":
        return f"Private_Hugetlb: {kb:7d} kB"
    return f"{key + ':':<16}{kb:8d} kB"


def vma_flag_names(flags: int, lockonfault: str) -> list[str]:
    """show_smap_vma_flags: the mnemonic of each set flag, VM_LOCKONFAULT's given."""
    return [lockonfault if bit == VM_LOCKONFAULT else m for bit, m in VM_FLAG_MNEMONICS if flags & bit]


def render_smaps(mm: "Mm") -> str:
    """The whole /proc/PID/smaps text."""
    return "".join(smaps_entry(mm, vma) for vma in mm.index)


@rule("fs/proc/task_mmu.c __show_smap, show_smap", "", "no KSM line; THPeligible printed with %d",
      "before 5.17")
def show_smap_fields_no_ksm(stats: dict[str, int]) -> list[str]:
    """Rss .. Locked in __show_smap's order, then ``THPeligible:    0``."""
    return [smap_field_line(key, kb) for key, kb in stats.items()] + ["THPeligible:    0"]


@rule("fs/proc/task_mmu.c __show_smap, show_smap",
      "lore 20230822180539.1424843-1-shr@devkernel.io",
      "proc/ksm: add ksm stats to /proc/pid/smaps (and THPeligible with %8u)", "6.6")
def show_smap_fields_ksm(stats: dict[str, int]) -> list[str]:
    """Rss .. Locked with a ``KSM:`` line after Anonymous, then ``THPeligible:`` padded like
    the other fields."""
    out = []
    for key, kb in stats.items():
        out.append(smap_field_line(key, kb))
        if key == "Anonymous":
            out.append(smap_field_line("KSM", 0))  # the model has no KSM pages
    return out + [f"THPeligible:    {0:8d}"]


@rule("fs/proc/task_mmu.c show_smap_vma_flags", "", "VM_LOCKONFAULT has no mnemonic: '??'",
      "before 5.17")
def show_smap_vma_flags_no_lf(flags: int) -> list[str]:
    """The mnemonics; VM_LOCKONFAULT falls to the table's default, ``??``."""
    return vma_flag_names(flags, "??")


@rule("fs/proc/task_mmu.c show_smap_vma_flags", "8614d6c5eda0",
      "VM_LOCKONFAULT gets its mnemonic, lf", "6.2")
def show_smap_vma_flags_lf(flags: int) -> list[str]:
    """The mnemonics, VM_LOCKONFAULT as ``lf``."""
    return vma_flag_names(flags, "lf")


#: The versions of this file's rules (:mod:`anonvma.model.kernel`), oldest first.
RULES = {"show_smap_fields": (show_smap_fields_no_ksm, show_smap_fields_ksm),
         "show_smap_vma_flags": (show_smap_vma_flags_no_lf, show_smap_vma_flags_lf)}
