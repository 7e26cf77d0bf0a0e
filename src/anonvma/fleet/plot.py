"""``anonvma plot``: memory by name over time from a recording, as a stacked-area PNG (matplotlib).

The ``top`` names by their largest value of ``measure`` get a band each (largest at the
bottom); everything else is one ``other`` band, so the top edge is the recorded total.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Sequence, Tuple

from anonvma.fleet.record import samples
from anonvma.procmaps.format import label

MEASURES = ("pss", "rss", "uss", "swap", "size")


def series(recorded: Sequence[Dict[str, Any]], measure: str, top: int
           ) -> Tuple[List[float], List[Tuple[str, List[float]]]]:
    """(elapsed seconds, [(name, MiB per sample)]) for the ``top`` names plus ``other``.

    :raises ValueError: no samples, or the measure is unknown in them (maps input).
    """
    if not recorded:
        raise ValueError("the recording has no samples")
    times = [float(s["elapsed"]) for s in recorded]
    values: Dict[str, List[float]] = {}
    totals = [0.0] * len(recorded)
    for i, s in enumerate(recorded):
        for g in s["groups"]:
            v = g.get(measure)
            if v is None:
                raise ValueError(f"{measure} is unknown in this recording (maps input has no counters)")
            values.setdefault(label(g["key"]), [0.0] * len(recorded))[i] = v / 1024
            totals[i] += v / 1024
    ranked = sorted(values, key=lambda k: (-max(values[k]), k))
    shown = [(k, values[k]) for k in ranked[:top]]
    if len(ranked) > top:
        other = [t - sum(v[i] for _, v in shown) for i, t in enumerate(totals)]
        shown.append((f"other ({len(ranked) - top} names)", other))
    return times, shown


def plot(path: str, out: str, measure: str = "pss", top: int = 8, title: str = "") -> int:
    """Draw ``path`` (a recording) into ``out`` (PNG); return the number of samples.

    :raises ValueError: not a recording, or nothing to draw.
    :raises ImportError: matplotlib is missing (the ``plot`` extra).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recorded = samples(path)
    times, shown = series(recorded, measure, top)
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=100)
    try:
        ax.stackplot(times, *[v for _, v in shown], labels=[_short(k) for k, _ in shown], alpha=0.85)
        ax.set_xlabel("seconds since the first sample")
        ax.set_ylabel(f"{measure.upper()} (MiB)")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(recorded[0]["t"]))
        ax.set_title(title or f"memory by name ({measure.upper()}), {len(recorded)} samples from {started}")
        ax.set_xlim(times[0], times[-1] if times[-1] > times[0] else times[0] + 1)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize="small", frameon=False)
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)
    return len(recorded)


def _short(name: str, width: int = 48) -> str:
    return name if len(name) <= width else name[:width // 2 - 2] + "..." + name[-(width // 2 - 1):]
