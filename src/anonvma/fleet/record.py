"""``anonvma record``: sample memory by name over time into JSON lines.

The first line describes the recording (``"anonvma_record": 1``, start time, interval, targets,
units, host); then one line per sample: its time (``t``, seconds since the epoch, and
``elapsed`` since the first sample), every group summed over the processes (``groups``, with
``registered``/``estimated`` as in ``anonvma show --json``), one
row per process with its command line (``processes``), and what was not counted
(``skipped``), how the processes were read (``reads``: ``smaps``, ``rollup``, ``maps``, as
:attr:`anonvma.procmaps.system.System.reads`); with a table of categories, the groups summed
per category too (``categories``, and the table's source in the header). Each line is written
and flushed as it is taken, so a recording cut short keeps every complete sample. Without a
duration it records until SIGINT (Ctrl-C) or SIGTERM, which end it between samples: the sample
being taken is written whole first.
"""

from __future__ import annotations

import json
import platform
import signal
import threading
import time
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence

from anonvma import __version__
from anonvma.procmaps.categories import Categories
from anonvma.procmaps.system import System, by_category, by_name, read_system

FORMAT = 1
#: Group fields kept per name and per process (kB, except count and processes).
FIELDS = ("count", "size", "rss", "pss", "uss", "swap")


def header(targets: Optional[Sequence[str]], interval: float, duration: Optional[float], fold: bool,
           match: Optional[str]) -> Dict[str, Any]:
    """The first line of a recording (``duration`` ``None``: until stopped)."""
    return {"anonvma_record": FORMAT, "version": __version__, "started": time.time(),
            "interval": interval, "duration": duration,
            "targets": "all" if targets is None else list(targets), "fold": fold, "match": match,
            "units": "kB", "host": platform.node(), "kernel": platform.release()}


def sample_line(system: System, first: float, categories: Optional[Categories] = None) -> Dict[str, Any]:
    """One sample as a dict (see the module docstring)."""
    groups = sorted(by_name(system), key=lambda g: (-g.pss, g.key))
    line = {
        "t": system.time, "elapsed": round(system.time - first, 3), "seconds": round(system.seconds, 4),
        "groups": [{"key": g.key, "kind": g.kind, "processes": g.processes,
                    **{f: g.value(f) for f in FIELDS}, "registered": g.registered,
                    "estimated": g.estimated} for g in groups],
        "processes": [{"pid": p.pid, "cmdline": p.cmdline, "comm": p.comm,
                       **{f: p.total.value(f) for f in FIELDS}} for p in system.processes],
        "kernel_threads": system.kernel_threads, "skipped": system.skipped, "reads": system.reads,
    }
    if categories is not None:
        line["categories"] = [{"key": g.key, "processes": g.processes, **{f: g.value(f) for f in FIELDS}}
                              for g in sorted(by_category(system, categories), key=lambda g: (-g.pss, g.key))]
    return line


def _stopping_on_signals(stop: threading.Event) -> Dict[int, Any]:
    """Make SIGTERM, and SIGINT unless it is ignored or someone else's, set ``stop`` instead of
    ending the process mid-line (SIGINT ignored, as a background job starts, stays ignored);
    the handlers replaced, to put back. Main thread only."""
    def stopping(signum: int, frame: Any) -> None:
        stop.set()
    wanted = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # Python's: KeyboardInterrupt
        wanted.append(signal.SIGINT)
    return {sig: signal.signal(sig, stopping) for sig in wanted}


def record(out: IO[str], targets: Optional[Sequence[str]], interval: float, duration: Optional[float], *,
           fold: bool = False, match: Optional[str] = None, categories: Optional[Categories] = None) -> int:
    """Write a recording to ``out``: samples at 0, interval, 2*interval ... up to ``duration`` s
    (``None``: until SIGINT or SIGTERM).

    SIGINT (Ctrl-C) and SIGTERM stop it between samples, keeping what it has: the sample being
    taken is written whole first. Returns the number of samples.
    """
    stop = threading.Event()
    previous = _stopping_on_signals(stop)
    samples = 0
    try:
        head = header(targets, interval, duration, fold, match)
        if categories is not None:
            head["categories"] = categories.source
        out.write(json.dumps(head) + "\n")
        out.flush()
        start = time.monotonic()
        first: Optional[float] = None
        while True:
            system = read_system(targets, by="name", fold=fold, match=match)
            first = system.time if first is None else first
            out.write(json.dumps(sample_line(system, first, categories)) + "\n")
            out.flush()
            samples += 1
            due = start + samples * interval
            if duration is not None and due - start > duration + 1e-9:
                break
            if stop.wait(max(0.0, due - time.monotonic())):
                break
    except KeyboardInterrupt:  # SIGINT with another handler than Python's, which raises it
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return samples


def load(path: str) -> Iterator[Dict[str, Any]]:
    """The lines of a recording: its header first, then the samples.

    :raises ValueError: not an anonvma recording (names the line).
    """
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not JSON ({err.msg})") from err
            if lineno == 1 and not (isinstance(doc, dict) and doc.get("anonvma_record") == FORMAT):
                raise ValueError(f"{path}:1: not an anonvma recording (made by `anonvma record`)")
            if not isinstance(doc, dict):
                raise ValueError(f"{path}:{lineno}: not a JSON object")
            yield doc


def samples(path: str) -> List[Dict[str, Any]]:
    """The samples of a recording (its header checked, then dropped)."""
    lines = list(load(path))
    if not lines:
        raise ValueError(f"{path}: empty file, not an anonvma recording")
    return lines[1:]


def open_output(path: str) -> IO[str]:
    """A new file to record into, line by line.

    :raises OSError: naming ``path``.
    """
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as err:
        raise OSError(err.errno, f"cannot write {path}: {err.strerror}") from err
