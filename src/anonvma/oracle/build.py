"""Build the oracle kernels (User-Mode Linux 6.1 with CONFIG_ANON_VMA_NAME) and cache them.

Recipe: Debian's ``linux-source-6.1`` package, fetched with ``apt-get download`` (no root
needed), ``make ARCH=um defconfig`` plus ``ANON_VMA_NAME`` and ``HOSTFS``, ``make ARCH=um``.
Two variants, each built in its own tree so both can coexist:

- ``refcount``: the kernel as is (``dup_anon_vma_name`` takes a reference: anon_vma_name_reuse);
- ``strdup``: ``include/linux/mm_inline.h`` patched so ``dup_anon_vma_name`` (fork, split)
  allocates a fresh copy of the string, as the pre-5.17 series did.

Each build is cached as ``<cache>/linux-<version>-<variant>-<hash>/linux`` with a ``build.json``
beside it; the hash covers the config options, the variant's patch and this recipe, so
changing any of them makes a new entry rather than reusing a stale binary.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

VARIANTS = ("refcount", "strdup")
SOURCE_PACKAGE = "linux-source-6.1"
#: Options enabled on top of ``make ARCH=um defconfig``.
CONFIG_OPTIONS = ("ANON_VMA_NAME", "HOSTFS")
#: Bumped whenever the recipe changes in a way that changes the binary.
RECIPE = 1

#: Host tools the build needs, each with the Debian package that provides it.
BUILD_TOOLS = {"flex": "flex", "bison": "bison", "gcc": "gcc", "make": "make", "bc": "bc",
               "xz": "xz-utils", "tar": "tar", "dpkg-deb": "dpkg"}

# include/linux/mm_inline.h, dup_anon_vma_name() of 6.1: the one line the strdup variant changes.
_REUSE_LINE = "\t\tnew_vma->anon_name = anon_vma_name_reuse(anon_name);\n"
_STRDUP_LINE = "\t\tnew_vma->anon_name = anon_vma_name_alloc(anon_name->name);\n"

Log = Callable[[str], None]


class OracleBuildError(RuntimeError):
    """The oracle kernel could not be fetched, patched or built; the message says what to do."""


class OracleMissingError(LookupError):
    """No cached oracle kernel for a variant; the message names the command that builds one."""


@dataclass(frozen=True)
class KernelBuild:
    """One cached oracle kernel.

    :ivar path: the UML executable (``.../linux``).
    :ivar version: the Debian source package version, e.g. ``6.1.176-1``.
    :ivar seconds: wall time the build took (0 when unknown).
    """

    variant: str
    version: str
    key: str
    path: Path
    seconds: float = 0.0

    @property
    def size(self) -> int:
        """Size of the executable in bytes."""
        return self.path.stat().st_size


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/anonvma/oracle`` (``~/.cache/anonvma/oracle`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "anonvma" / "oracle"


def patch_strdup(mm_inline: str) -> str:
    """The text of ``include/linux/mm_inline.h`` with dup_anon_vma_name copying the string.

    :raises OracleBuildError: when the 6.1 line is not found exactly once (a different source:
        the patch must be looked at again rather than silently skipped).
    """
    count = mm_inline.count(_REUSE_LINE)
    if count != 1:
        raise OracleBuildError(
            f"strdup patch: expected exactly one line {_REUSE_LINE.strip()!r} in "
            f"include/linux/mm_inline.h (dup_anon_vma_name), found {count}; the source is not the "
            "6.1 this patch was written for")
    return mm_inline.replace(_REUSE_LINE, _STRDUP_LINE)


def config_key(variant: str) -> str:
    """Short hash of everything besides the source version that decides the binary."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
    blob = json.dumps({"recipe": RECIPE, "config": CONFIG_OPTIONS, "variant": variant,
                       "patch": [_REUSE_LINE, _STRDUP_LINE] if variant == "strdup" else []})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version))


def cached_kernels(root: Optional[Path] = None) -> list[KernelBuild]:
    """Every complete build in the cache (any variant, any key), oldest version first."""
    root = cache_dir() if root is None else root
    found = []
    for meta in sorted(root.glob("linux-*/build.json")):
        try:
            info = json.loads(meta.read_text())
            build = KernelBuild(info["variant"], info["version"], info["key"], meta.parent / "linux",
                                float(info.get("seconds", 0.0)))
        except (OSError, ValueError, KeyError):
            continue
        if build.path.is_file():
            found.append(build)
    return sorted(found, key=lambda b: (_version_key(b.version), b.variant))


def find_kernel(variant: str = "refcount", root: Optional[Path] = None) -> Optional[KernelBuild]:
    """The newest cached kernel of ``variant`` built with the current recipe, or ``None``."""
    key = config_key(variant)
    builds = [b for b in cached_kernels(root) if b.variant == variant and b.key == key]
    return builds[-1] if builds else None


def require_kernel(variant: str = "refcount") -> KernelBuild:
    """Like :func:`find_kernel`, but raise :class:`OracleMissingError` naming the fix."""
    build = find_kernel(variant)
    if build is None:
        raise OracleMissingError(
            f"oracle kernel ({variant}) not built: run `anonvma oracle build --variant {variant}` "
            f"(caches it under {cache_dir()})")
    return build


def missing_tools() -> list[str]:
    """Build tools not on PATH (their names, as in :data:`BUILD_TOOLS`)."""
    return [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]


def ensure_tools(log: Log) -> None:
    """Install missing build tools with apt-get when root; otherwise name the packages to install.

    :raises OracleBuildError: tools are missing and cannot be installed here.
    """
    missing = missing_tools()
    if not missing:
        return
    packages = sorted({BUILD_TOOLS[t] for t in missing})
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing build tools: apt-get install -y {' '.join(packages)}")
        proc = _apt(["install", "-y", *packages], log)
        if proc.returncode == 0 and not missing_tools():
            return
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise OracleBuildError(f"could not install {' '.join(packages)} with apt-get: {detail[0]}")
    raise OracleBuildError(
        f"missing build tools {', '.join(missing)}: install the Debian packages {' '.join(packages)} "
        f"(apt-get install {' '.join(packages)}; a fresh Debian also needs build-essential)")


def _run(cmd: Sequence[str], cwd: Path, log_path: Path, what: str) -> None:
    """Run one build step, appending its output to ``log_path``; raise with the log's tail."""
    with open(log_path, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(list(cmd), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise OracleBuildError(f"{what} failed (exit {proc.returncode}); log {log_path}:\n"
                               + "\n".join(tail))


def _apt(args: Sequence[str], log: Log, cwd: Optional[Path] = None) -> "subprocess.CompletedProcess[str]":
    """Run ``apt-get ARGS``; when it fails and we are root, ``apt-get update`` once and retry
    (a fresh Debian image has no package lists)."""
    def run() -> "subprocess.CompletedProcess[str]":
        return subprocess.run(["apt-get", *args], cwd=cwd, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)

    proc = run()
    if proc.returncode != 0 and os.geteuid() == 0:
        log("apt-get failed; running apt-get update and trying again")
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        proc = run()
    return proc


def fetch_source(work: Path, log: Log) -> tuple[Path, str]:
    """Download ``linux-source-6.1`` with apt-get (once per work dir); return (.deb, version).

    :raises OracleBuildError: no apt-get, or the download failed.
    """
    work.mkdir(parents=True, exist_ok=True)
    debs = sorted(work.glob(f"{SOURCE_PACKAGE}_*.deb"))
    if not debs:
        if shutil.which("apt-get") is None:
            raise OracleBuildError(f"no apt-get: cannot fetch {SOURCE_PACKAGE} (Debian's kernel source)")
        log(f"fetching {SOURCE_PACKAGE} with apt-get download")
        proc = _apt(["download", SOURCE_PACKAGE], log, cwd=work)
        debs = sorted(work.glob(f"{SOURCE_PACKAGE}_*.deb"))
        if proc.returncode != 0 or not debs:
            detail = (proc.stderr.strip().splitlines() or ["no .deb written"])[-1]
            raise OracleBuildError(f"apt-get download {SOURCE_PACKAGE} failed: {detail} "
                                   "(is deb.debian.org bookworm in the apt sources? try apt-get update)")
    deb = debs[-1]
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    return deb, version


def unpack_tree(deb: Path, dest: Path, log: Log) -> Path:
    """Unpack the kernel tarball inside ``deb`` into ``dest``; return the tree's top directory."""
    extracted = deb.parent / "x"
    tarball = extracted / "usr" / "src" / f"{SOURCE_PACKAGE}.tar.xz"
    if not tarball.exists():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(extracted)], check=True)
    if not tarball.exists():
        raise OracleBuildError(f"{deb.name} holds no usr/src/{tarball.name}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    log(f"unpacking {tarball.name} into {dest}")
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(dest)], check=True)
    return dest / SOURCE_PACKAGE


def configure_and_make(tree: Path, log_path: Path, jobs: int) -> Path:
    """defconfig + :data:`CONFIG_OPTIONS`, check they stuck, build; return the ``linux`` binary."""
    _run(["make", "ARCH=um", "defconfig"], tree, log_path, "make ARCH=um defconfig")
    enable = [arg for opt in CONFIG_OPTIONS for arg in ("--enable", opt)]
    _run(["./scripts/config", *enable], tree, log_path, "scripts/config")
    _run(["make", "ARCH=um", "olddefconfig"], tree, log_path, "make ARCH=um olddefconfig")
    config = (tree / ".config").read_text()
    for opt in CONFIG_OPTIONS:
        if f"\nCONFIG_{opt}=y\n" not in config:
            raise OracleBuildError(f"CONFIG_{opt}=y did not stick in {tree / '.config'} "
                                   "(a dependency is missing on this architecture)")
    _run(["make", "ARCH=um", f"-j{jobs}"], tree, log_path, "make ARCH=um")
    binary = tree / "linux"
    if not binary.is_file():
        raise OracleBuildError(f"make finished but {binary} is missing; log {log_path}")
    return binary


@contextlib.contextmanager
def _build_lock(root: Path, log: Log) -> Iterator[None]:
    """One build at a time per cache (two test runs may start builds together)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another build in {root} to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_kernel(variant: str, *, force: bool = False, jobs: Optional[int] = None,
                 keep_tree: bool = False, log: Log = print) -> KernelBuild:
    """Build (or find in the cache) the oracle kernel of ``variant``.

    A cached build with the current recipe is reused unless ``force``. The work directory
    (``<cache>/work``) holds the downloaded package and the trees; a tree is removed after
    its binary is cached unless ``keep_tree``.

    :raises OracleBuildError: tools missing, download failed, patch or build failed.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
    root = cache_dir()
    with _build_lock(root, log):
        if not force:
            cached = find_kernel(variant)
            if cached is not None:
                log(f"{variant}: cached at {cached.path} ({cached.version})")
                return cached
        return _build(variant, root, jobs, keep_tree, log)


def _build(variant: str, root: Path, jobs: Optional[int], keep_tree: bool, log: Log) -> KernelBuild:
    ensure_tools(log)
    work = root / "work"
    deb, version = fetch_source(work, log)
    started = time.monotonic()
    tree = unpack_tree(deb, work / variant, log)
    if variant == "strdup":
        header = tree / "include" / "linux" / "mm_inline.h"
        header.write_text(patch_strdup(header.read_text()))
        log(f"strdup: patched {header.relative_to(tree)} (dup_anon_vma_name -> anon_vma_name_alloc)")
    jobs = jobs or os.cpu_count() or 1
    log_path = work / f"build-{variant}.log"
    log_path.write_text("")
    log(f"{variant}: building UML {version} with -j{jobs} (log {log_path})")
    binary = configure_and_make(tree, log_path, jobs)
    seconds = time.monotonic() - started
    key = config_key(variant)
    final = root / f"linux-{version}-{variant}-{key}"
    staging = root / f".staging-{variant}-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    shutil.copy2(binary, staging / "linux")
    shutil.copy2(tree / ".config", staging / "config")
    (staging / "build.json").write_text(json.dumps(
        {"variant": variant, "version": version, "key": key, "seconds": round(seconds, 1),
         "config": list(CONFIG_OPTIONS), "recipe": RECIPE, "built": time.strftime("%Y-%m-%dT%H:%M:%S")},
        indent=1) + "\n")
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    if not keep_tree:
        shutil.rmtree(tree.parent)
    log(f"{variant}: built in {seconds:.0f} s -> {final / 'linux'}")
    return KernelBuild(variant, version, key, final / "linux", seconds)


def clean_work(log: Log = print) -> None:
    """Remove the work directory (downloaded package, unpacked trees); cached binaries stay."""
    root = cache_dir()
    work = root / "work"
    if not work.exists():
        return
    with _build_lock(root, log):
        if work.exists():
            shutil.rmtree(work)
            log(f"removed {work}")
