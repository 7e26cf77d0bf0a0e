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
from procmaps_fixtures import DATA, memfd_child, spawned
from prometheus_helpers import fetch, free_port, prometheus_server, query, wait_for

PAGE = os.sysconf("SC_PAGE_SIZE")
ANDROID = os.path.join(DATA, "android-handwritten", "smaps")
CHILD = memfd_child("anonvma-prom-test", pages=5, touched=3)
MEMFD = "/memfd:anonvma-prom-test (deleted)"


@pytest.fixture(scope="module")
def prom():
    paths, why = fetch()
    if paths is None:
        pytest.skip(why)
    return paths


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


def test_the_series_cap_keeps_the_largest_and_counts_the_dropped(tmp_path):
    got = samples(export_textfile(tmp_path, ANDROID, "--max-series", "12").read_text())
    names = {dict(labels)["name"] for (metric, labels) in got if metric == "anonvma_pss_bytes"}
    assert names == {"[anon:dalvik-main space]", "[anon:dalvik-/system/framework/boot.art]"}
    all_names = 7  # the sample's names, folded
    assert got[("anonvma_series_dropped_total", frozenset())] == (all_names - 2) * 6


def test_a_process_that_is_gone_is_a_scrape_error_not_a_failure(tmp_path):
    got = samples(export_textfile(tmp_path, "4000000").read_text())
    assert got[("anonvma_scrape_errors_total", frozenset({("reason", "exited")}))] == 1
    assert not [k for k in got if k[0] == "anonvma_pss_bytes"]
    assert got[("anonvma_scrape_processes", frozenset())] == 0


def test_export_refuses_what_cannot_work(capsys, tmp_path):
    for argv, why in ((["export", "--listen", "127.0.0.1:1"], "give PIDs or files, or --all"),
                      (["export", "--listen", "localhost", "--all"], "--listen wants HOST:PORT"),
                      (["export", "--listen", "127.0.0.1:9", "--all", "--interval", "1"],
                       "--interval goes with --textfile"),
                      (["export", "--textfile", "/nonexistent-dir/x.prom", ANDROID],
                       "cannot write /nonexistent-dir/x.prom")):
        assert main(argv) == 1
        out, err = capsys.readouterr()
        assert out == "" and why in err and err.count("\n") == 1, (argv, err)
