"""Oracle build steps that run without building: apt-get retry after update, tool checks."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from anonvma.oracle import build

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
