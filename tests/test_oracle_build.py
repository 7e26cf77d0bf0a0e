"""Oracle build steps that run without building: apt-get retry after update, tool checks."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from anonvma import releases
from anonvma.oracle import build
from anonvma.releases import Release, Source

FAKE_APT = """#!/bin/sh
# a stand-in apt-get: 'download' fails until 'update' has run, like a fresh Debian image
if [ "$1" = update ]; then touch "$STATE/updated"; echo update >> "$STATE/calls"; exit 0; fi
echo "$*" >> "$STATE/calls"
[ -e "$STATE/updated" ] || { echo "E: Can't select candidate version" >&2; exit 100; }
echo fetched > "$2.deb"
"""


@pytest.fixture
def fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    apt = bindir / "apt-get"
    apt.write_text(FAKE_APT)
    apt.chmod(apt.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STATE", str(tmp_path))
    return tmp_path


def test_apt_get_runs_update_once_and_retries_when_root(fake_apt: Path):
    if os.geteuid() != 0:
        pytest.skip("apt-get update is only tried as root, and these tests do not run as root")
    said: list[str] = []
    proc = build._apt(["download", "pkg"], said.append, cwd=fake_apt)
    assert proc.returncode == 0 and (fake_apt / "pkg.deb").read_text() == "fetched\n"
    assert (fake_apt / "calls").read_text().splitlines() == ["download pkg", "update", "download pkg"]
    assert said == ["apt-get failed; running apt-get update and trying again"]


def test_apt_get_success_needs_no_update(fake_apt: Path):
    (fake_apt / "updated").touch()
    proc = build._apt(["download", "pkg"], lambda _: None, cwd=fake_apt)
    assert proc.returncode == 0
    assert (fake_apt / "calls").read_text().splitlines() == ["download pkg"]


def test_missing_build_tools_are_named_with_their_debian_packages(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH: every tool is missing
    assert set(build.missing_tools()) == set(build.BUILD_TOOLS)
    monkeypatch.setattr(build.os, "geteuid", lambda: 1000)  # not root: name them, do not install
    with pytest.raises(build.OracleBuildError) as exc:
        build.ensure_tools(lambda _: None)
    for package in ("flex", "bison", "gcc", "make", "bc", "xz-utils"):
        assert package in str(exc.value)


# --- releases, cache keys, the strdup patch ------------------------------------------------------

def test_cache_keys_of_builds_made_before_the_release_table_stay_valid():
    """6.1.176 and 6.12.95 were built before the table: their keys are the ones they were built with,
    and every release of a series shares them (the source version tells releases apart)."""
    first, *_ = releases.RELEASES
    assert build.config_key("refcount", first.name) == "a74cfb80691a"
    assert build.config_key("strdup", first.name) == "19dd15388795"
    assert build.config_key("refcount", "6.12.95") == "c053a7457676"
    assert build.config_key("strdup", "6.12.95") == "9ef1808ccb79"
    for rel in releases.RELEASES:
        same = [r for r in releases.RELEASES if r.series == rel.series]
        assert {build.config_key("refcount", r.name) for r in same} == {
            build.config_key("refcount", rel.name)}
    keys = {build.config_key(v, s) for v in build.VARIANTS for s in releases.series()}
    assert len(keys) == len(build.VARIANTS) * len(releases.series())


def test_release_and_series_are_read_from_the_debian_version():
    assert build.release_of("6.1.176-1") == "6.1.176" and build.series_of("6.1.176-1") == "6.1"
    assert build.release_of("6.12.95-1~bpo12+1") == "6.12.95"
    assert build.series_of("6.12.95-1~bpo12+1") == "6.12"
    for rel in releases.RELEASES:
        assert build.release_of(rel.source.version) == rel.name
        assert build.series_of(rel.source.version) == rel.series


def test_a_series_names_its_newest_release_and_says_so():
    said: list[str] = []
    for series in releases.series():
        newest = releases.newest_in(series)
        assert build.resolve(series, said.append) == newest
        assert said.pop() == f"Linux {series}: {newest.name}, the newest {series} in the release table"
    assert build.resolve(releases.DEFAULT, said.append).name == releases.DEFAULT and said == []
    with pytest.raises(ValueError, match="unknown Linux release"):
        build.resolve("5.15")


def _cache_entry(root: Path, version: str, variant: str, linux: str, complete: bool = True) -> Path:
    key = build.config_key(variant, linux)
    entry = root / f"linux-{version}-{variant}-{key}"
    entry.mkdir(parents=True)
    (entry / "linux").write_bytes(b"\x7fELF")
    if complete:
        meta = {"variant": variant, "version": version, "key": key}
        (entry / "build.json").write_text(json.dumps(meta))
    return entry


def test_find_kernel_picks_the_release_asked_for_and_skips_incomplete_entries(tmp_path: Path):
    _cache_entry(tmp_path, "6.1.176-1", "refcount", "6.1.176")
    _cache_entry(tmp_path, "6.12.95-1~bpo12+1", "refcount", "6.12.95")
    _cache_entry(tmp_path, "6.12.99-1~bpo12+1", "refcount", "6.12.95", complete=False)  # killed mid-build
    (tmp_path / ".staging-6.12.95-strdup-123").mkdir()
    assert build.find_kernel("refcount", tmp_path, linux="6.1.176").version == "6.1.176-1"
    assert build.find_kernel("refcount", tmp_path, linux="6.12.95").version == "6.12.95-1~bpo12+1"
    assert build.find_kernel("strdup", tmp_path, linux="6.12.95") is None
    assert {b.linux for b in build.cached_kernels(tmp_path)} == {"6.1.176", "6.12.95"}
    assert {b.series for b in build.cached_kernels(tmp_path)} == {"6.1", "6.12"}


def test_two_releases_of_a_series_coexist_and_a_series_finds_its_newest(tmp_path: Path):
    """Debian's 6.1.192 changed MREMAP_DONTUNMAP's merges: each release is its own kernel, found
    by its exact source version, and the series means the newest."""
    _cache_entry(tmp_path, "6.1.192-3", "refcount", "6.1.192")
    assert build.find_kernel("refcount", tmp_path, linux="6.1.176") is None
    _cache_entry(tmp_path, "6.1.176-1", "refcount", "6.1.176")
    assert build.find_kernel("refcount", tmp_path, linux="6.1.176").version == "6.1.176-1"
    assert build.find_kernel("refcount", tmp_path, linux="6.1.192").version == "6.1.192-3"
    newest = releases.newest_in("6.1").source.version
    assert build.find_kernel("refcount", tmp_path, linux="6.1").version == newest


MM_INLINE_612 = """static inline void dup_anon_vma_name(struct vm_area_struct *orig_vma,
\t\t\t\t     struct vm_area_struct *new_vma)
{
\tstruct anon_vma_name *anon_name = anon_vma_name(orig_vma);

\tif (anon_name)
\t\tnew_vma->anon_name = anon_vma_name_reuse(anon_name);
}
"""


def test_strdup_patch_replaces_the_reference_inside_dup_anon_vma_name_only():
    patched = build.patch_strdup(MM_INLINE_612)
    assert "\t\tnew_vma->anon_name = anon_vma_name_alloc(anon_name->name);\n" in patched
    assert "anon_vma_name_reuse" not in patched
    # the same line somewhere else is not the place this patch was written for
    elsewhere = MM_INLINE_612.replace("static inline void dup_anon_vma_name(", "static inline void other(")
    with pytest.raises(build.OracleBuildError, match="not inside dup_anon_vma_name"):
        build.patch_strdup(elsewhere)
    with pytest.raises(build.OracleBuildError, match="found 2"):
        build.patch_strdup(MM_INLINE_612 + MM_INLINE_612)


@pytest.mark.parametrize("linux", releases.names())
def test_strdup_patch_applies_to_exactly_one_place_in_the_cached_source(linux: str):
    """The real header of each release, when its source package is still in the work dir."""
    tarballs = sorted((build.cache_dir() / "work" / linux).glob("x/usr/src/linux-source-*.tar.xz"))
    trees = sorted((build.cache_dir() / "work" / linux).glob("*/linux-source-*/include/linux/mm_inline.h"))
    if trees:
        text = trees[0].read_text()
    elif tarballs:
        import subprocess
        name = f"{tarballs[0].name[:-len('.tar.xz')]}/include/linux/mm_inline.h"
        text = subprocess.run(["tar", "-xOf", str(tarballs[0]), name], capture_output=True, text=True,
                              check=True).stdout
    else:
        pytest.skip(f"no unpacked linux-source-{linux} in {build.cache_dir() / 'work'} "
                    f"(`anonvma oracle build --linux {linux} --keep-tree` keeps one)")
    if "anon_vma_name_alloc(anon_name->name)" in text:
        text = text.replace("anon_vma_name_alloc(anon_name->name)", "anon_vma_name_reuse(anon_name)")
    patched = build.patch_strdup(text)
    assert patched.count("anon_vma_name_alloc(anon_name->name)") == 1


# --- the private apt configuration ---------------------------------------------------------------

def test_system_mirrors_are_read_from_both_sources_formats(tmp_path: Path):
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k/main.gpg] http://mirror.example/debian/ bookworm main\n")
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(
        "Types: deb\nURIs: http://other.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\nSigned-By: /k/sec.gpg\n\n"
        "Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\nComponents: main\n")
    (parts / "off.list.disabled").write_text("deb http://never.example/debian bookworm main\n")
    mirrors = build.system_mirrors([tmp_path / "sources.list", parts])
    assert mirrors["debian"] == ("http://mirror.example/debian", "/k/main.gpg")
    assert mirrors["debian-security"] == ("http://sec.example/debian-security", "/k/sec.gpg")
    assert build.system_mirrors([tmp_path / "nothing"])["debian"][0] == "http://deb.debian.org/debian"


def _apt_state() -> dict[str, tuple[int, int, str]]:
    """Every file of the system's apt configuration, lists and cache: size, mtime, and a content
    hash (but for the package cache, gigabytes of .debs: size and mtime say enough there)."""
    import hashlib
    state = {}
    for top in ("/etc/apt", "/var/lib/apt", "/var/cache/apt"):
        hashed = top != "/var/cache/apt"
        for dirpath, _, names in os.walk(top):
            for name in names:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                    regular = hashed and stat.S_ISREG(st.st_mode)
                    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if regular else ""
                except OSError:
                    continue
                state[path] = (st.st_size, st.st_mtime_ns, digest)
    return state


@pytest.mark.parametrize("linux", releases.names())
def test_private_apt_finds_the_source_package_and_leaves_the_system_apt_alone(tmp_path: Path, linux: str):
    """The real apt-get against the system's mirror, with the private sources list and state."""
    import shutil
    if shutil.which("apt-get") is None:
        pytest.skip("no apt-get here")
    source = releases.resolve(linux).source
    before = _apt_state()
    apt = build.PrivateApt(tmp_path / "apt", source)
    try:
        apt.update()
    except build.OracleBuildError as exc:
        pytest.skip(f"the Debian mirror is not reachable from here: {exc}")
    uris = apt.run(["download", "--print-uris", f"{source.package}={source.version}"], cwd=tmp_path)
    assert uris.returncode == 0, uris.stderr  # the pinned version is still on the mirror
    quoted = source.version.replace('~', '%7e').replace('+', '%2b')
    assert f"/{source.package}_{quoted}_all.deb" in uris.stdout \
        or f"/{source.package}_{source.version}_all.deb" in uris.stdout, uris.stdout
    assert list((tmp_path / "apt" / "state" / "lists").glob(f"*{source.suites[0][1]}*Packages*"))
    assert not list(tmp_path.glob("*.deb"))  # --print-uris downloads nothing
    assert _apt_state() == before


# --- a pinned version Debian no longer serves ----------------------------------------------------

FAKE_PRIVATE_APT = """#!/bin/sh
# a stand-in for the private apt-get and apt-cache: the mirror serves only $SERVED of the package
while [ "${1#-o}" != "$1" ]; do shift; done
case "$1" in
  update) exit 0 ;;
  download) echo "E: Version '${2#*=}' for '${2%%=*}' was not found" >&2; exit 100 ;;
  madison) echo " $2 | $SERVED | http://mirror.example/debian bookworm-security/main amd64 Packages" ;;
esac
"""


def test_a_pinned_version_no_longer_served_is_refused_in_one_line_saying_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("apt-get", "apt-cache"):
        (bindir / tool).write_text(FAKE_PRIVATE_APT)
        (bindir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SERVED", "6.1.192-3")
    gone = Source("linux-source-6.1", "6.1.150-1", (("debian-security", "bookworm-security"),))
    with pytest.raises(build.OracleBuildError) as exc:
        build.fetch_source(tmp_path / "work", gone, tmp_path / "apt", lambda _: None)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("linux-source-6.1=6.1.150-1 is no longer served by Debian "
                              "(bookworm-security: it serves 6.1.192-3)")
    assert str(tmp_path / "work" / "linux-source-6.1_6.1.150-1_all.deb") in message
    assert "src/anonvma/releases.py" in message
    assert not list((tmp_path / "work").iterdir())  # no scratch directory left behind


def test_the_real_debian_mirror_refuses_a_release_pinned_to_a_version_it_never_served(tmp_path: Path):
    """Through the private apt and the system's mirror: a release whose pinned version does not
    exist is refused before anything is built."""
    import shutil
    if shutil.which("apt-get") is None:
        pytest.skip("no apt-get here")
    first = releases.RELEASES[0]
    rel = Release(first.name, first.mainline, Source(first.source.package, "0.0.1-1", first.source.suites))
    try:
        build.PrivateApt(tmp_path / "apt", rel.source).update()
    except build.OracleBuildError as exc:
        pytest.skip(f"the Debian mirror is not reachable from here: {exc}")
    with pytest.raises(build.OracleBuildError) as exc:
        build.fetch_source(tmp_path / "work", rel.source, tmp_path / "apt", lambda _: None)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{first.source.package}=0.0.1-1 is no longer served by Debian")
    assert f"it serves {first.source.version}" in message or first.source.version in message
