"""Run the same scripts on two runners at once and hand back both outcomes of each script;
shrink many differing scripts in step, every round of all of them in one paired batch.

Each runner's stream is read in turn, the one with fewer answers first, so the guests of both
kernels stay busy (each guest holds a chunk or two of work ahead); a script is generated once
and kept only until both sides have answered it.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, Sequence

from anonvma.difftest.shrink import ShrinkSteps, shrink_steps
from anonvma.difftest.sides import Runner
from anonvma.ops import Op, format_result, script_text
from anonvma.oracle.pool import ScriptOutcome

#: A script's index, its ops and its outcome on each side.
Pair = tuple[int, Sequence[Op], ScriptOutcome, ScriptOutcome]
#: Rounds of delta debugging at most per script (as the model campaigns shrink).
SHRINK_ROUNDS = 40


def lines(outcome: ScriptOutcome) -> Optional[list[str]]:
    """The outcome's result lines, or None when the script could not run."""
    return None if outcome.results is None else [format_result(r) for r in outcome.results]


def differs(a: ScriptOutcome, b: ScriptOutcome) -> bool:
    """Both sides ran the script and printed something different."""
    la, lb = lines(a), lines(b)
    return la is not None and lb is not None and la != lb


def paired(a: Runner, b: Runner, scripts: Iterable[Sequence[Op]]) -> Iterator[Pair]:
    """Every script run on ``a`` and ``b`` (``scripts`` read lazily); each as soon as both sides
    have answered it, in any order."""
    source = iter(scripts)
    kept: dict[int, Sequence[Op]] = {}
    made = 0

    def feed() -> Iterator[Sequence[Op]]:
        nonlocal made
        n = 0
        while True:
            if n == made:
                nxt = next(source, None)
                if nxt is None:
                    return
                kept[n] = nxt
                made += 1
            yield kept[n]
            n += 1

    streams = [a.stream(feed()), b.stream(feed())]
    waiting: list[dict[int, ScriptOutcome]] = [{}, {}]
    answered = [0, 0]
    live = [True, True]
    try:
        while any(live):
            side = min((s for s in (0, 1) if live[s]), key=lambda s: answered[s])
            got = next(streams[side], None)
            if got is None:
                live[side] = False
                continue
            index, outcome = got
            answered[side] += 1
            other = waiting[1 - side].pop(index, None)
            if other is None:
                waiting[side][index] = outcome
                continue
            pair = (outcome, other) if side == 0 else (other, outcome)
            yield index, kept.pop(index), pair[0], pair[1]
    finally:
        for stream in streams:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def run_pairs(a: Runner, b: Runner,
              scripts: Sequence[Sequence[Op]]) -> list[tuple[ScriptOutcome, ScriptOutcome]]:
    """Both outcomes of every script, in script order."""
    out: dict[int, tuple[ScriptOutcome, ScriptOutcome]] = {}
    for index, _, oa, ob in paired(a, b, scripts):
        out[index] = (oa, ob)
    return [out[i] for i in range(len(scripts))]


def shrink_many(a: Runner, b: Runner, scripts: Sequence[Sequence[Op]]) -> list[list[Op]]:
    """Each script shrunk to the smallest that still differs between ``a`` and ``b`` (delta
    debugging, :func:`anonvma.difftest.shrink.shrink_steps`), all in step: one paired batch a
    round holds every script's candidates, each different one once (a verdict is kept for the
    rounds after)."""
    steps: dict[int, ShrinkSteps] = {}
    asked: dict[int, list[list[Op]]] = {}
    done: dict[int, list[Op]] = {}
    verdict: dict[str, bool] = {}

    def advance(n: int, verdicts: Optional[list[bool]]) -> None:
        try:
            asked[n] = next(steps[n]) if verdicts is None else steps[n].send(verdicts)
        except StopIteration as end:
            done[n] = end.value
            asked.pop(n, None)

    for n, ops in enumerate(scripts):
        steps[n] = shrink_steps(ops, max_rounds=SHRINK_ROUNDS)
        advance(n, None)
    while asked:
        new = {script_text(c): c for cands in asked.values() for c in cands}
        new = {text: c for text, c in new.items() if text not in verdict}
        for text, (oa, ob) in zip(new, run_pairs(a, b, list(new.values())), strict=True):
            verdict[text] = differs(oa, ob)
        for n, cands in list(asked.items()):
            advance(n, [verdict[script_text(c)] for c in cands])
    return [done[n] for n in range(len(scripts))]
