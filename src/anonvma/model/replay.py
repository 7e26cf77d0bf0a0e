"""Run an ops script on the model: one :class:`Mm` per script process, sharing one machine."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from anonvma.model.mm import Machine, Mm
from anonvma.model.names import make_strategy
from anonvma.ops import ARENA_BASE, FILE_SIZE, Op, arena_maps, err, ok

#: TASK_SIZE of the oracle (User-Mode Linux 6.1 on x86-64: user space ends at 0x7fc0000000,
#: measured inside it); the host's is TASK_SIZE in anonvma.model.mm. Only huge lengths see it.
UML_TASK_SIZE = 0x7FC0000000


def run_ops(ops: Sequence[Op], strategy: str = "refcount", check: bool = False,
            mms: Optional[dict[int, Mm]] = None, task_size: int = UML_TASK_SIZE) -> list[dict[str, Any]]:
    """Execute checked ops (see :func:`anonvma.ops.parse_script`) and return their results.

    :param check: run the invariant checker after every op (slower; for tests).
    :param mms: filled with pid -> Mm, so callers can look at the final state.
    :param task_size: where user space ends (the oracle's by default; pass
        ``anonvma.model.mm.TASK_SIZE`` to compare with an x86-64 host kernel).
    """
    from anonvma.model.check import check_machine

    machine = Machine(make_strategy(strategy), file_size=FILE_SIZE)
    procs: dict[int, Mm] = {} if mms is None else mms
    procs[0] = Mm(machine=machine, task_size=task_size)
    files = {f"/anonvma/{op.args['file']}": op.args["file"] for op in ops if "file" in op.args}
    next_pid = 1
    results: list[dict[str, Any]] = []
    for op in ops:
        mm = procs[op.pid]
        a = op.args
        try:
            if op.op == "mmap":
                mm.mmap(ARENA_BASE + a["addr"], a["len"], a["prot"], shared=a.get("share") == "shared",
                        file=a.get("file"), pgoff=a.get("pgoff", 0))
                res = ok()
            elif op.op == "munmap":
                mm.munmap(ARENA_BASE + a["addr"], a["len"])
                res = ok()
            elif op.op == "mprotect":
                mm.mprotect(ARENA_BASE + a["addr"], a["len"], a["prot"])
                res = ok()
            elif op.op == "madvise":
                mm.madvise(ARENA_BASE + a["addr"], a["len"], a["advice"])
                res = ok()
            elif op.op == "name":
                mm.set_anon_name(ARENA_BASE + a["addr"], a["len"], a["name"])
                res = ok()
            elif op.op == "touch":
                mm.fault(ARENA_BASE + a["addr"], a["write"])
                res = ok()
            elif op.op == "mremap":
                new_addr = a.get("new_addr")
                got = mm.mremap(ARENA_BASE + a["addr"], a["len"], a["new_len"], a["flags"],
                                None if new_addr is None else ARENA_BASE + new_addr)
                res = ok(addr=got - ARENA_BASE)
            elif op.op == "fork":
                procs[next_pid] = mm.fork()
                res = ok(child=next_pid)
                next_pid += 1
            elif op.op == "exit":
                mm.exit()
                del procs[op.pid]
                res = ok()
            elif op.op == "maps":
                res = {"maps": arena_maps(mm.maps(), files)}
            else:  # parse_script admits no other op
                raise AssertionError(op.op)
        except OSError as exc:
            res = err(exc)
        results.append(res)
        if check:
            check_machine(machine)
    return results
