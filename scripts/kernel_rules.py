#!/usr/bin/env python3
"""Write docs/kernel-rules.md: the release table and every rule version, each with the curated
script (tests/scripts/) whose output it changes. ``--check``: exit 1 when the file is not current.

A version is shown by the shortest curated script whose results differ between a release that has
the version and the same release with the rule's previous version.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "kernel-rules.md"


#: Rules no ops script can show (no op reads smaps), and what shows them instead.
SHOWN_ELSEWHERE = {"show_smap_fields": "tests/data/uml_smaps_locked (smaps of real kernels)",
                   "show_smap_vma_flags": "tests/data/uml_smaps_locked (smaps of real kernels)"}


def shown_by() -> dict[tuple[str, str], Optional[str]]:
    """(rule, version) -> the file name of the script that shows it, or None."""
    from anonvma import releases
    from anonvma.model.kernel import get_kernel, rule_versions
    from anonvma.model.replay import run_ops
    from anonvma.ops import parse_script
    from anonvma.rules import hybrid

    paths = (ROOT / "tests" / "scripts").glob("*.jsonl")
    scripts = sorted(((p.name, parse_script(p.read_text())) for p in paths), key=lambda s: (len(s[1]), s[0]))
    out: dict[tuple[str, str], Optional[str]] = {}

    for rule, versions in rule_versions().items():
        for older, newer in zip(versions, versions[1:], strict=False):
            if rule in SHOWN_ELSEWHERE:
                out[(rule, newer.__name__)] = SHOWN_ELSEWHERE[rule]
                continue
            having = [r for r in releases.names() if getattr(get_kernel(r), rule) is newer]
            found = None
            for release in having:
                before = hybrid(release, rule, older.__name__)
                found = next((name for name, ops in scripts
                              if run_ops(ops, linux=release) != run_ops(ops, linux=before)), None)
                if found:
                    break
            out[(rule, newer.__name__)] = found
    return out


def render() -> str:
    from anonvma.rules import format_markdown, version_rows

    return format_markdown(version_rows(), shown_by())


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        if not DOC.is_file() or DOC.read_text() != text:
            print(f"{DOC} is not current: run python scripts/kernel_rules.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
