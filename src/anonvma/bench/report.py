"""Report the fork sweep like the seed's table: unnamed, named, regression; strdup/refcount overhead.

Times in ms; ``median [q1-q3]`` over the repeated forks. The overhead ratio of a (backend, count,
scenario) is (named - unnamed) under strdup over (named - unnamed) under refcount, of the medians.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from anonvma.bench.fork import Cell, Stats
from anonvma.bench.layout import SCENARIOS

#: KERNEL-NOTES 4: the v8 cover letter, ARM64 Android, 64K named VMAs, 1000 forks, average fork ms.
SEED: Dict[str, Dict[str, Tuple[float, float]]] = {
    "strdup": {"unpopulated": (16.73, 23.34), "1page": (51.98, 59.94), "10pages": (66.86, 76.31)},
    "refcount": {"unpopulated": (16.36, 18.35), "1page": (48.16, 51.30), "10pages": (64.23, 67.69)},
}
METRICS = {"fork": "fork (parent side: dup_mmap)", "fork_exit": "fork + exit/reap of the child"}

Key = Tuple[str, str, int, str]  # backend, strategy, count_requested, scenario


def _index(cells: Iterable[Cell]) -> Dict[Tuple[str, str, int, str, str], Cell]:
    return {(c.backend, c.strategy, c.count_requested, c.scenario, c.naming): c for c in cells}


def _fmt(s: Optional[Stats]) -> str:
    if s is None:
        return "-"
    return f"{s.median:.2f} [{s.q1:.2f}-{s.q3:.2f}]"


def regression(unnamed: Optional[Stats], named: Optional[Stats]) -> Optional[float]:
    """Named over unnamed median, in percent."""
    if unnamed is None or named is None or unnamed.median <= 0:
        return None
    return (named.median - unnamed.median) / unnamed.median * 100


def rows(cells: List[Cell], metric: str) -> List[Dict[str, Any]]:
    """One row per (backend, strategy, count, scenario): unnamed and named stats, regression, counters."""
    idx = _index(cells)
    seen: List[Key] = []
    for c in cells:
        key = (c.backend, c.strategy, c.count_requested, c.scenario)
        if key not in seen:
            seen.append(key)
    out = []
    for backend, strategy, count, scenario in seen:
        un = idx.get((backend, strategy, count, scenario, "none"))
        na = idx.get((backend, strategy, count, scenario, "max"))
        us = un.stats(metric) if un else None
        ns = na.stats(metric) if na else None
        out.append({
            "backend": backend, "strategy": strategy, "count": count, "scenario": scenario,
            "map_count": (un or na).map_count if (un or na) else 0,  # type: ignore[union-attr]
            "unnamed": us, "named": ns, "regression_pct": regression(us, ns),
            "named_status": na.status if na else "not run",
            "counters": na.counters if na else {}, "ptes_copied": na.ptes_copied if na else None,
        })
    return out


def overheads(cells: List[Cell], metric: str) -> List[Dict[str, Any]]:
    """strdup/refcount overhead ratio per (backend kind, count, scenario) where both strategies ran."""
    by: Dict[Tuple[str, int, str], Dict[str, float]] = {}
    for r in rows(cells, metric):
        if r["unnamed"] is None or r["named"] is None or r["strategy"] not in SEED:
            continue
        kind = r["backend"]
        by.setdefault((kind, r["count"], r["scenario"]), {})[r["strategy"]] = (
            r["named"].median - r["unnamed"].median)
    out = []
    for (kind, count, scenario), d in by.items():
        if "strdup" in d and "refcount" in d:
            ratio = d["strdup"] / d["refcount"] if d["refcount"] > 0 else None
            out.append({"backend": kind, "count": count, "scenario": scenario,
                        "delta_strdup_ms": d["strdup"], "delta_refcount_ms": d["refcount"],
                        "ratio": ratio})
    return out


def seed_regressions() -> Dict[str, Dict[str, float]]:
    """The seed's named-over-unnamed regression in percent, per strategy and scenario
    (+39.5% strdup, +12.2% refcount unpopulated)."""
    return {st: {s: (na - un) / un * 100 for s, (un, na) in by.items()} for st, by in SEED.items()}


def seed_overheads() -> Dict[str, float]:
    """The seed's strdup/refcount overhead ratio per scenario (3.3x unpopulated)."""
    sd, rc = SEED["strdup"], SEED["refcount"]
    return {s: (sd[s][1] - sd[s][0]) / (rc[s][1] - rc[s][0]) for s in SCENARIOS}


def table(cells: List[Cell], metric: str, labels: Optional[Dict[str, str]] = None) -> str:
    """The seed-style table for every backend, then the overhead ratios."""
    labels = labels or {}
    lines: List[str] = [f"time: {METRICS[metric]}, ms, median [q1-q3]"]
    current = None
    for r in rows(cells, metric):
        if r["backend"] != current:
            current = r["backend"]
            title = current + (f"  ({labels[current]})" if current in labels else "")
            lines += ["", title,
                      f"{'strategy':9} {'VMAs':>6} {'scenario':11} {'unnamed':>24} {'named':>24} "
                      f"{'regr.':>7}  {'allocs':>6} {'B copied':>8} {'gets':>6} {'puts':>6} {'frees':>6}"]
        named = _fmt(r["named"]) if r["named"] else r["named_status"].split(":")[0]
        reg = f"{r['regression_pct']:+.1f}%" if r["regression_pct"] is not None else "-"
        fork = r["counters"].get("fork", {})
        exit_ = r["counters"].get("fork_exit", {})
        counts = (f"{fork.get('allocs', ''):>6} {fork.get('bytes_copied', ''):>8} {fork.get('gets', ''):>6} "
                  f"{exit_.get('puts', ''):>6} {exit_.get('frees', ''):>6}") if fork else ""
        lines.append(f"{r['strategy']:9} {r['map_count']:>6} {r['scenario']:11} {_fmt(r['unnamed']):>24} "
                     f"{named:>24} {reg:>7}  {counts}".rstrip())
    ov = overheads(cells, metric)
    if ov:
        seed, seed_reg = seed_overheads(), seed_regressions()
        width = max(8, *(len(o["backend"]) for o in ov))
        lines += ["", "overhead strdup/refcount = (named-unnamed)_strdup / (named-unnamed)_refcount; "
                  "the v8 cover letter (64K VMAs, ARM64 Android): regression strdup / refcount, ratio",
                  f"{'backend':{width}} {'VMAs':>6} {'scenario':11} {'strdup +ms':>10} {'refcount +ms':>12} "
                  f"{'ratio':>7} {'seed regr.':>15} {'seed ratio':>10}"]
        for o in ov:
            ratio = f"{o['ratio']:.2f}x" if o["ratio"] is not None else "-"
            sreg = f"{seed_reg['strdup'][o['scenario']]:+.1f}% / {seed_reg['refcount'][o['scenario']]:+.1f}%"
            lines.append(f"{o['backend']:{width}} {o['count']:>6} {o['scenario']:11} "
                         f"{o['delta_strdup_ms']:>10.2f} {o['delta_refcount_ms']:>12.2f} {ratio:>7} "
                         f"{sreg:>15} {seed[o['scenario']]:>9.2f}x")
    lines.append("")
    lines.append("counters: per fork of the model's child (allocs, bytes copied, gets) and after its exit "
                 "(puts, frees)")
    return "\n".join(lines)


def write_json(path: str, cells: List[Cell], metric: str, meta: Dict[str, Any]) -> None:
    """Everything: metadata, every cell with its samples and counters, rows, overheads, the seed."""
    doc = {**meta, "metric": metric,
           "cells": [c.to_json() for c in cells],
           "rows": [{**r, "unnamed": r["unnamed"].__dict__ if r["unnamed"] else None,
                     "named": r["named"].__dict__ if r["named"] else None} for r in rows(cells, metric)],
           "overhead": overheads(cells, metric),
           "seed": {"source": "KERNEL-NOTES 4: v8 cover letter 20210827191858.2037087-1-surenb@google.com",
                    "unnamed_named_ms": SEED, "overhead_ratio": seed_overheads()}}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=1))


def plot(path: str, cells: List[Cell], metric: str, labels: Optional[Dict[str, str]] = None) -> Optional[str]:
    """Fork time against VMA count (log-log), one line per strategy x naming; a panel per backend
    and scenario. :return: None when written, else why not (matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'anonvma[plot]'); no plot written"
    labels = labels or {}
    ok = [c for c in cells if c.stats(metric) is not None]
    backends = list(dict.fromkeys(c.backend for c in ok))
    scenarios = [s for s in SCENARIOS if any(c.scenario == s for c in ok)]
    if not backends or not scenarios:
        return "nothing to plot"
    fig, axes = plt.subplots(len(backends), len(scenarios), squeeze=False,
                             figsize=(4.2 * len(scenarios), 3.4 * len(backends)))
    for i, kind in enumerate(backends):
        for j, scenario in enumerate(scenarios):
            ax = axes[i][j]
            series: Dict[str, List[Tuple[int, float]]] = {}
            for c in ok:
                if c.backend == kind and c.scenario == scenario:
                    st = c.stats(metric)
                    assert st is not None
                    label = f"{c.strategy}, {'named' if c.naming != 'none' else 'unnamed'}"
                    series.setdefault(label, []).append((c.map_count or c.count, st.median))
            for label, pts in sorted(series.items()):
                pts.sort()
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        linestyle="--" if "unnamed" in label else "-", label=label)
            ax.set_xscale("log")
            ax.set_yscale("log")
            title = (f"UML {kind[4:]} (large constant overheads)" if kind.startswith("uml-")
                     else kind)
            ax.set_title(f"{title}: {scenario}", fontsize=9)
            ax.set_xlabel("VMAs")
            ax.set_ylabel(f"{metric.replace('_', '+')} ms (median)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
