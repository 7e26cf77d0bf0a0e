"""``anonvma soak``: 100,000 random ops per generation on both name strategies in lockstep, and
proof that each kind of fault it counts (invariant breaks, leaked names, strategy
disagreements) is counted, printed with its op, and makes the exit status 1.

The seed of the 100,000-op runs is random unless ANONVMA_SOAK_SEED is set; a failure names it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
from pathlib import Path

import pytest

from anonvma import releases
from anonvma.cli import main as cli_main
from anonvma.model.bugs import HistoricBugs
from anonvma.model import Mm
from anonvma.model.check import InvariantError, check_machine
from anonvma.model.names import NameStrategy, StrdupStrategy, UseAfterFree
from anonvma.model.replay import run_ops
from anonvma.ops import parse_script
from anonvma.soak import Family, SoakConfig, around, op_ranges, soak
from model_helpers import P

LAST_LINE = re.compile(r"^(\d+) ops, (\d+) invariant breaks, (\d+) leaked names, "
                       r"(\d+) strategy disagreements, (\d+) ops/s, peak (\d+) VMAs and (\d+) processes$")


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main(["soak", *argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("linux", [releases.newest_in(s).name for s in releases.series()])
def test_100000_ops_leave_no_break_no_leak_and_no_disagreement(linux: str, tmp_path: Path):
    seed = int(os.environ.get("ANONVMA_SOAK_SEED", random.randrange(1 << 30)))
    rc, out, err = _cli("--ops", "100000", "--seed", str(seed), "--linux", linux,
                        "--json", str(tmp_path / "soak.json"))
    last = out.splitlines()[-1]
    got = LAST_LINE.match(last)
    assert got, last
    ops, breaks, leaked, disagree, rate, vmas, procs = map(int, got.groups())
    assert (rc, ops, breaks, leaked, disagree) == (0, 100000, 0, 0, 0), f"seed {seed}:\n{out[-3000:]}"
    assert rate > 0 and vmas > 2000 and procs == 4  # the addresses spread: thousands of VMAs
    report = json.loads((tmp_path / "soak.json").read_text())["report"]
    assert report["checks"] == 100 and report["events"] == [] and report["peak_vmas"] == vmas
    print(f"seed {seed} Linux {linux}: {last}")


def test_the_same_seed_runs_the_same_ops():
    a, b = soak(SoakConfig(ops=3000, seed=5)), soak(SoakConfig(ops=3000, seed=5))
    c = soak(SoakConfig(ops=3000, seed=6))
    assert (a.peak_vmas, a.peak_procs, a.checks) == (b.peak_vmas, b.peak_procs, b.checks)
    assert a.peak_vmas != c.peak_vmas


def test_missing_transient_reference_is_caught_at_its_madvise(tmp_path: Path):
    cfg = SoakConfig(ops=20000, seed=1, bugs=HistoricBugs(no_transient_name_ref=True))
    out = io.StringIO()
    report = soak(cfg, out, keep_scripts=True)
    assert report.breaks > 0 and not report.clean and report.ops == 20000
    first = report.events[0]
    assert first.kind == "break" and "UseAfterFree" in first.what and '"op": "madvise"' in first.op
    assert f"op {first.number}: invariant break: " in out.getvalue() and first.op in out.getvalue()
    ops = parse_script(first.script or "")
    assert ops[-1].to_json() == first.op  # the saved script ends with the op that broke
    strategy = first.what.split(":")[0]
    with pytest.raises(UseAfterFree):
        run_ops(ops, strategy=strategy, bugs=cfg.bugs)
    run_ops(ops, strategy=strategy, check=True)  # the fixed model runs it clean


def test_saturation_found_by_the_periodic_checker_is_traced_to_its_op():
    cfg = SoakConfig(ops=5000, seed=1, check_every=100, refcount_max=3,
                     bugs=HistoricBugs(no_saturation_guard=True))
    report = soak(cfg, keep_scripts=True)
    assert report.breaks > 0 and report.disagreements == 0
    for event in report.events[:5]:
        assert event.kind == "break" and "exceeds REFCOUNT_MAX (3)" in event.what
        ops = parse_script(event.script or "")
        # the state before the op holds, the state after it does not
        for script, holds in ((ops[:-1], True), (ops, False)):
            procs: dict[int, Mm] = {}
            run_ops(script, refcount_max=3, bugs=cfg.bugs, mms=procs)
            if holds:
                check_machine(procs[min(procs)].machine)
            else:
                with pytest.raises(InvariantError, match="REFCOUNT_MAX"):
                    check_machine(procs[min(procs)].machine)


def test_cli_prints_each_break_with_its_op_and_exits_1(tmp_path: Path):
    rc, out, _ = _cli("--ops", "3000", "--seed", "1", "--refcount-max", "3", "--bug", "no-saturation-guard",
                      "--check-every", "100", "--save", str(tmp_path))
    lines = out.splitlines()
    got = LAST_LINE.match(lines[-1])
    assert rc == 1 and got and int(got.group(2)) > 0
    breaks = [i for i, line in enumerate(lines)
              if re.match(r"op \d+: invariant break: refcount: InvariantError", line)]
    assert len(breaks) == int(got.group(2))
    assert all(lines[i + 1].startswith("    op: {") for i in breaks)
    assert len(list(tmp_path.glob("soak-seed1-op*.jsonl"))) == len(breaks)


def test_a_leak_at_exit_is_counted(monkeypatch: pytest.MonkeyPatch):
    """A model whose exit forgets one name reference: the checker breaks, and what is still
    live after the last exit is counted as leaked."""
    real = NameStrategy.put_vmas

    def leaky(self, vmas, counters):  # type: ignore[no-untyped-def]
        vmas = list(vmas)
        named = [v for v in vmas if v.anon_name is not None and v.anon_name.refcount == 1]
        real(self, [v for v in vmas if not named or v is not named[0]], counters)
    monkeypatch.setattr(NameStrategy, "put_vmas", leaky)
    rc, out, _ = _cli("--ops", "2000", "--seed", "3")
    got = LAST_LINE.match(out.splitlines()[-1])
    assert rc == 1 and got and int(got.group(3)) > 0 and int(got.group(2)) > 0
    assert "name objects live after every process exited" in out


def test_a_strategy_that_changes_what_a_process_sees_is_a_disagreement(monkeypatch: pytest.MonkeyPatch):
    """strdup copying a name wrongly (one byte off) must show in the VMAs around the op."""
    real = StrdupStrategy.dup

    def sloppy(self, obj, counters):  # type: ignore[no-untyped-def]
        copy = real(self, obj, counters)
        copy.name = obj.name[:-1] if obj.name else "?"
        return copy
    monkeypatch.setattr(StrdupStrategy, "dup", sloppy)
    monkeypatch.setattr(StrdupStrategy, "adopt", sloppy)
    report = soak(SoakConfig(ops=2000, seed=2))
    assert report.disagreements > 0 and report.breaks == 0
    assert all(e.kind == "disagreement" for e in report.events)
    assert any("VMAs around" in e.what for e in report.events)


def test_ranges_compared_are_the_ops_ranges():
    family = Family("refcount", SoakConfig(ops=1))
    ops = parse_script(
        '{"op": "mmap", "addr": 0, "len": 16384, "prot": "rw"}\n'
        '{"op": "mprotect", "addr": 4096, "len": 4096, "prot": "r"}\n'
        '{"op": "mremap", "addr": 8192, "len": 4096, "new_len": 8192, "flags": ["maymove", "fixed"], '
        '"new_addr": 65536}\n'
        '{"op": "touch", "addr": 70000}\n')
    for op in ops:
        family.run(op)
    base = 0x4000000000
    assert op_ranges(ops[2]) == [(base + 8192, base + 16384), (base + 65536, base + 73728)]
    assert op_ranges(ops[3]) == [(base + 69632, base + 73728)]
    mm = family.procs[0]
    # the VMA before, the overlapping ones, the one after
    assert [v[:2] for v in around(mm, base + P, base + 2 * P)] == [
        (base, base + P), (base + P, base + 2 * P), (base + 3 * P, base + 4 * P)]
    assert [v[:2] for v in around(mm, base + 5 * P, base + 6 * P)] == [
        (base + 3 * P, base + 4 * P), (base + 16 * P, base + 18 * P)]
    # a huge range is looked at over its first 64 pages only
    assert len(around(mm, base, base + (1 << 60))) == 4


def test_bad_arguments_exit_2_without_running():
    for argv in (["--ops", "0"], ["--ops", "10", "--linux", "5.15"], ["--ops", "10", "--window", "4097"],
                 ["--ops", "10", "--bug", "no-such-bug"], []):
        with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
            _cli(*argv)
        assert exc.value.code == 2
