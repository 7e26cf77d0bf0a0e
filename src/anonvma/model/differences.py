"""Kernel against kernel: the ops of a script whose results differ between two generations, and
the rule behind each difference.

A rule is named responsible for a differing op when the first generation with only that rule
taken from the second gives the second's result there. A difference no single rule explains
(two rules acting together) is reported with no rule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from anonvma.model.kernel import Kernel, RuleInfo
from anonvma.model.replay import run_ops
from anonvma.ops import Op

Results = list[dict[str, Any]]


@dataclass(frozen=True)
class OpDifference:
    """One op whose result differs between generation ``a`` and generation ``b``.

    :ivar index: the op's position in the script (0-based).
    :ivar rules: the rules that explain it, by field name, with where ``b``'s version comes from.
    """

    index: int
    op: Op
    result_a: dict[str, Any]
    result_b: dict[str, Any]
    rules: tuple[tuple[str, RuleInfo], ...]


def hybrid(a: Kernel, b: Kernel, rule: str) -> Kernel:
    """Generation ``a`` with rule ``rule`` taken from ``b``."""
    return dataclasses.replace(a, **{rule: getattr(b, rule)})


def compare_generations(ops: Sequence[Op], a: Kernel, b: Kernel, results_a: Optional[Results] = None,
                        results_b: Optional[Results] = None) -> list[OpDifference]:
    """The ops whose results differ between ``a`` and ``b``, each with the rules that explain it.

    :param results_a: what generation ``a`` gave (a real kernel's results); the model's when None.
    :param results_b: likewise for ``b``.
    """
    res_a = results_a if results_a is not None else run_ops(ops, linux=a)
    res_b = results_b if results_b is not None else run_ops(ops, linux=b)
    differing = [i for i, (x, y) in enumerate(zip(res_a, res_b, strict=True)) if x != y]
    if not differing:
        return []
    infos = b.rules()
    explained: dict[int, list[tuple[str, RuleInfo]]] = {i: [] for i in differing}
    for name in a.rule_names():
        if getattr(a, name) is getattr(b, name):
            continue
        res_h = run_ops(ops, linux=hybrid(a, b, name))
        for i in differing:
            if res_h[i] == res_b[i]:
                explained[i].append((name, infos[name]))
    return [OpDifference(i, ops[i], res_a[i], res_b[i], tuple(explained[i])) for i in differing]


def describe_rule(name: str, info: RuleInfo) -> str:
    """``name: kernel function (commit, since): title``."""
    origin = ", ".join(x for x in (info.commit, info.since) if x)
    return f"{name}: {info.function} ({origin}): {info.title}"
