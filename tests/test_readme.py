"""README.md is a front door: short, its two commands first, its release table current, its links
alive, and no reference to files a user of the repository does not have."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
sys.path.insert(0, str(ROOT / "scripts"))

import readme_releases  # noqa: E402

INSTALL = "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/anonvma bench fork --quick"
TEST = "sh scripts/test.sh"


def test_the_readme_has_at_most_200_lines():
    assert len(README.read_text().splitlines()) <= 200


def test_the_first_two_lines_install_and_run_then_test():
    first, second = README.read_text().splitlines()[:2]
    assert first.strip() == INSTALL
    assert second.strip() == TEST
    assert (ROOT / "scripts" / "test.sh").is_file()


def test_the_first_command_runs_an_option_that_exists():
    out = subprocess.run([sys.executable, "-m", "anonvma", "bench", "fork", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "--quick" in out


def test_the_release_table_is_current():
    text = README.read_text()
    assert readme_releases.render(text) == text, "run python scripts/readme_releases.py"


def test_the_release_table_names_every_release():
    text = README.read_text()
    from anonvma import releases

    for rel in releases.RELEASES:
        assert f"| {rel.name}" in text and rel.source.version in text


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    heads = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_every_local_link_of_the_readme_and_docs_exists():
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    missing = []
    for page in pages:
        for target, anchor in re.findall(r"\]\(([^)#]*)(?:#([^)]*))?\)", page.read_text()):
            if "://" in target:
                continue
            path = page.parent / target if target else page
            if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
                missing.append(f"{page.relative_to(ROOT)}: {target}#{anchor}")
    assert missing == []


def test_no_page_cites_what_a_user_does_not_have():
    """Cite the kernel source or docs/kernel-rules.md, never notes outside the repository."""
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    banned = ("KERNEL-NOTES", "../shared", "the seed", "issue 12")
    found = [f"{page.relative_to(ROOT)}: {word}" for page in pages for word in banned
             if word.lower() in page.read_text().lower()]
    assert found == []
