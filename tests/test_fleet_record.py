"""``anonvma record`` and ``plot``: a growing child recorded over time, then drawn."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from anonvma.cli import main
from anonvma.fleet import plot as plot_mod
from anonvma.fleet import record as record_mod
from process_helpers import sigint_at_default, wait_until
from procmaps_fixtures import memfd_child, spawned

GROWING = memfd_child("anonvma-record-test", pages=8192, touched=1, grow_every=0.002)
MEMFD = "/memfd:anonvma-record-test (deleted)"


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "rec.jsonl"
    with spawned(GROWING) as (pid, _):
        proc = subprocess.run([sys.executable, "-m", "anonvma", "record", str(pid), "--interval", "0.2",
                               "--duration", "1", "-o", str(path)], capture_output=True, text=True,
                              timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"recorded 6 samples to {path}\n"
    return path, pid


def test_record_writes_a_header_then_one_line_per_sample_with_times_and_command_lines(recording):
    path, pid = recording
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    head, samples = lines[0], lines[1:]
    assert head["anonvma_record"] == 1 and head["targets"] == [str(pid)] and head["units"] == "kB"
    assert (head["interval"], head["duration"]) == (0.2, 1.0)
    assert len(samples) == 6  # at 0, 0.2 ... 1.0 s
    times = [s["t"] for s in samples]
    assert samples[0]["elapsed"] == 0 and times == sorted(set(times))
    rss = []
    for s in samples:
        (proc,) = s["processes"]
        assert proc["pid"] == pid and proc["cmdline"].startswith(f"{sys.executable} -c ")
        g = next(g for g in s["groups"] if g["key"] == MEMFD)
        assert (g["processes"], g["count"], g["size"]) == (1, 1, 8192 * os.sysconf("SC_PAGE_SIZE") // 1024)
        rss.append(g["rss"])
    assert rss == sorted(rss) and rss[-1] > rss[0]  # the child kept touching pages


def test_plot_draws_the_recording_with_the_top_names_and_the_rest(recording, tmp_path):
    path, _ = recording
    times, shown = plot_mod.series(record_mod.samples(str(path)), "rss", top=4)
    assert times[0] == 0 and len(times) == 6
    assert MEMFD in [k for k, _ in shown[:4]] and shown[-1][0].startswith("other (")
    peaks = [max(v) for _, v in shown[:4]]
    assert peaks == sorted(peaks, reverse=True)  # the largest names get their own band
    totals = [sum(g["rss"] for g in s["groups"]) / 1024 for s in record_mod.samples(str(path))]
    assert [round(sum(v[i] for _, v in shown), 6) for i in range(6)] == [round(t, 6) for t in totals]
    assert [v for k, v in shown if k == MEMFD][0] == sorted([v for k, v in shown if k == MEMFD][0])
    png = tmp_path / "rec.png"
    assert main(["plot", str(path), "-o", str(png), "--measure", "rss", "--top", "2"]) == 0
    import matplotlib.image

    img = matplotlib.image.imread(str(png))
    assert img.shape[:2] == (480, 900)
    assert (img[:, :, :3] < 0.9).any(axis=2).mean() > 0.05  # drawn, not blank


def test_record_and_plot_refuse_what_cannot_work(capsys, tmp_path):
    bad = tmp_path / "not-a-recording.jsonl"
    bad.write_text('{"hello": 1}\n')
    for argv, why in ((["record", "--duration", "1", "-o", "/nonexistent-dir/r.jsonl", "self"],
                       "cannot write /nonexistent-dir/r.jsonl"),
                      (["plot", str(bad), "-o", str(tmp_path / "x.png")], "not an anonvma recording"),
                      (["plot", str(tmp_path / "missing"), "-o", str(tmp_path / "x.png")], "No such file")):
        assert main(argv) == 1
        out, err = capsys.readouterr()
        assert out == "" and why in err and err.count("\n") == 1, (argv, err)


def test_record_to_stdout(capsys):
    assert main(["record", "self", "--duration", "0.1", "--interval", "0.1", "-o", "-"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and json.loads(out[0])["targets"] == ["self"]
    assert json.loads(out[1])["processes"][0]["pid"] == os.getpid()


def test_record_to_a_pipe_whose_reader_leaves_is_quiet_and_exits_0():
    """``record PID -o - | head -1``: as every other command, no "Broken pipe" error."""
    proc = subprocess.Popen([sys.executable, "-m", "anonvma", "record", "self", "--interval", "0.05",
                             "--duration", "30", "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert json.loads(proc.stdout.readline())["anonvma_record"] == 1
    proc.stdout.close()  # head -1 exits
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == b""
    proc.stderr.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("to_file", [True, False], ids=["-o FILE", "-o -"])
def test_without_duration_record_runs_until_ctrl_c_or_sigterm_then_ends_its_output_whole_and_exits_0(
        sig, to_file, tmp_path):
    """No --duration: it samples until Ctrl-C (SIGINT, sent to it alone as the helpers send
    it) or SIGTERM, started with SIGINT at its default as from a terminal; then every line it
    wrote is a whole sample, it says how many, and it exits 0."""
    path = tmp_path / "rec.jsonl"
    with spawned(GROWING) as (pid, _):
        proc = subprocess.Popen([sys.executable, "-m", "anonvma", "record", str(pid), "--interval", "0.05",
                                 "-o", str(path) if to_file else "-"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, preexec_fn=sigint_at_default)
        assert proc.stdout is not None
        if to_file:
            assert wait_until(lambda: path.exists() and path.read_text().count("\n") >= 3
                              or proc.poll() is not None, 120)
            first = ""
        else:
            first = "".join(proc.stdout.readline() for _ in range(3))  # the header, 2 samples
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    text = path.read_text() if to_file else first + out
    lines = [json.loads(line) for line in text.splitlines()]  # each line whole
    assert text.endswith("\n") and len(lines) >= 3
    assert lines[0]["anonvma_record"] == 1 and lines[0]["duration"] is None
    assert all(s["processes"][0]["pid"] == pid for s in lines[1:])
    assert err == (f"recorded {len(lines) - 1} samples to {path}\n" if to_file else "")


def test_record_with_category_sums_each_sample_per_category(tmp_path):
    child = memfd_child("anonvma-record-category", pages=6, touched=4)
    out = tmp_path / "cat.jsonl"
    with spawned(child) as (pid, _):
        assert main(["record", str(pid), "--interval", "0.1", "--duration", "0.1", "--category",
                     "-o", str(out)]) == 0
    head, *lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert head["categories"] == "built-in" and len(lines) == 2
    for line in lines:
        cats = {c["key"]: c for c in line["categories"]}
        memfd = cats["Other memfd"]
        page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        got = (memfd["count"], memfd["size"], memfd["rss"], memfd["processes"])
        assert got == (1, 6 * page_kb, 4 * page_kb, 1)
        assert sum(c["rss"] for c in line["categories"]) == sum(g["rss"] for g in line["groups"])
