"""How every ``--help`` is laid out: one-line paragraphs filled to the width, examples as written.

Each command's help ends with an epilog of examples, ``"example:\\n  anonvma show --all --top
10"`` (``examples:`` when there are several), whose lines must stay whole and indented:
:class:`Formatter` is argparse's ``RawDescriptionHelpFormatter`` for any paragraph written on
several lines, and argparse's filling for a paragraph written on one line (every description,
so a long description still fits the terminal).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Raw multi-line paragraphs, filled one-line ones, and a width found without importing shutil.

    argparse builds a formatter for every option it adds; its own default width comes from
    ``shutil.get_terminal_size``, and importing shutil (with it bz2, lzma) would cost every
    start of ``anonvma show``. The width is $COLUMNS, else stdout's terminal, else 80 columns.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: Optional[int] = None) -> None:
        if width is None:
            try:
                width = int(os.environ.get("COLUMNS", "")) - 2
            except ValueError:
                try:
                    width = os.get_terminal_size(sys.stdout.fileno()).columns - 2
                except (OSError, ValueError):
                    width = 78
        super().__init__(prog, indent_increment, max_help_position, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Each paragraph (separated by a blank line): as written when it has line breaks,
        else filled to ``width``."""
        raw, filled = argparse.RawDescriptionHelpFormatter._fill_text, argparse.HelpFormatter._fill_text
        return "\n\n".join((raw if "\n" in part else filled)(self, part, width, indent)
                           for part in text.split("\n\n"))
