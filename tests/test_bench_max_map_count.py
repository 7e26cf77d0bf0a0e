"""The host's vm.max_map_count for UML fork runs: raised for a run where allowed, put back on
every way out, and where it may not be raised, the counts that need it are left out with the
command that would allow them (exit 1). Real sysctl where the test may touch it (root)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from anonvma.bench import max_map_count, uml
from oracle_helpers import oracle_kernel_or_skip

ROOT = os.geteuid() == 0


def _sysctl(tmp_path: Path, value: int) -> str:
    path = tmp_path / "max_map_count"
    path.write_text(f"{value}\n")
    return str(path)


def test_raised_for_the_block_and_put_back_after_it_and_after_an_error(tmp_path):
    path = _sysctl(tmp_path, 65530)
    with max_map_count.raised(70000, path) as old:
        assert old == 65530 and max_map_count.read(path) == 70000
    assert max_map_count.read(path) == 65530
    with pytest.raises(RuntimeError):
        with max_map_count.raised(70000, path):
            raise RuntimeError("the guest died")
    assert max_map_count.read(path) == 65530


def test_put_back_after_sigterm(tmp_path):
    path = _sysctl(tmp_path, 65530)
    with pytest.raises(SystemExit) as exc:
        with max_map_count.raised(70000, path):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)  # give the handler its chance
            pytest.fail("SIGTERM did not leave the block")
    assert exc.value.code == 128 + signal.SIGTERM
    assert max_map_count.read(path) == 65530
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_a_limit_high_enough_is_left_alone(tmp_path):
    path = _sysctl(tmp_path, 262144)
    with max_map_count.raised(70000, path) as old:
        assert old is None and max_map_count.read(path) == 262144


def test_a_limit_that_may_not_be_raised_says_what_to_run(tmp_path):
    path = _sysctl(tmp_path, 65530)
    os.chmod(path, 0o444)
    if os.access(path, os.W_OK):
        pytest.skip("root may write a read-only file: the real refusal is tested as nobody below")
    with pytest.raises(OSError) as exc:
        with max_map_count.raised(70000, path):
            pass
    assert exc.value.errno == errno.EPERM and "sysctl -w vm.max_map_count=70000" in str(exc.value)


def test_only_populated_counts_need_the_host_limit():
    assert uml.counts_that_fit([16000, 65530], ["unpopulated"], 65530) == ([16000, 65530], [])
    fit = 65530 - max_map_count.HOST_SLACK
    assert uml.counts_that_fit([16000, fit, fit + 1], ["unpopulated", "1page"], 65530) == (
        [16000, fit], [fit + 1])
    assert max_map_count.needed(65530, pages=1) == 65530 + max_map_count.HOST_SLACK


def test_each_written_page_of_a_vma_may_take_a_host_mapping():
    """The sweep's guests died at 32,000 VMAs of 10 pages under a limit of 69,626 (one mapping a
    VMA): ten pages a VMA ask for ten mappings a VMA."""
    assert max_map_count.needed(32000, pages=10) == 320000 + max_map_count.HOST_SLACK
    most = (69626 - max_map_count.HOST_SLACK) // 10
    assert uml.counts_that_fit([most, 16000, 32000], ["1page", "10pages"], 69626) == ([most], [16000, 32000])
    assert uml.counts_that_fit([32000], ["1page"], 69626) == ([32000], [])


@pytest.mark.skipif(not ROOT or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run the bench as a user who may not raise "
                           "vm.max_map_count")
def test_a_user_who_may_not_raise_it_gets_the_command_and_exit_1(request):
    """As nobody: 65,530 populated VMAs need more than the host allows; nothing boots."""
    before = max_map_count.read()
    if max_map_count.fits(before, pages=1) >= 65530:
        pytest.skip(f"the host's vm.max_map_count ({before}) already allows 65,530 populated VMAs")
    work = Path(tempfile.mkdtemp(prefix="anonvma-nobody-"))  # pytest's own tmp is root's alone
    os.chmod(work, 0o777)
    request.addfinalizer(lambda: shutil.rmtree(work, ignore_errors=True))
    res = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
         "anonvma", "bench", "fork", "--backends", "uml", "--counts", "65530", "--scenarios",
         "1page", "--strategies", "refcount", "--namings", "none", "--no-plot",
         "--out", str(work / "b.json")],
        cwd=work, capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(work)})
    assert res.returncode == 1, res.stderr
    need = max_map_count.needed(65530, pages=1)
    assert f"sudo sysctl -w vm.max_map_count={need}" in res.stderr
    assert "[uml] booting" not in res.stderr and "UML counts 65530 not run" in res.stderr
    assert json.loads((work / "b.json").read_text())["cells"] == []
    assert max_map_count.read() == before


@pytest.mark.oracle
@pytest.mark.skipif(not ROOT, reason="needs root to raise the host's vm.max_map_count")
def test_a_uml_run_past_the_host_limit_raises_it_and_puts_it_back(tmp_path):
    """65,530 guest VMAs with a written page each: more host mappings than the default limit."""
    oracle_kernel_or_skip("refcount")
    before = max_map_count.read()
    out = tmp_path / "b.json"
    res = subprocess.run(
        [sys.executable, "-m", "anonvma", "bench", "fork", "--backends", "uml", "--counts", "65530",
         "--scenarios", "1page", "--strategies", "refcount", "--namings", "none", "--uml-repeats",
         "1", "--warmup", "0", "--no-plot", "--out", str(out)],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr[-2000:]
    (cell,) = [c for c in json.loads(out.read_text())["cells"] if c["backend"].startswith("uml")]
    assert cell["status"] == "ok" and cell["map_count"] > 65000
    if max_map_count.fits(before, pages=1) < 65530:
        assert f"raised from {before}" in res.stderr
    assert max_map_count.read() == before
