"""``anonvma export``: Prometheus metrics of memory by name, read back through a real Prometheus.

The server test starts Debian's prometheus on a loopback port, scraping the exporter (the real
command, on another loopback port) that reads a child process with a known memfd mapping, and
reads the child's series back through Prometheus's HTTP API. The textfile tests read the
Android sample (named memory) and check node_exporter's format with promtool.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from anonvma.cli import main
from procmaps_fixtures import DATA, as_nobody, memfd_child, spawned
from prometheus_helpers import free_port, http_get, prometheus_server, query, wait_for

PAGE = os.sysconf("SC_PAGE_SIZE")
ANDROID = os.path.join(DATA, "android-handwritten", "smaps")
CHILD = memfd_child("anonvma-prom-test", pages=5, touched=3)
MEMFD = "/memfd:anonvma-prom-test (deleted)"


def samples(text: str) -> dict:
    """(metric sample name, frozenset of labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(result):
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_scrapes_the_exporter_and_serves_a_known_childs_series(prom, tmp_path):
    with spawned(CHILD) as (pid, _):
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
        port = free_port()
        exporter = subprocess.Popen([sys.executable, "-m", "anonvma", "export", "--listen",
                                     f"127.0.0.1:{port}", str(pid), "--per-process"],
                                    stderr=subprocess.PIPE, text=True)
        try:
            assert exporter.stderr.readline().startswith(f"serving http://127.0.0.1:{port}/metrics")
            with prometheus_server(prom[0], f"127.0.0.1:{port}", tmp_path) as base:
                sel = f'{{name="{MEMFD}",job="anonvma"}}'
                rss = wait_for("the child's series in Prometheus",
                               lambda: query(base, f"anonvma_rss_bytes{sel}"), 90)
                assert value(rss) == 3 * PAGE
                assert rss[0]["metric"]["kind"] == "deleted"
                assert rss[0]["metric"]["instance"] == f"127.0.0.1:{port}"
                assert value(query(base, f"anonvma_pss_bytes{sel}")) == 3 * PAGE
                assert value(query(base, f"anonvma_size_bytes{sel}")) == 5 * PAGE
                assert value(query(base, f"anonvma_swap_bytes{sel}")) == 0
                assert value(query(base, f"anonvma_processes{sel}")) == 1
                assert value(query(base, f"anonvma_vmas{sel}")) == 1
                mine = query(base, f'anonvma_process_rss_bytes{{pid="{pid}",name="{MEMFD}"}}')
                assert value(mine) == 3 * PAGE and mine[0]["metric"]["comm"] == comm
                assert value(query(base, 'up{job="anonvma"}')) == 1
                errors = query(base, "anonvma_scrape_errors_total")
                assert {r["metric"]["reason"] for r in errors} == {"denied", "exited", "unreadable", "failed"}
                assert value(query(base, "sum(anonvma_scrape_errors_total)")) == 0
                assert value(query(base, "anonvma_series_dropped_total")) == 0
        finally:
            exporter.terminate()
            assert exporter.wait(timeout=30) == 0  # SIGTERM is a clean stop
            exporter.stderr.close()


def export_textfile(tmp_path, *argv):
    out = tmp_path / "anonvma.prom"
    assert main(["export", "--textfile", str(out), *argv]) == 0
    return out


def test_textfile_of_the_android_sample_has_its_named_memory_folded(tmp_path):
    out = export_textfile(tmp_path, ANDROID)
    got = samples(out.read_text())
    main_space = frozenset({("name", "[anon:dalvik-main space]"), ("kind", "anon_named")})
    assert got[("anonvma_pss_bytes", main_space)] == 10240 * 1024
    assert got[("anonvma_swap_bytes", main_space)] == 2048 * 1024
    assert got[("anonvma_size_bytes", main_space)] == 512 * 1024 * 1024
    tls = frozenset({("name", "[anon:stack_and_tls:*]"), ("kind", "anon_named")})
    assert got[("anonvma_vmas", tls)] == 2 and got[("anonvma_processes", tls)] == 1
    anon = frozenset({("name", "[anonymous]"), ("kind", "anonymous")})
    assert got[("anonvma_vmas", anon)] == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # node_exporter runs as another user
    assert os.listdir(tmp_path) == ["anonvma.prom"]  # written through a temporary file, renamed


def test_textfile_passes_promtool_check_metrics(prom, tmp_path):
    out = export_textfile(tmp_path, ANDROID, "--per-process")
    check = subprocess.run([prom[1], "check", "metrics"], input=out.read_bytes(), capture_output=True,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout == check.stderr == b""  # no lint warnings either


def test_no_fold_keeps_numbered_names_apart_and_per_process_adds_series(tmp_path):
    got = samples(export_textfile(tmp_path, ANDROID, "--no-fold", "--per-process").read_text())
    names = {dict(labels)["name"] for (metric, labels) in got if metric == "anonvma_vmas"}
    assert {"[anon:stack_and_tls:1234]", "[anon:stack_and_tls:5678]"} <= names
    per = [dict(labels) for (metric, labels) in got if metric == "anonvma_process_pss_bytes"]
    assert len(per) == 8 and all(p["pid"] == "" for p in per)  # a saved file: no pid


def test_the_series_cap_keeps_the_largest_counts_the_dropped_and_says_so(capsys, tmp_path):
    got = samples(export_textfile(tmp_path, ANDROID, "--max-series", "30").read_text())
    names = {dict(labels)["name"] for (metric, labels) in got if metric == "anonvma_pss_bytes"}
    assert names == {"[anon:dalvik-main space]", "[anon:dalvik-/system/framework/boot.art]"}
    all_names = 7  # the sample's names, folded
    assert got[("anonvma_series_dropped_total", frozenset())] == (all_names - 2) * 15
    out, err = capsys.readouterr()
    assert out == "" and err == ("anonvma export: warning: --max-series 30 left out 5 names (75 series): "
                                 "each name takes 15 series (and each process's name 14 more with "
                                 "--per-process); counted in anonvma_series_dropped_total\n")
    got = samples(export_textfile(tmp_path, ANDROID, "--max-series", "14").read_text())
    assert not [k for k in got if k[0] == "anonvma_pss_bytes"]  # fewer than one name's series
    assert "left out 7 names (105 series)" in capsys.readouterr().err


def test_the_series_cap_warns_once_however_many_scrapes_drop_series():
    from anonvma.fleet.metrics import MemoryCollector

    told: list = []
    collector = MemoryCollector([ANDROID], max_series=15, on_warning=told.append)
    for _ in range(3):
        list(collector.collect())
    assert len(told) == 1 and told[0].startswith("--max-series 15 left out 6 names (90 series)")
    assert collector.dropped == 3 * 90


def test_a_process_that_exits_while_exported_is_a_scrape_error_not_a_failure(tmp_path):
    from anonvma.fleet.export import write_textfile
    from anonvma.fleet.metrics import MemoryCollector

    gone = subprocess.Popen(["sleep", "60"])
    told: list = []
    collector = MemoryCollector([str(gone.pid)], on_error=told.append)
    gone.kill()
    gone.wait()
    out = tmp_path / "anonvma.prom"
    write_textfile(collector, str(out))
    write_textfile(collector, str(out))
    got = samples(out.read_text())
    assert got[("anonvma_scrape_errors_total", frozenset({("reason", "exited")}))] == 2
    assert not [k for k in got if k[0] == "anonvma_pss_bytes"]
    assert got[("anonvma_scrape_processes", frozenset())] == 0
    assert told == [f"pid {gone.pid}: exited"]


def test_a_process_it_may_not_read_is_said_once_and_counted_every_scrape():
    from anonvma.fleet.metrics import MemoryCollector

    if os.geteuid() != 0:
        pytest.skip("needs root, to drop to nobody (65534) and be denied root's process 1")

    def scrape_twice() -> tuple:
        told: list = []
        collector = MemoryCollector(["1"], on_error=told.append)
        for _ in range(2):
            list(collector.collect())
        return 0, repr((told, collector.errors["denied"]))

    code, text = as_nobody(scrape_twice)
    assert code == 0, text
    told, denied = eval(text)  # noqa: S307 - our own repr
    assert denied == 2 and len(told) == 1 and told[0].startswith("pid 1: "), text


def test_a_pid_that_does_not_exist_is_an_error_as_in_show(capsys, tmp_path):
    out = tmp_path / "anonvma.prom"
    for argv in (["show", "4000000"], ["export", "--textfile", str(out), "4000000"],
                 ["record", "4000000", "--duration", "0.1", "-o", str(tmp_path / "r.jsonl")]):
        assert main(argv) == 1
        stdout, err = capsys.readouterr()
        assert stdout == "" and err.count("\n") == 1 and "no process with pid 4000000" in err, (argv, err)
    assert not out.exists() and not (tmp_path / "r.jsonl").exists()


def test_export_refuses_what_cannot_work(capsys, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for argv, why in ((["export", "--listen", "127.0.0.1:1"], "give PIDs or files, or --all"),
                      (["export", "--listen", "localhost", "--all"], "--listen wants HOST:PORT"),
                      (["export", "--listen", "127.0.0.1:9", "--all", "--interval", "1"],
                       "--interval goes with --textfile"),
                      (["export", "--textfile", str(tmp_path / "x.prom"), "--match", "(", "self"],
                       "bad --match '(': missing )"),
                      (["export", "--listen", "127.0.0.1:9", "--match", "(", "self"], "bad --match '('"),
                      (["export", "--textfile", str(fifo), "self"],
                       f"--textfile {fifo} is not a regular file"),
                      (["export", "--textfile", str(tmp_path), "self"],
                       f"--textfile {tmp_path} is a directory"),
                      (["record", "--duration", "1", "-o", str(tmp_path / "r"), "--match", "[", "self"],
                       "bad --match '['"),
                      (["record", "--duration", "1", "-o", str(tmp_path / "r")],
                       "give PIDs or files, or --all")):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and why in err and err.count("\n") == 1, (argv, err)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and sorted(os.listdir(tmp_path)) == ["fifo"]
    assert main(["export", "--textfile", "/nonexistent-dir/x.prom", ANDROID]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "cannot write /nonexistent-dir/x.prom" in err and err.count("\n") == 1


@pytest.mark.parametrize("target", ["/etc/passwd", "garbled"])
def test_a_target_that_cannot_be_read_says_why_once_and_fails_a_single_write(capsys, tmp_path, target):
    if target == "garbled":
        target = str(tmp_path / "garbled")
        with open(ANDROID, "rb") as f, open(target, "wb") as g:
            g.write(f.read()[:300] + b"\0garbage\n")
    out = tmp_path / "anonvma.prom"
    assert main(["export", "--textfile", str(out), target]) == 1
    stdout, err = capsys.readouterr()
    assert stdout == "" and err.count("\n") == 1
    assert err.startswith(f"anonvma export: error: scrape failed: {target}")
    assert samples(out.read_text())[("anonvma_scrape_errors_total", frozenset({("reason", "failed")}))] == 1


def test_a_failing_target_is_said_once_while_its_counter_keeps_counting(tmp_path):
    """--interval and --listen: one line on stderr, however many scrapes fail."""
    out = tmp_path / "anonvma.prom"
    failed = ("anonvma_scrape_errors_total", frozenset({("reason", "failed")}))

    def scraped(text: str) -> bool:
        return samples(text).get(failed, 0) >= 3 if text else False

    port = free_port()
    for argv, read in ((["--textfile", str(out), "--interval", "0.1"],
                        lambda: out.read_text() if out.exists() else ""),
                       (["--listen", f"127.0.0.1:{port}"], lambda: _get(f"http://127.0.0.1:{port}/metrics"))):
        exporter = subprocess.Popen([sys.executable, "-m", "anonvma", "export", *argv, "/etc/passwd"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert wait_for("three failed scrapes", lambda r=read: scraped(r()), 60, exporter)
        finally:
            exporter.terminate()
            assert exporter.wait(timeout=30) == 0
        errors = [line for line in exporter.stderr.read().splitlines() if "error" in line]
        exporter.stderr.close()
        assert len(errors) == 1 and "scrape failed: /etc/passwd:1:" in errors[0], errors


def _get(url: str) -> str:
    return http_get(url).decode()


def test_category_adds_families_of_its_own_and_leaves_every_other_series_as_it_was(tmp_path):
    plain = samples(export_textfile(tmp_path, ANDROID).read_text())
    with_categories = samples(export_textfile(tmp_path, ANDROID, "--category").read_text())
    ours = {k: v for k, v in with_categories.items() if k[0].startswith("anonvma_category_")}
    rest = {k: v for k, v in with_categories.items() if k not in ours}
    timing = ("anonvma_scrape_duration_seconds",)
    assert {k: v for k, v in rest.items() if k[0] not in timing} == \
        {k: v for k, v in plain.items() if k[0] not in timing}
    heap = frozenset({("category", "Dalvik Heap: .Heap")})
    assert ours[("anonvma_category_pss_bytes", heap)] == 10240 * 1024
    assert ours[("anonvma_category_swap_bytes", heap)] == 2048 * 1024
    assert ours[("anonvma_category_processes", heap)] == 1
    stack = frozenset({("category", "Stack")})
    assert ours[("anonvma_category_vmas", stack)] == 3
    assert sum(v for k, v in ours.items() if k[0] == "anonvma_category_pss_bytes") == \
        sum(v for k, v in plain.items() if k[0] == "anonvma_pss_bytes")  # the same memory, filed


def test_export_with_a_users_categories_and_the_errors_of_the_options(capsys, tmp_path):
    own = tmp_path / "mine.toml"
    own.write_text("Threads = ['stack_and_tls']\n")
    got = samples(export_textfile(tmp_path, ANDROID, "--category", "--categories", str(own)).read_text())
    assert got[("anonvma_category_vmas", frozenset({("category", "Threads")}))] == 2
    assert got[("anonvma_category_vmas", frozenset({("category", "Stack")}))] == 1  # the glibc one
    capsys.readouterr()
    out = tmp_path / "never.prom"
    assert main(["export", "--textfile", str(out), ANDROID, "--categories", str(own)]) == 2
    assert capsys.readouterr().err.strip() == "anonvma export: error: --categories goes with --category"
    own.write_text("Threads = 'stack'\n")
    assert main(["export", "--textfile", str(out), ANDROID, "--category", "--categories", str(own)]) == 2
    said = capsys.readouterr().err
    assert said.startswith(f"anonvma export: error: --categories {own}: category 'Threads'")
    assert not out.exists()


def test_prometheus_serves_the_category_series_of_a_known_child(prom, tmp_path):
    with spawned(CHILD) as (pid, _):
        port = free_port()
        exporter = subprocess.Popen([sys.executable, "-m", "anonvma", "export", "--listen",
                                     f"127.0.0.1:{port}", str(pid), "--category"],
                                    stderr=subprocess.PIPE, text=True)
        try:
            assert exporter.stderr.readline().startswith(f"serving http://127.0.0.1:{port}/metrics")
            with prometheus_server(prom[0], f"127.0.0.1:{port}", tmp_path) as base:
                sel = '{category="Other memfd",job="anonvma"}'  # libmeminfo's HEAP_MEMFD
                rss = wait_for("the child's category series in Prometheus",
                               lambda: query(base, f"anonvma_category_rss_bytes{sel}"), 90)
                assert value(rss) == 3 * PAGE
                assert value(query(base, f"anonvma_category_size_bytes{sel}")) == 5 * PAGE
                assert value(query(base, f"anonvma_category_vmas{sel}")) == 1
                assert value(query(base, f"anonvma_category_processes{sel}")) == 1
                named = query(base, f'anonvma_rss_bytes{{name="{MEMFD}"}}')
                assert set(named[0]["metric"]) == {"__name__", "name", "kind", "instance", "job"}
                assert value(query(base, 'sum(anonvma_category_rss_bytes{job="anonvma"})')) == \
                    value(query(base, 'sum(anonvma_rss_bytes{job="anonvma"})'))
        finally:
            exporter.terminate()
            assert exporter.wait(timeout=30) == 0
            exporter.stderr.close()
