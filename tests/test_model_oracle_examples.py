"""The model reproduces, byte for byte, every curated script as each release's real kernel printed it."""

from pathlib import Path

import pytest

from anonvma import releases
from anonvma.model.replay import run_ops
from anonvma.ops import parse_script, results_text
from recordings import curated, expected, expected_path, recorded_pairs


def test_every_script_has_an_expected_output_for_every_release():
    assert len(curated()) >= 100
    for release in releases.names():
        for script in curated():
            assert expected_path(script, release).is_file()


def test_no_stored_output_repeats_what_its_release_inherits():
    """Scripts are stored once: a release's own output exists only where it differs."""
    for script in curated():
        for rel in releases.RELEASES:
            if rel.derives is None:
                continue
            own = Path(f"{script.with_suffix('')}.expected-{rel.name}")
            if own.is_file():
                assert own.read_text() != expected(script, rel.derives), own.name


def test_every_stored_output_names_a_release_of_the_table():
    here = curated()[0].parent
    for path in here.glob("*.expected-*"):
        assert path.name.rsplit("-", 1)[1] in releases.names(), path.name
        assert path.with_name(path.name.split(".expected-")[0] + ".jsonl").is_file(), path.name


@pytest.mark.parametrize("strategy", ["refcount", "strdup"])
@pytest.mark.parametrize("release, script", recorded_pairs(),
                         ids=lambda v: v.stem if isinstance(v, Path) else v)
def test_model_matches_recorded_kernel_output(release: str, script: Path, strategy: str):
    ops = parse_script(script.read_text())
    got = results_text(run_ops(ops, strategy=strategy, check=True, linux=release))
    assert got == expected(script, release)
