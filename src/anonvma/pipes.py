"""A reader that went away (``anonvma show | head``): end quietly, as the tools of a pipe do.

Python ignores SIGPIPE, so a write to a pipe nobody reads raises BrokenPipeError; a command's
entry point turns it into a quiet exit instead of an error line or a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Callable


def discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no stdout file descriptor (captured): nothing to flush
        pass


def quiet_when_closed(command: Callable[[], int]) -> int:
    """``command()``'s exit status, or 0 and no message (as cat(1) is quiet) when it wrote to a
    pipe whose reader had gone."""
    try:
        return command()
    except BrokenPipeError:
        discard_stdout()
        return 0
