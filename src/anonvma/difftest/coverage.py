"""``python -m anonvma.difftest --coverage``: what the differential scripts reach in the model.

Two measures of the scripts a difftest run compares (the same seeds), taken on the model alone:

- branch coverage of :mod:`anonvma.model` (coverage.py), per release, with both name
  strategies (the oracle has a kernel of each). The model is imported and run in a fresh
  interpreter that measures from its first line, so nothing but the scripts counts. Left out:
  the modules and functions no script can call by design (:data:`NOT_SCRIPTS`), and the rule
  versions of other releases. Every branch still unreached is listed with the reason no script
  reaches it (:data:`UNREACHABLE`), or marked as a gap of the generator;
- a table of what each op did, told by watching the model from outside (its VMAs and name
  objects before and after each op; no counter sits in a syscall path): each errno, merges
  with the previous VMA, the next, both or neither, splits, the kinds of mremap, names shared,
  copied or freed, fork depth. :data:`ROWS` are the outcomes each op can have; a row no
  script reached is a gap.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from anonvma.ops import ARENA_BASE, Op

if TYPE_CHECKING:
    from anonvma.model.mm import Mm
    from anonvma.model.names import AnonVmaName
    from anonvma.model.replay import Processes
    from anonvma.model.vma import Vma

PAGE = 4096
U64 = (1 << 64) - 1

#: What no script can reach by design, left out of the figures: modules, and functions (by the
#: name on their ``def`` line, in any module), each with the reason.
NOT_SCRIPTS: dict[str, str] = {
    "check.py": "the invariant checker: tests run it after each op, difftest does not",
    "differences.py": "release against release (anonvma replay --compare)",
    "render_smaps|smaps_entry|smap_stats|smap_field_line|vma_flag_names|show_smap_fields_\\w+"
    "|show_smap_vma_flags_\\w+|smaps": "/proc/PID/smaps: no op of the format reads it",
    "__repr__": "debugging output",
    "rules|rule_names|kernels": "rule introspection (anonvma replay --compare)",
    "rule_versions|info_of|has_version|resolve": "a release resolved to its rules, once per process "
    "(tests check the table)",
    "vmas|find_vma|consistency_errors": "Python API and the invariant checker",
    "live|as_dict|minus|total": "name counters, read by benchmarks and the invariant checker",
    "pages|with_name": "no caller in the model (Python API)",
}
#: Lines (regular expressions) that are not the kernel's behaviour but checks on the model or
#: on the Python API, left out of the figures (an ``if`` line takes its block with it).
NOT_SYSCALLS: dict[str, str] = {
    r"if obj\.freed:|if a\.freed or b\.freed:|_used\(|raise UseAfterFree": "the model's KASAN: a use "
    "after free, reached only by a model bug (tests reintroduce the historic ones on purpose)",
    r"raise AssertionError": "the index's own consistency checks: a model bug",
    r"raise NotImplementedError": "the strategies' base class",
    r"if self\.exited:|if machine is None:": "the Python API: the parser refuses ops of a process "
    "that has exited, and the runner always gives an mm its machine",
    r"if kernel is None:": "the Python API's default release",
    r"if ignored:": "the Python API: an mm joining a machine refuses the machine's arguments "
    "(the runner and fork pass none)",
    r"if bugs\.no_saturation_guard:": "a historic bug's switch (tests reintroduce it on purpose)",
    r"if check:|if observe is not None:": "the runner's options (invariant checks for tests, this "
    "report's observer)",
}

#: Why no script reaches a branch: (module, text of the line never reached, or of the line a
#: branch never left the way it could), reason. Matched by substring.
UNREACHABLE: tuple[tuple[str, str, str], ...] = (
    ("mremap.py", "if bits & MREMAP_FIXED:", "MREMAP_DONTUNMAP without MREMAP_FIXED: the kernel "
     "places the copy, and the length cannot change, so nothing but the map-count check (which "
     "comes first) can make it fail before it moves, and a copy that moves lands outside the "
     "arena, where no runner can compare it"),
    ("mremap.py", "if not bits & MREMAP_FIXED:", "MREMAP_DONTUNMAP without MREMAP_FIXED (see above)"),
    ("mremap.py", 'raise OSError(errno.ENOMEM, "cannot expand the mapping in place")', "vma_merge of a "
     "VMA with the range just above it fails only for VM_SPECIAL VMAs, which scripts cannot make"),
    ("mremap.py", "VM_DONTEXPAND/VM_PFNMAP mapping", "VM_DONTEXPAND and VM_PFNMAP come from drivers "
     "and special mappings; scripts map anonymous memory and regular files"),
    ("mremap.py", '"mapping may not be resized"', "VM_DONTEXPAND and VM_PFNMAP: see above"),
    ("mremap.py", '"file offset overflows"', "mmap refuses pgoff + pages past MAX_LFS_FILESIZE "
     "(EOVERFLOW), so no VMA's pgoff + new_len >> 12 can pass 2**64"),
    ("mremap.py", "if new_addr > mm.task_size - new_len:", "a destination past TASK_SIZE lies outside the "
     "arena, and the generator passes no address outside it (a real process must survive every "
     "script); the length check before it is reached"),
    ("madvise.py", '"MADV_DOFORK on a VM_IO mapping"', "VM_IO comes from device mappings"),
    ("madvise.py", "no guard regions in a special mapping", "VM_SPECIAL comes from drivers and special "
     "mappings"),
    ("madvise.py", "unknown advice", "the format's parser accepts only the advices the model knows"),
    ("mmap.py", "if flags is None:", "the format's parser checks prot"),
    ("merge.py", "return None  # strictly inside prev", "every caller passes a range that starts at "
     "prev's end or lies in a hole (vma_modify's range starts at prev's end or vma's start)"),
    ("merge.py", "if flags & VM_SPECIAL:", "VM_SPECIAL (VM_IO, VM_PFNMAP, VM_MIXEDMAP, "
     "VM_DONTEXPAND) comes from drivers and special mappings"),
    ("mlock.py", "if exc.errno == errno.ENOMEM:", "population fails only with EFAULT in the model; "
     "the kernel's ENOMEM (EAGAIN to mlock) is page allocation failing: out of memory"),
    ("gup.py", "break", "every caller populates a range with no hole"),
    ("merge.py", "if mm.index.count >= mm.max_map_count:", "split_vma is called only by the split of "
     "a locked MREMAP_DONTUNMAP source (releases without that rule never call it), after mremap "
     "checked the map count with room for more than its two splits"),
    ("gup.py", "nstart = nend\n            continue", "VM_IO/VM_PFNMAP: device mappings"),
    ("names.py", "return self.alloc(obj.name, mm_counters)\n        obj.refcount += 1",
     "refcount saturation: REFCOUNT_MAX (2**31 - 1) references need as many VMAs"),
    ("task_mmu.py", 'return f"[anon_shmem:{name.name}]"', "6.1 cannot name shmem (EBADF): only "
     "6.12 shows [anon_shmem:NAME]"),
)

#: Code that some releases' rules never run, left out of their figures like other releases'
#: rule versions: (module, the start of the ``if`` line, whose block goes with it (unique in
#: the model), the rules and the versions of each that rule it out, reason). It applies to a
#: release that has all those versions.
_NO_GUARD_ADVICE: dict[str, tuple[str, ...]] = {"madvise_behavior_valid": ("madvise_behavior_valid_classic",)}
_NO_STICKY: dict[str, tuple[str, ...]] = {"madvise_guard_install": ("guard_install_absent",)}
_NO_FAULTED_INTO_UNFAULTED: dict[str, tuple[str, ...]] = {
    "is_mergeable_anon_vma": ("anon_vma_target_singular",)}
_NO_SEAL: dict[str, tuple[str, ...]] = {"do_mseal": ("mseal_absent",)}
_NO_ANON_PGOFF: dict[str, tuple[str, ...]] = {"needs_adjacent_anon_pgoff": ("anon_pgoff_not_compared",)}
NOT_IN_RELEASE: tuple[tuple[str, str, dict[str, tuple[str, ...]], str], ...] = (
    ("madvise.py", 'if advice == "guard_install":', _NO_GUARD_ADVICE,
     "no guard advices before 6.13: madvise refuses them (EINVAL) before the walk"),
    ("madvise.py", 'if advice == "guard_remove":', _NO_GUARD_ADVICE,
     "no guard advices before 6.13 (see above)"),
    ("madvise.py", "if vma.flags & VM_SPECIAL:", _NO_GUARD_ADVICE,
     "no guard advices before 6.13 (see above)"),
    ("madvise.py", "if naming and changed.flags != new_flags:", _NO_STICKY,
     "no sticky flags before 6.19 (VM_MAYBE_GUARD, from MADV_GUARD_INSTALL, is the only one)"),
    ("merge.py", "if sticky:", _NO_STICKY,
     "no sticky flags before 6.19 (see above)"),
    ("merge.py", "if settled.anon_vma is None and anon_vma is not None:", _NO_FAULTED_INTO_UNFAULTED,
     "before 6.18 an unfaulted VMA takes only an unfaulted range, so a survivor never lacks the "
     "range's anon_vma"),
    ("merge.py", "if settled is not merged:", {**_NO_STICKY, **_NO_FAULTED_INTO_UNFAULTED},
     "neither sticky flags (6.19) nor faulted ranges merged into unfaulted VMAs (6.18): see above"),
    ("madvise.py", "if (vma.flags & VM_SEALED and advice", _NO_SEAL,
     "nothing is sealed before 6.10 (mseal is ENOSYS)"),
    ("mmap.py", "if first.flags & VM_SEALED:", _NO_SEAL, "nothing is sealed before 6.10"),
    ("mmap.py", "if vma.flags & VM_SEALED:  # any VMA", _NO_SEAL,
     "nothing is sealed before 6.10"),
    ("mprotect.py", "if oldflags & VM_SEALED:", _NO_SEAL, "nothing is sealed before 6.10"),
    ("mremap.py", "if found.flags & VM_SEALED:", _NO_SEAL, "nothing is sealed before 6.10"),
    ("merge.py", "if anon_pgoff is not None and vma.anon_pgoff != anon_pgoff:", _NO_ANON_PGOFF,
     "no merge compares anonymous page offsets before 7.3"),
)


@dataclass
class ModuleCoverage:
    """Branches and statements of one module: how many there are, how many the scripts reached."""

    module: str
    branches: int
    branches_hit: int
    statements: int
    statements_hit: int

    @property
    def branch_pct(self) -> float:
        return 100.0 * self.branches_hit / self.branches if self.branches else 100.0

    @property
    def statement_pct(self) -> float:
        return 100.0 * self.statements_hit / self.statements if self.statements else 100.0


@dataclass
class Unreached:
    """A branch (``line`` -> ``to``; ``to`` < 0: leaving the function) no script took."""

    module: str
    line: int
    to: int
    text: str
    reason: Optional[str]
    #: the (module, snippet) of the :data:`UNREACHABLE` entry that gave the reason
    entry: Optional[tuple[str, str]] = None


@dataclass
class BranchReport:
    """Branch coverage of the model for one release."""

    linux: str
    modules: list[ModuleCoverage]
    unreached: list[Unreached]
    left_out: list[str]

    @property
    def total(self) -> ModuleCoverage:
        return ModuleCoverage("total", sum(m.branches for m in self.modules),
                              sum(m.branches_hit for m in self.modules),
                              sum(m.statements for m in self.modules),
                              sum(m.statements_hit for m in self.modules))

    @property
    def unexplained(self) -> list[Unreached]:
        return [u for u in self.unreached if u.reason is None]


def _model_dir() -> Path:
    import anonvma

    return Path(anonvma.__file__).resolve().parent / "model"


def _omitted() -> list[str]:
    """Module files left out by design."""
    return [name for name in NOT_SCRIPTS if name.endswith(".py")]


def other_versions(linux: str) -> list[str]:
    """The rule versions (function names) that release ``linux`` does not have and its own code
    does not call, with the private helpers (``_name``) only they call: left out of its report.
    Computed in the parent: the measuring child must not import the model before coverage
    starts."""
    from anonvma.model.kernel import get_kernel, rule_versions

    kernel = get_kernel(linux)
    others = {v.__name__ for name, versions in rule_versions().items() for v in versions
              if v is not getattr(kernel, name)}
    return sorted(left_out_with(others))


def _callers() -> dict[str, set[str]]:
    """Each module-level function of the model (by name) -> the names of the functions that
    mention it (``<module>`` for a mention outside any function, such as a ``RULES`` table; a
    class's methods count as the class)."""
    callers: dict[str, set[str]] = {}
    defined: set[str] = set()
    for path in sorted(_model_dir().glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            owner = node.name if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else "<module>"
            if isinstance(node, ast.FunctionDef):
                defined.add(node.name)
            for sub in ast.walk(node):
                name = (sub.id if isinstance(sub, ast.Name)
                        else sub.attr if isinstance(sub, ast.Attribute) else None)
                if name is not None and name != owner:
                    callers.setdefault(name, set()).add(owner)
    return {name: callers.get(name, set()) for name in defined}


def left_out_with(versions: set[str]) -> set[str]:
    """Of ``versions`` (rule versions a release does not have), those none of its own code
    calls (another release's version may build on one it has), together with the private
    helpers (``_name``) that only what is left out calls."""
    callers = _callers()
    out = set(versions)
    changed = True
    while changed:
        kept = {v for v in out if v in versions and callers.get(v, set()) - out - {"<module>"}}
        helpers = {name for name, who in callers.items()
                   if name.startswith("_") and who and who <= out}
        new = (out - kept) | helpers
        changed = new != out
        out = new
    return out


def _function_excludes(others: Sequence[str]) -> list[str]:
    versions = [rf"^def ({'|'.join(others)})\("] if others else []
    return ([rf"^\s*def ({names})\(" for names in NOT_SCRIPTS if not names.endswith(".py")]
            + versions + list(NOT_SYSCALLS))


def measure_branches(linux: str, count: int, seed: int, strategies: Sequence[str] = ("refcount", "strdup"),
                     host: bool = False) -> BranchReport:
    """Run the scripts of a difftest run (``count`` from ``seed``) on the model of ``linux`` with
    each strategy, under coverage.py in a fresh interpreter, and report per module."""
    with tempfile.TemporaryDirectory(prefix="anonvma-coverage-") as tmp:
        out = Path(tmp) / "coverage.json"
        code = "import sys; from anonvma.difftest.coverage import branch_child; branch_child(sys.argv[1:])"
        argv = [sys.executable, "-c", code, str(out), linux, str(count), str(seed), ",".join(strategies),
                "host" if host else "oracle", ",".join(other_versions(linux)),
                json.dumps([re.escape(snippet) for _, snippet, _ in not_in_release(linux)])]
        res = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        if res.returncode != 0:
            raise RuntimeError(f"the coverage run failed:\n{res.stderr}")
        doc = json.loads(out.read_text())
    return _branch_report(linux, doc)


def branch_child(argv: Sequence[str]) -> None:
    """The measuring interpreter: start coverage.py, then import the model and run the scripts."""
    import coverage

    out, linux, count, seed, strategies, where, others, lines = argv
    cov = coverage.Coverage(branch=True, source=[str(_model_dir())], data_file=None, config_file=False,
                            omit=[f"*/model/{name}" for name in _omitted()])
    for regex in _function_excludes([name for name in others.split(",") if name]) + json.loads(lines):
        cov.exclude(regex)
    cov.start()
    from anonvma.difftest.generate import HOST_KWARGS, random_script
    from anonvma.model.replay import run_ops

    host = where == "host"
    kwargs: dict[str, Any] = {}
    if host:
        from anonvma.model.mm import TASK_SIZE

        kwargs["task_size"] = TASK_SIZE
    for strategy in strategies.split(","):
        for i in range(int(count)):
            ops = random_script(int(seed) + i, **(HOST_KWARGS if host else {}))
            run_ops(ops, strategy=strategy, linux=linux, **kwargs)
    cov.stop()
    cov.json_report(outfile=out, show_contexts=False)


def has_versions(linux: str, needs: dict[str, tuple[str, ...]]) -> bool:
    """Whether release ``linux``'s version of each rule of ``needs`` is one of those listed."""
    from anonvma.model.kernel import get_kernel

    kernel = get_kernel(linux)
    return all(getattr(kernel, rule).__name__ in versions for rule, versions in needs.items())


def not_in_release(linux: str) -> list[tuple[str, str, str]]:
    """The (module, snippet, reason) entries of :data:`NOT_IN_RELEASE` that hold on ``linux``."""
    return [(mod, snippet, reason) for mod, snippet, needs, reason in NOT_IN_RELEASE
            if has_versions(linux, needs)]


def _reason(module: str, lines: list[str], line: int, to: int) -> Optional[tuple[str, str, str]]:
    """The :data:`UNREACHABLE` entry for a branch, matched on the line never reached (with the
    next one, for snippets that span two lines) or, failing that, the line it leaves."""
    def text_at(n: int, snippet: str) -> str:
        span = 2 if "\n" in snippet else 1
        return "\n".join(lines[n - 1:n - 1 + span]) + "\n" if 0 < n <= len(lines) else ""

    for at in (to, line):
        for mod, snippet, reason in UNREACHABLE:
            if mod == module and reason and snippet in text_at(at, snippet):
                return mod, snippet, reason
    return None


def _branch_report(linux: str, doc: dict[str, Any]) -> BranchReport:
    modules = []
    unreached = []
    for path, data in sorted(doc["files"].items()):
        name = Path(path).name
        s = data["summary"]
        modules.append(ModuleCoverage(name, s["num_branches"], s["covered_branches"], s["num_statements"],
                                      s["covered_lines"]))
        lines = Path(path).read_text().splitlines()
        for line, to in data.get("missing_branches", []):
            entry = _reason(name, lines, line, to)
            unreached.append(Unreached(name, line, to, lines[line - 1].strip(),
                                       entry[2] if entry else None, entry[:2] if entry else None))
    left = [f"{k}: {v}" for k, v in NOT_SCRIPTS.items()]
    left += [f"lines /{k}/: {v}" for k, v in NOT_SYSCALLS.items()]
    left.append(f"{', '.join(other_versions(linux))}: other releases' versions of rules")
    left += [f"{mod} /{snippet}/: {reason}" for mod, snippet, reason in not_in_release(linux)]
    return BranchReport(linux, modules, unreached, left)


# -- the outcome table ------------------------------------------------------------------------------

MERGES = ("merge: prev", "merge: next", "merge: both", "merge: neither")
NAMES = ("name shared", "name copied", "name freed")
MREMAP_KINDS = ("in place, same size", "grown in place", "shrunk in place", "moved",
                "moved next to its source", "moved onto its own VMA", "moved with DONTUNMAP",
                "copy merged into its source", "duplicated (old_len 0)")
#: The outcomes each op can have in a script (what the model raises, minus the unreachable:
#: mlock's EAGAIN, the ESRCH of an exited process; see UNREACHABLE).
ROWS: dict[str, tuple[str, ...]] = {
    "mmap": ("ok", "EINVAL", "ENOMEM", "EOVERFLOW", "EACCES", "EPERM") + MERGES + ("split",) + NAMES,
    "munmap": ("ok", "EINVAL", "ENOMEM", "EPERM", "split") + NAMES,
    "mremap": ("ok", "EINVAL", "EFAULT", "ENOMEM", "EPERM") + MREMAP_KINDS + MERGES + ("split",) + NAMES,
    "mprotect": ("ok", "EINVAL", "ENOMEM", "EACCES", "EPERM") + MERGES + ("split",) + NAMES,
    "madvise": ("ok", "EINVAL", "ENOMEM", "EAGAIN", "EPERM") + MERGES + ("split",) + NAMES,
    "mseal": ("ok", "EINVAL", "ENOMEM", "ENOSYS") + MERGES + ("split",) + NAMES,
    "mlock": ("ok", "EINVAL", "ENOMEM") + MERGES + ("split",) + NAMES,
    "munlock": ("ok", "EINVAL", "ENOMEM") + MERGES + ("split",) + NAMES,
    "name": ("ok", "EINVAL", "EBADF", "EAGAIN", "ENOMEM") + MERGES + ("split",) + NAMES,
    "touch": ("ok", "EFAULT"),
    "fork": ("depth 1", "depth 2", "depth 3+", "name shared", "name copied"),
    "exit": ("ok", "name freed"),
    "maps": ("ok",),
}
#: Rows that only one name strategy can fill (refcount shares objects, strdup copies strings).
STRATEGY_ROWS = {"name shared": "refcount", "name copied": "strdup"}
_SEALS: dict[str, tuple[str, ...]] = {"do_mseal": ("mseal_seals",)}
#: Rows only some releases can reach: (op, row) -> the rules and the versions of each that make
#: the row possible.
RULE_ROWS: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("mremap", "copy merged into its source"): {"copy_vma_merge": ("copy_vma_merges_any",)},
    **{(op, "EPERM"): _SEALS for op in ("mmap", "munmap", "mremap", "mprotect", "madvise")},
    **{("mseal", row): _SEALS for row in ROWS["mseal"] if row != "ENOSYS"},
    ("mseal", "ENOSYS"): _NO_SEAL,
}


def _impossible_rows(linux: str) -> set[tuple[str, str]]:
    """The :data:`RULE_ROWS` that release ``linux``'s rules rule out."""
    return {key for key, needs in RULE_ROWS.items() if not has_versions(linux, needs)}


def _page_align(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1) & U64


class _Snapshot:
    """One mm's VMAs at a moment, searchable by address."""

    def __init__(self, vmas: list["Vma"]) -> None:
        self.vmas = vmas
        self.starts = [v.start for v in vmas]

    def at(self, addr: int) -> Optional["Vma"]:
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.vmas[i].end:
            return self.vmas[i]
        return None

    def edge(self, addr: int) -> str:
        """``inside`` (one VMA spans addr), ``boundary`` (two VMAs meet there) or ``hole``."""
        left, right = self.at(addr - PAGE), self.at(addr)
        if left is None or right is None:
            return "hole"
        return "inside" if left is right else "boundary"

    def between(self, lo: int, hi: int) -> list[int]:
        """ids of the VMAs overlapping [lo, hi)."""
        i = max(0, bisect_right(self.starts, lo) - 1)
        out = []
        while i < len(self.vmas) and self.vmas[i].start < hi:
            if self.vmas[i].end > lo:
                out.append(id(self.vmas[i]))
            i += 1
        return out


@dataclass
class OutcomeObserver:
    """Watches a model run op by op (``run_ops(observe=...)``) and counts what each op did."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    snaps: dict[int, _Snapshot] = field(default_factory=lambda: {0: _Snapshot([])})
    depth: dict[int, int] = field(default_factory=lambda: {0: 0})
    holders: dict[int, tuple["AnonVmaName", int]] = field(default_factory=dict)

    def __call__(self, op: Op, res: dict[str, Any], mm: "Mm", state: "Processes") -> None:
        count = self.counts
        before = self.snaps[op.pid]
        after = _Snapshot(mm.index.vmas)
        self.snaps[op.pid] = after
        if op.op == "fork":
            child = res["child"]
            self.snaps[child] = _Snapshot(state.procs[child].index.vmas)
            self.depth[child] = d = self.depth[op.pid] + 1
            count["fork", "depth 3+" if d >= 3 else f"depth {d}"] += 1
        else:
            count[op.op, res.get("errno", "ok")] += 1
        for outcome in self._vma_outcomes(op, res, before, after):
            count[op.op, outcome] += 1
        holders = _name_holders(mm)
        for outcome in self._name_outcomes(op, holders):
            count[op.op, outcome] += 1
        self.holders = holders

    def _name_outcomes(self, op: Op, now: dict[int, tuple["AnonVmaName", int]]) -> list[str]:
        was = self.holders
        out = []
        if any(k in was and n > was[k][1] for k, (_, n) in now.items()):
            out.append("name shared")
        fresh = op.args["name"] if op.op == "name" else None
        if fresh is not None:
            fresh = fresh.split("\x00")[0]  # the kernel copies the C string: up to the first NUL
        if any(k not in was and obj.name != fresh for k, (obj, _) in now.items()):
            out.append("name copied")
        if any(obj.freed for obj, _ in was.values()):
            out.append("name freed")
        return out

    def _vma_outcomes(self, op: Op, res: dict[str, Any], before: _Snapshot, after: _Snapshot) -> list[str]:
        a = op.args
        if op.op in ("mmap", "munmap") and "errno" not in res:
            s = ARENA_BASE + a["addr"]
            e = min(s + _page_align(a["len"]), U64)
            out = _splits(before, after, (s, e))
            if op.op == "mmap":
                out.append(_merge_kind(after.edge(s) == "inside", after.edge(e) == "inside"))
            return out
        if op.op in ("mprotect", "madvise", "name", "mlock", "munlock", "mseal"):
            s = ARENA_BASE + a["addr"]
            e = s + a["len"]
            if op.op in ("mlock", "munlock"):
                s &= ~(PAGE - 1)
            e = min(s + _page_align(e - s), U64)
            if before.between(s - PAGE, e + PAGE) == after.between(s - PAGE, e + PAGE):
                return []  # nothing changed
            prev = before.edge(s) != "inside" and after.edge(s) == "inside"
            nxt = before.edge(e) != "inside" and after.edge(e) == "inside"
            return _splits(before, after, (s, e)) + [_merge_kind(prev, nxt)]
        if op.op == "mremap" and "errno" not in res:
            return _mremap_outcomes(a, res, before, after)
        return []


def _merge_kind(prev: bool, nxt: bool) -> str:
    if prev:
        return "merge: both" if nxt else "merge: prev"
    return "merge: next" if nxt else "merge: neither"


def _splits(before: _Snapshot, after: _Snapshot, edges: Sequence[int]) -> list[str]:
    """``split`` if a VMA spanning one of ``edges`` before the op no longer spans it."""
    if any(before.edge(x) == "inside" and after.edge(x) != "inside" for x in edges):
        return ["split"]
    return []


def _mremap_outcomes(a: Any, res: dict[str, Any], before: _Snapshot, after: _Snapshot) -> list[str]:
    addr = ARENA_BASE + a["addr"]
    old, new = _page_align(a["len"]), _page_align(a["new_len"])
    got = ARENA_BASE + res["addr"]
    if got == addr:
        if new == old:
            return ["in place, same size"]
        if new > old:
            return ["grown in place", _merge_kind(True, after.edge(addr + new) == "inside")]
        return ["shrunk in place"] + _splits(before, after, (addr + new,))
    out = ["moved"]
    if got + new == addr or got == addr + old:
        out.append("moved next to its source")
    source = before.at(addr)
    if source is not None and source.start <= got and got + new <= source.end:
        out.append("moved onto its own VMA")
    if old == 0:
        out.append("duplicated (old_len 0)")
    if "dontunmap" in a["flags"]:
        out.append("moved with DONTUNMAP")
        copy = after.at(got)
        if copy is not None and copy.start <= addr < copy.end:
            out.append("copy merged into its source")
    out.append(_merge_kind(after.edge(got) == "inside", after.edge(got + new) == "inside"))
    return out + _splits(before, after, (addr, addr + old, got, got + new))


def _name_holders(mm: "Mm") -> dict[int, tuple["AnonVmaName", int]]:
    """Each live name object (by id) with how many VMAs of the machine hold it."""
    out: dict[int, tuple["AnonVmaName", int]] = {}
    for each in mm.machine.mms:
        for vma in each.index:
            obj = vma.anon_name
            if obj is not None:
                key = id(obj)
                held = out.get(key)
                out[key] = (obj, held[1] + 1 if held else 1)
    return out


def outcome_table(scripts: Sequence[Sequence[Op]], linux: str, strategy: str,
                  task_size: Optional[int] = None) -> Counter[tuple[str, str]]:
    """(op, outcome) -> how many ops had it, over ``scripts`` run on the model."""
    from anonvma.model.replay import run_ops

    total: Counter[tuple[str, str]] = Counter()
    kwargs: dict[str, Any] = {} if task_size is None else {"task_size": task_size}
    for ops in scripts:
        seen = OutcomeObserver()
        run_ops(ops, strategy=strategy, linux=linux, observe=seen, **kwargs)
        total.update(seen.counts)
    return total


def empty_rows(tables: dict[str, Counter[tuple[str, str]]]) -> list[tuple[str, str]]:
    """Rows of :data:`ROWS` that no column of ``tables`` (label -> counts) reached."""
    return [(op, row) for op, rows in ROWS.items() for row in rows
            if not any(t[op, row] for t in tables.values())]


# -- the report ---------------------------------------------------------------------------------------

def format_branches(report: BranchReport) -> str:
    t = report.total
    out = [f"Linux {report.linux}: branch coverage of anonvma.model {t.branch_pct:.1f}% "
           f"({t.branches_hit}/{t.branches} branches; statements {t.statement_pct:.1f}%)",
           f"  {'module':18} {'branches':>9} {'reached':>8} {'branch %':>9} {'stmt %':>7}"]
    for m in [*report.modules, t]:
        out.append(f"  {m.module:18} {m.branches:9d} {m.branches_hit:8d} {m.branch_pct:9.1f} "
                   f"{m.statement_pct:7.1f}")
    out.append("  left out (no script can call them by design):")
    out += [f"    {line}" for line in report.left_out]
    out.append(f"  branches no script reached ({len(report.unreached)}; "
               f"{len(report.unexplained)} without a reason: gaps of the generator):")
    for u in report.unreached:
        to = "exit" if u.to < 0 else str(u.to)
        out.append(f"    {u.module}:{u.line}->{to}  {u.text[:70]}")
        out.append(f"        {u.reason or 'GAP: no reason known; extend the generator'}")
    return "\n".join(out)


def stale_entries(reports: Sequence[BranchReport]) -> list[tuple[str, str]]:
    """The :data:`UNREACHABLE` entries that explained no branch of any of ``reports`` (run them
    over every release and both strategies), and the :data:`NOT_IN_RELEASE` lines no longer
    found once, in their module alone: lines since changed, or left out anyway."""
    used = {u.entry for report in reports for u in report.unreached}
    stale = [(mod, snippet) for mod, snippet, _ in UNREACHABLE if (mod, snippet) not in used]
    sources = {path.name: path.read_text() for path in _model_dir().glob("*.py")}
    for mod, snippet, _, _ in NOT_IN_RELEASE:  # excluded, so never unreached: it must still be
        # there, and only there
        if sources.get(mod, "").count(snippet) != 1 or any(
                snippet in text for name, text in sources.items() if name != mod):
            stale.append((mod, snippet))
    return stale


def format_table(tables: dict[str, Counter[tuple[str, str]]]) -> str:
    labels = list(tables)
    width = max(12, *(len(label) for label in labels))
    out = [f"{'op':9} {'outcome':28} " + " ".join(f"{label:>{width}}" for label in labels)]
    known = {(o, r) for o, rows in ROWS.items() for r in rows}
    extra = sorted({key for t in tables.values() for key in t} - known)
    for op, rows in ROWS.items():
        for row in rows:
            cells = " ".join(f"{tables[label][op, row]:>{width}d}" for label in labels)
            flag = "  <- never" if not any(tables[label][op, row] for label in labels) else ""
            out.append(f"{op:9} {row:28} {cells}{flag}")
    for op, row in extra:
        cells = " ".join(f"{tables[label][op, row]:>{width}d}" for label in labels)
        out.append(f"{op:9} {row:28} {cells}  <- not in ROWS")
    return "\n".join(out)


def run(linuxes: Sequence[str], strategies: Sequence[str], count: int, seed: int, host: bool = False) -> int:
    """``--coverage``: print branch coverage and the outcome table; 0 when every branch left is
    explained, the total reaches 95%, every row is reached and (run over every release and
    both strategies) every :data:`UNREACHABLE` entry still explains a branch; 1 otherwise; 2
    without coverage.py."""
    from anonvma.difftest.generate import HOST_KWARGS, random_script
    from anonvma import releases

    try:
        import coverage  # noqa: F401  (the measuring interpreter needs it)
    except ImportError:
        print("python -m anonvma.difftest --coverage needs coverage.py: pip install 'anonvma[coverage]'",
              file=sys.stderr)
        return 2
    task_size = None
    if host:
        from anonvma.model.mm import TASK_SIZE

        task_size = TASK_SIZE
    scripts = [random_script(seed + i, **(HOST_KWARGS if host else {})) for i in range(count)]
    status = 0
    tables: dict[str, Counter[tuple[str, str]]] = {}
    print(f"coverage: {count} scripts from seed {seed}, as `python -m anonvma.difftest --count {count} "
          f"--seed {seed}{' --host' if host else ''}` generates them; model only\n")
    reports = []
    for linux in linuxes:
        report = measure_branches(linux, count, seed, strategies, host)
        reports.append(report)
        print(format_branches(report) + "\n")
        if report.total.branch_pct < 95.0 or report.unexplained:
            status = 1
        for strategy in strategies:
            tables[f"{linux} {strategy}"] = outcome_table(scripts, linux, strategy, task_size)
    if set(linuxes) == set(releases.names()) and set(strategies) == {"refcount", "strdup"}:
        for mod, snippet in stale_entries(reports):
            status = 1
            print(f"STALE: entry {mod}: {snippet!r} explains nothing (no branch left, or not one line of "
                  f"its module alone): delete or fix it")
    print("outcomes per op (ops counted once per outcome they had):")
    print(format_table(tables))
    for linux in linuxes:
        own = {k: t for k, t in tables.items() if k.split()[0] == linux}
        impossible = _impossible_rows(linux)
        empty = [r for r in empty_rows(own)
                 if not (r[1] in STRATEGY_ROWS and STRATEGY_ROWS[r[1]] not in strategies)
                 and r not in impossible]
        if empty:
            status = 1
            print(f"Linux {linux}: rows never reached: " + ", ".join(f"{o} {r}" for o, r in empty))
    return status
