"""The merge cases of the kernel's own suites, with their Linux 6.1 outcomes, ported to the model.

- tools/testing/selftests/mm/merge.c (written for 6.16+): each case as data with its **6.1**
  outcome (KERNEL-NOTES 3.2), run three ways: unnamed, every piece named the same string
  (separately, so the pieces hold different objects with equal strings: same outcome), and
  pieces with differing names (never merge).
- tools/testing/vma (the userland harness of mm/vma.c): simple merge/modify/expand/shrink and the
  merge_new sequence, played through the syscalls the 6.1 mmap path has, and VM_SPECIAL through
  ``vma_merge`` directly (no model syscall can set VM_IO).

Every expected layout was checked on the Linux 6.1 UML oracle (the scripts ``case_ops`` builds).
The 6.1 merge.c cases use plain private RW mappings: merge.c's MAP_NORESERVE only keeps
VM_ACCOUNT off both sides, and here every piece starts RW, so all carry VM_ACCOUNT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

import pytest
from model_helpers import OLDEST, P, STRATEGIES, check, pg

from anonvma.model import Mm
from anonvma.model.merge import vma_merge
from anonvma.model.replay import run_ops
from anonvma.model.vma import VM_DONTEXPAND, VM_IO, VM_MIXEDMAP, VM_PFNMAP, VM_SPECIAL
from anonvma.ops import parse_script

VARIANTS = ("unnamed", "samename", "diffnames")

#: A step: ("mmap", page, pages, prot), ("mprotect", page, pages, prot), ("munmap", page, pages),
#: ("touch", page), ("name", page, pages, LABEL), ("fork",) (later steps run in the child),
#: ("mremap", page, pages, new_page, *extra_flags) (maymove+fixed), ("expect", MERGED, DIFF[, SAME]).
#: LABEL names a piece: unnamed skips the step, samename names it "pool", diffnames names it LABEL.
#: An expectation lists (start_page, end_page, perms, LABEL or None) for the whole arena; a LABEL
#: shows as nothing / [anon:pool] / [anon:LABEL]. SAME, when given, overrides MERGED for samename.
Step = tuple[Any, ...]
Span = tuple[int, int, str, Optional[str]]


@dataclass(frozen=True)
class MergeCase:
    name: str
    steps: tuple[Step, ...]

    def __str__(self) -> str:
        return self.name


def _carveout(*pieces: Span, end: int = 30) -> list[Span]:
    """merge.c's PROT_NONE carve-out of 30 pages with ``pieces`` mapped over it."""
    out: list[Span] = []
    at = 0
    for piece in pieces:
        if piece[0] > at:
            out.append((at, piece[0], "---p", None))
        out.append(piece)
        at = piece[1]
    if at < end:
        out.append((at, end, "---p", None))
    return out


CARVE: Step = ("mmap", 0, 30, "")
RW = "rw-p"

# -- tools/testing/selftests/mm/merge.c, non-mremap cases -----------------------------------------

MERGE_C_CASES = [
    # 6.16 merges all 10 pages; 6.1 does not: a faulted range never merges into an unfaulted VMA.
    MergeCase("mprotect_unfaulted_left", (
        CARVE, ("mmap", 1, 10, "rw"), ("mprotect", 1, 5, "r"),
        ("name", 1, 5, "a"), ("name", 6, 5, "b"), ("touch", 6), ("mprotect", 6, 5, "r"),
        ("expect", _carveout((1, 6, "r--p", "a"), (6, 11, "r--p", "b")),
         _carveout((1, 6, "r--p", "a"), (6, 11, "r--p", "b"))))),
    MergeCase("mprotect_unfaulted_right", (
        CARVE, ("mmap", 1, 10, "rw"), ("mprotect", 6, 5, "r"),
        ("name", 1, 5, "a"), ("name", 6, 5, "b"), ("touch", 1), ("mprotect", 1, 5, "r"),
        ("expect", _carveout((1, 6, "r--p", "a"), (6, 11, "r--p", "b")),
         _carveout((1, 6, "r--p", "a"), (6, 11, "r--p", "b"))))),
    MergeCase("mprotect_unfaulted_both", (
        CARVE, ("mmap", 2, 9, "rw"), ("mprotect", 2, 3, "r"), ("mprotect", 8, 3, "r"),
        ("name", 2, 3, "a"), ("name", 5, 3, "b"), ("name", 8, 3, "c"),
        ("touch", 5), ("mprotect", 5, 3, "r"),
        ("expect", _carveout((2, 5, "r--p", "a"), (5, 8, "r--p", "b"), (8, 11, "r--p", "c")),
         _carveout((2, 5, "r--p", "a"), (5, 8, "r--p", "b"), (8, 11, "r--p", "c"))))),
    # 6.16 gives one 9-page VMA; 6.1 merges only with the faulted side (same anon_vma).
    MergeCase("mprotect_faulted_left_unfaulted_right", (
        CARVE, ("mmap", 2, 9, "rw"), ("mprotect", 8, 3, "r"), ("touch", 2), ("mprotect", 2, 3, "r"),
        ("name", 2, 3, "a"), ("name", 5, 3, "b"), ("name", 8, 3, "c"), ("mprotect", 5, 3, "r"),
        ("expect", _carveout((2, 8, "r--p", "a"), (8, 11, "r--p", "c")),
         _carveout((2, 5, "r--p", "a"), (5, 8, "r--p", "b"), (8, 11, "r--p", "c"))))),
    MergeCase("mprotect_unfaulted_left_faulted_right", (
        CARVE, ("mmap", 2, 9, "rw"), ("mprotect", 2, 3, "r"), ("touch", 5), ("mprotect", 8, 3, "r"),
        ("name", 2, 3, "a"), ("name", 5, 3, "b"), ("name", 8, 3, "c"), ("mprotect", 5, 3, "r"),
        ("expect", _carveout((2, 5, "r--p", "a"), (5, 11, "r--p", "b")),
         _carveout((2, 5, "r--p", "a"), (5, 8, "r--p", "b"), (8, 11, "r--p", "c"))))),
    # In the child a forked faulted VMA has a non-singular anon_vma chain: no NULL shortcut.
    MergeCase("forked_target_vma", (
        CARVE, ("mmap", 1, 5, "rw"), ("name", 1, 5, "a"), ("touch", 1), ("fork",),
        *(("touch", p) for p in range(1, 6)), ("mmap", 6, 5, "rw"), ("name", 6, 5, "b"),
        ("expect", _carveout((1, 6, "rw-p", "a"), (6, 11, "rw-p", "b")),
         _carveout((1, 6, "rw-p", "a"), (6, 11, "rw-p", "b"))))),
    MergeCase("forked_source_vma", (
        CARVE, ("mmap", 1, 5, "rw"), ("name", 1, 5, "a"), ("touch", 1), ("fork",),
        *(("touch", p) for p in range(1, 6)), ("mmap", 6, 5, "rwx"), ("name", 6, 5, "b"),
        ("expect", _carveout((1, 6, "rw-p", "a"), (6, 11, "rwxp", "b")),
         _carveout((1, 6, "rw-p", "a"), (6, 11, "rwxp", "b"))),
        ("mprotect", 1, 5, "rwx"),
        ("expect", _carveout((1, 6, "rwxp", "a"), (6, 11, "rwxp", "b")),
         _carveout((1, 6, "rwxp", "a"), (6, 11, "rwxp", "b"))))),
    # ksm_merge without KSM: adjacent new mappings merge, but never into a named neighbour;
    # naming the new one the same then merges them (the prctl passes the name to vma_merge).
    MergeCase("ksm_merge_without_ksm", (
        CARVE, ("mmap", 1, 1, "rw"), ("name", 1, 1, "a"), ("mmap", 2, 1, "rw"),
        ("expect", _carveout((1, 3, "rw-p", None)),
         _carveout((1, 2, "rw-p", "a"), (2, 3, "rw-p", None)),
         _carveout((1, 2, "rw-p", "a"), (2, 3, "rw-p", None))),
        ("name", 2, 1, "b"),
        ("expect", _carveout((1, 3, "rw-p", "a")),
         _carveout((1, 2, "rw-p", "a"), (2, 3, "rw-p", "b"))),
        ("munmap", 1, 2), ("mmap", 1, 1, "rw"), ("name", 1, 1, "a"), ("mmap", 2, 1, "rw"),
        ("name", 2, 1, "b"),
        ("expect", _carveout((1, 3, "rw-p", "a")),
         _carveout((1, 2, "rw-p", "a"), (2, 3, "rw-p", "b"))))),
]

# -- merge.c mremap cases, with their 6.1 outcomes (checked on the UML oracle) ---------------------
MREMAP_CASES = [
    MergeCase("mremap_unfaulted_to_faulted", (
        CARVE, ("mmap", 1, 5, "rw"), ("name", 1, 5, "a"), ("mmap", 7, 5, "rw"), ("name", 7, 5, "b"),
        ("mremap", 7, 5, 1007), ("touch", 1), ("mremap", 1007, 5, 6),
        ("expect", _carveout((1, 11, "rw-p", "a"), end=7) + [(12, 30, "---p", None)],
         _carveout((1, 6, "rw-p", "a"), (6, 11, "rw-p", "b"), end=7) + [(12, 30, "---p", None)]))),
    MergeCase("mremap_unfaulted_behind_faulted", (
        CARVE, ("mmap", 6, 5, "rw"), ("name", 6, 5, "a"), ("mmap", 14, 5, "rw"), ("name", 14, 5, "b"),
        ("mremap", 14, 5, 1014), ("touch", 6), ("mremap", 1014, 5, 1),
        ("expect", _carveout((1, 11, "rw-p", "b"), end=14) + [(19, 30, "---p", None)],
         _carveout((1, 6, "rw-p", "b"), (6, 11, "rw-p", "a"), end=14) + [(19, 30, "---p", None)]))),
    MergeCase("mremap_unfaulted_between_faulted", (
        CARVE, ("mmap", 1, 5, "rw"), ("name", 1, 5, "a"), ("mmap", 7, 5, "rw"), ("name", 7, 5, "b"),
        ("mmap", 14, 5, "rw"), ("name", 14, 5, "c"), ("mremap", 14, 5, 2014), ("mremap", 7, 5, 1007),
        ("touch", 1), ("touch", 2014), ("mremap", 2014, 5, 11), ("mremap", 1007, 5, 6),
        ("expect", _carveout((1, 11, "rw-p", "a"), (11, 16, "rw-p", "c"), end=14)
         + [(19, 30, "---p", None)],
         _carveout((1, 6, "rw-p", "a"), (6, 11, "rw-p", "b"), (11, 16, "rw-p", "c"), end=14)
         + [(19, 30, "---p", None)]))),
    MergeCase("mremap_unfaulted_between_faulted_unfaulted", (
        CARVE, ("mmap", 1, 5, "rw"), ("name", 1, 5, "a"), ("mmap", 7, 5, "rw"), ("name", 7, 5, "b"),
        ("mmap", 14, 5, "rw"), ("name", 14, 5, "c"), ("mremap", 14, 5, 2014), ("mremap", 7, 5, 1007),
        ("touch", 1), ("mremap", 2014, 5, 11), ("mremap", 1007, 5, 6),
        ("expect", _carveout((1, 16, "rw-p", "a"), end=14) + [(19, 30, "---p", None)],
         _carveout((1, 6, "rw-p", "a"), (6, 11, "rw-p", "b"), (11, 16, "rw-p", "c"), end=14)
         + [(19, 30, "---p", None)]))),
    MergeCase("mremap_unfaulted_between_correctly_placed_faulted", (
        CARVE, ("mmap", 1, 15, "rw"), ("name", 1, 5, "a"), ("name", 6, 5, "b"), ("name", 11, 5, "c"),
        ("touch", 1), ("munmap", 6, 5), ("mmap", 20, 5, "rw"), ("name", 20, 5, "b"),
        ("mremap", 20, 5, 6),
        ("expect", _carveout((1, 16, "rw-p", "a"), end=20) + [(25, 30, "---p", None)],
         _carveout((1, 6, "rw-p", "a"), (6, 11, "rw-p", "b"), (11, 16, "rw-p", "c"), end=20)
         + [(25, 30, "---p", None)]))),
    # 6.16 merges into the unfaulted neighbour; 6.1 does not (the source stays: DONTUNMAP).
    MergeCase("mremap_faulted_to_unfaulted_prev_dontunmap", (
        CARVE, ("mmap", 1, 5, "rw"), ("name", 1, 5, "a"), ("mmap", 11, 5, "rw"), ("name", 11, 5, "b"),
        ("touch", 11), ("mremap", 11, 5, 6, "dontunmap"),
        ("expect", _carveout((1, 6, "rw-p", "a"), (6, 11, "rw-p", "b"), (11, 16, "rw-p", "b")),
         _carveout((1, 6, "rw-p", "a"), (6, 11, "rw-p", "b"), (11, 16, "rw-p", "b"))))),
    MergeCase("mremap_faulted_to_unfaulted_next_dontunmap", (
        CARVE, ("mmap", 6, 5, "rw"), ("name", 6, 5, "a"), ("mmap", 11, 5, "rw"), ("name", 11, 5, "b"),
        ("touch", 11), ("mremap", 11, 5, 1, "dontunmap"),
        # the two unfaulted originals merged when created (unnamed) or named (samename)
        ("expect", _carveout((1, 6, "rw-p", "b"), (6, 16, "rw-p", "a")),
         _carveout((1, 6, "rw-p", "b"), (6, 11, "rw-p", "a"), (11, 16, "rw-p", "b"))))),
]

# -- tools/testing/vma (mm/vma.c unit tests) through the 6.1 syscalls ------------------------------

VMA_HARNESS_CASES = [
    # test_simple_merge: fill a one-page hole; unnamed by mmap, named by naming the new page.
    MergeCase("simple_merge", (
        ("mmap", 0, 1, "rw"), ("name", 0, 1, "a"), ("mmap", 2, 1, "rw"), ("name", 2, 1, "c"),
        ("mmap", 1, 1, "rw"), ("name", 1, 1, "b"),
        ("expect", [(0, 3, "rw-p", "a")],
         [(0, 1, "rw-p", "a"), (1, 2, "rw-p", "b"), (2, 3, "rw-p", "c")]))),
    # test_simple_modify: changing the middle page of three splits into pgoffs 0, 1, 2.
    MergeCase("simple_modify", (
        ("mmap", 0, 3, "rw"), ("name", 0, 3, "a"), ("mprotect", 1, 1, "r"),
        ("expect", [(0, 1, "rw-p", "a"), (1, 2, "r--p", "a"), (2, 3, "rw-p", "a")],
         [(0, 1, "rw-p", "a"), (1, 2, "r--p", "a"), (2, 3, "rw-p", "a")]),
        ("name", 1, 1, "b"),
        ("expect", [(0, 1, "rw-p", "a"), (1, 2, "r--p", "a"), (2, 3, "rw-p", "a")],
         [(0, 1, "rw-p", "a"), (1, 2, "r--p", "b"), (2, 3, "rw-p", "a")]))),
    # test_simple_expand: a new mapping right after grows the VMA (vma_expand), unless named.
    MergeCase("simple_expand", (
        ("mmap", 0, 1, "rw"), ("name", 0, 1, "a"), ("mmap", 1, 2, "rw"),
        ("expect", [(0, 3, "rw-p", None)], [(0, 1, "rw-p", "a"), (1, 3, "rw-p", None)],
         [(0, 1, "rw-p", "a"), (1, 3, "rw-p", None)]),
        ("name", 1, 2, "b"),
        ("expect", [(0, 3, "rw-p", "a")], [(0, 1, "rw-p", "a"), (1, 3, "rw-p", "b")]))),
    # test_simple_shrink: unmapping the tail keeps the head, name and all.
    MergeCase("simple_shrink", (
        ("mmap", 0, 3, "rw"), ("name", 0, 3, "a"), ("munmap", 1, 2),
        ("expect", [(0, 1, "rw-p", "a")], [(0, 1, "rw-p", "a")]))),
    # test_merge_new: AA B ... CC, hole fills merging prev, next or both; map_count
    # 4 -> 3 -> 3 -> 3 -> 2 -> 2 -> 1. The harness gives every VMA one dummy anon_vma; in 6.1
    # A and B share one by being cut from one faulted VMA, and D and C stay unfaulted (a faulted
    # D or C with its own anon_vma would not merge with A: see test_merge_new_faulted_d_...).
    MergeCase("merge_new", (
        ("mmap", 0, 4, "rw"), ("touch", 0), ("munmap", 2, 1), ("name", 0, 2, "a"), ("name", 3, 1, "b"),
        ("mmap", 0xb, 1, "rw"), ("name", 0xb, 1, "c"),
        ("mmap", 7, 2, "rw"), ("name", 7, 2, "d"),
        ("expect", [(0, 2, RW, "a"), (3, 4, RW, "b"), (7, 9, RW, "d"), (0xb, 0xc, RW, "c")],
         [(0, 2, RW, "a"), (3, 4, RW, "b"), (7, 9, RW, "d"), (0xb, 0xc, RW, "c")]),
        ("mmap", 2, 1, "rw"), ("name", 2, 1, "e"),  # both sides
        ("expect", [(0, 4, RW, "a"), (7, 9, RW, "d"), (0xb, 0xc, RW, "c")],
         [(0, 2, RW, "a"), (2, 3, RW, "e"), (3, 4, RW, "b"), (7, 9, RW, "d"), (0xb, 0xc, RW, "c")]),
        ("mmap", 4, 1, "rw"), ("name", 4, 1, "f"),  # prev
        ("expect", [(0, 5, RW, "a"), (7, 9, RW, "d"), (0xb, 0xc, RW, "c")],
         [(0, 2, RW, "a"), (2, 3, RW, "e"), (3, 4, RW, "b"), (4, 5, RW, "f"), (7, 9, RW, "d"),
          (0xb, 0xc, RW, "c")]),
        ("mmap", 6, 1, "rw"), ("name", 6, 1, "g"),  # next
        ("expect", [(0, 5, RW, "a"), (6, 9, RW, "d"), (0xb, 0xc, RW, "c")],
         [(0, 2, RW, "a"), (2, 3, RW, "e"), (3, 4, RW, "b"), (4, 5, RW, "f"), (6, 7, RW, "g"),
          (7, 9, RW, "d"), (0xb, 0xc, RW, "c")]),
        ("mmap", 5, 1, "rw"), ("name", 5, 1, "h"),  # both sides
        ("expect", [(0, 9, RW, "a"), (0xb, 0xc, RW, "c")],
         [(0, 2, RW, "a"), (2, 3, RW, "e"), (3, 4, RW, "b"), (4, 5, RW, "f"), (5, 6, RW, "h"),
          (6, 7, RW, "g"), (7, 9, RW, "d"), (0xb, 0xc, RW, "c")]),
        ("mmap", 0xa, 1, "rw"), ("name", 0xa, 1, "i"),  # next
        ("expect", [(0, 9, RW, "a"), (0xa, 0xc, RW, "c")],
         [(0, 2, RW, "a"), (2, 3, RW, "e"), (3, 4, RW, "b"), (4, 5, RW, "f"), (5, 6, RW, "h"),
          (6, 7, RW, "g"), (7, 9, RW, "d"), (0xa, 0xb, RW, "i"), (0xb, 0xc, RW, "c")]),
        ("mmap", 9, 1, "rw"), ("name", 9, 1, "j"),  # both sides
        ("expect", [(0, 0xc, RW, "a")],
         [(0, 2, RW, "a"), (2, 3, RW, "e"), (3, 4, RW, "b"), (4, 5, RW, "f"), (5, 6, RW, "h"),
          (6, 7, RW, "g"), (7, 9, RW, "d"), (9, 0xa, RW, "j"), (0xa, 0xb, RW, "i"),
          (0xb, 0xc, RW, "c")]))),
    # merge_new's "both sides" step with a faulted D (its own anon_vma): A and D cannot both merge.
    # A new mapping tries next first (__mmap_region), so D grows down; naming goes through
    # vma_merge, where prev wins, so A grows instead (KERNEL-NOTES 1.11 vs 1.5).
    MergeCase("merge_new_faulted_next_of_other_anon_vma", (
        ("mmap", 0, 5, "rw"), ("touch", 0), ("name", 0, 5, "a"),
        ("mmap", 6, 3, "rw"), ("touch", 6), ("name", 6, 3, "d"),
        ("mmap", 5, 1, "rw"), ("name", 5, 1, "h"),
        ("expect", [(0, 5, RW, "a"), (5, 9, RW, "d")],
         [(0, 5, RW, "a"), (5, 6, RW, "h"), (6, 9, RW, "d")],
         [(0, 6, RW, "a"), (6, 9, RW, "d")]))),
]

ENABLED_CASES = MERGE_C_CASES + MREMAP_CASES + VMA_HARNESS_CASES


def _name_for(label: Optional[str], variant: str) -> Optional[str]:
    if label is None or variant == "unnamed":
        return None
    return "pool" if variant == "samename" else label


def expected_lines(spans: list[Span], variant: str) -> list[str]:
    """Ops-format maps lines for an expectation."""
    out = []
    for start, end, perms, label in spans:
        name = _name_for(label, variant)
        line = f"{start * P:x}-{end * P:x} {perms}"
        out.append(line if name is None else f"{line} [anon:{name}]")
    return out


def case_ops(case: MergeCase, variant: str) -> tuple[list[dict[str, Any]], list[Optional[list[str]]]]:
    """The case as ops-format operations, and per op the expected maps lines (None: not a maps op).

    Every op other than ``maps`` is expected to succeed.
    """
    ops: list[dict[str, Any]] = []
    expects: list[Optional[list[str]]] = []
    pid = 0
    for step in case.steps:
        kind, args = step[0], step[1:]
        op: Optional[dict[str, Any]] = None
        if kind == "mmap":
            op = {"op": "mmap", "addr": args[0] * P, "len": args[1] * P, "prot": args[2]}
        elif kind == "mprotect":
            op = {"op": "mprotect", "addr": args[0] * P, "len": args[1] * P, "prot": args[2]}
        elif kind == "munmap":
            op = {"op": "munmap", "addr": args[0] * P, "len": args[1] * P}
        elif kind == "touch":
            op = {"op": "touch", "addr": args[0] * P}
        elif kind == "name":
            if variant != "unnamed":
                op = {"op": "name", "addr": args[0] * P, "len": args[1] * P,
                      "name": _name_for(args[2], variant)}
        elif kind == "mremap":
            op = {"op": "mremap", "addr": args[0] * P, "len": args[1] * P, "new_len": args[1] * P,
                  "flags": ["maymove", "fixed", *args[3:]], "new_addr": args[2] * P}
        elif kind == "fork":
            op = {"op": "fork"}
        elif kind == "expect":
            merged, diff = args[0], args[1]
            same = args[2] if len(args) > 2 else merged
            spans = {"unnamed": merged, "samename": same, "diffnames": diff}[variant]
            op = {"op": "maps"}
        else:
            raise ValueError(f"unknown step {step!r}")
        if op is None:
            continue
        if pid:
            op["pid"] = pid
        ops.append(op)
        expects.append(expected_lines(spans, variant) if kind == "expect" else None)
        if kind == "fork":
            pid += 1
    return ops, expects


def _run_case(case: MergeCase, variant: str, strategy: str) -> None:
    ops_json, expects = case_ops(case, variant)
    ops = parse_script(script_text_from(ops_json))
    mms: dict[int, Mm] = {}
    results = run_ops(ops, strategy=strategy, check=True, mms=mms, linux=OLDEST)
    for i, (op, res, want) in enumerate(zip(ops_json, results, expects, strict=True)):
        if want is None:
            assert "errno" not in res, (i, op, res)
        else:
            assert res["maps"] == want, (i, op)
    for mm in list(mms.values()):
        check(mm)
        mm.exit()
    assert next(iter(mms.values())).strategy.total.live == 0


def script_text_from(ops_json: list[dict[str, Any]]) -> str:
    """JSON Lines of ops-format operations."""
    return "".join(json.dumps(o) + "\n" for o in ops_json)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", ENABLED_CASES, ids=str)
def test_merge_case_has_its_6_1_outcome(case: MergeCase, variant: str, strategy: str):
    _run_case(case, variant, strategy)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "samename"])
def test_merge_new_map_count_goes_4_3_3_3_2_2_1_and_ends_pgoff_linear(strategy: str, named: bool):
    mm = Mm(strategy, linux=OLDEST)

    def new(page: int, pages: int) -> None:
        mm.mmap(pg(page), pages * P, "rw")
        if named:
            mm.set_anon_name(pg(page), pages * P, "pool")

    new(0, 4)
    mm.fault(pg(0))
    mm.munmap(pg(2), P)  # A = [0, 2) and B = [3, 4) share one anon_vma
    if named:
        mm.set_anon_name(pg(3), P, "pool")  # B gets its own object with the same string
    new(0xB, 1)
    counts = []
    for page in (7, 2, 4, 6, 5, 0xA, 9):
        new(page, 2 if page == 7 else 1)
        counts.append(mm.map_count)
        check(mm)
    assert counts == [4, 3, 3, 3, 2, 2, 1]
    (vma,) = mm.vmas
    assert (vma.start, vma.end, vma.pgoff) == (pg(0), pg(0xC), pg(0) // P)
    if named:
        assert vma.anon_name is not None and vma.anon_name.refcount == 1
        assert mm.strategy.total.live == 1
    mm.exit()
    assert mm.strategy.total.live == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_simple_modify_splits_into_three_with_linear_pgoffs_sharing_the_name(strategy: str):
    mm = Mm(strategy, linux=OLDEST)
    mm.mmap(pg(0), 3 * P, "rw")
    mm.set_anon_name(pg(0), 3 * P, "pool")
    mm.mprotect(pg(1), P, "r")
    assert [(v.start, v.end, v.pgoff) for v in mm.vmas] == [
        (pg(i), pg(i + 1), pg(i) // P) for i in range(3)]
    objs = {id(v.anon_name) for v in mm.vmas}
    # refcount: the split halves share the object; strdup: each VMA has its own copy
    assert len(objs) == (1 if strategy == "refcount" else 3)
    if strategy == "refcount":
        assert mm.vmas[0].anon_name is not None and mm.vmas[0].anon_name.refcount == 3
    check(mm)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("special", [VM_IO, VM_DONTEXPAND, VM_PFNMAP, VM_MIXEDMAP],
                         ids=["VM_IO", "VM_DONTEXPAND", "VM_PFNMAP", "VM_MIXEDMAP"])
@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "samename"])
def test_vm_special_flag_blocks_new_and_existing_merges(strategy: str, special: int, named: bool):
    """test_vma_merge_special_flags: AAA* would merge but for the flag; so would AAAB."""
    assert VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP == VM_SPECIAL
    mm = Mm(strategy, linux=OLDEST)
    mm.mmap(pg(0), 3 * P, "rw")
    name = None
    if named:
        mm.set_anon_name(pg(0), 3 * P, "pool")
        name = mm.vmas[0].anon_name
    (left,) = mm.vmas
    flags = left.flags

    def give_left(extra: int) -> None:  # store A again with (or without) the special flag
        (now,) = [v for v in mm.vmas if v.start == pg(0)]
        mm.index.replace(now, now.with_flags(flags | extra))

    # 1. a new range [3, 4) after A: merges without the flag, not with it
    merged = vma_merge(mm, left, pg(3), pg(4), flags, None, None, pg(3) // P, pg(3) // P, name)
    assert merged is not None and (merged.start, merged.end) == (pg(0), pg(4))
    assert merged.anon_name is name  # the survivor keeps its own name object
    mm.munmap(pg(3), P)
    give_left(special)
    (left,) = mm.vmas
    assert vma_merge(mm, left, pg(3), pg(4), flags | special, None, None, pg(3) // P, pg(3) // P,
                     name) is None
    assert [(v.start, v.end) for v in mm.vmas] == [(pg(0), pg(3))]
    # 2. an existing B = [3, 4) changed to A's flags: no merge either
    give_left(0)
    mm.mmap(pg(3), P, "r")
    if named:
        mm.set_anon_name(pg(3), P, "pool")
    b = mm.vmas[1]
    give_left(special)
    left = mm.vmas[0]
    assert vma_merge(mm, left, pg(3), pg(4), flags | special, b.anon_vma, None, b.pgoff, b.anon_pgoff,
                     name) is None
    assert [(v.start, v.end) for v in mm.vmas] == [(pg(0), pg(3)), (pg(3), pg(4))]
    give_left(0)
    check(mm)
    mm.exit()
    assert mm.strategy.total.live == 0
