"""Helpers shared by the tests that boot the oracle kernel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anonvma.oracle.build import find_kernel


def oracle_kernel_or_skip(variant: str = "refcount") -> Path:
    """The cached oracle kernel of ``variant``; skips the test, saying what is missing, when none."""
    build = find_kernel(variant)
    if build is None:
        why = f"oracle kernel ({variant}) not built: run `anonvma oracle build --variant {variant}`"
        if shutil.which("apt-get") is None:
            why += "; and no apt-get here: cannot fetch linux-source-6.1"
        pytest.skip(why)
    return build.path
