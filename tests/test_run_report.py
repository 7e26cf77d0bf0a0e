"""Where ``anonvma run`` writes its reports (``-o``, ``--json-out``), without booting a kernel.

The run itself is replaced by a finished :class:`RunResult`; what is checked is what a user of
``anonvma run ... | python3 -m json.tool`` gets on each stream, and where CMD's stdout is relayed.
"""

from __future__ import annotations

import io
import json
from typing import Any, Dict

import pytest

from anonvma import releases
from anonvma.cli import build_parser
from anonvma.oracle import runcmd
from anonvma.oracle.runcmd import BROKEN_PIPE, Peaks, RunResult, as_json
from anonvma.oracle.runcmd_report import ReportUsageError, Reports


def finished(status: int = 3) -> RunResult:
    peaks = Peaks()
    peaks.add({"processes": [{"pid": 1}], "holders": {"[anon:cache]": ["1"]},
               "groups": [{"key": "[anon:cache]", "kind": "anon_named", "size": 2048, "rss": 1024,
                           "pss": 512, "uss": 256}]})
    return RunResult(status, "exited", peaks, 1.25, releases.DEFAULT)


@pytest.fixture
def fake_run(monkeypatch) -> Dict[str, Any]:
    """``run_command`` replaced by one returning :func:`finished`; the keywords it was given."""
    given: Dict[str, Any] = {}

    def run_command(argv, **kwargs):
        given.update(kwargs, argv=list(argv))
        return finished()
    monkeypatch.setattr(runcmd, "run_command", run_command)
    return given


def main(*argv: str) -> int:
    args = build_parser(["run"]).parse_args(["run", *argv])
    return int(args.func(args))


def test_json_out_dash_puts_the_json_alone_on_stdout_and_relays_the_command_to_stderr(fake_run, capsys):
    assert main("--json-out", "-", "--", "true") == 3
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["exit_status"] == 3 and doc["command"] == ["true"]
    assert doc["groups"] == [{"key": "[anon:cache]", "kind": "anon_named", "processes": 1,
                              "peak_size": 2048, "peak_rss": 1024, "peak_pss": 512, "peak_uss": 256}]
    assert fake_run["stdout"] == 2  # CMD's stdout goes to stderr
    assert "PEAK RSS  PEAK PSS  PEAK USS  NAME" in err and err.rstrip().endswith("[anon:cache]")


def test_json_out_file_is_the_json_report_and_the_table_stays_on_stderr(fake_run, capsys, tmp_path):
    report = tmp_path / "report.json"
    assert main("--json-out", str(report), "--", "true") == 3
    out, err = capsys.readouterr()
    assert out == "" and "PEAK USS  NAME" in err
    assert fake_run["stdout"] == 1
    assert json.loads(report.read_text()) == json.loads(as_json(finished(), ["true"], fake_run["linux"]))


def test_without_json_out_the_report_goes_where_o_says_and_stdout_is_the_commands(fake_run, capsys,
                                                                                  tmp_path):
    assert main("--json", "-o", "-", "--", "true") == 3
    out, err = capsys.readouterr()
    assert json.loads(out)["exit_status"] == 3 and err == "" and fake_run["stdout"] == 1
    assert main("--", "true") == 3
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("true: exit status 3, 1 sample every 0.5 s")


def test_two_reports_on_one_stream_are_refused_before_the_run(fake_run, capsys, tmp_path):
    same = str(tmp_path / "r.json")
    for argv in (["-o", "-", "--json-out", "-"], ["-o", same, "--json-out", same]):
        assert main(*argv, "--", "true") == 2
        assert "both write to" in capsys.readouterr().err
    assert fake_run == {}  # nothing ran
    assert not (tmp_path / "r.json").exists()


def test_a_json_out_that_cannot_be_written_fails_before_the_run_and_closes_what_it_opened(tmp_path,
                                                                                         monkeypatch):
    opened = []

    def tracked(*args, **kwargs):
        opened.append(open(*args, **kwargs))
        return opened[-1]
    monkeypatch.setattr("anonvma.oracle.runcmd_report.open", tracked, raising=False)
    with pytest.raises(OSError) as exc:
        Reports(str(tmp_path / "report.txt"), str(tmp_path / "missing" / "r.json"))
    assert exc.value.filename == str(tmp_path / "missing" / "r.json")
    assert len(opened) == 1 and opened[0].closed  # -o's file, opened first
    with pytest.raises(ReportUsageError):
        Reports("-", "-")


class _Closed(io.StringIO):
    """A stdout whose reader has gone."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_report_to_a_stdout_whose_reader_has_gone_is_141_and_quiet(fake_run, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdout", _Closed())
    assert main("--json-out", "-", "--", "true") == BROKEN_PIPE
    assert "Broken pipe" not in capsys.readouterr().err


def test_peak_pss_and_uss_are_reported_beside_rss_each_the_largest_of_its_own_samples():
    """Before a fork a page is RSS, PSS and USS of one process; after it, shared copy-on-write,
    it is RSS of both, PSS half of each, USS of neither: each column keeps its own peak."""
    peaks = Peaks()
    peaks.add({"processes": [{"pid": 1}], "holders": {"[anon:parent]": ["1:9"]},
               "groups": [{"key": "[anon:parent]", "kind": "anon_named", "size": 1024, "rss": 1024,
                           "pss": 1024, "uss": 1024}]})
    peaks.add({"processes": [{"pid": 1}, {"pid": 2}], "holders": {"[anon:parent]": ["1:9", "2:30"]},
               "groups": [{"key": "[anon:parent]", "kind": "anon_named", "size": 2048, "rss": 2048,
                           "pss": 1024, "uss": 0}]})
    result = RunResult(0, "exited", peaks, 1.0, releases.DEFAULT)
    (group,) = json.loads(as_json(result, ["fork"], releases.DEFAULT))["groups"]
    peak = (group["processes"], group["peak_rss"], group["peak_pss"], group["peak_uss"])
    assert peak == (2, 2048, 1024, 1024)
    lines = runcmd.table(result, ["fork"], 0.5).splitlines()
    assert lines[1].split() == ["PROCS", "PEAK", "SIZE", "PEAK", "RSS", "PEAK", "PSS", "PEAK", "USS", "NAME"]
    assert lines[2].split() == ["2", "2.0M", "2.0M", "1.0M", "1.0M", "[anon:parent]"]
