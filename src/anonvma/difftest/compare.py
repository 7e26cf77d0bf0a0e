"""Run scripts on the model and on a real kernel, compare result lines, shrink what differs.

A backend runs a batch of scripts and returns one :class:`~anonvma.oracle.run.ScriptOutcome`
each: the UML oracle (:class:`OracleBackend`, a pool of guests kept booted between batches) or
the running kernel (:func:`host_backend`, real processes). The kernel's output is the truth.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from types import TracebackType
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from anonvma.difftest.shrink import shrink
from anonvma.ops import Op, format_result, script_text
from anonvma import releases
from anonvma.oracle.pool import GuestPool, ScriptOutcome, run_all

Backend = Callable[[Sequence[Sequence[Op]]], list[ScriptOutcome]]


class OracleBackend:
    """Scripts run on a pool of guests of the cached oracle kernel of ``linux`` and ``variant``;
    the guests stay booted between calls (shrinking makes many small calls). Use as a context
    manager, or call :meth:`close`: it halts the guests.

    ``kernel`` runs a UML executable of one's own instead (a release the table does not have yet);
    ``cpus`` the CPUs its guests are pinned to, the first preferred (see GuestPool).

    :raises OracleMissingError: (when first used) no such kernel is cached.
    """

    def __init__(self, variant: str = "refcount", linux: str = releases.DEFAULT, jobs: Optional[int] = None,
                 script_timeout: float = 120.0, kernel: Optional[Path] = None,
                 cpus: Optional[Sequence[int]] = None) -> None:
        from anonvma.oracle.build import require_kernel

        self.variant = variant
        self.linux = linux
        self.jobs = jobs
        self.script_timeout = script_timeout
        self.kernel = kernel or require_kernel(variant, linux=linux).path
        self.cpus = cpus
        self._pool: Optional[GuestPool] = None

    def pool(self) -> GuestPool:
        """The guests (booted on first use)."""
        if self._pool is None:
            self._pool = GuestPool(self.kernel, jobs=self.jobs, script_timeout=self.script_timeout,
                                   cpus=self.cpus)
        return self._pool

    def stream(self, scripts: Iterable[Sequence[Op]]) -> Iterator[tuple[int, ScriptOutcome]]:
        """``(index, outcome)`` as each script finishes, in any order (scripts read lazily)."""
        return self.pool().run(scripts)

    def __call__(self, scripts: Sequence[Sequence[Op]]) -> list[ScriptOutcome]:
        return run_all(self.pool(), scripts)

    @property
    def boots(self) -> int:
        """Guests booted so far."""
        return 0 if self._pool is None else self._pool.boots

    def close(self, graceful: bool = True) -> None:
        if self._pool is not None:
            self._pool.close(graceful)
            self._pool = None

    def __enter__(self) -> OracleBackend:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close(graceful=kind is None)


def host_backend() -> Backend:
    """Scripts run in real processes on the running kernel (one session per batch)."""
    from anonvma.live.runner import LiveSession, RunnerError

    def run(scripts: Sequence[Sequence[Op]]) -> list[ScriptOutcome]:
        outcomes = []
        with LiveSession() as session:
            for ops in scripts:
                try:
                    outcomes.append(ScriptOutcome(session.run(ops)))
                except RunnerError as exc:
                    outcomes.append(ScriptOutcome(None, str(exc)))
        return outcomes

    return run


def model_lines(ops: Sequence[Op], strategy: str = "refcount", task_size: Optional[int] = None,
                linux: str = releases.DEFAULT) -> list[str]:
    """The model's result lines; an exception in the model becomes one last line saying so."""
    from anonvma.model.replay import run_ops

    kwargs: dict[str, Any] = {"linux": linux}
    if task_size is not None:
        kwargs["task_size"] = task_size
    try:
        return [format_result(r) for r in run_ops(ops, strategy=strategy, **kwargs)]
    except Exception as exc:  # a model bug is a difference, not a crash of the comparison
        return [f"model raised {type(exc).__name__}: {exc} "
                f"({traceback.extract_tb(exc.__traceback__)[-1].filename.rsplit('/', 1)[-1]}:"
                f"{traceback.extract_tb(exc.__traceback__)[-1].lineno})"]


def model_supports(linux: str) -> Optional[str]:
    """``None`` when the model runs scripts as Linux ``linux``; else the model's reason why not."""
    from anonvma.model.replay import run_ops

    try:
        run_ops([], linux=linux)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def first_difference(model: Sequence[str], kernel: Sequence[str]) -> Optional[int]:
    """Index of the first result line that differs (or where one side ends early); None if equal."""
    for i, (a, b) in enumerate(zip(model, kernel, strict=False)):
        if a != b:
            return i
    return None if len(model) == len(kernel) else min(len(model), len(kernel))


@dataclass
class Divergence:
    """A script whose model output differs from the kernel's (both as result lines)."""

    ops: list[Op]
    model: list[str]
    kernel: list[str]
    original_len: int = 0

    @property
    def line(self) -> int:
        """Index of the first differing result (= op) line."""
        idx = first_difference(self.model, self.kernel)
        return -1 if idx is None else idx

    def report(self) -> str:
        """The script, then per op: op, kernel result, model result, marking the first difference."""
        out = [f"script ({len(self.ops)} ops, shrunk from {self.original_len or len(self.ops)}):",
               script_text(self.ops).rstrip("\n"), "", "op | kernel | model:"]
        for i, op in enumerate(self.ops):
            k = self.kernel[i] if i < len(self.kernel) else "(none)"
            m = self.model[i] if i < len(self.model) else "(none)"
            mark = ">>" if k != m else "  "
            out.append(f"{mark} {op.to_json()}\n     kernel: {k}\n     model:  {m}")
        for extra in self.model[len(self.ops):]:
            out.append(f">> model: {extra}")
        return "\n".join(out)


@dataclass
class Comparison:
    """Outcome of comparing a batch: per script the first differing line (None if equal)."""

    differs: list[Optional[int]]
    errors: list[Optional[str]]
    kernel: list[Optional[list[str]]]
    model: list[list[str]]

    @property
    def ops_compared(self) -> int:
        return sum(len(k) for k in self.kernel if k is not None)


def compare(scripts: Sequence[Sequence[Op]], backend: Backend, strategy: str = "refcount",
            task_size: Optional[int] = None, linux: str = releases.DEFAULT) -> Comparison:
    """Run every script on ``backend`` and on the model; line-by-line verdicts."""
    outcomes = backend(scripts)
    differs: list[Optional[int]] = []
    errors: list[Optional[str]] = []
    kernel: list[Optional[list[str]]] = []
    model: list[list[str]] = []
    for ops, outcome in zip(scripts, outcomes, strict=True):
        mine = model_lines(ops, strategy, task_size, linux)
        model.append(mine)
        if outcome.results is None:
            errors.append(outcome.error or "no results")
            kernel.append(None)
            differs.append(None)
            continue
        theirs = [format_result(r) for r in outcome.results]
        errors.append(None)
        kernel.append(theirs)
        differs.append(first_difference(mine, theirs))
    return Comparison(differs, errors, kernel, model)


def shrink_divergence(ops: Sequence[Op], backend: Backend, strategy: str = "refcount",
                      task_size: Optional[int] = None, max_rounds: int = 40,
                      linux: str = releases.DEFAULT) -> Divergence:
    """Shrink a differing script (batches of candidates per backend call); the smallest found."""
    def still_fails(cands: Sequence[Sequence[Op]]) -> list[bool]:
        got = compare(cands, backend, strategy, task_size, linux)
        return [d is not None for d in got.differs]

    small = shrink(ops, still_fails, max_rounds=max_rounds)
    final = compare([small], backend, strategy, task_size, linux)
    kernel = final.kernel[0]
    if kernel is None or final.differs[0] is None:  # flaky: report the original
        small = list(ops)
        final = compare([small], backend, strategy, task_size, linux)
        kernel = final.kernel[0] or [f"kernel run failed: {final.errors[0]}"]
    return Divergence(small, final.model[0], kernel, len(ops))


def coalesced_maps(lines: Sequence[str]) -> list[str]:
    """Result lines with every maps list coalesced: neighbours with equal perms and name joined.

    What is mapped where, with which permissions and names, without the kernel's choice of
    where one VMA ends and the next begins. Kernels after 6.1 merge more (e.g. a faulted VMA
    with an unfaulted neighbour), so this is what a 6.1 model can be held to on them.
    """
    import json

    out = []
    for line in lines:
        obj = json.loads(line) if line.startswith("{") else None
        if not isinstance(obj, dict) or "maps" not in obj:
            out.append(line)
            continue
        merged: list[tuple[int, int, str, str, int]] = []
        for entry in obj["maps"]:
            span, perms, *rest = entry.split(" ", 2)
            lo, hi = (int(x, 16) for x in span.split("-"))
            name = rest[0] if rest else ""
            pgoff = 0
            if name.startswith("file:"):
                name, _, off = name.rpartition("@")
                pgoff = int(off, 16)
            if merged:
                plo, phi, pperms, pname, ppgoff = merged[-1]
                contiguous = not name.startswith("file:") or ppgoff + (phi - plo) // 4096 == pgoff
                if phi == lo and pperms == perms and pname == name and contiguous:
                    merged[-1] = (plo, hi, perms, name, ppgoff)
                    continue
            merged.append((lo, hi, perms, name, pgoff))
        joined = [f"{lo:x}-{hi:x} {perms}" + (f" {name}@{pgoff:x}" if name.startswith("file:")
                                                else f" {name}" if name else "")
                  for lo, hi, perms, name, pgoff in merged]
        out.append(format_result({"maps": joined}))
    return out
