"""Build the oracle kernels (User-Mode Linux with CONFIG_ANON_VMA_NAME) and cache them.

Recipe: each release's Debian source package at its exact version (:attr:`Release.source
<anonvma.releases.Release.source>` in :mod:`anonvma.releases`), fetched with ``apt-get download``
through a private sources list and state directory under the cache (the system's apt configuration and
package lists are never touched; the mirror is the one the system's sources use), then
``make ARCH=um defconfig`` plus ``ANON_VMA_NAME`` and ``HOSTFS``, ``make ARCH=um linux``.
Two variants per release, each built in its own tree so all can coexist:

- ``refcount``: the kernel as is (``dup_anon_vma_name`` takes a reference: anon_vma_name_reuse);
- ``strdup``: ``include/linux/mm_inline.h`` patched so ``dup_anon_vma_name`` (fork, split)
  allocates a fresh copy of the string, as the pre-5.17 series did (the same line in every series
of the table so far).

Each build is cached as ``<cache>/linux-<version>-<variant>-<hash>/linux`` with a ``build.json``
beside it; the hash covers the series, the config options, the variant's patch and this
recipe, so changing any of them makes a new entry rather than reusing a stale binary. An entry
appears by one rename of a complete directory: an interrupted build is never found as built.
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

from anonvma import releases
from anonvma.oracle import procgroup
from anonvma.releases import Release, Source

VARIANTS = ("refcount", "strdup")
#: Options enabled on top of ``make ARCH=um defconfig``.
CONFIG_OPTIONS = ("ANON_VMA_NAME", "HOSTFS")
#: Bumped whenever the recipe changes in a way that changes the binary.
RECIPE = 1
#: Host tools the build needs, each with the Debian package that provides it.
BUILD_TOOLS = {"flex": "flex", "bison": "bison", "gcc": "gcc", "make": "make", "bc": "bc",
               "xz": "xz-utils", "tar": "tar", "dpkg-deb": "dpkg"}

# include/linux/mm_inline.h, dup_anon_vma_name() (6.1, 6.12 and 7.3 alike): the one line the strdup
# variant changes, inside the one function where a copied VMA takes a reference to the name.
_DUP_FUNCTION = "static inline void dup_anon_vma_name("
_REUSE_LINE = "\t\tnew_vma->anon_name = anon_vma_name_reuse(anon_name);\n"
_STRDUP_LINE = "\t\tnew_vma->anon_name = anon_vma_name_alloc(anon_name->name);\n"

Log = Callable[[str], None]


class OracleBuildError(RuntimeError):
    """The oracle kernel could not be fetched, patched or built; the message says what to do."""


class OracleMissingError(LookupError):
    """No cached oracle kernel for a variant; the message names the command that builds one."""


def release_of(version: str) -> str:
    """The point release a Debian kernel source version builds (``6.12.95-1~bpo12+1`` -> ``6.12.95``)."""
    return version.split("-")[0]


def series_of(version: str) -> str:
    """The mainline series of a Debian kernel source version (``6.12.95-1~bpo12+1`` -> ``6.12``)."""
    return ".".join(version.split(".")[:2])


def resolve(linux: str, log: Optional["Log"] = None) -> Release:
    """The release a ``--linux`` value names (:func:`anonvma.releases.resolve`); a series names
    its newest release, which ``log`` is told.

    :raises ValueError: not a release or series of the table.
    """
    rel = releases.resolve(linux)
    if log is not None and rel.name != linux:
        log(f"Linux {linux}: {rel.name}, the newest {linux} in the release table")
    return rel


@dataclass(frozen=True)
class KernelBuild:
    """One cached oracle kernel.

    :ivar path: the UML executable (``.../linux``).
    :ivar version: the Debian source package version, e.g. ``6.1.176-1``; a release of the table
        is built from exactly one (:attr:`anonvma.releases.Source.version`).
    :ivar seconds: wall time the build took (0 when unknown).
    """

    variant: str
    version: str
    key: str
    path: Path
    seconds: float = 0.0

    @property
    def linux(self) -> str:
        """The point release, e.g. ``6.1.176``."""
        return release_of(self.version)

    @property
    def series(self) -> str:
        """The mainline series, e.g. ``6.1``."""
        return series_of(self.version)

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

    :raises OracleBuildError: when the reference line is not found exactly once in the file, or
        not inside dup_anon_vma_name (a different source: the patch must be looked at again
        rather than silently skipped or applied to the wrong place).
    """
    count = mm_inline.count(_REUSE_LINE)
    if count != 1:
        raise OracleBuildError(
            f"strdup patch: expected exactly one line {_REUSE_LINE.strip()!r} in "
            f"include/linux/mm_inline.h (dup_anon_vma_name), found {count}; the source is not one "
            "this patch was written for (6.1, 6.12, 7.3)")
    start = mm_inline.find(_DUP_FUNCTION)
    end = mm_inline.find("\n}\n", start)
    at = mm_inline.index(_REUSE_LINE)
    if start < 0 or not start < at < end:
        raise OracleBuildError(
            f"strdup patch: the line {_REUSE_LINE.strip()!r} is not inside dup_anon_vma_name() in "
            "include/linux/mm_inline.h; the source is not one this patch was written for")
    return mm_inline.replace(_REUSE_LINE, _STRDUP_LINE)


def config_key(variant: str, linux: str = releases.DEFAULT) -> str:
    """Short hash of everything besides the source version that decides the binary of release
    (or series) ``linux``'s ``variant``.

    The hash covers the series, not the release: the keys predate the release table, so builds
    cached then stay valid (6.1's keys even predate series and carry none), and releases of one
    series are told apart by the source version, in the entry's name and :func:`find_kernel`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
    series = releases.resolve(linux).series
    fields: dict[str, object] = {
        "recipe": RECIPE, "config": CONFIG_OPTIONS, "variant": variant,
        "patch": [_REUSE_LINE, _STRDUP_LINE] if variant == "strdup" else []}
    if series != releases.RELEASES[0].series:  # the first series' keys were made without one
        fields["linux"] = series
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:12]


def cached_kernels(root: Optional[Path] = None) -> list[KernelBuild]:
    """Every complete build in the cache (any release, variant, key), oldest version first."""
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
    return sorted(found, key=lambda b: (releases.version_key(b.version), b.variant))


def find_kernel(variant: str = "refcount", root: Optional[Path] = None,
                linux: str = releases.DEFAULT) -> Optional[KernelBuild]:
    """The cached kernel of release (or series) ``linux`` and ``variant`` built with the current
    recipe from the release's pinned source version (:attr:`anonvma.releases.Source.version`), or
    ``None``."""
    key, version = config_key(variant, linux), releases.resolve(linux).source.version
    builds = [b for b in cached_kernels(root)
              if b.variant == variant and b.key == key and b.version == version]
    return builds[-1] if builds else None


def build_command(variant: str, linux: str = releases.DEFAULT) -> str:
    """The command that builds the kernel of ``variant`` and release ``linux``."""
    return f"anonvma oracle build --linux {linux} --variant {variant}"


def require_kernel(variant: str = "refcount", linux: str = releases.DEFAULT) -> KernelBuild:
    """Like :func:`find_kernel`, but raise :class:`OracleMissingError` naming the fix."""
    build = find_kernel(variant, linux=linux)
    if build is None:
        raise OracleMissingError(
            f"oracle kernel (Linux {linux}, {variant}) not built: run `{build_command(variant, linux)}` "
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
    """Run one build step in its own process group (killed with it on Ctrl-C), appending its
    output to ``log_path``; raise with the log's tail."""
    with open(log_path, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        status = procgroup.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if status != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise OracleBuildError(f"{what} failed (exit {status}); log {log_path}:\n" + "\n".join(tail))


def _captured(cmd: Sequence[str], cwd: Optional[Path] = None) -> "subprocess.CompletedProcess[str]":
    """Run ``cmd`` in its own process group, output captured as text."""
    with procgroup.ProcessGroup(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True) as group:
        out, err = group.proc.communicate()
    return subprocess.CompletedProcess(list(cmd), group.returncode or 0, out, err)


def _apt(args: Sequence[str], log: Log, cwd: Optional[Path] = None) -> "subprocess.CompletedProcess[str]":
    """Run the system's ``apt-get ARGS`` (installing build tools); when it fails and we are root,
    ``apt-get update`` once and retry (a fresh Debian image has no package lists)."""
    proc = _captured(["apt-get", *args], cwd)
    if proc.returncode != 0 and os.geteuid() == 0:
        log("apt-get failed; running apt-get update and trying again")
        _captured(["apt-get", "update"])
        proc = _captured(["apt-get", *args], cwd)
    return proc


# ---------------------------------------------------------------------------------------------
# Fetching the source through a private apt configuration.

SYSTEM_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
DEFAULT_MIRRORS = {"debian": "http://deb.debian.org/debian",
                   "debian-security": "http://deb.debian.org/debian-security"}
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def _source_entries(paths: Sequence[Path]) -> Iterator[tuple[str, list[str], Optional[str]]]:
    """(URI, suites, Signed-By) of every enabled binary ``deb`` source in apt's two file formats."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".list", ".sources"))
        elif path.is_file():
            files.append(path)
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":  # deb822: stanzas of Field: value
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    yield uri, fields.get("suites", "").split(), fields.get("signed-by")
        else:  # one-line: deb [options] URI suite components...
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if not words or words[0] != "deb":
                    continue
                words = words[1:]
                signed = None
                if words and words[0].startswith("["):
                    opts = []
                    while words:
                        opts.append(words.pop(0))
                        if opts[-1].endswith("]"):
                            break
                    for opt in " ".join(opts).strip("[]").split():
                        if opt.startswith("signed-by="):
                            signed = opt.split("=", 1)[1]
                if len(words) >= 2:
                    yield words[0], [words[1]], signed


def system_mirrors(paths: Sequence[Path] = SYSTEM_SOURCES) -> dict[str, tuple[str, Optional[str]]]:
    """The system's Debian mirrors: archive (``debian``, ``debian-security``) -> (URI, Signed-By).

    A source serving a ``*-security`` suite is the security archive, any other Debian suite the
    main one; archives the system does not list fall back to deb.debian.org.
    """
    found: dict[str, tuple[str, Optional[str]]] = {}
    codenames = ("bookworm", "trixie", "bullseye", "sid", "stable", "oldstable", "testing", "unstable")
    for uri, suites, signed in _source_entries(paths):
        for suite in suites:
            if suite.split("-")[0].split("/")[0] not in codenames:
                continue
            archive = "debian-security" if "security" in suite else "debian"
            found.setdefault(archive, (uri.rstrip("/"), signed))
    for archive, uri in DEFAULT_MIRRORS.items():
        found.setdefault(archive, (uri, str(DEBIAN_KEYRING) if DEBIAN_KEYRING.exists() else None))
    return found


class PrivateApt:
    """apt-get with its own sources list, state and cache under ``root`` (one per release).

    The system's apt.conf (proxies) and keyrings still apply; its sources, pins, package lists
    and archive cache are neither read nor written.
    """

    def __init__(self, root: Path, source: Source, sources: Sequence[Path] = SYSTEM_SOURCES) -> None:
        self.root = root
        self.source = source
        mirrors = system_mirrors(sources)
        lines = []
        for archive, suite in source.suites:
            uri, signed = mirrors[archive]
            opt = f"[signed-by={signed}] " if signed else ""
            lines.append(f"deb {opt}{uri} {suite} main\n")
        self.sources_text = "".join(lines)

    def options(self) -> list[str]:
        """The ``-o`` options that point apt-get at the private directories."""
        r = self.root
        opts = {"Dir::Etc::SourceList": r / "etc" / "sources.list",
                "Dir::Etc::SourceParts": r / "etc" / "sources.list.d",
                "Dir::Etc::Preferences": r / "etc" / "preferences",
                "Dir::Etc::PreferencesParts": r / "etc" / "preferences.d",
                "Dir::State": r / "state", "Dir::Cache": r / "cache"}
        out = [f"-o{k}={v}" for k, v in opts.items()]
        if os.geteuid() == 0:  # the _apt user cannot enter a root-owned home: download as root
            out.append("-oAPT::Sandbox::User=root")
        return out

    def _prepare(self) -> None:
        for sub in ("etc/sources.list.d", "etc/preferences.d", "state/lists/partial",
                    "cache/archives/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "etc" / "sources.list").write_text(self.sources_text)

    def run(self, args: Sequence[str], cwd: Optional[Path] = None,
            tool: str = "apt-get") -> "subprocess.CompletedProcess[str]":
        """``apt-get`` (or ``apt-cache``) with the private options and ``args``."""
        self._prepare()
        return _captured([tool, *self.options(), *args], cwd)

    def versions(self, package: str) -> list[str]:
        """The versions of ``package`` the private sources serve (after :meth:`update`), newest
        first, as ``apt-cache madison`` lists them; empty when none or apt-cache failed."""
        proc = self.run(["madison", package], tool="apt-cache")
        found = []
        for line in proc.stdout.splitlines():
            fields = [f.strip() for f in line.split("|")]
            if len(fields) >= 2 and fields[0] == package and fields[1] not in found:
                found.append(fields[1])
        return sorted(found, key=releases.version_key, reverse=True)

    def update(self) -> None:
        """Fetch the package lists of the release's suites.

        :raises OracleBuildError: apt-get failed (mirror unreachable, ...), with its message.
        """
        proc = self.run(["update"])
        if proc.returncode != 0:
            raise OracleBuildError(f"apt-get update (private sources: {self.sources_text.strip()}) failed: "
                                   + " ".join(proc.stderr.strip().splitlines()[-2:]))


def fetch_source(work: Path, source: Source, apt_root: Path, log: Log) -> tuple[Path, str]:
    """Download ``source``'s package at its pinned version with apt-get (once per work dir; a
    package of another version found there is removed first); return (.deb, version).

    The download lands in a scratch directory and is renamed into ``work`` when complete. A
    ``.deb`` of the pinned version already in ``work`` (copied there by hand) is used as is.

    :raises OracleBuildError: no apt-get, the version is no longer served (the message names
        the package=version and what to do), or the download failed.
    """
    work.mkdir(parents=True, exist_ok=True)
    wanted = work / f"{source.package}_{source.version.replace(':', '%3a')}_all.deb"
    for stale in work.glob(f"{source.package}_*.deb"):
        if stale != wanted:
            stale.unlink()
            shutil.rmtree(work / "x", ignore_errors=True)  # the tarball unpacked from it
    debs = sorted(work.glob(f"{source.package}_*.deb"))
    if not debs:
        if shutil.which("apt-get") is None:
            raise OracleBuildError(f"no apt-get: cannot fetch {source.package} (Debian's kernel source)")
        apt = PrivateApt(apt_root, source)
        log(f"fetching {source.package}={source.version} with apt-get download "
            f"(sources: {apt.sources_text.strip()})")
        apt.update()
        scratch = work / "download.partial"
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir()
        pinned = f"{source.package}={source.version}"
        proc = apt.run(["download", pinned], cwd=scratch)
        got = sorted(scratch.glob(f"{source.package}_*.deb"))
        if proc.returncode != 0 or not got:
            shutil.rmtree(scratch, ignore_errors=True)
            served = apt.versions(source.package)
            if source.version not in served:
                raise OracleBuildError(_not_served(pinned, source, served, wanted))
            detail = (proc.stderr.strip().splitlines() or ["no .deb written"])[-1]
            raise OracleBuildError(f"apt-get download {pinned} failed: {detail}")
        got[-1].rename(work / got[-1].name)
        shutil.rmtree(scratch)
        debs = sorted(work.glob(f"{source.package}_*.deb"))
    deb = debs[-1]
    proc = _captured(["dpkg-deb", "-f", str(deb), "Version"])
    if proc.returncode != 0:
        raise OracleBuildError(f"dpkg-deb cannot read {deb}: {proc.stderr.strip()} (remove it and retry)")
    return deb, proc.stdout.strip()


def _not_served(pinned: str, source: Source, served: Sequence[str], wanted: Path) -> str:
    """The one line refusing a pinned version Debian no longer serves, with what to do."""
    suites = ", ".join(suite for _, suite in source.suites)
    now = f"it serves {', '.join(served)}" if served else "it serves no version of it"
    return (f"{pinned} is no longer served by Debian ({suites}: {now}): put that .deb "
            f"(snapshot.debian.org keeps it) at {wanted}, or pin a served version in "
            "src/anonvma/releases.py and prove the model against it")


def unpack_tree(deb: Path, package: str, dest: Path, log: Log) -> Path:
    """Unpack the kernel tarball inside ``deb`` into ``dest``; return the tree's top directory."""
    extracted = deb.parent / "x"
    tarball = extracted / "usr" / "src" / f"{package}.tar.xz"
    if not tarball.exists():  # extract next to it, rename when whole: never a half tarball
        partial = deb.parent / "x.partial"
        if partial.exists():
            shutil.rmtree(partial)
        if procgroup.run(["dpkg-deb", "-x", str(deb), str(partial)], stdin=subprocess.DEVNULL) != 0:
            raise OracleBuildError(f"dpkg-deb -x {deb} failed (remove it and retry)")
        if extracted.exists():
            shutil.rmtree(extracted)
        partial.rename(extracted)
    if not tarball.exists():
        raise OracleBuildError(f"{deb.name} holds no usr/src/{tarball.name}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    log(f"unpacking {tarball.name} into {dest}")
    if procgroup.run(["tar", "-xf", str(tarball), "-C", str(dest)], stdin=subprocess.DEVNULL) != 0:
        raise OracleBuildError(f"tar -xf {tarball} failed")
    return dest / package


def configure_and_make(tree: Path, log_path: Path, jobs: int, out: Optional[Path] = None) -> Path:
    """defconfig + :data:`CONFIG_OPTIONS`, check they stuck, build; return the ``linux`` binary.

    ``out``: build out of tree (``make O=out``; the source tree is only read) and incrementally:
    a build directory configured before keeps its ``.config`` (``olddefconfig`` only), so make
    rebuilds just what changed since.
    """
    where = tree if out is None else out
    o = [] if out is None else [f"O={out}"]
    config_path = where / ".config"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if not (out is not None and _has_options(config_path)):
        _run(["make", "ARCH=um", *o, "defconfig"], tree, log_path, "make ARCH=um defconfig")
        enable = [arg for opt in CONFIG_OPTIONS for arg in ("--enable", opt)]
        _run(["./scripts/config", "--file", str(config_path), *enable], tree, log_path,
             "scripts/config")
    _run(["make", "ARCH=um", *o, "olddefconfig"], tree, log_path, "make ARCH=um olddefconfig")
    if not _has_options(config_path):
        raise OracleBuildError(f"CONFIG_{_missing_option(config_path)}=y did not stick in "
                               f"{config_path} (a dependency is missing on this architecture)")
    # the `linux` target: the kernel alone (UML's defconfig modules are never loaded by the oracle)
    _run(["make", "ARCH=um", *o, f"-j{jobs}", "linux"], tree, log_path, "make ARCH=um linux")
    binary = where / "linux"
    if not binary.is_file():
        raise OracleBuildError(f"make finished but {binary} is missing; log {log_path}")
    return binary


def _missing_option(config_path: Path) -> Optional[str]:
    """The first of :data:`CONFIG_OPTIONS` not ``=y`` in ``config_path`` (all: no such file)."""
    try:
        config = config_path.read_text()
    except OSError:
        return CONFIG_OPTIONS[0]
    return next((opt for opt in CONFIG_OPTIONS if f"\nCONFIG_{opt}=y\n" not in config), None)


def _has_options(config_path: Path) -> bool:
    return _missing_option(config_path) is None


@contextlib.contextmanager
def build_lock(root: Path, log: Log) -> Iterator[None]:
    """One build at a time per cache (two test runs may start builds together)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another build in {root} to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_kernel(variant: str, *, linux: str = releases.DEFAULT, force: bool = False,
                 jobs: Optional[int] = None, keep_tree: bool = False, log: Log = print) -> KernelBuild:
    """Build (or find in the cache) the oracle kernel of release ``linux`` (or a series' newest:
    ``log`` says which) and ``variant``.

    A cached build with the current recipe is reused unless ``force``. The work directory
    (``<cache>/work/<release>``, one per release so two of a series coexist) holds the
    downloaded package and the trees; a tree is removed after its binary is cached unless
    ``keep_tree``. Interrupted (Ctrl-C, SIGTERM in the CLI),
    it kills the build's processes and leaves no entry that :func:`find_kernel` would return.

    :raises OracleBuildError: tools missing, download failed, patch or build failed.
    :raises ValueError: ``linux`` is not in the release table, or ``variant`` unknown.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
    rel = resolve(linux, log)
    root = cache_dir()
    with build_lock(root, log):
        _remove_leftovers(root)
        if not force:
            cached = find_kernel(variant, linux=rel.name)
            if cached is not None:
                log(f"Linux {rel.name} {variant}: cached at {cached.path} ({cached.version})")
                return cached
        return _build(variant, rel, root, jobs, keep_tree, log)


def build_unlisted(rel: Release, variant: str = "refcount", *, jobs: Optional[int] = None,
                   log: Log = print) -> KernelBuild:
    """Build (or find in the cache) the kernel of a release the table does not hold yet (one that
    Debian serves now, for ``anonvma oracle drift``); ``rel.series`` must be a series of the table.

    :raises OracleBuildError: as :func:`build_kernel`.
    """
    root = cache_dir()
    key = config_key(variant, rel.series)
    with build_lock(root, log):
        _remove_leftovers(root)
        for b in reversed(cached_kernels(root)):
            if b.variant == variant and b.key == key and b.version == rel.source.version:
                log(f"Linux {rel.name} {variant}: cached at {b.path} ({b.version})")
                return b
        return _build(variant, rel, root, jobs, False, log)


def _remove_leftovers(root: Path) -> None:
    """Staging directories of builds that were killed before they could clean up (we hold the lock)."""
    for stale in (*root.glob(".staging-*"), *root.glob(".replaced-*")):
        shutil.rmtree(stale, ignore_errors=True)


def _build(variant: str, rel: Release, root: Path, jobs: Optional[int], keep_tree: bool,
           log: Log) -> KernelBuild:
    ensure_tools(log)
    work = root / "work" / rel.name
    deb, version = fetch_source(work, rel.source, root / "apt" / rel.name, log)
    if version != rel.source.version:
        raise OracleBuildError(f"{deb} is version {version}, not {rel.source.version} (remove it and retry)")
    started = time.monotonic()
    tree = unpack_tree(deb, rel.source.package, work / variant, log)
    if variant == "strdup":
        header = tree / "include" / "linux" / "mm_inline.h"
        header.write_text(patch_strdup(header.read_text()))
        log(f"strdup: patched {header.relative_to(tree)} (dup_anon_vma_name -> anon_vma_name_alloc)")
    jobs = jobs or os.cpu_count() or 1
    log_path = work / f"build-{variant}.log"
    log_path.write_text("")
    log(f"Linux {rel.name} {variant}: building UML {version} with -j{jobs} (log {log_path})")
    binary = configure_and_make(tree, log_path, jobs)
    seconds = time.monotonic() - started
    key = config_key(variant, rel.series)
    final = root / f"linux-{version}-{variant}-{key}"
    staging = root / f".staging-{rel.name}-{variant}-{os.getpid()}"
    try:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        shutil.copy2(binary, staging / "linux")
        shutil.copy2(tree / ".config", staging / "config")
        (staging / "build.json").write_text(json.dumps(
            {"variant": variant, "version": version, "linux": rel.name, "series": rel.series, "key": key,
             "seconds": round(seconds, 1), "config": list(CONFIG_OPTIONS), "recipe": RECIPE,
             "built": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1) + "\n")
        if final.exists():  # --force: move the old entry aside in one rename, then drop it
            replaced = root / f".replaced-{final.name}-{os.getpid()}"
            final.rename(replaced)
            shutil.rmtree(replaced)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if not keep_tree:
        shutil.rmtree(tree.parent)
    log(f"Linux {rel.name} {variant}: built in {seconds:.0f} s -> {final / 'linux'}")
    return KernelBuild(variant, version, key, final / "linux", seconds)


def clean_work(log: Log = print) -> None:
    """Remove the work directory (downloaded packages, unpacked trees); cached binaries stay."""
    root = cache_dir()
    work = root / "work"
    if not work.exists():
        return
    with build_lock(root, log):
        if work.exists():
            shutil.rmtree(work)
            log(f"removed {work}")
