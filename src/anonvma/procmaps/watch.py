"""``--watch``: redraw a table every few seconds with each row's change since the first sample."""

from __future__ import annotations

import sys
import time
from typing import Callable, Dict, Mapping, Optional, Sequence, TextIO, Tuple

from anonvma.procmaps.records import Group

#: Clear the terminal and home the cursor (ANSI), as watch(1) and top(1) redraw.
CLEAR = "\x1b[H\x1b[2J"
#: The text to show, given each key's change since the start and the total's.
Render = Callable[[Mapping[str, Optional[int]], Optional[int]], str]
#: One sample: every group, their total, the field compared (the sort field), and its renderer.
Sample = Callable[[], Tuple[Sequence[Group], Group, str, Render]]


def changes_since(first: Mapping[str, Optional[int]], groups: Sequence[Group],
                  measure: str) -> Dict[str, Optional[int]]:
    """key -> change of ``measure`` since ``first`` (a group new since then changed by all of
    its value); ``None`` where a value is unknown."""
    out: Dict[str, Optional[int]] = {}
    for g in groups:
        now, then = g.value(measure), first.get(g.key, 0)
        out[g.key] = None if now is None or then is None else now - then
    return out


def watch(sample: Sample, interval: float, count: Optional[int] = None,
          out: TextIO = sys.stdout) -> int:
    """Sample, render, wait ``interval`` s; ``count`` times (``None``: until Ctrl-C). Returns 0.

    On a terminal each table replaces the last; otherwise tables follow each other, separated
    by a blank line (so ``--watch 1 --count 3 > log`` keeps them all).
    """
    tty = out.isatty()
    first: Optional[Dict[str, Optional[int]]] = None
    first_total: Optional[int] = None
    done = 0
    try:
        while count is None or done < count:
            started = time.monotonic()
            groups, total, measure, render = sample()
            if first is None:
                first = {g.key: g.value(measure) for g in groups}
                first_total = total.value(measure)
            now_total = total.value(measure)
            since_total = None if now_total is None or first_total is None else now_total - first_total
            text = render(changes_since(first, groups, measure), since_total)
            out.write((CLEAR if tty else ("\n" if done else "")) + text)
            out.flush()
            done += 1
            if count is None or done < count:
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        out.write("\n")
    return 0
