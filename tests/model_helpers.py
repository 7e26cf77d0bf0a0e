"""Helpers shared by the model's ported tests: one arena, page units, maps as short lines."""

from __future__ import annotations

import errno
from typing import Any, Callable

import pytest

from anonvma import releases
from anonvma.model import Mm
from anonvma.model.check import check_machine
from anonvma.ops import arena_maps

#: Arena base of the ops format: page-aligned, the same as the oracle runs use.
BASE = 0x4000000000
#: the oldest release of the table, whose rules (6.1's) the tests written for them describe
OLDEST = releases.RELEASES[0].name
P = 4096
STRATEGIES = ("refcount", "strdup")

#: Every test of a module that sets ``pytestmark = both_strategies`` takes ``strategy``.
both_strategies = pytest.mark.parametrize("strategy", STRATEGIES)


def pg(n: int) -> int:
    """Address of arena page ``n``."""
    return BASE + n * P


def layout(mm: Mm) -> list[str]:
    """The mm's maps as ops-format lines ("START-END PERMS [NAME]", offsets from BASE, hex)."""
    files = {f.path: label for label, f in mm.machine.files.items()}
    return arena_maps(mm.maps(), files)


def check(*mms: Mm) -> None:
    """The invariant checker on every machine the mms belong to."""
    for mm in mms:
        check_machine(mm.machine)


def errno_of(call: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """Run a syscall of the model; its errno name ("EINVAL"), or "OK"."""
    try:
        call(*args, **kwargs)
    except OSError as exc:
        assert exc.errno is not None
        return errno.errorcode[exc.errno]
    return "OK"
