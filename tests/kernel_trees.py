"""Kernel source trees for the tests of ``oracle build --source`` and ``oracle bisect-run``.

:func:`bisect_repository` makes a git repository whose history is the oldest 6.1 release's tree
from Debian, then two of the changes the newest 6.1 release made to mm/mremap.c, each in a
commit of its own, with commits that change nothing the kernel builds around them. The
changes are taken from Debian's two sources when the repository is made (the blocks of the
line diff that mention each change's variables), so the history is built, not written here.
Made once and cached under the oracle cache (``test-trees/``); about 1.5 GB.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Dict, NamedTuple

import pytest

from anonvma import releases
from anonvma.oracle import build, sources

#: The commits of the repository, oldest first: (subject, what the commit changes).
BASE = "base"
DOC_BEFORE = "doc-before"
MLOCK_SPLIT = "mlock-split"
PGOFF_RESET = "pgoff-reset"
DOC_AFTER = "doc-after"


class Repository(NamedTuple):
    path: Path
    commits: Dict[str, str]  # one of the names above -> commit hash
    old: str  # the release of the base tree
    new: str  # the release the two changes come from


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "anonvma tests", "GIT_AUTHOR_EMAIL": "tests@anonvma",
           "GIT_COMMITTER_NAME": "anonvma tests", "GIT_COMMITTER_EMAIL": "tests@anonvma",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo.parent)}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def with_blocks(old: str, new: str, keep: Callable[[str], bool]) -> str:
    """``old`` with the blocks of its line diff to ``new`` that ``keep`` accepts (given the
    block's old and new lines) taken from ``new``."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        out += b[j1:j2] if tag != "equal" and keep("".join(a[i1:i2] + b[j1:j2])) else a[i1:i2]
    return "".join(out)


def _deb(root: Path, rel: releases.Release) -> Path:
    deb, _ = build.fetch_source(root / "debs" / rel.name, rel.source,
                                build.cache_dir() / "apt" / rel.name, lambda _: None)
    return deb


def _member(deb: Path, package: str, member: str, scratch: Path) -> str:
    """One file of the kernel tarball inside a linux-source .deb."""
    subprocess.run(["dpkg-deb", "-x", str(deb), str(scratch)], check=True, stdin=subprocess.DEVNULL)
    tarball = scratch / "usr" / "src" / f"{package}.tar.xz"
    proc = subprocess.run(["tar", "-xOf", str(tarball), f"{package}/{member}"], check=True,
                          capture_output=True, stdin=subprocess.DEVNULL)
    shutil.rmtree(scratch)
    return proc.stdout.decode()


def bisect_repository() -> Repository:
    """The repository (made on first use); skips when git, apt-get or the sources are missing."""
    missing = [tool for tool in ("git", "apt-get") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"no {' and no '.join(missing)} here: the test makes a git history from "
                    "Debian's linux-source packages (apt-get download); scripts/test.sh installs git as root")
    series = releases.RELEASES[0].series
    ours = [r for r in releases.RELEASES if r.series == series]
    old, new = ours[0], ours[-1]
    if old is new:
        pytest.skip(f"the release table has one {series} release: nothing to bisect")
    root = build.cache_dir() / "test-trees" / f"bisect-{old.name}-{new.name}"
    repo = root / "repo"
    names = [BASE, DOC_BEFORE, MLOCK_SPLIT, PGOFF_RESET, DOC_AFTER]
    if (root / "complete").exists():  # the commits, oldest first (HEAD may be any of them)
        hashes = (root / "complete").read_text().split()
        return Repository(repo, dict(zip(names, hashes, strict=True)), old.name, new.name)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        old_deb, new_deb = _deb(root, old), _deb(root, new)
    except build.OracleBuildError as err:
        pytest.skip(f"cannot fetch Debian's kernel sources: {err}")
    tree = sources.unpack(old_deb, root / "unpacked")
    tree.rename(repo)
    shutil.rmtree(root / "unpacked")
    mremap = repo / "mm" / "mremap.c"
    before = mremap.read_text()
    after = _member(new_deb, new.source.package, "mm/mremap.c", root / "x")
    shutil.rmtree(root / "debs")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A", "-f")  # Debian's tree ignores its own files (.gitignore: /*)
    _git(repo, "commit", "-q", "-m", f"Linux {old.name} (Debian {old.source.version})")
    notes = repo / "Documentation" / "anonvma-test-notes.txt"
    notes.write_text("A file no build reads.\n")
    _git(repo, "add", "-f", str(notes))
    _git(repo, "commit", "-q", "-m", "Documentation: a note (changes nothing built)")
    split = with_blocks(before, after, lambda t: "split_before" in t or "split_after" in t)
    mremap.write_text(split)
    _git(repo, "commit", "-q", "-am", f"mm/mremap: split a locked VMA before an MREMAP_DONTUNMAP "
                                      f"move (as {new.name})")
    mremap.write_text(with_blocks(split, after, lambda t: "pgoff_unfaulted" in t))
    _git(repo, "commit", "-q", "-am", f"mm/mremap: reset the page offset of an unfaulted "
                                      f"MREMAP_DONTUNMAP source (as {new.name})")
    notes.write_text("A file no build reads, changed again.\n")
    _git(repo, "commit", "-q", "-am", "Documentation: the note again (changes nothing built)")
    hashes = _git(repo, "log", "--reverse", "--format=%H").split()
    (root / "complete").write_text("\n".join(hashes) + "\n")
    return Repository(repo, dict(zip(names, hashes, strict=True)), old.name, new.name)


def git(repo: Path, *args: str) -> str:
    """``git -C repo ARGS``' output (an identity for commits; no user configuration read)."""
    return _git(repo, *args)
