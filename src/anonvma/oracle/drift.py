"""``anonvma oracle drift``: the kernel sources Debian serves now that the release table does not
hold, and whether the model's nearest release already runs them exactly.

Per series of :mod:`anonvma.releases`, the private apt setup (:class:`~anonvma.oracle.build.PrivateApt`)
asks the suites of that series' rows which versions of its ``linux-source`` package they serve.
A version newer than the series' newest row is built (refcount) and runs random scripts beside
the model of that row: no difference means the new release is one row of data; a difference is
shrunk to the shortest script that still shows it, which is where a new rule version starts.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from anonvma import releases
from anonvma.oracle.procgroup import sigterm_interrupts
from anonvma.oracle.build import OracleBuildError, PrivateApt, build_unlisted, cache_dir, release_of
from anonvma.releases import Release, Source

Log = Callable[[str], None]


@dataclass
class SeriesDrift:
    """What Debian serves for one series, and the verdict on each version newer than the table.

    :ivar newest: the table's newest release of the series (the model the new ones are held to).
    :ivar served: every version Debian serves, newest first.
    :ivar checked: version -> (scripts, scripts that differ, the shortest differing script's
        text or ``""``).
    """

    series: str
    newest: Release
    served: list[str]
    checked: dict[str, tuple[int, int, str]] = field(default_factory=dict)

    def newer(self) -> list[str]:
        """Served versions newer than the table's newest of the series, oldest first."""
        mine = releases.version_key(self.newest.source.version)
        return sorted((v for v in self.served if releases.version_key(v) > mine), key=releases.version_key)

    def lines(self) -> list[str]:
        """The report: one line per version checked, or one saying nothing is newer."""
        out = [f"Linux {self.series}: Debian serves {', '.join(self.served) or 'nothing'}"]
        if not self.newer():
            out.append(f"  nothing newer than {self.newest.source.version} (the table's {self.newest.name})")
        for version in self.newer():
            if version not in self.checked:
                out.append(f"  {version}: not checked")
                continue
            count, differ, shortest = self.checked[version]
            if differ == 0:
                out.append(f"  {version}: 0/{count} differ from the model's {self.newest.name}: "
                           "add it as a row")
                continue
            out.append(f"  {version}: {differ}/{count} differ from the model's {self.newest.name}; "
                       "the shortest first difference:")
            out.extend(f"    {line}" for line in shortest.splitlines())
        return out


def suites(series: str) -> tuple[tuple[str, str], ...]:
    """Every (archive, suite) a row of ``series`` is fetched from, in table order."""
    found: list[tuple[str, str]] = []
    for rel in releases.RELEASES:
        if rel.series == series:
            found.extend(s for s in rel.source.suites if s not in found)
    return tuple(found)


def served(series: str, log: Log) -> SeriesDrift:
    """Ask Debian (the suites of ``series``' rows) which source versions it has now.

    :raises OracleBuildError: apt-get could not fetch the package lists.
    """
    newest = releases.resolve(series)
    source = Source(newest.source.package, "", suites(series))
    apt = PrivateApt(cache_dir() / "apt" / f"drift-{series}", source)
    log(f"Linux {series}: asking {', '.join(s for _, s in source.suites)} for {source.package}")
    apt.update()
    return SeriesDrift(series, newest, apt.versions(source.package))


def unlisted_release(version: str, newest: Release) -> Release:
    """A row for ``version`` as the table would hold it if it brought no new rule: the rules
    and backports of ``newest``, its recordings inherited."""
    return Release(release_of(version), newest.mainline,
                   Source(newest.source.package, version, suites(newest.series)),
                   newest.backports, newest.name, "served by Debian now; not in the table")


def check(drift: SeriesDrift, version: str, count: int, seed: int, jobs: Optional[int], log: Log) -> None:
    """Build ``version``, run ``count`` random scripts on it and on the model of the series'
    newest row, and record the verdict in ``drift``."""
    from anonvma.difftest.compare import OracleBackend, compare, shrink_divergence
    from anonvma.difftest.generate import random_script
    from anonvma.ops import script_text

    build = build_unlisted(unlisted_release(version, drift.newest), log=log)
    linux = drift.newest.name
    scripts = [random_script(seed + i) for i in range(count)]
    with OracleBackend(linux=linux, jobs=jobs, kernel=build.path) as backend:
        got = compare(scripts, backend, linux=linux)
        differing = [i for i, d in enumerate(got.differs) if d is not None]
        shortest = ""
        if differing:
            log(f"{version}: {len(differing)}/{count} differ; shrinking the first")
            small = shrink_divergence(scripts[differing[0]], backend, linux=linux)
            shortest = script_text(small.ops)
    drift.checked[version] = (count, len(differing), shortest)


def main(args: argparse.Namespace, log: Log) -> int:
    """``anonvma oracle drift``: 0 when nothing newer differs, 1 when something does or a build
    failed."""
    chosen: Sequence[str] = args.series or releases.series()
    status = 0
    with sigterm_interrupts():
        for series in chosen:
            status = max(status, _one(series, args, log))
    return status


def _one(series: str, args: argparse.Namespace, log: Log) -> int:
    """Check one series and print its report; 1 when a new version differs or a step failed."""
    try:
        drift = served(series, log)
        for version in drift.newer():
            check(drift, version, args.count, args.seed, args.jobs, log)
    except OracleBuildError as exc:
        log(f"error: Linux {series}: {exc}")
        return 1
    print("\n".join(drift.lines()), flush=True)
    return 1 if any(differ for _, differ, _ in drift.checked.values()) else 0


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", log: Log) -> None:
    """Add ``oracle drift`` to the ``anonvma oracle`` subcommands."""
    d = sub.add_parser(
        "drift", help="what Debian serves now that the release table lacks, and whether the model runs it",
        description="Ask Debian (a private apt setup, as `oracle build` does) which linux-source "
                    "versions each series of the release table has now; build each one newer than "
                    "the table (refcount) and run random scripts on it beside the model of the "
                    "series' newest release. Exit status 0 when none differs, 1 when one does "
                    "(the shortest differing script is printed) or a build failed.",
        epilog="example:\n  anonvma oracle drift --series 7.3 --count 1000")
    d.add_argument("--series", action="append", choices=releases.series(), default=None,
                   help="a series to check (repeatable; default: every series of the table)")
    d.add_argument("--count", type=_positive, default=1000,
                   help="random scripts per new version (default 1000)")
    d.add_argument("--seed", type=int, default=0, help="seed of the first script (default 0)")
    d.add_argument("--jobs", type=_positive, default=None, help="guests at once (default: CPU count)")
    d.set_defaults(func=lambda a: main(a, log))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


__all__ = ["SeriesDrift", "check", "main", "register", "served", "suites", "unlisted_release"]
