"""Nothing left running, nothing half-written: real commands, real signals, real processes.

Each test starts the real command (``anonvma oracle build``, ``python -m anonvma.difftest``, a
guest) with a tag in its environment, interrupts or times it out, and then looks for any host
process carrying the tag (make's compilers, UML kernels and their helpers, workers): none may
survive. The build test also checks that the cache holds no entry found as built.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest

from anonvma import releases
from anonvma.oracle import build
from anonvma.oracle import procgroup
from anonvma.oracle.boot import Guest, OracleBootError, boot
from anonvma.oracle.procgroup import ProcessGroup
from oracle_helpers import oracle_kernel_or_skip
from process_helpers import PYTHON, TAG, guests, process_tag, signal_when, tagged, wait_until

@pytest.fixture
def tag():
    with process_tag() as value:
        yield value


def test_a_group_is_killed_whole_when_its_leader_has_already_exited(monkeypatch, tag):
    monkeypatch.setenv(TAG, tag)
    with ProcessGroup(["sh", "-c", "sleep 600 & exit 7"]) as group:
        assert group.wait(30) == 7  # the leader's status; its background child was in the group
    assert tagged(tag) == {}


def test_a_command_that_outlives_its_timeout_is_killed_with_its_group(monkeypatch, tag):
    monkeypatch.setenv(TAG, tag)
    with pytest.raises(subprocess.TimeoutExpired):
        procgroup.run(["sh", "-c", "sleep 600 & sleep 600"], timeout=1)
    assert tagged(tag) == {}


def _is_compiler(cmd: str) -> bool:
    return cmd.split(" ")[0].rsplit("/", 1)[-1] in ("cc1", "gcc", "make", "ld", "as")


def test_ctrl_c_during_oracle_build_kills_every_build_process_and_caches_nothing(tmp_path, tag):
    """SIGINT while make compiles: exit 130, no compiler left, no kernel found as built."""
    if build.missing_tools() or shutil.which("apt-get") is None:
        pytest.skip(f"build tools missing here: {build.missing_tools() or ['apt-get']}")
    linux = releases.RELEASES[0].name
    argv = [PYTHON, "-m", "anonvma", "oracle", "build", "--linux", linux, "--variant", "strdup"]
    try:
        status, _, err = signal_when(argv, tag, lambda: sum(map(_is_compiler, tagged(tag).values())) >= 2,
                                     env={"XDG_CACHE_HOME": str(tmp_path)}, timeout=900)
    except AssertionError as exc:
        if "apt-get" in str(exc):
            pytest.skip(f"cannot fetch the kernel source here: {str(exc).strip().splitlines()[-1]}")
        raise
    assert status == 130, err[-2000:]
    assert "interrupted" in err
    assert tagged(tag) == {}
    root = tmp_path / "anonvma" / "oracle"
    assert build.find_kernel("strdup", root, linux=linux) is None
    assert build.cached_kernels(root) == []
    assert not list(root.glob("linux-*")) and not list(root.glob(".staging-*"))


@pytest.mark.oracle
def test_ctrl_c_during_a_difftest_kills_every_guest_and_removes_their_files(tmp_path, tag):
    oracle_kernel_or_skip("refcount")
    argv = [PYTHON, "-m", "anonvma.difftest", "--count", "2000", "--jobs", "2"]
    status, _, err = signal_when(argv, tag, lambda: guests(tag) >= 2, env={"TMPDIR": str(tmp_path)}, settle=3)
    assert status == 130, err[-2000:]
    assert tagged(tag) == {}
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.oracle
def test_sigterm_during_a_difftest_is_handled_like_ctrl_c(tmp_path, tag):
    """A batch system's kill (SIGTERM) cleans up as Ctrl-C does."""
    oracle_kernel_or_skip("refcount")
    argv = [PYTHON, "-m", "anonvma.difftest", "--count", "2000", "--jobs", "1"]
    status, _, err = signal_when(argv, tag, lambda: guests(tag) >= 1, signal.SIGTERM,
                                 env={"TMPDIR": str(tmp_path)})
    assert status == 130, err[-2000:]
    assert tagged(tag) == {}


@pytest.mark.oracle
def test_a_guest_that_outlives_its_timeout_is_killed_with_its_whole_group(monkeypatch, tag):
    kernel = oracle_kernel_or_skip("refcount")
    monkeypatch.setenv(TAG, tag)
    started = time.monotonic()
    with pytest.raises(OracleBootError, match="did not halt within 5 s"):
        boot(kernel, ["sleep", "600"], timeout=5)
    assert time.monotonic() - started < 60
    assert tagged(tag) == {}


@pytest.mark.oracle
def test_a_guest_left_by_an_exception_is_killed(monkeypatch, tag):
    """Leaving a Guest's ``with`` by any exception (here KeyboardInterrupt) kills its group."""
    kernel = oracle_kernel_or_skip("refcount")
    monkeypatch.setenv(TAG, tag)
    with pytest.raises(KeyboardInterrupt):
        with Guest(kernel, ["sleep", "600"]) as guest:
            assert wait_until(lambda: len(tagged(tag)) >= 2, timeout=60)  # the kernel and its helpers
            assert not guest.halted()
            raise KeyboardInterrupt
    assert tagged(tag) == {}
    assert not guest.outdir.exists()


@pytest.mark.oracle
def test_bench_fork_uml_timeout_kills_a_guest_that_prints_nothing(tmp_path, monkeypatch, tag):
    """The fork benchmark's booter is the oracle's: a timeout kills the group even if it is silent."""
    from anonvma.bench import backends

    kernel = oracle_kernel_or_skip("refcount")
    monkeypatch.setenv(TAG, tag)
    config = {"counts": [30000], "namings": ["max"], "scenarios": ["10pages"], "repeats": 50, "warmup": 1}
    started = time.monotonic()
    try:
        result = backends.run_uml(str(kernel), "refcount", config, timeout=4)
    except RuntimeError as exc:
        assert "did not finish within 4 s" in str(exc)
    else:
        assert "timed out" in result["incomplete"]
    assert time.monotonic() - started < 60
    assert tagged(tag) == {}


@pytest.mark.oracle
def test_ctrl_c_during_bench_fork_on_uml_leaves_no_guest(tmp_path, tag):
    oracle_kernel_or_skip("refcount")
    out = tmp_path / "bench.json"
    argv = [PYTHON, "-m", "anonvma", "bench", "fork", "--backends", "uml", "--counts", "30000",
            "--namings", "max", "--scenarios", "10pages", "--strategies", "refcount", "--uml-repeats", "50",
            "--no-plot", "--out", str(out)]
    status, _, err = signal_when(argv, tag, lambda: guests(tag) >= 1, settle=3)
    assert status != 0
    assert tagged(tag) == {}
    assert not out.exists()


@pytest.mark.oracle
def test_ctrl_c_during_a_bench_that_raised_the_host_limit_puts_it_back(tmp_path, tag):
    """65,530 guest VMAs with a written page each need a higher host vm.max_map_count than
    the default: interrupted in the guest, the bench writes the old value back."""
    import os

    from anonvma.bench import max_map_count

    oracle_kernel_or_skip("refcount")
    if os.geteuid() != 0:
        pytest.skip("needs root to raise the host's vm.max_map_count")
    before = max_map_count.read()
    argv = [PYTHON, "-m", "anonvma", "bench", "fork", "--backends", "uml", "--counts", "65530",
            "--namings", "max", "--scenarios", "1page", "--strategies", "refcount",
            "--uml-repeats", "50", "--no-plot", "--out", str(tmp_path / "bench.json")]
    status, _, err = signal_when(argv, tag, lambda: guests(tag) >= 1, settle=3)
    assert status != 0
    assert tagged(tag) == {}
    if max_map_count.fits(before, pages=1) < 65530:
        assert f"raised from {before}" in err
    assert max_map_count.read() == before, err[-2000:]
