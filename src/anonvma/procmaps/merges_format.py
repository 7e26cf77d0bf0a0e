"""``show --merges`` as a table or JSON: the boundaries names alone keep, and a count per name."""

from __future__ import annotations

from typing import Dict, List, Optional

from anonvma.procmaps.format import fit, label
from anonvma.procmaps.merges import Merges


def merges_doc(m: Merges) -> Dict[str, object]:
    """JSON: the release, the bounds, every boundary (address in hex and as a number) and each
    name's bounds (each boundary counted for both its names)."""
    return {"release": m.release, "lower": m.lower, "upper": m.upper,
            "counting": "each boundary counts once for each of its two names",
            "boundaries": [{"address": b.address, "address_hex": f"{b.address:x}", "below": b.below,
                            "above": b.above, "certain": b.certain, "why": b.why}
                           for b in m.boundaries],
            "names": [{"name": name, "lower": lo, "upper": hi} for name, (lo, hi) in m.per_name().items()]}


def merges_table(m: Merges, width: Optional[int]) -> str:
    """The boundaries (ADDRESS, CERTAIN or POSSIBLE, the two names, why), then the names with
    their lower and upper bounds, then the totals."""
    out: List[str] = [f"{m.upper} VMA {'boundary exists' if m.upper == 1 else 'boundaries exist'} only "
                      "because names differ, judged by the merge "
                      f"rules of Linux {m.release}: {m.lower} certain (lower bound), {m.upper} at most "
                      "(upper bound)"]
    if m.boundaries:
        out.append("")
        rows = [("ADDRESS", "VERDICT", "BELOW | ABOVE", "WHY")]
        rows += [(f"{b.address:x}", "certain" if b.certain else "possible",
                  f"{label(b.below)} | {label(b.above)}", b.why) for b in m.boundaries]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            lead = "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True))
            room = None if width is None else max(width - len(lead) - 2, 12)
            out.append(f"{lead}  {fit(r[3], room)}".rstrip())
        out.append("")
        out.append("LOWER  UPPER  NAME (each boundary counts for both its names)")
        for name, (lo, hi) in m.per_name().items():
            out.append(f"{lo:>5}  {hi:>5}  {label(name)}")
    return "\n".join(out) + "\n"
