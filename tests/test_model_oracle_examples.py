"""The model reproduces, byte for byte, every script recorded on a real Linux 6.1 kernel."""

from pathlib import Path

import pytest

from anonvma.model.replay import run_ops
from anonvma.ops import parse_script, results_text

SCRIPTS = Path(__file__).parent / "scripts"
RECORDED = sorted(p for p in SCRIPTS.glob("*.jsonl") if p.with_suffix(".expected").exists())


def test_recordings_are_present():
    assert len(RECORDED) >= 6


@pytest.mark.parametrize("strategy", ["refcount", "strdup"])
@pytest.mark.parametrize("script", RECORDED, ids=lambda p: p.stem)
def test_model_matches_recorded_kernel_output(script: Path, strategy: str):
    ops = parse_script(script.read_text())
    got = results_text(run_ops(ops, strategy=strategy, check=True))
    assert got == script.with_suffix(".expected").read_text()
