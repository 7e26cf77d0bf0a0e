"""``anonvma export``, ``record`` and ``plot``: memory by name for monitoring and over time.

The heavy libraries (prometheus_client, matplotlib) are imported only by the command that
needs them; a missing one is a one-line error naming the extra to install.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
from typing import Any, Callable, List, Optional

from anonvma.fleet.plot import MEASURES
from anonvma.procmaps.categories import Categories, CategoriesError, table
from anonvma.procmaps.cli import UsageError, error_line, positive, warning_lines
from anonvma.procmaps.errors import ProcessNotFoundError
from anonvma.procmaps.group import shown_regex
from anonvma.procmaps.source import pid_of, proc_path


def _targets(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", metavar="PID|FILE", nargs="*",
                   help="process ids ('self' too) or saved smaps files; or --all")
    p.add_argument("--all", action="store_true", help="every process it may read")
    p.add_argument("--match", metavar="REGEX", help="only VMAs whose maps name matches REGEX")


def register(subparsers: Any) -> None:
    """Add ``export``, ``record`` and ``plot``."""
    p = subparsers.add_parser(
        "export", help="Prometheus metrics of memory by name: serve /metrics, or write a textfile",
        description="Export memory by name to Prometheus: anonvma_pss_bytes, anonvma_rss_bytes, "
                    "anonvma_swap_bytes, anonvma_size_bytes, anonvma_processes, anonvma_vmas, "
                    "and the smaps columns of show --fields (anonvma_swap_pss_bytes ... "
                    "anonvma_thp_eligible_vmas; none where the kernel does not print the field) "
                    "(labels name, kind), summed over the processes read at each scrape; "
                    "anonvma_registered and anonvma_estimated (1 for names from a process's "
                    "anonvma registry, and for estimated counters); "
                    "anonvma_process_* per process with --per-process; anonvma_map_count_limit and "
                    "anonvma_process_map_count_used (labels pid, comm: the VMA budget, always); "
                    "anonvma_scrape_errors_total, "
                    "anonvma_series_dropped_total. Needs prometheus_client (pip install "
                    "'anonvma[export]').",
        epilog="examples:\n  anonvma export --all --listen 127.0.0.1:9101\n"
               "  anonvma export --all --textfile /var/lib/node_exporter/anonvma.prom --interval 15\n"
               "  anonvma export --textfile shell.prom $$")
    _targets(p)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", metavar="HOST:PORT",
                       help="serve /metrics there (e.g. 127.0.0.1:9101; :9101 for every interface)")
    where.add_argument("--textfile", metavar="PATH",
                       help="write node_exporter's textfile-collector format to PATH atomically "
                            "(name it *.prom in the collector's directory)")
    p.add_argument("--interval", type=positive(float), metavar="SECONDS",
                   help="with --textfile: rewrite it every SECONDS (default: once)")
    p.add_argument("--no-fold", dest="fold", action="store_false",
                   help="keep numbered names apart ([anon:stack_and_tls:123]); the default folds "
                        "them to bound the number of series")
    p.add_argument("--per-process", action="store_true",
                   help="also export anonvma_process_* series (labels pid, comm, name, kind)")
    p.add_argument("--max-series", type=positive(int), default=10000, metavar="N",
                   help="at most N name-labelled series per scrape, largest PSS first (default "
                        "10000); each name takes up to 15 (anonvma_pss_bytes ... "
                        "anonvma_thp_eligible_vmas), and with --per-process each process's name up "
                        "to 14 more; the rest are counted in "
                        "anonvma_series_dropped_total, with a warning")
    p.add_argument("--category", action="store_true",
                   help="also export anonvma_category_pss_bytes ... anonvma_category_vmas (label "
                        "category: Android's dumpsys meminfo classes and the runtimes' names, "
                        "docs/categories.md); the other series stay as they are")
    p.add_argument("--categories", metavar="FILE",
                   help="with --category: a TOML file of your own categories (category = [regular "
                        "expressions]), tried before the built-in ones")
    p.add_argument("--cgroup-label", action="store_true",
                   help="label every name, process and category series with the memory cgroup of "
                        "its processes (from /proc/PID/cgroup): one series per name and cgroup")
    p.set_defaults(func=_guarded(_export))

    p = subparsers.add_parser(
        "record", help="sample memory by name over time into JSON lines",
        description="Sample the given processes (or --all) every --interval seconds for "
                    "--duration seconds, or without --duration until Ctrl-C (SIGINT) or SIGTERM; "
                    "write JSON lines: a header, then one line per sample with "
                    "its time, the groups summed over processes, and each process with its "
                    "command line. Ctrl-C or SIGTERM ends it between samples, the last one written "
                    "whole, exit status 0. Plot it with `anonvma plot`.",
        epilog="examples:\n  anonvma record --all --interval 1 --duration 60 -o fleet.jsonl\n"
               "  anonvma record --all -o fleet.jsonl\n"
               "  anonvma record $$ --interval 0.5 --duration 2 -o - | head -2")
    _targets(p)
    p.add_argument("--interval", type=positive(float), default=1.0, metavar="S",
                   help="seconds between samples (default 1)")
    p.add_argument("--duration", type=positive(float), metavar="D",
                   help="seconds to record (samples at 0, S, 2S ... up to D); without it, until "
                        "Ctrl-C or SIGTERM")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write ('-': stdout)")
    p.add_argument("--fold", action="store_true", help="fold numbered names ([anon:stack_and_tls:*])")
    p.add_argument("--category", action="store_true",
                   help="also sum each sample per category (docs/categories.md)")
    p.add_argument("--categories", metavar="FILE",
                   help="with --category: a TOML file of your own categories, tried before the built-in ones")
    p.set_defaults(func=_guarded(_record))

    p = subparsers.add_parser(
        "plot", help="draw a recording: memory by name over time (PNG)",
        description="Draw a recording of `anonvma record` as stacked areas: the --top names by "
                    "their largest value, the rest as 'other'. Needs matplotlib (pip install "
                    "'anonvma[plot]').",
        epilog="examples:\n  anonvma record --all --duration 60 -o fleet.jsonl\n"
               "  anonvma plot fleet.jsonl -o fleet.png --measure rss --top 5")
    p.add_argument("recording", metavar="FILE", help="a recording made by `anonvma record`")
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="the picture to write")
    p.add_argument("--measure", choices=MEASURES, default="pss",
                   help="what to draw (default pss)")
    p.add_argument("--top", type=positive(int), default=8, metavar="N", help="names drawn apart (default 8)")
    p.add_argument("--title", default="", help="the title (default: measure, samples, start time)")
    p.set_defaults(func=_guarded(_plot))


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command; an expected failure is one line on stderr and exit status 1."""
    def run(args: argparse.Namespace) -> int:
        try:
            with warning_lines(args.command):
                return fn(args)
        except ImportError as err:
            extra = {"prometheus_client": "export", "matplotlib": "plot"}.get(err.name or "", "")
            hint = f" (pip install 'anonvma[{extra}]')" if extra else ""
            print(f"anonvma {args.command}: error: {err.name or err} is not installed{hint}", file=sys.stderr)
        except UsageError as err:
            print(error_line(args.command, err), file=sys.stderr)
            return 2
        except BrokenPipeError:
            raise  # the reader of -o - went away: quiet (anonvma.cli.main)
        except (OSError, ValueError) as err:
            print(error_line(args.command, err), file=sys.stderr)
        return 1
    return run


def _chosen(args: argparse.Namespace) -> Optional[List[str]]:
    """The targets (``None`` for --all), checked before the first read: a bad --match is a
    :class:`UsageError`; a PID with no process is an error, as in ``show``.

    :raises ProcessNotFoundError: a PID that does not exist.
    """
    if args.all == bool(args.targets):
        raise UsageError("give PIDs or files, or --all")
    if args.match is not None:
        try:
            re.compile(args.match)
        except re.error as err:
            raise UsageError(f"bad --match {shown_regex(args.match)}: {err}") from None
    if args.all:
        return None
    for target in args.targets:
        pid = pid_of(target)
        if pid is not None and not os.path.exists(proc_path(pid, "")):
            raise ProcessNotFoundError(pid, f" (/proc/{pid} does not exist)")
    return list(args.targets)


def _category_table(args: argparse.Namespace) -> Optional[Categories]:
    """The table of ``--category`` (``None`` without it).

    :raises UsageError: ``--categories`` without ``--category``, or a file that cannot be used.
    """
    if not args.category:
        if args.categories is not None:
            raise UsageError("--categories goes with --category")
        return None
    try:
        return table(args.categories)
    except CategoriesError as err:
        raise UsageError(str(err)) from None


def _check_textfile(path: str) -> None:
    """Refuse a --textfile that is not a file to replace (a device, a directory): the rename
    that writes it atomically would replace it (``/dev/null`` with a regular file)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        raise UsageError(f"--textfile {path}: {err.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise UsageError(f"--textfile {path} is {kind}: it would be replaced; give the path of a .prom file")


def _export(args: argparse.Namespace) -> int:
    if args.interval is not None and args.textfile is None:
        raise UsageError("--interval goes with --textfile (Prometheus decides when to scrape --listen)")
    if args.textfile is not None:
        _check_textfile(args.textfile)
    targets = _chosen(args)
    from anonvma.fleet import export
    from anonvma.fleet.metrics import MemoryCollector

    if args.listen is not None:
        try:
            export.parse_listen(args.listen)  # a bad address before anything else
        except ValueError as err:
            raise UsageError(str(err)) from None

    def failed(message: str) -> None:
        print(f"anonvma export: error: {message} (counted in anonvma_scrape_errors_total)",
              file=sys.stderr, flush=True)

    def warn(message: str) -> None:
        print(f"anonvma export: warning: {message}", file=sys.stderr, flush=True)

    collector = MemoryCollector(targets, fold=args.fold, per_process=args.per_process,
                                max_series=args.max_series, match=args.match, on_error=failed,
                                on_warning=warn, categories=_category_table(args),
                                cgroup_label=args.cgroup_label)
    if args.listen is not None:
        def ready(url: str) -> None:
            print(f"serving {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
        return export.serve(collector, args.listen, ready)
    quiet = args.interval is None
    status = export.textfile_loop(collector, args.textfile, args.interval,
                                  (lambda _: None) if quiet else (lambda m: print(m, file=sys.stderr)))
    if quiet and collector.errors["failed"]:
        return 1  # written once, and that scrape failed: said on stderr
    return status


def _record(args: argparse.Namespace) -> int:
    targets = _chosen(args)
    categories = _category_table(args)
    from anonvma.fleet.record import open_output, record

    out = sys.stdout if args.output == "-" else open_output(args.output)
    try:
        n = record(out, targets, args.interval, args.duration, fold=args.fold, match=args.match,
                   categories=categories)
    finally:
        if out is not sys.stdout:
            out.close()
    if args.output != "-":
        print(f"recorded {n} samples to {args.output}", file=sys.stderr)
    return 0


def _plot(args: argparse.Namespace) -> int:
    from anonvma.fleet.plot import plot

    n = plot(args.recording, args.output, args.measure, args.top, args.title)
    print(f"plotted {n} samples to {args.output}", file=sys.stderr)
    return 0
