"""The Linux releases anonvma speaks: one row each, read by the model, the oracle, the tests and
the CLI.

A release is data: its name, the mainline rule set it starts from, the stable backports its
series took (by the commit of the rule version they bring: :mod:`anonvma.model.kernel`
resolves them), where the oracle fetches its source, and the release whose recorded outputs its
own derive from (a curated script stores an expected output for a release only where it differs).
A new point release that brings no new rule is one more row here plus its recordings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import argparse

#: Debian's archives, as the oracle's private apt sources name them.
DEBIAN = "debian"
DEBIAN_SECURITY = "debian-security"


@dataclass(frozen=True)
class Source:
    """Where the oracle fetches a release's source: Debian's ``linux-source-X.Y`` package at an
    exact version, from one of ``suites`` ((archive, suite) pairs)."""

    package: str
    version: str
    suites: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Release:
    """One Linux point release.

    :ivar name: ``"6.1.192"``: what ``--linux``, results and recordings name.
    :ivar mainline: the mainline series whose rules it has (``"6.1"``).
    :ivar backports: the commits of rule versions its stable series took from later mainline
        (or wrote for itself), as the rule versions' ``commit`` tags spell them.
    :ivar source: where the oracle fetches it.
    :ivar derives: the release whose expected outputs are this one's unless it records its own.
    :ivar users: who runs it (shown in listings).
    :ivar uml_task_size: where user space ends in its UML oracle guest on an x86-64 host
        (arch/um/kernel/um_arch.c linux_main: the host's top address less the stub pages, rounded
        down to a PGDIR and capped at what the guest's page tables reach): the model uses it when
        it is compared with that kernel.
    """

    name: str
    mainline: str
    source: Source
    backports: tuple[str, ...] = ()
    derives: Optional[str] = None
    users: str = ""
    uml_task_size: int = 0x7FC0000000  # three-level UML page tables: 512 GiB less one PGDIR

    @property
    def series(self) -> str:
        """The mainline series, e.g. ``"6.12"``."""
        return self.mainline


#: Upstream fixes of MREMAP_DONTUNMAP (mainline 7.3) that the stable series took. 6.1.y took the
#: self-merge fix in a form of its own (no merge at all next to the source), hence its own tag.
_DONTUNMAP_FIXES = ("597e4b9ab48a", "35b0fb391b0d")
_STABLE_6_1 = ("838bb60dc215 (6.1.y)", *_DONTUNMAP_FIXES)
_STABLE_6_12 = ("838bb60dc215", *_DONTUNMAP_FIXES)

#: Every release, oldest first. The first is the root every other one derives from.
RELEASES: tuple[Release, ...] = (
    Release("6.1.176", "6.1",
            Source("linux-source-6.1", "6.1.176-1",
                   ((DEBIAN, "bookworm"), (DEBIAN, "bookworm-updates"))),
            users="Debian 12 (bookworm) without security updates"),
    Release("6.1.192", "6.1",
            Source("linux-source-6.1", "6.1.192-3", ((DEBIAN_SECURITY, "bookworm-security"),)),
            backports=_STABLE_6_1, derives="6.1.176",
            users="Debian 12 with security updates"),
    Release("6.12.95", "6.12",
            Source("linux-source-6.12", "6.12.95-1~bpo12+1", ((DEBIAN, "bookworm-backports"),)),
            derives="6.1.176", users="Debian 12 backports; Android 16's series"),
    Release("6.12.118", "6.12",
            Source("linux-source-6.12", "6.12.118-1", ((DEBIAN_SECURITY, "trixie-security"),)),
            backports=_STABLE_6_12, derives="6.12.95",
            users="Debian 13 (trixie) with security updates; Debian 12 off backports"),
    Release("7.3.4", "7.3",
            Source("linux-source-7.3", "7.3.4-1~bpo13+1", ((DEBIAN, "trixie-backports"),)),
            derives="6.12.118", users="mainline, in Debian 13 backports",
            uml_task_size=0x7F8000000000),  # four-level UML page tables: the host's top, per 512 GiB
)

#: The release every command and the model default to: Debian stable's (and Android 16's)
#: series, newest point release.
DEFAULT = "6.12.118"

_BY_NAME = {r.name: r for r in RELEASES}


def version_key(version: str) -> tuple[int, ...]:
    """Numbers of a version string, for ordering (``"6.12.95-1~bpo12+1"`` -> (6, 12, 95, 1, 12, 1))."""
    return tuple(int(n) for n in re.findall(r"\d+", version))


def names() -> tuple[str, ...]:
    """Every release's name, oldest first."""
    return tuple(r.name for r in RELEASES)


def series() -> tuple[str, ...]:
    """The mainline series the table has, oldest first (``"6.1"``, ``"6.12"``, ...)."""
    return tuple(dict.fromkeys(r.mainline for r in RELEASES))


def newest_in(series_name: str) -> Release:
    """The newest point release of a series.

    :raises ValueError: no release of that series.
    """
    found = [r for r in RELEASES if r.mainline == series_name]
    if not found:
        raise ValueError(f"no release of Linux {series_name} in the table: {', '.join(names())}")
    return max(found, key=lambda r: version_key(r.name))


def resolve(name: str) -> Release:
    """The release ``name`` names: a point release (``"6.1.192"``), or a series (``"6.1"``),
    which means its newest point release.

    :raises ValueError: neither; the message lists what the table has.
    """
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name in series():
        return newest_in(name)
    raise ValueError(f"unknown Linux release {name!r}: one of {', '.join(names())} "
                     f"(or a series, {', '.join(series())}, for its newest)")


def default() -> Release:
    """The release commands default to (:data:`DEFAULT`)."""
    return _BY_NAME[DEFAULT]


def lineage(name: str) -> tuple[Release, ...]:
    """``name``'s release and the ones it derives from, nearest first, ending at the root."""
    out = [resolve(name)]
    while out[-1].derives is not None:
        out.append(_BY_NAME[out[-1].derives])
    return tuple(out)


def choices() -> tuple[str, ...]:
    """What ``--linux`` accepts: every release and every series."""
    return (*names(), *series())


def said(name: str) -> str:
    """How a command announces the release a ``--linux`` value chose: ``"6.1.192"``, or
    ``"6.1.192 (the newest 6.1 the model speaks)"`` for a series."""
    rel = resolve(name)
    return rel.name if rel.name == name else f"{rel.name} (the newest {name} the model speaks)"


def add_linux_option(parser: "argparse.ArgumentParser", what: str) -> None:
    """``--linux RELEASE`` for a command: a release or a series of the table (its newest),
    default :data:`DEFAULT`; the value stays as typed (:func:`said` tells what it chose)."""
    parser.add_argument("--linux", type=_linux_value, default=DEFAULT, metavar="RELEASE",
                        help=f"{what}: one of {', '.join(names())}, or a series ({', '.join(series())}) "
                             f"for its newest (default {DEFAULT})")


def _linux_value(value: str) -> str:
    import argparse

    try:
        resolve(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value
