"""Differences between two kernels, grouped by the first op that differs: its kind, its outcome
on each side, and the model's rule behind it (where the model knows both sides' releases).

A rule is named as ``anonvma replay --compare`` names it (:mod:`anonvma.model.differences`): the
first differing op of the (shrunk) script, run on side A's rules with that one rule taken from
side B's, gives B's result. A group is plain JSON, so shards' groups merge (:func:`merge_groups`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from anonvma.difftest.compare import first_difference
from anonvma.ops import Op, script_text

#: Seeds a text report lists per group before "...".
SEEDS_SHOWN = 12


@dataclass
class Difference:
    """A script whose result lines differ between side A and side B.

    :ivar ops: the script as reported (shrunk, when ``shrunk``).
    :ivar original_ops: the length of the generated script.
    """

    seed: int
    ops: list[Op]
    a: list[str]
    b: list[str]
    original_ops: int
    shrunk: bool = False

    @property
    def line(self) -> int:
        """Index of the first differing result line (= op)."""
        idx = first_difference(self.a, self.b)
        return -1 if idx is None else idx


def outcome(line: Optional[str]) -> str:
    """An op's result in a word: ``ok``, the errno, ``N VMAs`` for a maps, ``(none)``."""
    if line is None:
        return "(none)"
    result = json.loads(line)
    if "errno" in result:
        return str(result["errno"])
    if "maps" in result:
        count = len(result["maps"])
        return f"{count} VMA" + ("" if count == 1 else "s")
    extra = {k: v for k, v in result.items() if k != "ret"}
    return "ok" + "".join(f" {k} {v}" for k, v in extra.items()) if result.get("ret") == 0 else line


def rule_of(diff: Difference, release_a: Optional[str], release_b: Optional[str]) -> list[dict[str, str]]:
    """The rules that alone explain ``diff``'s first differing op (each as JSON: name, kernel
    function, commit, mainline release, title), the newer of the two sides' versions; empty when
    a side's release is unknown, both are the same release, or no single rule explains it."""
    from anonvma.model.differences import compare_generations
    from anonvma.model.kernel import get_kernel, info_of, rule_versions

    if release_a is None or release_b is None or release_a == release_b:
        return []
    ka, kb = get_kernel(release_a), get_kernel(release_b)
    results_a = [json.loads(x) for x in diff.a]
    results_b = [json.loads(x) for x in diff.b]
    if len(results_a) != len(diff.ops) or len(results_b) != len(diff.ops):
        return []
    try:
        found = compare_generations(diff.ops, ka, kb, results_a, results_b)
    except Exception:  # the model cannot run the script as one side's hybrid: no rule named
        return []
    first = next((d for d in found if d.index == diff.line), None)
    if first is None:
        return []
    out = []
    versions = rule_versions()
    for name, _ in first.rules:
        order = versions[name]
        newer = max(getattr(ka, name), getattr(kb, name), key=order.index)
        info = info_of(newer)
        out.append({"name": name, "function": info.function, "commit": info.commit,
                    "since": info.since, "title": info.title})
    return out


def group_key(group: dict[str, Any]) -> tuple[Any, ...]:
    return (tuple(r["name"] for r in group["rules"]), group["op"], group["a"], group["b"])


def _shortest(diff: Difference) -> dict[str, Any]:
    return {"seed": diff.seed, "ops": len(diff.ops), "original_ops": diff.original_ops,
            "shrunk": diff.shrunk, "line": diff.line, "script": script_text(diff.ops),
            "a": diff.a, "b": diff.b}


def group(diffs: Iterable[Difference], release_a: Optional[str],
          release_b: Optional[str]) -> list[dict[str, Any]]:
    """The differences grouped (JSON-ready): rule (or null), rules, op, a, b, count, seeds,
    shortest (its script and both sides' lines); the largest group first."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for diff in diffs:
        line = diff.line
        rules = rule_of(diff, release_a, release_b)
        new = {"rule": rules[0] if len(rules) == 1 else None, "rules": rules,
               "op": diff.ops[line].op if 0 <= line < len(diff.ops) else "(end)",
               "a": outcome(diff.a[line] if line < len(diff.a) else None),
               "b": outcome(diff.b[line] if line < len(diff.b) else None),
               "count": 1, "seeds": [diff.seed], "shortest": _shortest(diff)}
        key = group_key(new)
        if key in groups:
            _add(groups[key], new)
        else:
            groups[key] = new
    return _ordered(groups.values())


def _add(into: dict[str, Any], other: dict[str, Any]) -> None:
    into["count"] += other["count"]
    into["seeds"] = sorted(into["seeds"] + other["seeds"])
    mine, theirs = into["shortest"], other["shortest"]
    def rank(s: dict[str, Any]) -> tuple[bool, int, int]:
        return not s["shrunk"], s["ops"], s["seed"]

    if rank(theirs) < rank(mine):
        into["shortest"] = theirs


def _ordered(groups: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(groups, key=lambda g: (-g["count"], g["seeds"][0]))


def merge_groups(lists: Iterable[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The groups of several shards as one list: equal groups added up."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for groups in lists:
        for g in groups:
            key = group_key(g)
            if key in merged:
                _add(merged[key], g)
            else:
                merged[key] = json.loads(json.dumps(g))
    return _ordered(merged.values())


def describe(rule: dict[str, str]) -> str:
    """``name: kernel function (commit, since): title``, as ``replay --compare`` prints a rule."""
    from anonvma.model.differences import describe_rule
    from anonvma.model.kernel import RuleInfo

    info = RuleInfo(rule["function"], rule["commit"], rule["title"], rule["since"])
    return describe_rule(rule["name"], info)


def by_rule(groups: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The groups gathered per rule (or per no rule), the rule with the most scripts first."""
    found: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for g in groups:
        found.setdefault(tuple(r["name"] for r in g["rules"]), []).append(g)
    return sorted(found.values(),
                  key=lambda gs: (-sum(g["count"] for g in gs), min(g["seeds"][0] for g in gs)))


def _scripts(count: int) -> str:
    return f"{count} script" + ("" if count == 1 else "s")


def report(kinds: Sequence[dict[str, Any]], title_a: str, title_b: str, why_unnamed: str) -> str:
    """The groups of one rule as text: the rule, its scripts and the shortest of them; then each
    kind of first difference (the op, its outcome on both sides), its seeds and its shortest
    script with both sides' result lines."""
    rules = kinds[0]["rules"]
    head = " + ".join(describe(r) for r in rules) if rules else f"no rule named ({why_unnamed})"
    total = sum(g["count"] for g in kinds)
    out = [head, f"  {_scripts(total)}, shortest {min(g['shortest']['ops'] for g in kinds)} ops"]
    for g in kinds:
        short = g["shortest"]
        seeds = ", ".join(map(str, g["seeds"][:SEEDS_SHOWN]))
        if len(g["seeds"]) > SEEDS_SHOWN:
            seeds += ", ..."
        out += [f"  {_scripts(g['count'])} whose first difference is {g['op']}: {g['a']} on {title_a}, "
                f"{g['b']} on {title_b}",
                f"    seeds: {seeds}",
                f"    shortest (seed {short['seed']}, " + (f"shrunk from {short['original_ops']} ops):"
                                                        if short["shrunk"] else "not shrunk):")]
        for i, op in enumerate(short["script"].splitlines()):
            a = short["a"][i] if i < len(short["a"]) else "(none)"
            b = short["b"][i] if i < len(short["b"]) else "(none)"
            if a == b:
                out.append(f"         {op}\n           {a}")
            else:
                out.append(f"      >> {op}\n           A: {a}\n           B: {b}")
    return "\n".join(out)
