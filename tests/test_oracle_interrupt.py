"""Nothing left running, nothing half-written: real commands, real signals, real processes.

Each test starts the real command (``anonvma oracle build``, ``python -m anonvma.difftest``, a
guest) with a tag in its environment, interrupts or times it out, and then looks for any host
process carrying the tag (make's compilers, UML kernels and their helpers, workers): none may
survive. The build test also checks that the cache holds no entry found as built.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from anonvma.oracle import build
from anonvma.oracle.boot import Guest, OracleBootError, boot
from oracle_helpers import oracle_kernel_or_skip
from process_helpers import PYTHON, TAG, interrupt, kill_tagged, new_tag, start_tagged, tagged, wait_until

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def tag():
    value = new_tag()
    yield value
    kill_tagged(value)


def _is_compiler(cmd: str) -> bool:
    return cmd.split(" ")[0].rsplit("/", 1)[-1] in ("cc1", "gcc", "make", "ld", "as")


def test_ctrl_c_during_oracle_build_kills_every_build_process_and_caches_nothing(tmp_path, tag):
    """SIGINT while make compiles: exit 130, no compiler left, no kernel found as built."""
    if build.missing_tools() or shutil.which("apt-get") is None:
        pytest.skip(f"build tools missing here: {build.missing_tools() or ['apt-get']}")
    proc = start_tagged([PYTHON, "-m", "anonvma", "oracle", "build", "--linux", "6.1", "--variant", "strdup"],
                        tag, env={"XDG_CACHE_HOME": str(tmp_path)}, cwd=REPO)
    try:
        compiling = wait_until(lambda: sum(_is_compiler(c) for c in tagged(tag).values()) >= 2
                               or proc.poll() is not None, timeout=900)
        if proc.poll() is not None:
            _, err = proc.communicate()
            if "apt-get" in err:
                pytest.skip(f"cannot fetch the kernel source here: {err.strip().splitlines()[-1]}")
            pytest.fail(f"the build ended before compiling:\n{err[-3000:]}")
        assert compiling
        time.sleep(2)
        status, _, err = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status == 130, err[-2000:]
    assert "interrupted" in err
    assert tagged(tag) == {}
    root = tmp_path / "anonvma" / "oracle"
    assert build.find_kernel("strdup", root) is None
    assert build.cached_kernels(root) == []
    assert not list(root.glob("linux-*")) and not list(root.glob(".staging-*"))


@pytest.mark.oracle
def test_ctrl_c_during_a_difftest_kills_every_guest_and_removes_their_files(tmp_path, tag):
    oracle_kernel_or_skip("refcount")
    proc = start_tagged([PYTHON, "-m", "anonvma.difftest", "--count", "2000", "--jobs", "2"], tag,
                        env={"TMPDIR": str(tmp_path)}, cwd=REPO)
    try:
        def guests_running() -> bool:
            return sum(c.split(" ")[0].endswith("/linux") for c in tagged(tag).values()) >= 2
        came_up = wait_until(lambda: guests_running() or proc.poll() is not None, timeout=120)
        assert came_up, "no guest came up"
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(3)  # scripts running inside both guests
        status, _, err = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status == 130, err[-2000:]
    assert tagged(tag) == {}
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.oracle
def test_sigterm_during_a_difftest_is_handled_like_ctrl_c(tmp_path, tag):
    """A batch system's kill (SIGTERM) cleans up as Ctrl-C does."""
    oracle_kernel_or_skip("refcount")
    proc = start_tagged([PYTHON, "-m", "anonvma.difftest", "--count", "2000", "--jobs", "1"], tag,
                        env={"TMPDIR": str(tmp_path)}, cwd=REPO)
    try:
        assert wait_until(lambda: any(c.split(" ")[0].endswith("/linux") for c in tagged(tag).values())
                          or proc.poll() is not None, timeout=120)
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
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
    proc = start_tagged([PYTHON, "-m", "anonvma", "bench", "fork", "--backends", "uml", "--counts", "30000",
                         "--namings", "max", "--scenarios", "10pages", "--strategies", "refcount",
                         "--uml-repeats", "50", "--no-plot", "--out", str(out)], tag, cwd=REPO)
    try:
        assert wait_until(lambda: any(c.split(" ")[0].endswith("/linux") for c in tagged(tag).values())
                          or proc.poll() is not None, timeout=120)
        time.sleep(3)
        status, _, err = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status != 0
    assert tagged(tag) == {}
    assert not out.exists()
