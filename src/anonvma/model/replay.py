"""Run an ops script on the model: one :class:`Mm` per script process, sharing one machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from anonvma import releases
from anonvma.model.bugs import FIXED, HistoricBugs
from anonvma.model.kernel import Kernel
from anonvma.model.mm import Machine, Mm
from anonvma.model.names import REFCOUNT_MAX, make_strategy
from anonvma.ops import ARENA_BASE, FILE_SIZE, Op, arena_maps, err, ok

#: TASK_SIZE of the oldest release's oracle (User-Mode Linux on x86-64: user space ends at
#: 0x7fc0000000, measured inside it; each release's is in the table); the host's is TASK_SIZE in
#: anonvma.model.mm. Only huge lengths see it.
UML_TASK_SIZE = releases.RELEASES[0].uml_task_size
#: RAM + swap of the oracle guest in pages (MemTotal 496,916 kB of a mem=512M UML 6.1 guest, no
#: swap; measured inside it): the heuristic overcommit limit one private writable mapping must stay under.
UML_COMMIT_LIMIT_PAGES = 124229


@dataclass
class Processes:
    """The script's live processes by number, and the number the next fork gets."""

    procs: dict[int, Mm]
    files: dict[str, str] = field(default_factory=dict)
    next_pid: int = 1


Handler = Callable[[Mm, Mapping[str, Any], Processes], dict[str, Any]]
#: Called after each op with the op, its result, the mm that ran it and the script's processes
#: (``anonvma.difftest.coverage`` watches what each op did); not on the syscall paths.
Observer = Callable[[Op, dict[str, Any], Mm, Processes], None]


def _mmap(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    mm.mmap(ARENA_BASE + a["addr"], a["len"], a["prot"], shared=a.get("share") == "shared",
            file=a.get("file"), pgoff=a.get("pgoff", 0), noreserve=a.get("noreserve", False),
            populate=a.get("populate", False), readonly=a.get("readonly", False))
    return ok()


def _munmap(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    mm.munmap(ARENA_BASE + a["addr"], a["len"])
    return ok()


def _mprotect(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    mm.mprotect(ARENA_BASE + a["addr"], a["len"], a["prot"])
    return ok()


def _madvise(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    mm.madvise(ARENA_BASE + a["addr"], a["len"], a["advice"])
    return ok()


def _mlock(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    mm.mlock(ARENA_BASE + a["addr"], a["len"], onfault=a.get("onfault", False))
    return ok()


def _munlock(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    mm.munlock(ARENA_BASE + a["addr"], a["len"])
    return ok()


def _mseal(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    mm.mseal(ARENA_BASE + a["addr"], a["len"])
    return ok()


def _name(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    name = a["name"]
    mm.set_anon_name(ARENA_BASE + a["addr"], a["len"], None if name is None else name.encode("latin-1"))
    return ok()


def _touch(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    mm.fault(ARENA_BASE + a["addr"], a["write"])
    return ok()


def _mremap(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    new_addr = a.get("new_addr")
    got = mm.mremap(ARENA_BASE + a["addr"], a["len"], a["new_len"], a["flags"],
                    None if new_addr is None else ARENA_BASE + new_addr)
    return ok(addr=got - ARENA_BASE)


def _fork(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    child = mm.fork()
    number = p.next_pid
    p.procs[number] = child
    p.next_pid += 1
    return ok(child=number)


def _exit(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    mm.exit()
    for number, proc in list(p.procs.items()):
        if proc is mm:
            del p.procs[number]
    return ok()


def _maps(mm: Mm, a: Mapping[str, Any], p: Processes) -> dict[str, Any]:
    return {"maps": arena_maps(mm.maps(), p.files)}


#: One handler per op of :data:`anonvma.ops.OPS`.
HANDLERS: dict[str, Handler] = {
    "mmap": _mmap,
    "munmap": _munmap,
    "mremap": _mremap,
    "mprotect": _mprotect,
    "madvise": _madvise,
    "mlock": _mlock,
    "munlock": _munlock,
    "mseal": _mseal,
    "name": _name,
    "touch": _touch,
    "fork": _fork,
    "exit": _exit,
    "maps": _maps,
}


def guest_task_size(release: str) -> int:
    """Where user space ends in the oracle guest of ``release`` (a release or series of the
    table); the oldest release's for a kernel the table does not name (a hybrid of rules)."""
    try:
        return releases.resolve(release).uml_task_size
    except ValueError:
        return UML_TASK_SIZE


def run_ops(ops: Sequence[Op], strategy: str = "refcount", check: bool = False,
            mms: Optional[dict[int, Mm]] = None, task_size: Optional[int] = None,
            linux: Union[str, Kernel, None] = None,
            commit_limit_pages: Optional[int] = UML_COMMIT_LIMIT_PAGES,
            bugs: HistoricBugs = FIXED, refcount_max: int = REFCOUNT_MAX,
            observe: Optional[Observer] = None) -> list[dict[str, Any]]:
    """Execute checked ops (see :func:`anonvma.ops.parse_script`) and return their results.

    Names are passed byte for byte (latin-1), as the ops format says.
    :param linux: the release whose rules the model follows (a name or series of
        :mod:`anonvma.releases`, default its ``DEFAULT``), or a :class:`~anonvma.model.kernel.Kernel`.
    :param commit_limit_pages: RAM + swap in pages (the oracle's by default; None: no limit).
    :param bugs: historic bugs to reintroduce (tests only).
    :param refcount_max: REFCOUNT_MAX (lowered in tests to reach saturation).
    :param observe: called after each op (see :data:`Observer`).

    :param check: run the invariant checker after every op (slower; for tests).
    :param mms: filled with pid -> Mm, so callers can look at the final state.
    :param task_size: where user space ends (by default the oracle guest's of the release,
        :attr:`anonvma.releases.Release.uml_task_size`; pass
        ``anonvma.model.mm.TASK_SIZE`` to compare with an x86-64 host kernel).
    """
    from anonvma.model.check import check_machine

    machine = Machine(make_strategy(strategy, refcount_max), linux,
                      file_size=FILE_SIZE, commit_limit_pages=commit_limit_pages, bugs=bugs)
    procs: dict[int, Mm] = {} if mms is None else mms
    procs[0] = Mm(machine=machine, task_size=guest_task_size(machine.kernel.release)
                  if task_size is None else task_size)
    files = {f"/anonvma/{op.args['file']}": op.args["file"] for op in ops if "file" in op.args}
    state = Processes(procs, files)
    results: list[dict[str, Any]] = []
    for op in ops:
        mm = procs[op.pid]
        try:
            if "max_map_count" in op.args:
                res = _limited(mm, op, state)
            else:
                res = HANDLERS[op.op](mm, op.args, state)
        except OSError as exc:
            res = err(exc)
        results.append(res)
        if check:
            check_machine(machine)
        if observe is not None:
            observe(op, res, mm, state)
    return results


def _limited(mm: Mm, op: Op, state: Processes) -> dict[str, Any]:
    """An op with the ``max_map_count`` field: vm.max_map_count is that value while it runs
    (the model's map count is the arena's, as the field counts it)."""
    saved = mm.max_map_count
    mm.max_map_count = op.args["max_map_count"]
    try:
        return HANDLERS[op.op](mm, op.args, state)
    finally:
        mm.max_map_count = saved
