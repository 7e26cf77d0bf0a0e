"""The two sides of a kernel-against-kernel campaign: what a ``--kernel``/``--against`` value
names, and what runs scripts for it (a pool of UML guests, or the model speaking a release).

:func:`resolve_side` is the one place a name is looked up, so a new kind of name (a labelled
kernel built from one's own tree) is one more branch there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Protocol, Sequence

from anonvma import releases
from anonvma.difftest.compare import OracleBackend, model_supports
from anonvma.ops import Op, format_result
from anonvma.oracle.pool import ScriptOutcome

#: How a value names the model rather than a kernel: ``model:RELEASE``.
MODEL = "model:"


class UsageError(ValueError):
    """A value that names no kernel (or one not built); the message says which and what to do."""


@dataclass(frozen=True)
class Side:
    """One side of a campaign.

    :ivar name: what the campaign records: a release's name, ``model:RELEASE``, or the
        path of a UML executable.
    :ivar title: how reports name it.
    :ivar path: the UML executable; None for the model.
    :ivar release: the release of the table whose rules it has (the model speaks it, or the path
        is a cached kernel of it); None when unknown: then no rule can be named.
    """

    name: str
    title: str
    path: Optional[Path]
    release: Optional[str]

    @property
    def is_model(self) -> bool:
        return self.path is None

    def tag(self, fallback: str) -> str:
        """A file-name-safe word for its saved outputs: the release, ``model-RELEASE``, or
        ``fallback`` for a path."""
        if self.is_model:
            return f"model-{self.release}"
        return fallback if "/" in self.name else self.name

    def same_as(self, other: Side) -> bool:
        """Both name the same kernel (or the same model)."""
        if self.path is not None and other.path is not None:
            return self.path.resolve() == other.path.resolve()
        return self.name == other.name


def resolve_side(value: str, variant: str) -> Side:
    """What ``value`` names: ``model:RELEASE``; a path to a UML executable (anything with a
    ``/``); a label of ``anonvma oracle build --source`` (its rules: the release it was built to
    match); or a release or series of the table, whose cached kernel of ``variant`` it is.

    :raises UsageError: an unknown release, a release the model does not speak, no executable
        at the path, or a kernel not built (the message names the command that builds it).
    """
    from anonvma.oracle.build import OracleMissingError, require_kernel

    if value.startswith(MODEL):
        rel = _release(value[len(MODEL):])
        why = model_supports(rel.name)
        if why is not None:
            raise UsageError(f"the model cannot run Linux {rel.name} scripts ({why})")
        return Side(MODEL + rel.name, f"the model of Linux {rel.name}", None, rel.name)
    if "/" in value:
        path = Path(value)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise UsageError(f"{value}: no executable there (a UML kernel; `anonvma oracle status` "
                             "lists the cached ones)")
        release = _cached_release(path)
        title = str(path) if release is None else f"{path} (Linux {release})"
        return Side(str(path), title, path, release)
    if value not in releases.choices():
        from anonvma.oracle import labels

        item = labels.lookup(value, variant)
        if item is not None:
            return Side(value, f"{value} (Linux {item.version}, from {item.source})", item.path,
                        item.rules)
    rel = _release(value)
    try:
        build = require_kernel(variant, linux=rel.name)
    except OracleMissingError as exc:
        raise UsageError(str(exc)) from None
    return Side(rel.name, f"Linux {rel.name}", build.path, rel.name)


def _release(value: str) -> releases.Release:
    try:
        return releases.resolve(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _cached_release(path: Path) -> Optional[str]:
    """The release of the table a cached oracle kernel at ``path`` builds, if it is one."""
    from anonvma.oracle.build import cached_kernels

    for build in cached_kernels():
        if build.path.resolve() == path.resolve() and build.linux in releases.names():
            return build.linux
    return None


class Runner(Protocol):
    """Runs scripts for one side, keeping what it started (guests) between calls until closed."""

    @property
    def boots(self) -> int: ...

    def stream(self, scripts: Iterable[Sequence[Op]]) -> Iterator[tuple[int, ScriptOutcome]]: ...

    def close(self, graceful: bool = True) -> None: ...


class ModelRunner:
    """The model of one release and name strategy; its results are shaped as a guest's (JSON)."""

    boots = 0

    def __init__(self, release: str, strategy: str) -> None:
        self.release = release
        self.strategy = strategy

    def stream(self, scripts: Iterable[Sequence[Op]]) -> Iterator[tuple[int, ScriptOutcome]]:
        from anonvma.model.replay import run_ops

        for i, ops in enumerate(scripts):
            try:
                results = run_ops(ops, strategy=self.strategy, linux=self.release)
            except Exception as exc:  # a model bug: this script could not run on this side
                yield i, ScriptOutcome(None, f"the model raised {type(exc).__name__}: {exc}")
                continue
            yield i, ScriptOutcome([json.loads(format_result(r)) for r in results])

    def close(self, graceful: bool = True) -> None:
        """Nothing to stop."""


def open_runner(side: Side, variant: str, jobs: int, script_timeout: float,
                cpus: Optional[Sequence[int]] = None) -> Runner:
    """What runs ``side``'s scripts: ``jobs`` guests of its kernel pinned to ``cpus`` (first
    preferred), or the model with ``variant`` as its name strategy."""
    if side.path is None:
        assert side.release is not None
        return ModelRunner(side.release, variant)
    return OracleBackend(variant, side.release or releases.DEFAULT, jobs, script_timeout,
                         kernel=side.path, cpus=cpus)
