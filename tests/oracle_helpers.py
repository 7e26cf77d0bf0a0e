"""Helpers shared by the tests that boot the oracle kernel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anonvma import releases
from anonvma.oracle.build import build_command, find_kernel


def oracle_kernel_or_skip(variant: str = "refcount", linux: str = releases.DEFAULT) -> Path:
    """The cached oracle kernel of ``linux`` and ``variant``; skips the test, saying what is
    missing, when none."""
    build = find_kernel(variant, linux=linux)
    if build is None:
        why = f"oracle kernel (Linux {linux}, {variant}) not built: run `{build_command(variant, linux)}`"
        if shutil.which("apt-get") is None:
            why += f"; and no apt-get here: cannot fetch linux-source-{linux}"
        pytest.skip(why)
    return build.path
