"""The curated scripts and what each release's real kernel printed for them (tests/scripts/).

Each script is stored once, as ``NAME.jsonl``. ``NAME.expected`` is what the root release of
:mod:`anonvma.releases` (the oldest) printed; ``NAME.expected-RELEASE`` is what RELEASE printed,
stored only where it differs from the release RELEASE derives from. The oracle tests replay every
script on every release's kernel against :func:`expected`, so an inherited output is checked on
the real kernel like a stored one.

``python tests/recordings.py record --linux RELEASE [NAME.jsonl ...]`` runs the scripts (all by
default) on RELEASE's oracle kernel and writes or removes its ``.expected-RELEASE`` files so that
the stored outputs say exactly what that kernel printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from anonvma import releases

SCRIPTS = Path(__file__).parent / "scripts"


def curated() -> list[Path]:
    """Every curated script, by name."""
    return sorted(SCRIPTS.glob("*.jsonl"))


def _own(script: Path, release: str) -> Path:
    """The file that would hold ``release``'s own output for ``script``."""
    root = releases.RELEASES[0].name
    stem = script.with_suffix("")
    return Path(f"{stem}.expected") if release == root else Path(f"{stem}.expected-{release}")


def expected_path(script: Path, release: str) -> Path:
    """The stored output that is ``release``'s for ``script``: its own, or the nearest release's
    it derives from.

    :raises FileNotFoundError: no release in the lineage has one (not even the root).
    """
    for rel in releases.lineage(release):
        path = _own(script, rel.name)
        if path.is_file():
            return path
    raise FileNotFoundError(f"{script.name}: no expected output for Linux {release} or what it derives from")


def expected(script: Path, release: str) -> str:
    """What ``release``'s kernel prints for ``script``."""
    return expected_path(script, release).read_text()


def recorded_pairs() -> list[tuple[str, Path]]:
    """(release, script) for every release of the table and every curated script."""
    return [(release, path) for release in releases.names() for path in curated()]


def store(script: Path, release: str, output: str) -> str:
    """Make ``output`` ``release``'s stored output for ``script``, keeping a file of its own only
    where it differs from what ``release`` would inherit; return "same", "wrote" or "removed".
    Record a release before the releases that derive from it."""
    own = _own(script, release)
    inherited = None
    for rel in releases.lineage(release)[1:]:
        path = _own(script, rel.name)
        if path.is_file():
            inherited = path.read_text()
            break
    if inherited == output:
        if own.is_file():
            own.unlink()
            return "removed"
        return "same"
    if own.is_file() and own.read_text() == output:
        return "same"
    own.write_text(output)
    return "wrote"


def _record(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python tests/recordings.py record",
                                description="Record curated scripts on a release's oracle kernel.")
    p.add_argument("--linux", required=True, help="the release whose kernel runs the scripts")
    p.add_argument("--variant", default="refcount", choices=("refcount", "strdup"))
    p.add_argument("scripts", nargs="*", type=Path, help="scripts (default: every curated one)")
    args = p.parse_args(argv)
    from anonvma.oracle.run import run_scripts
    from anonvma.ops import parse_script, results_text

    release = releases.resolve(args.linux).name
    paths = [p.resolve() for p in args.scripts] or curated()
    scripts = [parse_script(path.read_text()) for path in paths]
    run = run_scripts(scripts, variant=args.variant, linux=release)
    counts: dict[str, int] = {}
    for path, res in zip(paths, run.outcomes, strict=True):
        if isinstance(res, str):
            print(f"{path.name}: {res}", file=sys.stderr)
            counts["failed"] = counts.get("failed", 0) + 1
            continue
        done = store(path, release, results_text(res))
        counts[done] = counts.get(done, 0) + 1
        if done != "same":
            print(f"{path.name}: {done} {_own(path, release).name}")
    print(f"Linux {release}: {len(paths)} scripts: "
          + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), file=sys.stderr)
    return 1 if counts.get("failed") else 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["record"]:
        raise SystemExit(__doc__)
    raise SystemExit(_record(sys.argv[2:]))
