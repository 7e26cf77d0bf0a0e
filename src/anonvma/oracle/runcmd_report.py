"""Where ``anonvma run`` writes its reports, apart from the command's own output.

The command's stdout and stderr are relayed to ours, so a report needs a stream of its own to be
read by a program. The report (the table, or JSON with ``--json``) goes to stderr, or to ``-o
FILE`` (``-``: stdout, after the command's output). ``--json-out FILE`` also writes the JSON
report to FILE alone; ``--json-out -`` gives it stdout alone: the command's stdout is then
relayed to stderr, so ``anonvma run --json-out - -- CMD | python3 -m json.tool`` reads only JSON.
"""

from __future__ import annotations

import sys
from typing import IO, List, Optional


class ReportUsageError(ValueError):
    """Two reports asked for one stream (``-o -`` with ``--json-out -``, or one file twice)."""


class Reports:
    """The streams of one run's reports, opened before the run (a path that cannot be written
    fails before the guest boots, not after the command ran).

    :ivar command_stdout: the fd the command's stdout is relayed to: 1, or 2 when ``--json-out -``
        takes our stdout.
    :raises ReportUsageError: ``output`` and ``json_out`` name the same stream.
    :raises OSError: a file cannot be opened for writing (its ``filename`` says which).
    """

    def __init__(self, output: Optional[str] = None, json_out: Optional[str] = None) -> None:
        if json_out is not None and output == json_out:
            where = "stdout" if json_out == "-" else json_out
            raise ReportUsageError(f"-o and --json-out both write to {where}: give the JSON report "
                                   "a stream of its own")
        self.command_stdout = 2 if json_out == "-" else 1
        self._opened: List[IO[str]] = []
        try:
            self._report = self._open(output, default=sys.stderr)
            self._json = None if json_out is None else self._open(json_out, default=sys.stdout)
        except OSError:
            self.close()
            raise

    def _open(self, path: Optional[str], default: IO[str]) -> IO[str]:
        if path is None:
            return default
        if path == "-":
            return sys.stdout
        stream = open(path, "w", encoding="utf-8")  # closed by close()
        self._opened.append(stream)
        return stream

    def write(self, report: str, json_report: str) -> None:
        """Write ``report`` (the table or JSON) where ``-o`` says, and ``json_report`` to
        ``--json-out`` when given; each stream flushed.

        :raises BrokenPipeError: stdout's reader went away.
        """
        for stream, text in ((self._report, report), (self._json, json_report)):
            if stream is not None:
                stream.write(text)
                stream.flush()

    def close(self) -> None:
        """Close the files opened (stdout and stderr stay open)."""
        for stream in self._opened:
            stream.close()
        self._opened.clear()
