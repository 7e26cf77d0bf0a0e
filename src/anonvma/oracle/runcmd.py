"""``anonvma run -- CMD``: run a command inside the oracle kernel and account its memory by name.

The host kernel may lack CONFIG_ANON_VMA_NAME; the oracle kernels have it. The command runs in
a guest whose root is the host's file system, in the caller's directory with the caller's
environment; its stdin, stdout and stderr are relayed (:mod:`anonvma.oracle.relay`), and a
sampler inside (:mod:`anonvma.oracle.runcmd_guest`) reads the smaps of its whole process tree
every ``--every`` seconds. At the end: per name, how many processes held it and its peak size,
RSS, PSS and USS (each summed over the tree at one sample, the largest over the samples; RSS
counts a page shared copy-on-write after a fork once in each process, PSS divides it among
them, USS counts only pages no other process maps). The exit status is
the command's (128+N when signal N killed it); 124 on ``--timeout``, 130 on Ctrl-C, 127 and
126 when it cannot be found or run, 125 when the run itself fails (no kernel built), 141 when
the reader of our stdout goes away (``| head``) before the end. The reports' streams are
:mod:`anonvma.oracle.runcmd_report`'s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Set

from anonvma import releases
from anonvma.oracle.build import OracleMissingError, require_kernel
from anonvma.oracle.boot import Guest, appended, mem_bytes
from anonvma.oracle.procgroup import sigterm_interrupts
from anonvma.oracle.relay import StdinFeed, Tail, stdin_source
from anonvma.oracle.runcmd_report import ReportUsageError, Reports
from anonvma.pipes import discard_stdout
from anonvma.procmaps.format import human_kb, label

#: Exit statuses of the run itself, as timeout(1) and a shell give them.
TIMED_OUT, FAILED, CANNOT_RUN, NOT_FOUND, INTERRUPTED, BROKEN_PIPE = 124, 125, 126, 127, 130, 141
#: How often the host copies the command's output out while it runs.
RELAY_SECONDS = 0.05


class CommandError(Exception):
    """The command cannot run; :attr:`status` is the shell's exit status for it (127, 126)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_command(argv0: str, path: Optional[str], cwd: Path) -> None:
    """Fail as a shell would, before booting, when ``argv0`` cannot be run.

    :raises CommandError: 127 not found, 126 found but not an executable file.
    """
    if "/" not in argv0:
        if shutil.which(argv0, path=path) is None:
            raise CommandError(NOT_FOUND, f"{argv0}: command not found")
        return
    target = cwd / argv0
    if not target.exists():
        raise CommandError(NOT_FOUND, f"{argv0}: No such file or directory")
    if target.is_dir():
        raise CommandError(CANNOT_RUN, f"{argv0}: Is a directory")
    if not os.access(target, os.X_OK):
        raise CommandError(CANNOT_RUN, f"{argv0}: Permission denied")


#: The measures a run keeps the peak of, per name (kB), as the samples name them.
MEASURES = ("size", "rss", "pss", "uss")


@dataclass
class Peak:
    """One name over a run: its kind, the processes that held it, and the largest of each of
    :data:`MEASURES` (kB), each over the samples on its own (the PSS peak may come from
    another sample than the RSS peak)."""

    key: str
    kind: str
    holders: Set[str] = field(default_factory=set)
    size: int = 0
    rss: int = 0
    pss: int = 0
    uss: int = 0

    def as_dict(self) -> Dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "processes": len(self.holders),
                **{f"peak_{m}": getattr(self, m) for m in MEASURES}}


class Peaks:
    """The samples of a run folded per name (each sample's sum over the tree; the largest wins)."""

    def __init__(self) -> None:
        self.names: Dict[str, Peak] = {}
        self.samples = 0
        self.seen = False  # whether any sample read a process (or the command ended before)

    def add(self, sample: Dict[str, Any]) -> None:
        """Fold in one sample line (with the sampler's ``holders``)."""
        self.samples += 1
        self.seen = self.seen or bool(sample["processes"])
        holders = sample.get("holders", {})
        for g in sample["groups"]:
            peak = self.names.setdefault(g["key"], Peak(g["key"], g["kind"]))
            for m in MEASURES:
                setattr(peak, m, max(getattr(peak, m), g.get(m) or 0))
            peak.holders.update(holders.get(g["key"], ()))

    def groups(self) -> List[Peak]:
        """Every name, largest peak PSS first (the memory it took; RSS counts shared pages
        once per process), then by peak RSS and size."""
        return sorted(self.names.values(), key=lambda p: (-p.pss, -p.rss, -p.size, p.key))


@dataclass
class RunResult:
    """How a run ended and what its samples saw.

    :ivar status: our exit status (the command's, or 124, 130, 141, 125).
    :ivar ended: ``exited``, ``timed out``, ``interrupted``, ``output closed`` or ``guest died``.
    :ivar kernel: the guest's kernel release (from the recording's header).
    """

    status: int
    ended: str
    peaks: Peaks
    seconds: float
    kernel: str = ""
    error: str = ""
    sampler: str = ""  # what the sampler wrote to its stderr (a failure to sample)


class _Samples:
    """The sampler's lines as they come: folded into :class:`Peaks`, copied to ``--record``."""

    def __init__(self, path: Path, record: Optional[IO[str]]) -> None:
        self.path, self.record = path, record
        self.offset = 0
        self.peaks = Peaks()
        self.kernel = ""

    def pump(self) -> None:
        data = appended(self.path, self.offset)
        self.offset += len(data)
        for line in data.decode().splitlines():
            doc = json.loads(line)
            if "anonvma_record" in doc:
                self.kernel = str(doc.get("kernel", ""))
            else:
                self.peaks.add(doc)
                doc.pop("holders", None)
            if self.record is not None:
                self.record.write(json.dumps(doc) + "\n")
                self.record.flush()


def run_command(argv: Sequence[str], *, linux: str = releases.DEFAULT, every: float = 0.5,
                timeout: Optional[float] = None, fold: bool = False, match: Optional[str] = None,
                mem: str = "1G", record: Optional[IO[str]] = None, cwd: Optional[Path] = None,
                env: Optional[Dict[str, str]] = None, stdout: int = 1) -> RunResult:
    """Run ``argv`` in the oracle kernel of release (or series) ``linux``; see the module docstring.

    Our fd 0 feeds the command's stdin (unless it is /dev/null), its stdout and stderr are
    copied to our fd ``stdout`` (1, or 2 to keep our stdout for a report) and 2 as they come.
    KeyboardInterrupt (Ctrl-C) ends the guest and is reported as ``interrupted``.

    :raises CommandError: ``argv[0]`` cannot be found or is not executable (checked first).
    :raises OracleMissingError: the kernel is not built (the message names the command).
    """
    workdir = Path.cwd() if cwd is None else cwd
    environ = dict(os.environ if env is None else env)
    check_command(argv[0], environ.get("PATH", os.defpath), workdir)
    kernel = require_kernel("refcount", linux=linux).path
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="anonvma-run-") as tmp:
        work = Path(tmp)
        feed = stdin_source() == "feed"
        spec = {"argv": list(argv), "env": environ, "cwd": str(workdir), "every": every, "stdin": feed,
                "fold": fold, "match": match, "duration": timeout or 0.0}
        (work / "run.json").write_text(json.dumps(spec))
        outputs = [Tail(work / "out", stdout), Tail(work / "err", 2)]
        samples = _Samples(work / "samples", record)
        feeder = StdinFeed(work) if feed else None
        deadline = None if timeout is None else started + timeout
        error = sampler = ""
        try:
            with Guest(kernel, [sys.executable, "-m", "anonvma.oracle.runcmd_guest", str(work)],
                       cwd=workdir, mem=mem) as guest:
                if feeder is not None:
                    feeder.start()
                ended = _follow(guest, work, lambda: _pump(outputs, samples), deadline)
                guest.kill()
                try:
                    _pump(outputs, samples)
                except BrokenPipeError:
                    ended = "output closed"
                if ended == "guest died" and (work / "status").exists():
                    ended = "exited"  # it halted just as the command ended
                sampler = guest.read("stderr")
                if ended == "guest died":
                    error = (f"the guest ended before {argv[0]} did; its console:\n"
                             f"{_tail(guest.read('console'))}\nthe sampler's stderr:\n{_tail(sampler)}")
        finally:
            if feeder is not None:
                feeder.stopped.set()
            for out in outputs:
                out.close()
        status = {"timed out": TIMED_OUT, "interrupted": INTERRUPTED, "output closed": BROKEN_PIPE,
                  "guest died": FAILED}.get(ended, 0)
        if ended == "exited":
            outcome = json.loads((work / "status").read_text())
            status, error = int(outcome["status"]), outcome.get("error", "")
    return RunResult(status, ended, samples.peaks, time.monotonic() - started, samples.kernel, error, sampler)


def _follow(guest: Guest, work: Path, pump: Callable[[], None], deadline: Optional[float]) -> str:
    """Relay (``pump``) until the command ends; how the run ended (see :class:`RunResult`)."""
    try:
        while True:
            finished = (work / "status").exists()  # looked at first: all before it is then pumped
            halted = finished or guest.halted(RELAY_SECONDS)
            pump()
            if finished:
                return "exited"
            if halted:
                return "guest died"
            if deadline is not None and time.monotonic() >= deadline:
                return "timed out"
    except KeyboardInterrupt:
        return "interrupted"
    except BrokenPipeError:
        return "output closed"


def _pump(outputs: Sequence[Tail], samples: _Samples) -> None:
    for out in outputs:
        out.pump()
    samples.pump()


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])


def table(result: RunResult, argv: Sequence[str], every: float, match: Optional[str] = None) -> str:
    """The text report: one line about the run, then PROCS, PEAK SIZE, PEAK RSS, PEAK PSS,
    PEAK USS, NAME per name."""
    rows = [["PROCS", *(f"PEAK {m.upper()}" for m in MEASURES), "NAME"]]
    rows += [[str(len(p.holders)), *(human_kb(getattr(p, m)) for m in MEASURES), label(p.key)]
             for p in result.peaks.groups()]
    last = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(last)]
    body = "".join("  ".join(c.rjust(w) for c, w in zip(r[:last], widths, strict=True))
                   + "  " + r[last] + "\n" for r in rows)
    how = f"exit status {result.status}"
    if result.ended != "exited":
        how = f"{result.ended} ({how})"
    n = result.peaks.samples
    head = (f"{' '.join(argv)}: {how}, {n} sample{'' if n == 1 else 's'} every {every:g} s in "
            f"{result.seconds:.1f} s (Linux {result.kernel or '?'})\n")
    if not result.peaks.names and result.peaks.seen:
        return head + f"no name matched --match {match}\n" if match else head + "no memory\n"
    if not result.peaks.names:
        return head + f"no memory seen: {argv[0]} ended before a sample read it (--every samples sooner)\n"
    return head + body


def as_json(result: RunResult, argv: Sequence[str], linux: str) -> str:
    """The JSON report: exit status, samples, groups (kB), and the command, kernel and seconds."""
    return json.dumps({"exit_status": result.status, "samples": result.peaks.samples,
                       "groups": [p.as_dict() for p in result.peaks.groups()],
                       "command": list(argv), "ended": result.ended, "linux": linux,
                       "kernel": result.kernel, "seconds": round(result.seconds, 3)}, indent=2) + "\n"


def _message(text: str) -> None:
    print(f"anonvma run: {text}", file=sys.stderr, flush=True)


def _main(args: argparse.Namespace) -> int:
    argv = list(args.cmd)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        _message("error: no command given: anonvma run [OPTIONS] -- CMD [ARGS...]")
        return 2
    if args.match is not None:
        try:
            re.compile(args.match)
        except re.error as err:
            _message(f"error: bad --match {args.match!r}: {err}")
            return 2
    try:
        reports = Reports(args.output, args.json_out)
    except ReportUsageError as err:
        _message(f"error: {err}")
        return 2
    except OSError as err:
        _message(f"error: cannot write {err.filename}: {err.strerror}")
        return FAILED
    try:
        return _run(args, argv, reports)
    finally:
        reports.close()


def _run(args: argparse.Namespace, argv: List[str], reports: Reports) -> int:
    """Run and report ``argv`` (the options checked, the report streams open)."""
    try:
        record = None if args.record is None else open(args.record, "w", encoding="utf-8")
    except OSError as err:
        _message(f"error: cannot write {err.filename}: {err.strerror}")
        return FAILED
    try:
        with sigterm_interrupts():
            result = run_command(argv, linux=args.linux, every=args.every, timeout=args.timeout,
                                 fold=args.fold, match=args.match, mem=args.mem, record=record,
                                 stdout=reports.command_stdout)
    except OracleMissingError as err:
        _message(f"error: {err}")
        return FAILED
    except CommandError as err:
        _message(str(err))
        return err.status
    except KeyboardInterrupt:
        return INTERRUPTED  # before the guest started: nothing to report
    except OSError as err:  # this directory gone, the temp directory not writable, ...
        _message(f"error: {err}")
        return FAILED
    finally:
        if record is not None:
            record.close()
    if result.error:
        _message(result.error)
        if result.ended == "exited":
            return result.status  # it could not start (execve failed in the guest): nothing to report
    if result.sampler and result.ended != "guest died":
        _message(f"sampling failed, the report is incomplete: {_tail(result.sampler, 1)}")
    if result.ended == "timed out":
        _message(f"{argv[0]} did not end within {args.timeout:g} s: guest killed")
    json_report = as_json(result, argv, args.linux)
    try:
        reports.write(json_report if args.json else table(result, argv, args.every, args.match), json_report)
    except BrokenPipeError:  # stdout's reader went away before the report: as when it left during the run
        discard_stdout()
        return BROKEN_PIPE
    return result.status


def _size(text: str) -> str:
    """An argparse type: a memory size UML takes (``512M``, ``2G``, bytes), at least 64 MiB."""
    try:
        ok = mem_bytes(text) >= 64 << 20
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"not a memory size of 64M or more: {text} (e.g. 512M, 2G)")
    return text


def register(subparsers: Any) -> None:
    """Add ``run``."""
    from anonvma.procmaps.cli import positive

    p = subparsers.add_parser(
        "run", help="run a command in the oracle kernel and report its memory by name",
        description="Run CMD inside a User-Mode Linux oracle kernel (CONFIG_ANON_VMA_NAME=y), with "
                    "the host's file system as root, this directory, this environment, and stdin, "
                    "stdout and stderr passed through. Every --every seconds the smaps of CMD's "
                    "process tree are read; at the end, per name: the processes that held it and its "
                    "peak size, RSS, PSS and USS, to stderr, or --output (the JSON report to a stream "
                    "of its own with --json-out). RSS counts a page shared after a fork in every "
                    "process; PSS divides it among them, USS counts only the pages no other process "
                    "maps. Exit status: CMD's (128+N if signal "
                    "N killed it); 124 after --timeout, 130 on Ctrl-C (the guest is ended, nothing "
                    "left running), 127 command not found, 126 not executable, 125 the run failed "
                    "(e.g. the kernel is not built: `anonvma oracle build`), 141 when the reader of "
                    "stdout went away (| head).",
        epilog="examples:\n  anonvma run --linux 6.12 -- python3 -c 'print(\"hello\")'\n"
               "  anonvma run --json-out - -- ls / | python3 -m json.tool\n"
               "  anonvma run --json-out report.json -- sleep 1\n"
               "  anonvma run --every 0.2 --record run.jsonl -- sleep 3 && anonvma plot run.jsonl -o run.png")
    p.add_argument("--linux", choices=releases.choices(), default=releases.DEFAULT,
                   help=f"release: {', '.join(releases.names())}, or a series for its newest "
                        f"(default: {releases.DEFAULT})")
    p.add_argument("--every", type=positive(float), default=0.5, metavar="SECONDS",
                   help="seconds between samples (default 0.5); sampling never takes more than "
                        "a fifth of the time, so with many processes samples come less often")
    p.add_argument("--timeout", type=positive(float), metavar="SECONDS",
                   help="end the guest after SECONDS, exit status 124 (default: no limit)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object: {"exit_status", "samples", "groups": [{"key", "kind", '
                        '"processes", "peak_size", "peak_rss", "peak_pss", "peak_uss"}]} (kB)')
    p.add_argument("--record", metavar="FILE",
                   help="keep every sample in FILE, in the format of `anonvma record` (for `anonvma plot`)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the report to FILE ('-': stdout, after CMD's output) instead of stderr")
    p.add_argument("--json-out", metavar="FILE",
                   help="also write the JSON report (as --json prints it) to FILE alone; '-': stdout "
                        "alone, CMD's stdout then goes to stderr (for `| python3 -m json.tool`); "
                        "not with -o naming the same")
    p.add_argument("--match", metavar="REGEX", help="only VMAs whose maps name matches REGEX")
    p.add_argument("--fold", action="store_true", help="fold numbered names ([anon:stack_and_tls:*])")
    p.add_argument("--mem", type=_size, default="1G", metavar="SIZE",
                   help="the guest's memory, e.g. 512M, 4G (default 1G)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]",
                   help="the command and its arguments")
    p.set_defaults(func=_main)
