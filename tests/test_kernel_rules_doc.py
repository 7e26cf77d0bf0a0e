"""docs/kernel-rules.md and `anonvma releases` say what the release table and the rules say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from anonvma import releases
from anonvma.rules import version_rows

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import kernel_rules  # noqa: E402


def test_the_rules_doc_is_current():
    assert (ROOT / "docs" / "kernel-rules.md").read_text() == kernel_rules.render(), \
        "run python scripts/kernel_rules.py"


def test_every_newer_version_of_a_rule_is_shown_by_a_curated_script():
    """A rule version no recorded script tells from the version before it is untested."""
    shown = kernel_rules.shown_by()
    missing = [key for key, script in shown.items() if not script]
    assert missing == []


def test_every_release_has_one_version_of_each_rule():
    rows = version_rows()
    for release in releases.names():
        rules = [r.rule for r in rows if release in r.releases]
        assert len(rules) == len(set(rules)) == len({r.rule for r in rows}), release


def test_anonvma_releases_lists_every_release_and_rule_version():
    out = subprocess.run([sys.executable, "-m", "anonvma", "releases"], capture_output=True, text=True,
                         check=True).stdout
    for rel in releases.RELEASES:
        assert rel.source.version in out
    for row in version_rows():
        assert f"  {row.version}: " in out
    assert f"{releases.DEFAULT} " in out and "(default)" in out
