"""anonvma bench fork: behaviour only (cells, JSON, exact counters, --from loading); never timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anonvma.bench import backends, report
from anonvma.bench.fork import build_parent, cells_from_worker, run_model, time_forks
from anonvma.bench.from_maps import load_layout
from anonvma.bench.layout import NAME_LEN, SCENARIOS, VMA_PAGES, vma_name
from anonvma.cli import main
from anonvma.procmaps import read_file

FIXTURES = Path(__file__).parent / "data" / "procmaps"


def test_quick_sweep_writes_every_cell_and_valid_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["bench", "fork", "--quick", "--counts", "50,120", "--repeats", "2", "--backends", "model,host",
               "--out", str(out), "--no-plot"])
    assert rc == 0
    doc = json.loads(out.read_text())
    model = [c for c in doc["cells"] if c["backend"] == "model"]
    keys = {(c["count"], c["naming"], c["scenario"], c["strategy"]) for c in model}
    assert keys == {(n, naming, s, st) for n in (50, 120) for naming in ("none", "max")
                    for s in SCENARIOS for st in ("strdup", "refcount")}
    for c in model:
        assert c["status"] == "ok" and len(c["samples"]["fork_ms"]) == 2
        assert c["fork"]["min"] <= c["fork"]["median"] <= c["fork"]["max"]
    host = [c for c in doc["cells"] if c["backend"] == "host"]
    assert {(c["count_requested"], c["naming"], c["scenario"]) for c in host} == {
        (n, naming, s) for n in (50, 120) for naming in ("none", "max") for s in SCENARIOS}
    if not doc["backends"]["host"]["naming_supported"]:
        assert all(c["status"].startswith("unsupported") for c in host if c["naming"] == "max")
    assert {(o["count"], o["scenario"]) for o in doc["overhead"] if o["backend"] == "model"} == {
        (n, s) for n in (50, 120) for s in SCENARIOS}
    table = capsys.readouterr().out
    assert "overhead strdup/refcount" in table and "regr." in table


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_refcount_fork_takes_one_reference_per_named_vma_and_copies_nothing(scenario):
    parent = build_parent(300, "max", "refcount")
    cells = run_model([300], ["max"], [scenario], ["refcount"], repeats=1)
    fork, after = cells[0].counters["fork"], cells[0].counters["fork_exit"]
    assert (fork["allocs"], fork["bytes_copied"], fork["gets"], fork["frees"]) == (0, 0, 300, 0)
    assert (after["puts"], after["frees"]) == (300, 0)
    assert cells[0].ptes_copied == 300 * SCENARIOS[scenario]
    parent.exit()


def test_strdup_fork_copies_every_name_and_exit_frees_every_copy():
    parent = build_parent(250, "max", "strdup")
    r = time_forks(parent, repeats=2, warmup=0)
    fork, after = r["counters"]["fork"], r["counters"]["fork_exit"]
    assert fork["allocs"] == 250
    assert fork["bytes_copied"] == fork["bytes_allocated"] == 250 * (NAME_LEN + 1)
    assert fork["gets"] == 0
    assert (after["puts"], after["frees"], after["live"]) == (250, 250, 0)
    # every child's copies were freed: only the parent's own names are left
    assert parent.strategy.total.live == 250


def test_unnamed_fork_touches_no_names():
    parent = build_parent(100, "none", "strdup")
    r = time_forks(parent, repeats=1, warmup=0)
    assert set(r["counters"]["fork_exit"].values()) == {0}


def test_layout_never_merges_and_names_are_the_longest_allowed():
    parent = build_parent(64, "max", "refcount")
    assert parent.map_count == 64
    assert all(len(vma_name(i)) == 79 for i in (0, 63, 999999))
    assert all(v.end - v.start == VMA_PAGES * 4096 for v in parent.vmas)
    assert "[anon:" + vma_name(5) + "]" in parent.maps()


def test_overhead_ratio_divides_the_named_extra_cost_of_strdup_by_refcount():
    cells = run_model([40], ["none", "max"], ["unpopulated"], ["strdup", "refcount"], repeats=1)
    for c in cells:  # fixed times, so the ratio is checked, not measured
        c.fork = c.fork_exit = report.Stats(
            {"none": 10.0, "max": 16.0 if c.strategy == "strdup" else 12.0}[c.naming], 0, 0, 0, 0, 1)
    (o,) = report.overheads(cells, "fork")
    assert (o["delta_strdup_ms"], o["delta_refcount_ms"], o["ratio"]) == (6.0, 2.0, 3.0)
    assert report.seed_overheads()["unpopulated"] == pytest.approx(6.61 / 1.99)


def test_worker_results_become_cells_with_unsupported_named_cells_kept():
    result = {"backend": "host", "cells": [
        {"count_requested": 10, "count": 10, "map_count": 90, "naming": "none", "scenario": "unpopulated",
         "status": "ok", "fork_ms": [1.0, 3.0, 2.0], "fork_exit_ms": [2.0, 4.0, 3.0]},
        {"count_requested": 10, "count": 0, "naming": "max", "scenario": "unpopulated",
         "status": "unsupported: no CONFIG_ANON_VMA_NAME"}]}
    ok, unsupported = cells_from_worker(result, "host")
    assert ok.fork is not None and ok.fork.median == 2.0 and ok.map_count == 90
    assert unsupported.fork is None and unsupported.status.startswith("unsupported")


def test_oracle_kernel_options_name_the_variant_and_reject_non_executables(tmp_path):
    exe = tmp_path / "linux"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert backends.parse_kernel_options([str(exe), f"strdup={exe}"]) == {"refcount": str(exe),
                                                                        "strdup": str(exe)}
    with pytest.raises(ValueError, match="unknown oracle variant"):
        backends.parse_kernel_options([f"both={exe}"])
    with pytest.raises(ValueError, match="not an executable"):
        backends.parse_kernel_options([f"strdup={tmp_path / 'missing'}"])


def test_from_saved_android_smaps_loads_every_vma_and_its_name():
    snap = read_file(FIXTURES / "android-handwritten" / "smaps")
    loaded = load_layout(snap, "refcount")
    names = [v.anon_name.name for v in loaded.mm.vmas if v.anon_name is not None]
    expected = [v.name[6:-1] for v in snap.vmas if v.name.startswith("[anon:")]
    assert names == expected and loaded.named == len(expected) == 5
    assert loaded.mm.map_count == len(snap.vmas) and loaded.merged == 0 and not loaded.skipped


def test_from_saved_linux_maps_keeps_perms_and_files_and_skips_vsyscall():
    snap = read_file(FIXTURES / "linux-6.18-python" / "maps")
    loaded = load_layout(snap, "strdup")
    assert loaded.skipped == ["[vsyscall]"]
    assert loaded.mm.map_count + loaded.merged == len(snap.vmas) - 1
    by_start = {v.start: v for v in loaded.mm.vmas}
    for v in snap.vmas:
        m = by_start.get(v.start)
        if m is not None and v.name.startswith("/"):
            assert m.perms() == v.perms and m.file is not None and m.file.path.endswith(v.name)


def test_from_cli_reports_fork_counters_per_strategy(capsys):
    rc = main(["bench", "fork", "--from", str(FIXTURES / "android-handwritten" / "smaps"), "--repeats", "1"])
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in out if line.split()[:1] in (["strdup"], ["refcount"])}
    # strategy VMAs named allocs bytes gets puts frees
    assert rows["refcount"][1:8] == ["8", "5", "0", "0", "5", "5", "0"]
    assert rows["strdup"][3] == "5" and rows["strdup"][5:8] == ["0", "5", "5"]


def test_from_a_missing_file_is_an_error_naming_it(capsys):
    assert main(["bench", "fork", "--from", "/nonexistent/maps"]) == 1
    assert "/nonexistent/maps" in capsys.readouterr().err


@pytest.mark.oracle
def test_in_a_kernel_that_names_unnamed_and_named_forks_alternate_between_two_processes(tmp_path):
    """Inside the oracle the worker holds both layouts at once (a twin process for the named one)
    and forks them in turn; both cells have every sample, from layouts of the same size."""
    from anonvma import releases
    from oracle_helpers import oracle_kernel_or_skip

    kernel = oracle_kernel_or_skip("refcount", releases.DEFAULT)
    cfg = {"counts": [300], "namings": ["none", "max"], "scenarios": ["unpopulated", "1page"],
           "repeats": 4, "warmup": 1}
    result = backends.run_uml(str(kernel), "refcount", cfg)
    cells = result["cells"]
    assert [(c["naming"], c["scenario"]) for c in cells] == [
        ("none", "unpopulated"), ("max", "unpopulated"), ("none", "1page"), ("max", "1page")]
    for c in cells:
        assert c["status"] == "ok" and c["paired"] and c["count"] == 300
        assert len(c["fork_ms"]) == len(c["fork_exit_ms"]) == 4
    assert abs(cells[0]["map_count"] - cells[1]["map_count"]) <= 2  # the same layout, twice
