"""Mutation fuzzer for the maps/smaps parser and the CLI on files.

Takes the real files under tests/data (and every saved crasher under tests/data/fuzz), cuts a
window of a few VMAs, applies random mutations (flip, delete, duplicate or swap lines; change a
digit, a number, an address, a key; truncate; insert bytes) and checks the contract:

- :func:`anonvma.procmaps.parse` either returns a possible address space (page-aligned VMAs,
  start < end, increasing without overlap, no negative counters, smaps Size equal to the
  range, counters on every VMA or on none) or raises ProcmapsParseError naming a line that
  exists; nothing else escapes;
- the fast path, when it accepts an input, returns what the line-by-line path returns;
- :class:`ChunkParser` and :class:`ChunkTally`, fed the input in random pieces, return what
  ``parse`` returns, or its tally (or raise the same error);
- ``anonvma show FILE`` (and ``diff``) exit 0 with output, or 1 with one line on stderr and
  nothing on stdout; never a traceback.

An input that breaks it is saved as tests/data/fuzz/crash-<sha1>.smaps (replayed by
tests/test_procmaps_fuzz.py). Standalone: ``python tests/fuzz_procmaps.py --count 1000000
[--seed S] [--jobs 2] [--cli-every 10]`` prints counts, time and findings as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
import traceback
from typing import Callable, Dict, List, Optional, Tuple

from anonvma.cli import main as cli_main
from anonvma.procmaps import ProcmapsParseError, parse
from anonvma.procmaps import parser as parse_mod
from anonvma.procmaps.records import Smaps, Vma
from anonvma.procmaps.tally import tally_vmas
from fuzz_ops import m_crlf, m_delete_line, m_flip_byte, m_swap_lines  # the generic line mutators
from fuzz_ops import save as save_input

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
CRASHERS = os.path.join(DATA, "fuzz")


def seed_files() -> List[bytes]:
    """The real maps/smaps files under tests/data, and every saved crasher."""
    out = []
    for root, _, files in os.walk(DATA):
        for name in sorted(files):
            if name in ("maps", "smaps") or name.endswith((".smaps", ".maps")):
                with open(os.path.join(root, name), "rb") as f:
                    out.append(f.read())
    return out


def check_space(vmas: List[Vma]) -> Optional[str]:
    """Why ``vmas`` is not a possible address space, or None."""
    prev = 0
    with_counters = {v.smaps is not None for v in vmas}
    if len(with_counters) > 1:
        return "some VMAs have counters, some not"
    for v in vmas:
        if not v.start < v.end:
            return f"start {v.start:x} >= end {v.end:x}"
        if (v.start | v.end) & 0xFFF:
            return "unaligned VMA"
        if v.start < prev:
            return "overlapping or unordered VMAs"
        prev = v.end
        if v.smaps is not None:
            s: Smaps = v.smaps
            if any(isinstance(x, int) and x < 0 for x in s):
                return "negative counter"
            if s.size != (v.end - v.start) >> 10:
                return "Size is not the range"
    return None


def check_parser(data: bytes, rng: random.Random) -> Optional[str]:
    """Why the parser breaks its contract on ``data``, or None."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    try:
        result: object = parse(data, "fuzz")
    except ProcmapsParseError as err:
        if err.lineno is None or not 1 <= err.lineno <= len(lines):
            return f"error names no line of the input: {err}"
        result = ("error", err.lineno, err.why)
    except Exception:  # noqa: BLE001 - anything else is a finding
        return "parse raised " + traceback.format_exc(limit=3)
    if isinstance(result, tuple) and result and result[0] != "error":
        why = check_space(result[0])  # type: ignore[index]
        if why:
            return f"accepted an impossible address space: {why}"
    try:
        fast = parse_mod._parse_fast(data.replace(b"\r\n", b"\n"))
    except (parse_mod._Irregular, ValueError, IndexError):
        fast = None
    except Exception:  # noqa: BLE001
        return "fast path raised " + traceback.format_exc(limit=3)
    if fast is not None and fast != result:
        return "fast path accepted what the line-by-line path did not return"
    steps = []
    while sum(steps) < len(data):
        steps.append(rng.choice((1, 3, 64, 700, 4096, 1 << 16)))
    if isinstance(result, tuple) and result[0] != "error":
        n, counts, sizes = tally_vmas(result[0])  # type: ignore[index]
        expected: object = (n, result[1], counts, sizes)  # type: ignore[index]
    else:
        expected = result
    for chunker, want in ((parse_mod.ChunkParser("fuzz"), result), (parse_mod.ChunkTally("fuzz"), expected)):
        pos = 0
        for step in steps:
            chunker.feed(data[pos:pos + step])  # type: ignore[attr-defined]
            pos += step
        try:
            chunked: object = chunker.finish()  # type: ignore[attr-defined]
        except ProcmapsParseError as err:
            chunked = ("error", err.lineno, err.why)
        except Exception:  # noqa: BLE001
            return f"{type(chunker).__name__} raised " + traceback.format_exc(limit=3)
        if chunked != want:
            return f"{type(chunker).__name__} differs from parse"
    return None


def check_cli(path: str) -> Optional[str]:
    """Why ``anonvma show/diff`` on ``path`` breaks the CLI contract, or None."""
    for argv in (["show", path], ["show", path, "--json", "--fold"], ["diff", path, path, "--csv"]):
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = cli_main(argv)
        except BaseException:  # noqa: BLE001 - a traceback is the finding
            return f"{' '.join(argv[:1])} raised " + traceback.format_exc(limit=3)
        refused = 2 if argv[0] == "diff" else 1  # diff: 1 means "changed", as diff(1)
        if rc == 0 and not out.getvalue():
            return f"{argv[0]} exit 0 without output"
        if rc == refused and (out.getvalue() or err.getvalue().count("\n") != 1):
            return f"{argv[0]} refused but printed to stdout or not one error line"
        if rc not in (0, refused):  # a file against itself has nothing changed
            return f"{argv[0]} exit {rc}"
    return None


# --- mutations: each takes and returns the list of lines (bytes, without newlines) ----------

Mutation = Callable[[List[bytes], random.Random], List[bytes]]


def _digit(line: bytes, rng: random.Random) -> bytes:
    spots = [i for i, c in enumerate(line) if 48 <= c <= 57 or 97 <= c <= 102]
    if not spots:
        return line
    i = rng.choice(spots)
    return line[:i] + bytes([rng.choice(b"0123456789abcdef-+ _x")]) + line[i + 1:]


def _headers(lines: List[bytes]) -> List[int]:
    return [i for i, line in enumerate(lines)
            if b"-" in line[:20] and b" " in line and b":" not in line.split(b" ")[0]]


def m_digit(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))
    lines[i] = _digit(lines[i], rng)
    return lines


def m_number(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))
    words = lines[i].split(b" ")
    spots = [k for k, w in enumerate(words) if w.isdigit()]
    if spots:
        k = rng.choice(spots)
        words[k] = str(rng.choice((0, -1, -4, 4, 8, 2 ** 63, rng.randrange(10 ** 6)))).encode()
        lines[i] = b" ".join(words)
    return lines


def m_address(lines: List[bytes], rng: random.Random) -> List[bytes]:
    heads = _headers(lines)
    if heads:
        i = rng.choice(heads)
        rng_, _, rest = lines[i].partition(b" ")
        a, _, b = rng_.partition(b"-")
        choice = rng.randrange(4)
        try:
            int(a, 16), int(b, 16)
        except ValueError:
            choice = 0
        if choice == 0:
            a, b = b, a
        elif choice == 1:
            b = a
        elif choice == 2:
            a = b"%x" % max(0, int(a, 16) + rng.choice((-0x1000, 0x1000, 0x800, 1)))
        else:
            b = b"%x" % max(0, int(b, 16) + rng.choice((-0x1000, 0x1000, 0x800, 1)))
        lines[i] = a + b"-" + b + b" " + rest
    return lines


def m_duplicate_line(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return lines


def m_duplicate_vma(lines: List[bytes], rng: random.Random) -> List[bytes]:
    heads = _headers(lines) + [len(lines)]
    if len(heads) > 1:
        k = rng.randrange(len(heads) - 1)
        entry = lines[heads[k]:heads[k + 1]]
        at = heads[rng.randrange(len(heads))]
        lines[at:at] = entry
    return lines


def m_swap_vmas(lines: List[bytes], rng: random.Random) -> List[bytes]:
    heads = _headers(lines)
    if len(heads) > 1:
        i, j = rng.sample(heads, 2)
        lines[i], lines[j] = lines[j], lines[i]
    return lines


def m_key(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))
    key, colon, rest = lines[i].partition(b":")
    if colon and b" " not in key:
        new = rng.choice((b"Rss", b"Pss", b"Size", b"VmFlags", b"Name", b"Swap", b"THPeligible",
                          b"ProtectionKey", b"Bogus", b""))
        lines[i] = new + colon + rest
    return lines


def m_truncate(lines: List[bytes], rng: random.Random) -> List[bytes]:
    return lines[:rng.randrange(len(lines) + 1)] or [b""]


def m_insert(lines: List[bytes], rng: random.Random) -> List[bytes]:
    junk = rng.choice((b"", b"\x00", b"\r", b"\t", b"   ", b"\xff\xfe", b"Size: 4 kB", b"VmFlags: rd",
                       b"00400000-00401000 rw-p 00000000 00:00 0 ", b"\x1f\x8b\x08", b"kB", b"-"))
    i = rng.randrange(len(lines))
    line = lines[i]
    j = rng.randrange(len(line) + 1)
    lines[i] = line[:j] + junk + line[j:]
    return lines


MUTATIONS: Tuple[Mutation, ...] = (m_flip_byte, m_digit, m_number, m_address, m_delete_line, m_duplicate_line,
                                   m_swap_lines, m_duplicate_vma, m_swap_vmas, m_key, m_truncate,
                                   m_insert, m_crlf)


def window(data: bytes, rng: random.Random, vmas: int = 6) -> List[bytes]:
    """A few consecutive VMAs of a file, as lines."""
    lines = data.split(b"\n")
    heads = _headers(lines)
    if len(heads) <= vmas:
        return lines
    k = rng.randrange(len(heads) - vmas)
    end = heads[k + vmas] if rng.random() < 0.9 else len(lines)
    return lines[heads[k]:end]


def mutant(seeds: List[bytes], rng: random.Random) -> bytes:
    lines = window(rng.choice(seeds), rng)
    for _ in range(rng.choice((0, 1, 1, 1, 2, 3, 5))):
        lines = rng.choice(MUTATIONS)(lines, rng)
    text = b"\n".join(lines)
    return text if rng.random() < 0.8 else text + b"\n"


def run(count: int, seed: int, cli_every: int = 10, save: bool = True) -> Dict[str, object]:
    """Check ``count`` mutants; return counts, time and findings (saving each crasher)."""
    rng = random.Random(seed)
    seeds = seed_files()
    findings: Dict[str, List[str]] = {}
    outcome = {"accepted": 0, "refused": 0, "cli": 0}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "input.smaps")
        for n in range(count):
            data = mutant(seeds, rng)
            why = check_parser(data, rng)
            try:
                parse(data)
                outcome["accepted"] += 1
            except ProcmapsParseError:
                outcome["refused"] += 1
            if why is None and cli_every and n % cli_every == 0:
                with open(path, "wb") as f:
                    f.write(data)
                why = check_cli(path)
                outcome["cli"] += 1
            if why is not None:
                where = save_input(data, CRASHERS, ".smaps") if save else "(not saved)"
                findings.setdefault(why.splitlines()[0][:200], []).append(where)
    return {"inputs": count, "seed": seed, **outcome, "seconds": round(time.perf_counter() - started, 1),
            "findings": {k: sorted(set(v)) for k, v in findings.items()}}


def _job(args: Tuple[int, int, int]) -> Dict[str, object]:
    return run(*args)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--cli-every", type=int, default=10, help="run the CLI on every Nth input (0: never)")
    args = ap.parse_args()
    started = time.perf_counter()
    per = [args.count // args.jobs + (i < args.count % args.jobs) for i in range(args.jobs)]
    jobs = [(n, args.seed + i, args.cli_every) for i, n in enumerate(per)]
    if args.jobs == 1:
        parts = [_job(jobs[0])]
    else:
        with multiprocessing.Pool(args.jobs) as pool:
            parts = pool.map(_job, jobs)
    findings: Dict[str, List[str]] = {}
    for p in parts:
        for k, v in p["findings"].items():  # type: ignore[attr-defined]
            findings.setdefault(k, []).extend(v)
    total = {k: sum(p[k] for p in parts) for k in ("inputs", "accepted", "refused", "cli")}  # type: ignore[misc]
    report = {**total, "jobs": args.jobs, "seeds": [j[1] for j in jobs],
              "wall_seconds": round(time.perf_counter() - started, 1), "findings": findings}
    print(json.dumps(report, indent=2))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
