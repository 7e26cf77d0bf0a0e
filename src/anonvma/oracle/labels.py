"""Oracle kernels built from a user's own source and kept under a label of their choosing:
``anonvma oracle build --source PATH --label NAME``.

A labelled kernel is built with the same configuration as the pinned ones (UML defconfig plus
:data:`~anonvma.oracle.build.CONFIG_OPTIONS`), in either variant, and cached as
``<cache>/labels/NAME/VARIANT/linux`` with a ``build.json`` saying where it came from, which
Linux it is, and which of the model's releases it should behave like (``rules``). The user's
tree is only read: a clean tree is built out of tree (``make O=``, in ``--build-dir`` when one
is given, kept there for the next incremental build), anything else in a copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from anonvma import releases
from anonvma.oracle import sources
from anonvma.oracle.build import (VARIANTS, KernelBuild, Log, OracleBuildError, build_lock,
                                  cache_dir, configure_and_make, ensure_tools, patch_strdup)

#: What a label may be: it names a directory, and must not look like a release or a path.
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9._+-]{0,63}")


@dataclass(frozen=True)
class Labelled:
    """One labelled kernel: ``version`` is the Linux its tree builds, ``rules`` the model's
    release it should match, ``source`` where it was built from."""

    label: str
    variant: str
    version: str
    rules: str
    source: str
    path: Path
    seconds: float

    def kernel(self) -> KernelBuild:
        """As the other oracle kernels are described."""
        return KernelBuild(self.variant, self.version, f"label:{self.label}", self.path, self.seconds)


def labels_dir() -> Path:
    """``<cache>/labels``."""
    return cache_dir() / "labels"


def check_label(label: str) -> str:
    """``label`` if it can name a kernel.

    :raises ValueError: it is not a letter then up to 63 letters, digits and ``._+-``, or it is
        the name of a release or series of the table.
    """
    if not _LABEL.fullmatch(label):
        raise ValueError(f"label {label!r}: a letter, then up to 63 letters, digits, '.', '_', '+' or '-'")
    if label in releases.choices():
        raise ValueError(f"label {label!r} is a release of the table: choose another name")
    return label


def listed() -> list[Labelled]:
    """Every labelled kernel in the cache, by label and variant."""
    found = []
    for meta in sorted(labels_dir().glob("*/*/build.json")):
        try:
            info = json.loads(meta.read_text())
            item = Labelled(info["label"], info["variant"], info["version"], info["rules"],
                            info["source"], meta.parent / "linux", float(info.get("seconds", 0.0)))
        except (OSError, ValueError, KeyError):
            continue
        if item.path.is_file():
            found.append(item)
    return found


def lookup(label: str, variant: str = "refcount") -> Optional[Labelled]:
    """The kernel built under ``label`` in ``variant``, with where it came from, or ``None``."""
    for item in listed():
        if item.label == label and item.variant == variant:
            return item
    return None


def find(label: str, variant: str = "refcount") -> Optional[KernelBuild]:
    """The kernel built under ``label`` in ``variant``, or ``None``."""
    item = lookup(label, variant)
    return item.kernel() if item is not None else None


def remove(label: str, log: Log = print) -> int:
    """Remove every variant built under ``label``; how many.

    :raises OracleBuildError: nothing is built under that label.
    """
    where = labels_dir() / label
    if not _LABEL.fullmatch(label) or not where.is_dir():
        known = sorted({item.label for item in listed()})
        raise OracleBuildError(f"no kernel labelled {label!r} (labels: {', '.join(known) or 'none'})")
    count = len(list(where.glob("*/build.json")))
    with build_lock(cache_dir(), log):
        shutil.rmtree(where)
    return count


def nearest_rules(version: str) -> str:
    """The release of the table a tree of ``version`` should behave like: the newest of its
    series not newer than it (the series' oldest when it is older than all of them); for a
    series the table lacks, the newest release older than it (the oldest when none is)."""
    key = releases.version_key(version)[:3]
    series = ".".join(version.split(".")[:2])
    ours = [r for r in releases.RELEASES if r.series == series] or list(releases.RELEASES)
    older = [r for r in ours if releases.version_key(r.name) <= key]
    return (older[-1] if older else ours[0]).name


def build(source: Path, label: str, variant: str = "refcount", *, rules: Optional[str] = None,
          jobs: Optional[int] = None, build_dir: Optional[Path] = None,
          log: Log = print) -> Labelled:
    """Build ``source`` (a tree, tarball or linux-source .deb) as oracle kernel ``label``.

    :raises OracleBuildError: a missing path, not a kernel, a kernel that cannot name memory,
        a failed patch or build; nothing is cached then.
    :raises ValueError: a bad label, variant or ``rules``.
    """
    check_label(label)
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
    source = source.resolve() if source.exists() else source
    kind = sources.kind_of(source)
    if kind == "tree":
        sources.check_names_memory(source)
    rule_release = releases.resolve(rules).name if rules else None
    ensure_tools(log)
    root = cache_dir()
    work = root / "work" / f"label-{label}-{variant}"
    with build_lock(root, log):
        try:
            item = _build_locked(source, kind, label, variant, rule_release, jobs, build_dir,
                                 work, log)
        finally:
            if build_dir is None:
                shutil.rmtree(work, ignore_errors=True)
    log(f"{label} {variant}: Linux {item.version} built in {item.seconds:.0f} s -> {item.path}")
    return item


def _build_locked(source: Path, kind: str, label: str, variant: str, rules: Optional[str],
                  jobs: Optional[int], build_dir: Optional[Path], work: Path, log: Log) -> Labelled:
    started = time.monotonic()
    out: Optional[Path] = None
    if kind == "tree" and variant == "refcount" and sources.is_clean(source):
        tree, out = source, build_dir or work / "build"
        log(f"{label}: building {sources.describe(source)} out of tree in {out}")
    elif kind == "tree":
        log(f"{label}: copying {sources.describe(source)} to {work / 'src'}"
            + ("" if sources.is_clean(source) else " (it has an in-tree build)"))
        tree = sources.copy_tree(source, work / "src")
    else:
        log(f"{label}: unpacking {source} into {work / 'src'}")
        tree = sources.unpack(source, work / "src")
    version = sources.check_names_memory(tree)
    if rules is None:
        rules = nearest_rules(version)
        log(f"{label}: Linux {version}; the model's rules of {rules} (the nearest release the "
            "table has; --rules RELEASE chooses)")
    if variant == "strdup":
        header = tree / "include" / "linux" / "mm_inline.h"
        header.write_text(patch_strdup(header.read_text()))
    jobs = jobs or os.cpu_count() or 1
    work.mkdir(parents=True, exist_ok=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    log_path = (out or work) / "build.log"
    log_path.write_text("")
    log(f"{label}: make ARCH=um -j{jobs} linux (log {log_path})")
    binary = configure_and_make(tree, log_path, jobs, out)
    return _store(label, variant, version, rules, sources.describe(source), binary,
                  (out or tree) / ".config", time.monotonic() - started)


def _store(label: str, variant: str, version: str, rules: str, source: str, binary: Path,
           config: Path, seconds: float) -> Labelled:
    """Put a built kernel under its label in one rename (replacing one built before)."""
    final = labels_dir() / label / variant
    staging = final.parent / f".staging-{variant}-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        shutil.copy2(binary, staging / "linux")
        shutil.copy2(config, staging / "config")
        (staging / "build.json").write_text(json.dumps(
            {"label": label, "variant": variant, "version": version, "rules": rules,
             "source": source, "seconds": round(seconds, 1),
             "built": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1) + "\n")
        if final.exists():
            old = final.parent / f".replaced-{variant}-{os.getpid()}"
            final.rename(old)
            shutil.rmtree(old)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Labelled(label, variant, version, rules, source, final / "linux", seconds)
