"""A kernel source a user brings: an unpacked tree (a git checkout too), a release tarball or a
Debian ``linux-source`` package; which Linux it is, and whether it can name anonymous memory.

Named anonymous memory is ``CONFIG_ANON_VMA_NAME`` (mm/Kconfig), merged in 5.17; a tree
without that option cannot be an oracle, and is refused before anything is built.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from anonvma.oracle import procgroup
from anonvma.oracle.build import OracleBuildError

#: Suffixes of the archives ``--source`` takes, and the kind each is.
ARCHIVES = {".tar.xz": "tarball", ".tar.gz": "tarball", ".tgz": "tarball", ".tar": "tarball",
            ".tar.bz2": "tarball", ".deb": "deb"}
#: The first release with CONFIG_ANON_VMA_NAME.
FIRST_NAMING = (5, 17)
_MAKE_VAR = re.compile(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)\s*$", re.M)


def kind_of(path: Path) -> str:
    """``tree``, ``tarball`` or ``deb``.

    :raises OracleBuildError: the path does not exist, or is a file of another kind.
    """
    if not path.exists():
        raise OracleBuildError(f"{path}: no such file or directory")
    if path.is_dir():
        return "tree"
    for suffix, kind in ARCHIVES.items():
        if path.name.endswith(suffix):
            return kind
    raise OracleBuildError(f"{path}: not a kernel source (a directory, a tarball "
                           f"({', '.join(s for s, k in ARCHIVES.items() if k == 'tarball')}) "
                           "or a Debian linux-source .deb)")


def version_of(tree: Path) -> str:
    """The Linux release a tree builds, from its top Makefile (``6.1.176``, ``6.13.0-rc2``).

    :raises OracleBuildError: no top Makefile with VERSION and PATCHLEVEL, or no mm/: not a
        kernel tree.
    """
    try:
        text = (tree / "Makefile").read_text(errors="replace")
    except OSError:
        text = ""
    found: dict[str, str] = {key: value for key, value in _MAKE_VAR.findall(text[:4096])}
    if not found.get("VERSION", "").isdigit() or not found.get("PATCHLEVEL", "").isdigit() \
            or not (tree / "mm").is_dir():
        raise OracleBuildError(f"{tree}: not a kernel tree (no top Makefile with VERSION and "
                               "PATCHLEVEL, or no mm/)")
    release = f"{found['VERSION']}.{found['PATCHLEVEL']}.{found.get('SUBLEVEL') or 0}"
    return release + found.get("EXTRAVERSION", "")


def check_names_memory(tree: Path) -> str:
    """The tree's version, when it has CONFIG_ANON_VMA_NAME.

    :raises OracleBuildError: not a kernel tree, or one without named anonymous memory.
    """
    version = version_of(tree)
    try:
        kconfig = (tree / "mm" / "Kconfig").read_text(errors="replace")
    except OSError:
        kconfig = ""
    if not re.search(r"^config ANON_VMA_NAME\s*$", kconfig, re.M):
        first = ".".join(map(str, FIRST_NAMING))
        raise OracleBuildError(f"{tree} is Linux {version}, which cannot name anonymous memory "
                               f"(mm/Kconfig has no ANON_VMA_NAME; it came in {first})")
    return version


def is_clean(tree: Path) -> bool:
    """Whether make can build ``tree`` out of tree: no configuration or objects of an in-tree
    build in it (Kbuild refuses ``O=`` then and asks for ``make mrproper``)."""
    return not ((tree / ".config").exists() or (tree / "include" / "config").exists())


def _top(dest: Path, what: Path) -> Path:
    """The one directory an archive unpacked into ``dest``."""
    tops = [p for p in dest.iterdir() if p.is_dir()]
    if len(tops) == 1:
        return tops[0]
    if (dest / "Makefile").exists():
        return dest
    raise OracleBuildError(f"{what}: not a kernel source (it does not unpack into one tree)")


def unpack(path: Path, dest: Path) -> Path:
    """Unpack a tarball or a linux-source .deb into ``dest`` (emptied first); the tree's top.

    :raises OracleBuildError: the archive cannot be unpacked, or holds no kernel tree.
    """
    kind = kind_of(path)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    tarball = path
    if kind == "deb":
        extracted = dest / "deb"
        if procgroup.run(["dpkg-deb", "-x", str(path), str(extracted)], stdin=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL) != 0:
            raise OracleBuildError(f"{path}: not a Debian package dpkg-deb can unpack")
        inside = sorted((extracted / "usr" / "src").glob("linux-source-*.tar.*"))
        if not inside:
            raise OracleBuildError(f"{path}: not a linux-source package (no usr/src/linux-source-*.tar.*)")
        tarball = inside[0]
    tree_dir = dest / "tree"
    tree_dir.mkdir()
    if procgroup.run(["tar", "-xf", str(tarball), "-C", str(tree_dir)], stdin=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL) != 0:
        raise OracleBuildError(f"{path}: not a tarball tar can unpack")
    if kind == "deb":
        shutil.rmtree(dest / "deb")
    top = _top(tree_dir, path)
    try:
        version_of(top)
    except OracleBuildError:
        raise OracleBuildError(f"{path}: not a kernel source (what it unpacks has no top "
                               "Makefile with VERSION and PATCHLEVEL, or no mm/)") from None
    return top


def copy_tree(tree: Path, dest: Path) -> Path:
    """A copy of ``tree`` without its .git (for a build that patches the source)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(tree, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    return dest


def describe(path: Path, tree: Optional[Path] = None) -> str:
    """One line naming a source: its path and, for a git checkout, the commit it is at."""
    tree = tree or path
    if (tree / ".git").exists() and shutil.which("git"):
        proc = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode == 0:
            return f"{path} (git {proc.stdout.strip()})"
    return str(path)
