"""The curated scripts and what each kernel generation printed for them (tests/scripts/<release>/)."""

from __future__ import annotations

from pathlib import Path

SCRIPTS = Path(__file__).parent / "scripts"
RELEASES = ("6.1", "6.12")


def recorded(release: str) -> list[Path]:
    """The scripts recorded on a real kernel of ``release``, each with its ``.expected`` beside it."""
    return sorted(p for p in (SCRIPTS / release).glob("*.jsonl") if p.with_suffix(".expected").exists())


def recorded_pairs() -> list[tuple[str, Path]]:
    """(release, script) for every recording of every generation."""
    return [(release, path) for release in RELEASES for path in recorded(release)]
