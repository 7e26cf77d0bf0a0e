"""``anonvma run -- CMD``: real commands in the real oracle kernels, through the real command line.

Every test starts ``python -m anonvma run ...`` as a user would, with a tag in its environment
(see process_helpers), and checks what a user sees: CMD's output and exit status, the report,
the recording, and that no process carrying the tag is left. Programs that must be sampled
while they hold their memory wait for a flag file the test creates once the recording (written
live) shows the sample it needs, so no test depends on timing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

from anonvma import releases
from anonvma.fleet.record import load, samples
from oracle_helpers import oracle_kernel_or_skip
from process_helpers import (PYTHON, REPO, TAG, guests, process_tag, sigint_at_default, signal_when, tagged,
                             wait_until)
from registry_helpers import Namer

EXAMPLE = REPO / "docs" / "examples" / "named_regions.py"
GENERATIONS = releases.names()
#: The example's regions: key -> (size, rss) in kB.
REGIONS = {"[anon:demo:cache]": (65536, 65536), "[anon:demo:arena]": (32768, 16384),
           "[anon:demo:ring]": (4096, 0)}
WAIT = 300.0


@pytest.fixture
def tag():
    with process_tag() as value:
        yield value


def run_argv(*args: str) -> List[str]:
    return [PYTHON, "-m", "anonvma", "run", *args]


def start(argv: List[str], tag: str, tmp_path: Path, stdin: Any = subprocess.DEVNULL,
          env: Optional[Dict[str, str]] = None, cwd: Path = REPO) -> subprocess.Popen[bytes]:
    """``anonvma run`` started as a user would, tagged, its temp files under ``tmp_path/tmp``."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    full = {**os.environ, TAG: tag, "TMPDIR": str(tmp_path / "tmp"), **(env or {})}
    return subprocess.Popen(argv, env=full, cwd=cwd, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=sigint_at_default)


def finish(proc: subprocess.Popen[bytes], tag: str, tmp_path: Path) -> tuple[int, bytes, str]:
    """Wait for the run: (status, stdout, stderr); nothing tagged may be left, nor temp files."""
    out, err = proc.communicate(timeout=WAIT)
    assert tagged(tag) == {}
    assert list((tmp_path / "tmp").iterdir()) == []
    return proc.returncode, out, err.decode(errors="replace")


def release_when(record: Path, ready: Callable[[Dict[str, Any]], bool], flag: Path,
                 proc: subprocess.Popen[bytes]) -> Dict[str, Any]:
    """Once a sample of the live ``record`` satisfies ``ready``, create ``flag``; that sample."""
    found: List[Dict[str, Any]] = []

    def seen() -> bool:
        if record.exists() and record.stat().st_size:
            lines = [json.loads(x) for x in record.read_text().splitlines() if x.endswith("}")]
            found.extend(s for s in lines[1:] if ready(s))
        return bool(found) or proc.poll() is not None
    assert wait_until(seen, WAIT), "the run neither sampled what it should nor ended"
    assert found, f"ended ({proc.returncode}) before a sample showed it: {proc.communicate()[1][-3000:]!r}"
    flag.touch()
    return found[0]


def groups(sample: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {g["key"]: g for g in sample["groups"]}


def has_regions(sample: Dict[str, Any]) -> bool:
    seen = groups(sample)
    return all(k in seen and seen[k]["rss"] == rss for k, (_, rss) in REGIONS.items())


@pytest.mark.oracle
@pytest.mark.parametrize("linux", GENERATIONS)
def test_a_script_naming_three_regions_gets_them_reported_with_their_sizes(linux, tmp_path, tag):
    """The example names three regions; --json gives each with its size and RSS, --record every
    sample in `anonvma record`'s format (plot draws it); the guest is the generation asked for."""
    oracle_kernel_or_skip("refcount", linux)
    report, record, flag = tmp_path / "report.json", tmp_path / "run.jsonl", tmp_path / "flag"
    proc = start(run_argv("--linux", linux, "--every", "0.2", "--json", "-o", str(report), "--record",
                          str(record), "--", PYTHON, str(EXAMPLE), str(flag)), tag, tmp_path)
    release_when(record, has_regions, flag, proc)
    status, out, err = finish(proc, tag, tmp_path)
    assert status == 0, err
    assert out.decode().startswith("pid ") and out.decode().endswith(": named 64 MiB, 32 MiB, 4 MiB\n")
    doc = json.loads(report.read_text())
    assert doc["exit_status"] == 0 and doc["ended"] == "exited"
    assert doc["kernel"].split("-")[0] == linux
    found = {g["key"]: g for g in doc["groups"]}
    for key, (size, rss) in REGIONS.items():
        assert found[key] == {"key": key, "kind": "anon_named", "processes": 1, "peak_size": size,
                              "peak_rss": rss, "peak_pss": rss, "peak_uss": rss}  # private memory
    header = next(load(str(record)))
    assert header["anonvma_record"] == 1 and header["kernel"] == doc["kernel"]
    recorded = samples(str(record))
    assert len(recorded) == doc["samples"] >= 1
    assert all("holders" not in s and {"t", "elapsed", "groups", "processes"} <= set(s) for s in recorded)
    assert max(groups(s).get("[anon:demo:cache]", {}).get("size", 0) for s in recorded) == 65536
    if _has_matplotlib():
        png = tmp_path / "run.png"
        drawn = subprocess.run([PYTHON, "-m", "anonvma", "plot", str(record), "-o", str(png)],
                               capture_output=True, text=True, timeout=120)
        assert drawn.returncode == 0, drawn.stderr
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.oracle
def test_the_table_lists_each_name_with_processes_and_peaks_under_python_dev_mode(tmp_path, tag):
    """Without --json the report is a table on stderr (stdout stays the command's): PROCS,
    PEAK SIZE, PEAK RSS, PEAK PSS, PEAK USS, NAME; python -X dev runs as any program does."""
    oracle_kernel_or_skip("refcount")
    record, flag = tmp_path / "run.jsonl", tmp_path / "flag"
    proc = start(run_argv("--every", "0.2", "--record", str(record), "--match", r"^\[anon:",
                          "--", PYTHON, "-X", "dev", str(EXAMPLE), str(flag)), tag, tmp_path)
    release_when(record, has_regions, flag, proc)
    status, out, err = finish(proc, tag, tmp_path)
    assert status == 0, err
    assert out.decode().endswith(": named 64 MiB, 32 MiB, 4 MiB\n")
    lines = err.splitlines()
    head = next(i for i, line in enumerate(lines)
                if line.split() == "PROCS PEAK SIZE PEAK RSS PEAK PSS PEAK USS NAME".split())
    assert "exit status 0" in lines[head - 1] and f"(Linux {releases.DEFAULT})" in lines[head - 1]
    assert [line.split() for line in lines[head + 1:]] == [
        ["1", "64.0M", "64.0M", "64.0M", "64.0M", "[anon:demo:cache]"],
        ["1", "32.0M", "16.0M", "16.0M", "16.0M", "[anon:demo:arena]"],
        ["1", "4.0M", "0K", "0K", "0K", "[anon:demo:ring]"]]


@pytest.mark.oracle
def test_a_c_program_naming_its_memory(tmp_path, tag):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc) on this machine to build docs/examples/named_regions.c")
    oracle_kernel_or_skip("refcount", releases.DEFAULT)
    binary, report, record, flag = (tmp_path / "named_regions", tmp_path / "report.json",
                                    tmp_path / "run.jsonl", tmp_path / "flag")
    subprocess.run([cc, "-O2", "-o", str(binary), str(EXAMPLE.with_suffix(".c"))], check=True, timeout=120)
    proc = start(run_argv("--linux", releases.DEFAULT, "--every", "0.2", "--json", "-o", str(report),
                          "--record", str(record), "--", str(binary), str(flag)), tag, tmp_path)
    release_when(record, has_regions, flag, proc)
    status, out, err = finish(proc, tag, tmp_path)
    assert status == 0, err
    found = {g["key"]: (g["peak_size"], g["peak_rss"]) for g in json.loads(report.read_text())["groups"]}
    assert {k: found[k] for k in REGIONS} == REGIONS


@pytest.mark.oracle
def test_exit_status_is_the_commands_or_128_plus_the_signal(tmp_path, tag):
    oracle_kernel_or_skip("refcount")
    for script, expected in (("exit 7", 7), ("kill -TERM $$", 128 + signal.SIGTERM)):
        status, out, err = finish(start(run_argv("--", "sh", "-c", script), tag, tmp_path), tag, tmp_path)
        assert status == expected, err
        assert f"exit status {expected}" in err


@pytest.mark.oracle
def test_stdin_is_passed_through_to_the_end_of_a_pipe(tmp_path, tag):
    """`echo hi | anonvma run -- cat` prints hi; 3 MiB of random bytes (several chunks) come
    back unchanged; stdin at /dev/null reads as empty."""
    oracle_kernel_or_skip("refcount")
    proc = start(run_argv("--", "cat"), tag, tmp_path, stdin=subprocess.PIPE)
    out, err = proc.communicate(b"hi\n", timeout=WAIT)
    assert (proc.returncode, out) == (0, b"hi\n"), err
    data = os.urandom(3 * (1 << 20) + 5)
    proc = start(run_argv("--", "cat"), tag, tmp_path, stdin=subprocess.PIPE)
    out, err = proc.communicate(data, timeout=WAIT)
    assert proc.returncode == 0, err
    assert out == data
    status, out, err = finish(start(run_argv("--", "wc", "-c"), tag, tmp_path), tag, tmp_path)
    assert (status, out.split()) == (0, [b"0"]), err


@pytest.mark.oracle
def test_stdout_and_stderr_stream_while_the_command_runs(tmp_path, tag):
    """The first line reaches our stdout while the command still waits (for a flag only the
    test creates after reading it); stderr comes apart from stdout."""
    oracle_kernel_or_skip("refcount")
    flag = tmp_path / "flag"
    script = f"echo first; echo warning >&2; while [ ! -e {flag} ]; do sleep 0.05; done; echo second"
    proc = start(run_argv("--", "sh", "-c", script), tag, tmp_path)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"first\n"
    assert proc.poll() is None
    flag.touch()
    status, out, err = finish(proc, tag, tmp_path)
    assert (status, out) == (0, b"second\n"), err
    assert err.startswith("warning\n")


@pytest.mark.oracle
def test_the_command_runs_in_our_directory_with_our_environment(tmp_path, tag):
    oracle_kernel_or_skip("refcount", releases.DEFAULT)
    value = "two words, 'quotes' \"and\" $dollars, ünïcode"
    argv = run_argv("--linux", releases.DEFAULT, "--", "sh", "-c", 'pwd; printf %s "$RUN_TEST_VALUE"')
    proc = start(argv, tag, tmp_path, env={"RUN_TEST_VALUE": value}, cwd=tmp_path)
    status, out, err = finish(proc, tag, tmp_path)
    assert status == 0, err
    assert out.decode() == f"{tmp_path}\n{value}"


GUEST_READER = """
import json, subprocess, sys
from anonvma.live import registry
shown = subprocess.run([sys.executable, "-m", "anonvma", "show", "--all", "--json"], capture_output=True)
print(json.dumps({"status": shown.returncode, "dirs": registry.reader_dirs(),
                  "stderr": shown.stderr.decode()}))
"""


@pytest.mark.oracle
def test_the_guest_neither_sees_nor_removes_the_hosts_registries(tmp_path, tag):
    """Issue 24: the guest has other pids, so `show --all` there took the host's registries
    for dead processes' and removed them. It now has a registry directory of its own."""
    oracle_kernel_or_skip("refcount", releases.RELEASES[0].name)
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    with Namer(env={"XDG_RUNTIME_DIR": str(run_dir)}) as child:
        path = child.run("m = live.named_mmap(4 * P, 'host', fallback=True); result = registry.path()")
        assert path.startswith(str(run_dir))
        argv = run_argv("--linux", releases.RELEASES[0].name, "-o", str(tmp_path / "report"), "--", PYTHON,
                        "-c", GUEST_READER)
        proc = start(argv, tag, tmp_path, env={"XDG_RUNTIME_DIR": str(run_dir)})
        status, out, err = finish(proc, tag, tmp_path)
        assert status == 0, err
        assert os.path.exists(path)
        seen = json.loads(out)
        assert seen["status"] == 0, seen["stderr"]
        assert len(seen["dirs"]) == 1 and seen["dirs"][0].startswith(str(tmp_path / "tmp") + "/")
        shown = subprocess.run([PYTHON, "-m", "anonvma", "show", str(child.pid), "--json"],
                               capture_output=True, text=True, timeout=120,
                               env={**os.environ, "XDG_RUNTIME_DIR": str(run_dir)})
        assert {g["key"]: g for g in json.loads(shown.stdout)["groups"]}["[anon:host]"]["registered"]


def test_a_command_not_found_is_127_and_not_executable_126_before_any_boot(tmp_path, tag):
    """As a shell says it; checked on the host, so no kernel is needed (none is found here)."""
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    env = {"XDG_CACHE_HOME": str(tmp_path / "empty-cache")}
    for argv, expected, message in (
            (["no-such-command-anywhere"], 127, "no-such-command-anywhere: command not found"),
            ([str(tmp_path / "missing")], 127, f"{tmp_path / 'missing'}: No such file or directory"),
            ([str(script)], 126, f"{script}: Permission denied"),
            ([str(tmp_path)], 126, f"{tmp_path}: Is a directory")):
        status, out, err = finish(start(run_argv("--", *argv), tag, tmp_path, env=env), tag, tmp_path)
        assert (status, out) == (expected, b"")
        assert err == f"anonvma run: {message}\n"


@pytest.mark.oracle
def test_a_file_the_guest_cannot_execute_is_126(tmp_path, tag):
    """Executable bits but no format the kernel runs: execve fails inside the guest (ENOEXEC)."""
    oracle_kernel_or_skip("refcount")
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01not a program\n")
    junk.chmod(0o755)
    status, out, err = finish(start(run_argv("--", str(junk)), tag, tmp_path), tag, tmp_path)
    assert (status, out) == (126, b"")
    assert err == f"anonvma run: {junk}: Exec format error\n"


@pytest.mark.parametrize("linux", GENERATIONS)
def test_a_kernel_not_built_names_the_command_that_builds_it(linux, tmp_path, tag):
    env = {"XDG_CACHE_HOME": str(tmp_path / "empty-cache")}
    status, out, err = finish(start(run_argv("--linux", linux, "--", "true"), tag, tmp_path, env=env),
                              tag, tmp_path)
    assert status == 125
    assert f"run `anonvma oracle build --linux {linux} --variant refcount`" in err


def test_no_command_is_a_usage_error(tmp_path, tag):
    status, out, err = finish(start(run_argv("--every", "1", "--"), tag, tmp_path), tag, tmp_path)
    assert status == 2
    assert "no command given" in err


@pytest.mark.parametrize("args, status, message", [
    (["--match", "("], 2, "error: bad --match '(': missing ), unterminated subpattern"),
    (["--mem", "lots"], 2, "argument --mem: not a memory size of 64M or more: lots"),
    (["--every", "0"], 2, "argument --every: must be positive: 0"),
    (["--timeout", "-5"], 2, "argument --timeout: must be positive: -5"),
    (["--record", "/nonexistent-dir/run.jsonl"], 125, "cannot write /nonexistent-dir/run.jsonl: No such"),
    (["-o", "/nonexistent-dir/report"], 125, "cannot write /nonexistent-dir/report: No such file"),
    (["--json-out", "/nonexistent-dir/r.json"], 125, "cannot write /nonexistent-dir/r.json: No such file"),
    (["-o", "-", "--json-out", "-"], 2, "error: -o and --json-out both write to stdout: give the JSON"),
    (["-o", "r.json", "--json-out", "r.json"], 2, "error: -o and --json-out both write to r.json"),
])
def test_bad_options_fail_before_any_boot(args, status, message, tmp_path, tag):
    env = {"XDG_CACHE_HOME": str(tmp_path / "empty-cache")}  # no kernel: nothing could boot anyway
    got, out, err = finish(start(run_argv(*args, "--", "true"), tag, tmp_path, env=env), tag, tmp_path)
    assert (got, out) == (status, b"")
    assert message in err


@pytest.mark.oracle
def test_json_out_dash_gives_stdout_to_the_json_report_alone(tmp_path, tag):
    """`anonvma run --json-out - -- CMD | python3 -m json.tool`: stdout is the JSON report and
    nothing else; CMD's stdout goes to stderr, with its stderr and the table."""
    oracle_kernel_or_skip("refcount")
    program = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"
    status, out, err = finish(start(run_argv("--json-out", "-", "--", PYTHON, "-c", program), tag, tmp_path),
                              tag, tmp_path)
    assert status == 0, err
    doc = json.loads(out)
    assert doc["exit_status"] == 0 and doc["ended"] == "exited" and doc["command"][0] == PYTHON
    assert "to stdout\n" in err and "to stderr\n" in err
    assert "PROCS  PEAK SIZE  PEAK RSS  PEAK PSS  PEAK USS  NAME" in err


@pytest.mark.oracle
def test_json_out_file_beside_the_report_on_stdout(tmp_path, tag):
    """`-o - --json-out FILE`: stdout is CMD's output then the report; FILE the JSON alone."""
    oracle_kernel_or_skip("refcount")
    report = tmp_path / "report.json"
    status, out, err = finish(start(run_argv("-o", "-", "--json-out", str(report), "--", "echo", "hello"),
                                    tag, tmp_path), tag, tmp_path)
    assert status == 0, err
    text = out.decode()
    assert text.startswith("hello\necho hello: exit status 0, ")  # then rows, or "no memory seen"
    assert err == ""
    doc = json.loads(report.read_text())
    assert doc["command"] == ["echo", "hello"] and doc["exit_status"] == 0


@pytest.mark.oracle
def test_a_command_that_never_exits_is_ended_by_timeout_with_124(tmp_path, tag):
    oracle_kernel_or_skip("refcount")
    started = time.monotonic()
    status, out, err = finish(start(run_argv("--timeout", "3", "--", "sleep", "600"), tag, tmp_path),
                              tag, tmp_path)
    assert status == 124
    assert "anonvma run: sleep did not end within 3 s: guest killed" in err
    assert "timed out (exit status 124)" in err
    assert time.monotonic() - started < 300  # it did not wait for sleep 600


@pytest.mark.oracle
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_ends_the_guest_and_leaves_nothing(sig, tmp_path, tag):
    """Ctrl-C (SIGINT to `anonvma run` alone, as the test helpers send it) or a batch system's
    SIGTERM: exit status 130, no guest or helper process left, no temp file."""
    oracle_kernel_or_skip("refcount")
    (tmp_path / "tmp").mkdir()
    status, out, err = signal_when(run_argv("--", "sh", "-c", "sleep 600 & sleep 600"), tag,
                                   lambda: guests(tag) >= 1, sig, env={"TMPDIR": str(tmp_path / "tmp")})
    assert status == 130, err
    assert "interrupted (exit status 130)" in err
    assert tagged(tag) == {}
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.oracle
@pytest.mark.parametrize("report", [[], ["-o", "-"]], ids=["report on stderr", "report on stdout"])
def test_a_closed_output_ends_the_run_like_sigpipe(report, tmp_path, tag):
    """`anonvma run -- yes | head -c 10`: once head has gone, the guest is ended, status 141
    (also when the report was to follow on that stdout)."""
    oracle_kernel_or_skip("refcount")
    proc = start(run_argv(*report, "--", "yes"), tag, tmp_path)
    assert proc.stdout is not None
    assert proc.stdout.read(10) == b"y\n" * 5
    proc.stdout.close()
    _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 141, err
    assert tagged(tag) == {}


CHILDREN = """
import ctypes, mmap, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
def name(size, label):
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    assert libc.prctl(0x53564D41, 0, ctypes.c_ulong(addr), ctypes.c_ulong(size), label) == 0
    ctypes.memset(addr, 1, size)
    return m
def wait(flag):
    while not os.path.exists(flag):
        time.sleep(0.2)
n, flag = int(sys.argv[1]), sys.argv[2]
parent = name(1 << 20, b"parent")
kids = []
for i in range(n):
    pid = os.fork()
    if pid == 0:
        mine = name(64 << 10, b"child")
        wait(flag)
        os._exit(0)
    kids.append(pid)
wait(flag)
sys.exit(sum(os.waitpid(k, 0)[1] != 0 for k in kids))
"""


@pytest.mark.oracle
def test_a_program_forking_hundreds_of_children_is_sampled_whole(tmp_path, tag):
    """300 children, each naming 64 KiB: a sample sees all of them (the tree is walked through
    /proc, sampling kept to a fifth of the time), and the report counts 300 processes."""
    oracle_kernel_or_skip("refcount")
    program, report, record, flag = (tmp_path / "children.py", tmp_path / "report.json",
                                     tmp_path / "run.jsonl", tmp_path / "flag")
    program.write_text(CHILDREN)
    proc = start(run_argv("--every", "0.2", "--json", "-o", str(report), "--record", str(record), "--",
                          PYTHON, str(program), "300", str(flag)), tag, tmp_path)
    seen = release_when(record, lambda s: groups(s).get("[anon:child]", {}).get("processes") == 300,
                        flag, proc)
    assert groups(seen)["[anon:child]"]["size"] == 300 * 64
    assert len(seen["processes"]) == 301
    status, out, err = finish(proc, tag, tmp_path)
    assert status == 0, err
    found = {g["key"]: g for g in json.loads(report.read_text())["groups"]}
    assert found["[anon:child]"]["processes"] == 300
    assert found["[anon:child]"]["peak_rss"] == 300 * 64
    assert found["[anon:parent]"]["processes"] == 301  # every child inherits it


@pytest.mark.oracle
def test_copy_on_write_pages_count_once_in_peak_pss_in_no_peak_uss_and_once_a_process_in_rss(tmp_path, tag):
    """A parent writes 1 MiB it named, then forks 3 children that only read it: every page is
    shared by 4 processes, so the report's RSS of it is 4 MiB but its PSS 1 MiB (exactly: each
    page is a quarter of each process's), while the children's own 64 KiB are private: USS."""
    oracle_kernel_or_skip("refcount")
    program, report, record, flag = (tmp_path / "children.py", tmp_path / "report.json",
                                     tmp_path / "run.jsonl", tmp_path / "flag")
    program.write_text(CHILDREN)
    proc = start(run_argv("--every", "0.2", "--json", "-o", str(report), "--record", str(record),
                          "--match", r"^\[anon:", "--", PYTHON, str(program), "3", str(flag)), tag, tmp_path)
    seen = release_when(record, lambda s: groups(s).get("[anon:child]", {}).get("processes") == 3, flag, proc)
    shared = groups(seen)["[anon:parent]"]
    assert (shared["processes"], shared["rss"], shared["pss"], shared["uss"]) == (4, 4096, 1024, 0)
    status, out, err = finish(proc, tag, tmp_path)
    assert status == 0, err
    found = {g["key"]: g for g in json.loads(report.read_text())["groups"]}
    assert (found["[anon:parent]"]["peak_rss"], found["[anon:parent]"]["peak_pss"]) == (4096, 1024)
    assert found["[anon:parent]"]["peak_uss"] <= 1024  # all of it before the forks, if sampled then
    child = found["[anon:child]"]
    assert (child["peak_rss"], child["peak_pss"], child["peak_uss"]) == (192, 192, 192)


def test_help_names_the_command_and_its_options():
    done = subprocess.run([sys.executable, "-m", "anonvma", "run", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    for option in ("--linux", "--every", "--json", "--record", "--timeout", "CMD"):
        assert option in done.stdout
