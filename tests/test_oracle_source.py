"""``anonvma oracle build --source PATH --label NAME``, ``oracle remove`` and ``oracle
bisect-run``: a user's own kernel tree, built and judged; ``git bisect run`` with the real
kernel on a history made from Debian's 6.1 sources (see tests/kernel_trees.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import anonvma
from anonvma import releases
from anonvma.oracle import bisect, labels, sources
from anonvma.oracle.build import OracleBuildError

from kernel_trees import MLOCK_SPLIT, PGOFF_RESET, BASE, bisect_repository, git

SCRIPTS = Path(__file__).parent / "scripts"
SRC = Path(anonvma.__file__).parent.parent


def anonvma_cmd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "anonvma", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, stdin=subprocess.DEVNULL)


def fake_tree(root: Path, version: str, naming: bool) -> Path:
    """A directory with a kernel's top Makefile and mm/Kconfig (with or without ANON_VMA_NAME)."""
    v, p, s = version.split(".")
    (root / "mm").mkdir(parents=True)
    (root / "Makefile").write_text(f"# SPDX\nVERSION = {v}\nPATCHLEVEL = {p}\nSUBLEVEL = {s}\n"
                                   "EXTRAVERSION =\nNAME = Test\n")
    (root / "mm" / "Kconfig").write_text("config ANON_VMA_NAME\n\tbool\n" if naming else
                                         "config USERFAULTFD\n\tbool\n")
    return root


def test_a_missing_path_a_file_that_is_no_source_and_a_tarball_that_is_no_kernel(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "README").write_text("not a kernel\n")
    tarball = tmp_path / "junk.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(junk, arcname="junk")
    (tmp_path / "notes.txt").write_text("x\n")
    for path, words in [(tmp_path / "nowhere", "no such file or directory"),
                        (tmp_path / "notes.txt", "not a kernel source"),
                        (tarball, "not a kernel source"),
                        (junk, "not a kernel tree")]:
        proc = anonvma_cmd("oracle", "build", "--source", str(path), "--label", "t")
        errors = [line for line in proc.stderr.splitlines() if "error" in line]
        assert proc.returncode == 1 and len(errors) == 1, proc.stderr  # one line says why
        assert str(path) in errors[0] and words in errors[0], errors[0]
    assert not (labels.labels_dir() / "t").exists()


def test_a_tree_that_cannot_name_memory_is_refused_before_building(tmp_path):
    old = fake_tree(tmp_path / "linux-5.15", "5.15.0", naming=False)
    proc = anonvma_cmd("oracle", "build", "--source", str(old), "--label", "old")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"anonvma oracle: error: {old} is Linux 5.15.0, which cannot name anonymous memory "
        "(mm/Kconfig has no ANON_VMA_NAME; it came in 5.17)"]
    assert sources.check_names_memory(fake_tree(tmp_path / "new", "6.1.99", naming=True)) == "6.1.99"


def test_usage_errors_exit_2(tmp_path):
    tree = fake_tree(tmp_path / "t", "6.1.1", naming=True)
    for args in (["--source", str(tree)], ["--label", "x"], ["--rules", releases.DEFAULT],
                 ["--source", str(tree), "--label", releases.DEFAULT],
                 ["--source", str(tree), "--label", "x", "--rules", "9.9"],
                 ["--source", str(tree), "--label", "x", "--linux", releases.DEFAULT]):
        proc = anonvma_cmd("oracle", "build", *args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)


def test_the_rules_default_to_the_nearest_release_of_the_table():
    for rel in releases.RELEASES:
        assert labels.nearest_rules(rel.name) == rel.name
    oldest = releases.RELEASES[0]
    major, minor, point = map(int, oldest.name.split("."))
    assert labels.nearest_rules(f"{major}.{minor}.{point + 1}") == oldest.name
    assert labels.nearest_rules(f"{major}.{minor}.{point - 1}") == oldest.name  # older than all
    newest = releases.RELEASES[-1]
    assert labels.nearest_rules("99.1.0") == newest.name


def test_removing_a_label_that_does_not_exist_says_which_exist():
    proc = anonvma_cmd("oracle", "remove", "no-such-label")
    assert proc.returncode == 1 and "no kernel labelled 'no-such-label'" in proc.stderr


def test_bisect_run_usage_errors_stop_the_bisection(tmp_path):
    script = SCRIPTS / "rel_dontunmap_source_pgoff.jsonl"
    tree = fake_tree(tmp_path / "t", "6.1.1", naming=True)
    assert bisect.step(script, tree=tree, log=lambda _: None) == bisect.ABORT  # no --expect/--like
    assert bisect.step(tmp_path / "none.jsonl", like=releases.DEFAULT, tree=tree,
                       log=lambda _: None) == bisect.ABORT
    assert bisect.step(script, like=releases.DEFAULT, tree=tmp_path, log=lambda _: None) == bisect.ABORT
    (tree / ".config").write_text("")
    assert bisect.step(script, like=releases.DEFAULT, tree=tree, log=lambda _: None) == bisect.ABORT
    old = fake_tree(tmp_path / "old", "5.15.0", naming=False)
    assert bisect.step(script, like=releases.DEFAULT, tree=old, log=lambda _: None) == bisect.UNTESTABLE


def test_a_broken_tree_is_skipped_by_bisect_run(tmp_path):
    tree = fake_tree(tmp_path / "t", "6.1.1", naming=True)  # no Kbuild: make fails
    (tree / "scripts").mkdir()
    got = bisect.step(SCRIPTS / "rel_dontunmap_source_pgoff.jsonl", like=releases.DEFAULT,
                      tree=tree, build_dir=tmp_path / "b", log=lambda _: None)
    assert got == bisect.UNTESTABLE


def test_a_users_tree_builds_under_a_label_and_git_bisect_names_the_commit_that_changed_a_script():
    repo = bisect_repository()
    c = repo.commits
    build_dir = repo.path.parent / "build"
    git(repo.path, "checkout", "-q", c[BASE])
    try:
        proc = anonvma_cmd("oracle", "build", "--source", str(repo.path), "--label", "bisect-base",
                           "--variant", "refcount", "--build-dir", str(build_dir))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"the model's rules of {repo.old}" in proc.stderr
        found = labels.find("bisect-base", "refcount")
        assert found is not None and found.version == repo.old and found.path.is_file()
        status = anonvma_cmd("oracle", "status").stdout
        assert any(line.startswith("label bisect-base") and repo.old in line and str(repo.path) in line
                   for line in status.splitlines()), status
        assert not sources.is_clean(build_dir) and sources.is_clean(repo.path)  # the tree only read
        # the tree as Debian ships it, judged against the pinned kernel of that release: they agree
        same = subprocess.run([sys.executable, "-m", "anonvma.difftest", "--kernel", "bisect-base",
                               "--against", repo.old, "--count", "40", "--jobs", "2"],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(SRC)})
        assert same.returncode == 0, same.stdout[-2000:] + same.stderr[-2000:]

        script = SCRIPTS / "rel_dontunmap_source_pgoff.jsonl"
        git(repo.path, "bisect", "start", c["doc-after"], c[BASE])
        run = subprocess.run(
            ["git", "-C", str(repo.path), "bisect", "run", sys.executable, "-m", "anonvma", "oracle",
             "bisect-run", str(script), "--expect", str(script.with_suffix(".expected")),
             "--build-dir", str(build_dir)],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)},
            stdin=subprocess.DEVNULL)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert f"{c[PGOFF_RESET]} is the first bad commit" in run.stdout, run.stdout[-3000:]
        # its parent, the other change (which this script does not see), was built and judged good
        assert f"# good: [{c[MLOCK_SPLIT]}]" in git(repo.path, "bisect", "log")
    finally:
        subprocess.run(["git", "-C", str(repo.path), "bisect", "reset"], capture_output=True)
        anonvma_cmd("oracle", "remove", "bisect-base")
    assert labels.find("bisect-base", "refcount") is None


def test_a_tree_that_is_not_the_right_kind_fails_cleanly_in_python(tmp_path):
    with pytest.raises(OracleBuildError, match="no such file"):
        labels.build(tmp_path / "nowhere", "x")
    with pytest.raises(ValueError, match="label"):
        labels.build(tmp_path, "-bad")
