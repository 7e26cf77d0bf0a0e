"""Delta debugging for ops scripts: the smallest script that still shows a difference.

Candidates are subsets of the original ops, in order. Removing a ``fork`` removes the process
it made (every op of that process and of its descendants), and the survivors are renumbered
in fork order, so each candidate is a valid script (checked again with ``parse_script``).
The predicate takes a batch of candidates at once: one oracle boot judges a whole round.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Generator, Optional, Sequence

from anonvma.ops import Op, parse_script, script_text

#: Judges a batch of scripts: True where the script still shows the difference.
BatchPredicate = Callable[[Sequence[Sequence[Op]]], Sequence[bool]]
#: :func:`shrink_steps`: yields candidate batches, is sent their verdicts, returns the smallest script.
ShrinkSteps = Generator[list[list[Op]], Sequence[bool], list[Op]]


def _children(ops: Sequence[Op]) -> dict[int, int]:
    """Index of each fork op -> the process number it creates in the original script."""
    out, nxt = {}, 1
    for i, op in enumerate(ops):
        if op.op == "fork":
            out[i] = nxt
            nxt += 1
    return out


def subset(ops: Sequence[Op], keep: Sequence[int]) -> tuple[list[int], list[Op]]:
    """The ops at indices ``keep`` as a valid script, and the indices actually kept.

    Ops of processes that no longer exist (their fork was dropped) are dropped too; the
    remaining processes are renumbered in fork order.
    """
    child = _children(ops)
    new_number = {0: 0}
    nxt = 1
    kept: list[int] = []
    out: list[Op] = []
    for i in keep:
        op = ops[i]
        if op.pid not in new_number:
            continue
        if op.op == "fork":
            new_number[child[i]] = nxt
            nxt += 1
        out.append(replace(op, pid=new_number[op.pid]))
        kept.append(i)
        if op.op == "exit":
            del new_number[op.pid]
    return kept, parse_script(script_text(out))


def shrink(ops: Sequence[Op], still_fails: BatchPredicate, max_rounds: int = 60) -> list[Op]:
    """ddmin over the ops of a failing script; returns the smallest failing script found.

    :param still_fails: judges a batch of candidate scripts (one round per call).
    :param max_rounds: stop after this many calls of ``still_fails`` (each may cost a boot).
    """
    steps = shrink_steps(ops, max_rounds)
    try:
        batch = next(steps)
        while True:
            batch = steps.send(list(still_fails(batch)))
    except StopIteration as done:
        small: list[Op] = done.value
        return small


def shrink_steps(ops: Sequence[Op], max_rounds: int = 60) -> ShrinkSteps:
    """:func:`shrink` as a generator, so a caller can shrink many scripts in step: it yields each
    round's candidates, is sent their verdicts, and returns the smallest failing script."""
    idx = list(range(len(ops)))
    chunks = 2
    rounds = 0
    while len(idx) >= 2 and rounds < max_rounds:
        size = -(-len(idx) // chunks)
        parts = [idx[i:i + size] for i in range(0, len(idx), size)]
        cands: list[list[int]] = []
        seen: set[tuple[int, ...]] = {tuple(idx)}
        scripts: list[list[Op]] = []
        for part in parts:
            drop = set(part)
            kept, script = subset(ops, [i for i in idx if i not in drop])
            if tuple(kept) in seen or not kept:
                continue
            seen.add(tuple(kept))
            cands.append(kept)
            scripts.append(script)
        rounds += 1
        verdicts = list((yield scripts)) if scripts else []
        winner: Optional[list[int]] = next((c for c, bad in zip(cands, verdicts, strict=True) if bad), None)
        if winner is not None:
            idx = winner
            chunks = max(chunks - 1, 2)
            continue
        if chunks >= len(idx):
            break
        chunks = min(len(idx), chunks * 2)
    return subset(ops, idx)[1]
