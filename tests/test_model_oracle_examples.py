"""The model reproduces, byte for byte, every script recorded on a real kernel, per generation."""

from pathlib import Path

import pytest

from anonvma.model.replay import run_ops
from anonvma.ops import parse_script, results_text
from recordings import RELEASES, recorded, recorded_pairs


@pytest.mark.parametrize("release", RELEASES)
def test_recordings_are_present(release: str):
    assert len(recorded(release)) >= 2


@pytest.mark.parametrize("strategy", ["refcount", "strdup"])
@pytest.mark.parametrize("release, script", recorded_pairs(),
                         ids=lambda v: v.stem if isinstance(v, Path) else v)
def test_model_matches_recorded_kernel_output(release: str, script: Path, strategy: str):
    ops = parse_script(script.read_text())
    got = results_text(run_ops(ops, strategy=strategy, check=True, linux=release))
    assert got == script.with_suffix(".expected").read_text()
