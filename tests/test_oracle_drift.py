"""``anonvma oracle drift``: which served versions it checks and what it says about each.

What Debian serves changes from day to day, so the test command does not ask it; these tests hold
the report to the versions given, and the row a new version would be to the table's newest.
"""

from __future__ import annotations

from anonvma import releases
from anonvma.oracle import drift


def _series(served: list[str]) -> drift.SeriesDrift:
    newest = releases.resolve("6.12")
    return drift.SeriesDrift("6.12", newest, served)


def test_only_versions_newer_than_the_series_newest_row_are_checked() -> None:
    newest = releases.resolve("6.12").source.version
    d = _series(["6.12.121-1", newest, "6.12.117-1", "6.12.119-2"])
    assert d.newer() == ["6.12.119-2", "6.12.121-1"]


def test_nothing_newer_is_said_with_the_table_release() -> None:
    newest = releases.resolve("6.12")
    lines = _series([newest.source.version, "6.12.117-1"]).lines()
    assert lines[0] == f"Linux 6.12: Debian serves {newest.source.version}, 6.12.117-1"
    assert lines[1] == f"  nothing newer than {newest.source.version} (the table's {newest.name})"


def test_a_version_that_runs_like_the_model_is_a_row_and_one_that_differs_shows_its_script() -> None:
    newest = releases.resolve("6.12")
    d = _series(["6.12.119-1", "6.12.120-1", "6.12.121-1"])
    d.checked["6.12.119-1"] = (1000, 0, "")
    d.checked["6.12.120-1"] = (1000, 3, '{"op": "maps"}\n')
    lines = d.lines()
    assert f"  6.12.119-1: 0/1000 differ from the model's {newest.name}: add it as a row" in lines
    at = lines.index(f"  6.12.120-1: 3/1000 differ from the model's {newest.name}; "
                     "the shortest first difference:")
    assert lines[at + 1] == '    {"op": "maps"}'
    assert "  6.12.121-1: not checked" in lines


def test_a_new_version_is_held_to_the_rules_and_recordings_of_its_series_newest_row() -> None:
    newest = releases.resolve("6.1")
    row = drift.unlisted_release("6.1.199-1", newest)
    assert (row.name, row.series, row.source.version) == ("6.1.199", newest.series, "6.1.199-1")
    assert row.backports == newest.backports and row.derives == newest.name
    assert row.source.package == newest.source.package
    assert set(newest.source.suites) <= set(row.source.suites) == set(drift.suites("6.1"))
