"""``anonvma oracle drift``: which served versions it checks and what it says about each.

What Debian serves changes from day to day, so the test command does not ask it; these tests hold
the report to the versions given, and the row a new version would be to the table's newest.
"""

from __future__ import annotations

from anonvma import releases
from anonvma.oracle import drift


#: the series the tests play with, and versions of it newer and older than the table's newest
NEWEST = releases.newest_in(releases.RELEASES[-1].series)
SERIES = NEWEST.series
_PATCH = int(NEWEST.name.split(".")[2])


def _v(ahead: int, debian: str = "1") -> str:
    """A Debian version of SERIES ``ahead`` point releases past (or before) the table's newest."""
    return f"{SERIES}.{_PATCH + ahead}-{debian}"


def _series(served: list[str]) -> drift.SeriesDrift:
    return drift.SeriesDrift(SERIES, NEWEST, served)


def test_only_versions_newer_than_the_series_newest_row_are_checked() -> None:
    d = _series([_v(3), NEWEST.source.version, _v(-1), _v(1, "2")])
    assert d.newer() == [_v(1, "2"), _v(3)]


def test_nothing_newer_is_said_with_the_table_release() -> None:
    lines = _series([NEWEST.source.version, _v(-1)]).lines()
    assert lines[0] == f"Linux {SERIES}: Debian serves {NEWEST.source.version}, {_v(-1)}"
    assert lines[1] == f"  nothing newer than {NEWEST.source.version} (the table's {NEWEST.name})"


def test_a_version_that_runs_like_the_model_is_a_row_and_one_that_differs_shows_its_script() -> None:
    d = _series([_v(1), _v(2), _v(3)])
    d.checked[_v(1)] = (1000, 0, "")
    d.checked[_v(2)] = (1000, 3, '{"op": "maps"}\n')
    lines = d.lines()
    assert f"  {_v(1)}: 0/1000 differ from the model's {NEWEST.name}: add it as a row" in lines
    at = lines.index(f"  {_v(2)}: 3/1000 differ from the model's {NEWEST.name}; "
                     "the shortest first difference:")
    assert lines[at + 1] == '    {"op": "maps"}'
    assert f"  {_v(3)}: not checked" in lines


def test_a_new_version_is_held_to_the_rules_and_recordings_of_its_series_newest_row() -> None:
    row = drift.unlisted_release(_v(5), NEWEST)
    assert (row.series, row.source.version) == (SERIES, _v(5))
    assert row.name == f"{SERIES}.{_PATCH + 5}"
    assert row.backports == NEWEST.backports and row.derives == NEWEST.name
    assert row.source.package == NEWEST.source.package
    assert set(NEWEST.source.suites) <= set(row.source.suites) == set(drift.suites(SERIES))
