"""``anonvma oracle bisect-run SCRIPT``: one step of ``git bisect run`` inside a kernel tree.

Builds the tree as it is checked out (out of tree, in a build directory kept between steps so
each step recompiles only what the checkout changed), runs the ops script on it in UML, and
compares the output with what is expected: a recorded ``.expected`` file, or what the model
prints for a release of the table. The exit status is what ``git bisect run`` reads.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Sequence

from anonvma.difftest.compare import OracleBackend, first_difference, model_lines, model_supports
from anonvma.ops import Op, ScriptError, format_result, parse_script
from anonvma.oracle import sources
from anonvma.oracle.build import Log, OracleBuildError, cache_dir, configure_and_make, ensure_tools

#: The commit's output is what was expected (git bisect: good).
MATCHES = 0
#: It is not (git bisect: bad).
DIFFERS = 1
#: The commit cannot be judged: it does not build, cannot name memory, or its guest failed
#: (git bisect: skip).
UNTESTABLE = 125
#: The step itself is wrong (bad script, no such file, a tree that is not a kernel): git
#: bisect run stops on any status above 127.
ABORT = 128


class BisectUsageError(ValueError):
    """What makes every step fail alike: the bisection is stopped (:data:`ABORT`)."""


def default_build_dir(tree: Path) -> Path:
    """``<cache>/bisect/<hash of the tree's path>``: one build directory per tree."""
    digest = hashlib.sha256(str(tree.resolve()).encode()).hexdigest()[:12]
    return cache_dir() / "bisect" / f"{tree.resolve().name}-{digest}"


def expected_lines(ops: Sequence[Op], expect: Optional[Path], like: Optional[str]) -> list[str]:
    """The output a good commit prints: ``expect``'s lines, or the model's as release ``like``.

    :raises BisectUsageError: neither or both given, an unreadable file, a release the model
        does not speak.
    """
    if like is None and expect is not None:
        try:
            return expect.read_text().splitlines()
        except OSError as err:
            raise BisectUsageError(f"{expect}: {err.strerror}") from err
    if like is None or expect is not None:
        raise BisectUsageError("give one of --expect FILE or --like RELEASE")
    why = model_supports(like)
    if why is not None:
        raise BisectUsageError(f"--like {like}: {why}")
    return model_lines(ops, "refcount", None, like)


def read_script(path: Path) -> list[Op]:
    """The ops script at ``path``.

    :raises BisectUsageError: it cannot be read or is not an ops script.
    """
    try:
        return parse_script(path.read_text())
    except OSError as err:
        raise BisectUsageError(f"{path}: {err.strerror}") from err
    except ScriptError as err:
        raise BisectUsageError(f"{path}: {err}") from err


def step(script: Path, *, expect: Optional[Path] = None, like: Optional[str] = None,
         tree: Path = Path("."), build_dir: Optional[Path] = None, jobs: Optional[int] = None,
         log: Log = print) -> int:
    """Build ``tree`` as checked out, run ``script``, compare; the exit status for git bisect."""
    try:
        ops = read_script(script)
        want = expected_lines(ops, expect, like)
        sources.version_of(tree)
        if not sources.is_clean(tree):
            raise BisectUsageError(f"{tree} has an in-tree build (.config or include/config): "
                                   "run `make ARCH=um mrproper` there first (the build goes to a "
                                   "directory of its own)")
    except (BisectUsageError, OracleBuildError) as err:
        log(f"error: {err}")
        return ABORT
    try:
        version = sources.check_names_memory(tree)
    except OracleBuildError as err:
        log(f"skip: {err}")
        return UNTESTABLE
    out = build_dir or default_build_dir(tree)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "bisect-build.log"
    log(f"{sources.describe(tree)}: Linux {version}, building in {out} (log {log_path})")
    try:
        ensure_tools(log)
        log_path.write_text("")
        kernel = configure_and_make(tree, log_path, jobs or os.cpu_count() or 1, out)
    except OracleBuildError as err:
        log(f"skip: the tree does not build: {str(err).splitlines()[0]}")
        return UNTESTABLE
    with OracleBackend(kernel=kernel, jobs=1) as backend:
        outcome = backend([ops])[0]
    if outcome.results is None:
        log(f"skip: the guest did not run the script: {outcome.error}")
        return UNTESTABLE
    got = [format_result(r) for r in outcome.results]
    line = first_difference(want, got)
    if line is None:
        log(f"matches: {len(got)} result lines as expected")
        return MATCHES
    log(f"differs at result line {line + 1} (op {ops[line].to_json() if line < len(ops) else '-'}):\n"
        f"  expected {want[line] if line < len(want) else '(nothing)'}\n"
        f"  got      {got[line] if line < len(got) else '(nothing)'}")
    return DIFFERS
