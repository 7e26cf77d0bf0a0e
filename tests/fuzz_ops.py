"""Fuzzers for the ops-script parser, ``anonvma replay`` on files, and the naming argument checks.

Two targets, each with its contract:

- ``script``: mutants of the real scripts under tests/scripts (and of every saved crasher):
  flipped, inserted or deleted bytes, invalid UTF-8, Unicode line separators, lines deleted,
  duplicated, swapped or cut, JSON values replaced by values of every type and edge, keys
  dropped or added, ops and pids changed. :func:`anonvma.ops.parse_script` must return ops or
  raise ScriptError naming a line the text has (``line N: ...``, one line of message), never
  anything else; what it accepts must parse back the same from ``script_text``. Every Nth
  input also goes through ``anonvma replay FILE`` (the model): exit 0 with one result line
  per op and nothing on stderr, or exit 2 with nothing on stdout and one line on stderr
  naming the file and the same line; never a traceback, never more than a few seconds.
- ``naming``: random names (bytes, text, surrogates, NULs, lengths around 80, forbidden
  characters, other types) and ranges (edges of alignment and of 64 bits, negatives, floats,
  bools, None). :func:`anonvma.anon_name.check_anon_name` and ``check_range``,
  :func:`anonvma.live.naming.validate_name` and ``validate_range`` and the model's
  ``Mm.set_anon_name`` raise nothing but OSError (EINVAL) or TypeError, and agree where their
  rules are the same (validate_name also refuses a NUL that the kernel would cut at; None
  clears a name).

An input that breaks a contract is saved under tests/data/fuzz_ops/ (scripts, ``.jsonl``) or
tests/data/fuzz_naming/ (``.json``, the arguments in a tagged form) and replayed by
tests/test_ops_fuzz.py. Standalone: ``python tests/fuzz_ops.py --target script --count
1000000 [--seed S] [--jobs 2] [--cli-every 20]`` prints counts, time and findings as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import io
import json
import multiprocessing
import os
import random
import re
import signal
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from anonvma.anon_name import check_anon_name, check_range
from anonvma.cli import main as cli_main
from anonvma.live.naming import validate_name, validate_range
from anonvma.model import Mm
from anonvma.ops import ADDR_LIMIT, OPS, ScriptError, parse_script, script_text

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "scripts")
SCRIPT_CRASHERS = os.path.join(HERE, "data", "fuzz_ops")
NAMING_CRASHERS = os.path.join(HERE, "data", "fuzz_naming")
#: seconds one ``anonvma replay`` of a mutant may take before it counts as a finding
CLI_TIMEOUT = 10
U64 = (1 << 64) - 1
PAGE = 4096


# --- the script target ------------------------------------------------------------------------------

def seed_scripts() -> List[bytes]:
    """Every script under tests/scripts, and every saved crasher."""
    out = []
    for root in (SCRIPTS, SCRIPT_CRASHERS):
        for dirpath, _, files in os.walk(root):
            for name in sorted(files):
                if name.endswith(".jsonl"):
                    with open(os.path.join(dirpath, name), "rb") as f:
                        out.append(f.read())
    return out


def parse_outcome(data: bytes) -> Tuple[str, Any]:
    """("ops", ops) or ("refused", line number) as the contract allows, or ("finding", why).

    Bytes that are not UTF-8 are refused by ``anonvma replay`` before parsing; the parser
    itself is then given them decoded with surrogate escapes, so it meets odd text too.
    """
    try:
        text = data.decode("utf-8")
        undecodable: Optional[int] = None
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", "surrogateescape")
        undecodable = data.count(b"\n", 0, exc.start) + 1
    lines = text.split("\n")
    try:
        ops = parse_script(text)
    except ScriptError as exc:
        if not 1 <= exc.lineno <= len(lines):
            return "finding", f"ScriptError names line {exc.lineno} of {len(lines)}"
        if not str(exc).startswith(f"line {exc.lineno}: ") or "\n" in str(exc):
            return "finding", f"ScriptError message is not one 'line N: ...' line: {str(exc)[:80]!r}"
        return "refused", undecodable if undecodable is not None else exc.lineno
    except Exception:  # noqa: BLE001 - anything else is a finding
        return "finding", "parse_script raised " + traceback.format_exc(limit=4)
    if len(ops) != sum(1 for line in lines if line.strip()):
        return "finding", "accepted, but not one op per non-blank line"
    again = parse_script(script_text(ops))
    if [(o.op, o.pid, dict(o.args)) for o in again] != [(o.op, o.pid, dict(o.args)) for o in ops]:
        return "finding", "accepted ops do not parse back the same from script_text"
    if undecodable is not None:
        return "refused", undecodable
    return "ops", ops


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def check_cli(path: str, outcome: Tuple[str, Any]) -> Optional[str]:
    """Why ``anonvma replay PATH`` breaks the CLI contract, given the parser's outcome; or None."""
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CLI_TIMEOUT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli_main(["replay", path])
    except _Timeout:
        return f"replay took over {CLI_TIMEOUT} s"
    except BaseException:  # noqa: BLE001 - a traceback (or SystemExit) is the finding
        return "replay raised " + traceback.format_exc(limit=4)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    kind, value = outcome
    if kind == "ops":
        if rc != 0 or err.getvalue():
            return f"replay of an accepted script: exit {rc}, stderr {err.getvalue()[:200]!r}"
        lines = out.getvalue().splitlines()
        if len(lines) != len(value):
            return f"replay printed {len(lines)} result lines for {len(value)} ops"
        for line in lines:
            obj = json.loads(line)
            if not isinstance(obj, dict) or not ({"ret", "errno", "maps"} & set(obj)):
                return f"replay printed a result that is none of ret, errno, maps: {line[:100]!r}"
        return None
    if rc != 2:
        return f"replay of a refused script: exit {rc}"
    if out.getvalue():
        return "replay refused the script but printed on stdout"
    msg = err.getvalue()
    if msg.count("\n") != 1 or not msg.startswith(f"anonvma replay: {path}: line {value}: "):
        return f"replay's refusal is not one line naming line {value}: {msg[:200]!r}"
    return None


# mutations: each takes and returns the list of lines (bytes, without newlines)
Mutation = Callable[[List[bytes], random.Random], List[bytes]]

JUNK = (b"", b"\x00", b"\r", b"\t", b" ", b"\xff", b"\xc3", b"\xc3\xa9", b"\xed\xa0\x80", b"\xef\xbb\xbf",
        "\u2028".encode(), "\u0085".encode(), "\x1c".encode(), b"\x85", b"{", b"}", b"[", b"]", b",", b":",
        b'"', b"\\", b"\\u0000", b"\\ud800", b"null", b"NaN", b"-Infinity", b"1e999", b"-0", b"0x10",
        b"[" * 3000, b"9" * 5000, b'{"op": "fork"}', b'"pid": 1', b'"op": "exit"')


def _interesting(rng: random.Random) -> Any:
    """A JSON value chosen for the edges of the parser's checks and the model's arithmetic."""
    return rng.choice((
        0, 1, -1, 7, PAGE - 1, PAGE, PAGE + 1, 64 * PAGE, 2**31, 2**32, 2**48, 2**63, U64 - PAGE + 1, U64,
        U64 + 1, ADDR_LIMIT, ADDR_LIMIT + 1, U64 >> 12, (U64 >> 12) + 1, 1 << 36, 0x7FC0000000,
        rng.randrange(1 << 20) * PAGE, rng.randrange(U64 + 1), 1.5, -0.0, 1e308, 4096.0,
        True, False, None, "", "rw", "rwx", "rr", "RW", "q", "x" * 79, "x" * 80, "a\\b", "\x85", "a\u2028b",
        "\u00e9", "\ud800", "a\x00b", "f0", "f1", "f 0", "shared", "private", "dontfork", "wipeonfork",
        "normal", "maymove", "fixed", [], {}, ["maymove"], ["maymove", "fixed"], ["dontunmap"],
        ["maymove", "fixed", "dontunmap"], ["fixed", "fixed"], [["maymove"]], [1], {"a": 1},
        rng.choice(list(OPS)), [0] * 3))


KEYS = ("op", "pid", "addr", "len", "prot", "share", "file", "pgoff", "noreserve", "populate", "advice",
        "onfault", "name", "write", "new_len", "flags", "new_addr", "bogus")


def _json_line(line: bytes, rng: random.Random, change: Callable[[Dict[str, Any]], None]) -> bytes:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return line
    if not isinstance(obj, dict):
        return line
    change(obj)
    return json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


def m_value(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))

    def change(obj: Dict[str, Any]) -> None:
        key = rng.choice(list(obj) if obj and rng.random() < 0.7 else KEYS)
        obj[key] = _interesting(rng)
    lines[i] = _json_line(lines[i], rng, change)
    return lines


def m_drop_key(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))

    def change(obj: Dict[str, Any]) -> None:
        if obj:
            del obj[rng.choice(list(obj))]
    lines[i] = _json_line(lines[i], rng, change)
    return lines


def m_op(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))

    def change(obj: Dict[str, Any]) -> None:
        obj["op"] = rng.choice(list(OPS) + ["", "MMAP", "munmap ", None, 3, ["fork"]])
    lines[i] = _json_line(lines[i], rng, change)
    return lines


def m_pid(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))

    def change(obj: Dict[str, Any]) -> None:
        obj["pid"] = rng.choice((0, 1, 2, 3, 4, -1, 1.0, "1", True, None, 2**64))
    lines[i] = _json_line(lines[i], rng, change)
    return lines


def m_digit(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))
    line = lines[i]
    spots = [k for k, c in enumerate(line) if 48 <= c <= 57]
    if spots:
        k = rng.choice(spots)
        digits = rng.choice((b"0", b"9", b"", b"99999999999999999999", b"-", b".5", b"e9"))
        line = line[:k] + digits + line[k + 1:]
        lines[i] = line
    return lines


def m_flip_byte(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))
    line = bytearray(lines[i] or b" ")
    line[rng.randrange(len(line))] = rng.randrange(256)
    lines[i] = bytes(line)
    return lines


def m_insert(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))
    line = lines[i]
    j = rng.randrange(len(line) + 1)
    lines[i] = line[:j] + rng.choice(JUNK) + line[j:]
    return lines


def m_delete_line(lines: List[bytes], rng: random.Random) -> List[bytes]:
    del lines[rng.randrange(len(lines))]
    return lines or [b""]


def m_duplicate_line(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return lines


def m_swap_lines(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return lines


def m_truncate(lines: List[bytes], rng: random.Random) -> List[bytes]:
    i = rng.randrange(len(lines))
    lines = lines[:i + 1]
    lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]
    return lines


def m_crlf(lines: List[bytes], rng: random.Random) -> List[bytes]:
    return [line + b"\r" for line in lines]


MUTATIONS: Tuple[Mutation, ...] = (m_value, m_value, m_value, m_drop_key, m_op, m_pid, m_digit, m_flip_byte,
                                   m_insert, m_insert, m_delete_line, m_duplicate_line, m_swap_lines,
                                   m_truncate, m_crlf)


def script_mutant(seeds: List[bytes], rng: random.Random) -> bytes:
    """One mutant: a seed script (sometimes spliced with another), then 0-5 mutations."""
    lines = rng.choice(seeds).split(b"\n")
    if rng.random() < 0.1:
        other = rng.choice(seeds).split(b"\n")
        cut = rng.randrange(len(lines) + 1)
        lines = lines[:cut] + other[rng.randrange(len(other) + 1):]
    lines = lines or [b""]
    for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3, 5))):
        lines = rng.choice(MUTATIONS)(lines, rng)
    return b"\n".join(lines)


def finding_key(why: str) -> str:
    """A finding's kind: its last line with numbers and quoted bits blotted out (one key per bug)."""
    last = why.strip().splitlines()[-1]
    return re.sub(r"'[^']*'|\"[^\"]*\"|\b0x[0-9a-fA-F]+\b|\d+", "_", last)[:160]


#: crashers kept per kind of finding and run: the smallest inputs
KEEP = 3


class Findings:
    """Inputs that broke a contract, by kind; the smallest few of each kind are saved."""

    def __init__(self, folder: str, suffix: str, save: bool) -> None:
        self.folder, self.suffix, self.save = folder, suffix, save
        self.inputs: Dict[str, List[bytes]] = {}
        self.counts: Dict[str, int] = {}

    def add(self, why: str, data: bytes) -> None:
        key = finding_key(why)
        self.counts[key] = self.counts.get(key, 0) + 1
        kept = self.inputs.setdefault(key, [])
        if data not in kept:
            kept.append(data)
            kept.sort(key=len)
            del kept[KEEP:]

    def report(self) -> Dict[str, Any]:
        """Per kind: how many inputs, and where the kept ones were saved."""
        return {key: {"inputs": self.counts[key],
                      "saved": [save(d, self.folder, self.suffix) if self.save else "(not saved)"
                                for d in self.inputs[key]]}
                for key in self.counts}


def save(data: bytes, folder: str, suffix: str) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"crash-{hashlib.sha1(data).hexdigest()[:16]}{suffix}")
    with open(path, "wb") as f:
        f.write(data)
    return path


def check_script(data: bytes, path: Optional[str]) -> Tuple[str, Optional[str]]:
    """(outcome kind, why the contract is broken or None); with ``path``, the CLI too."""
    kind, value = parse_outcome(data)
    if kind == "finding":
        return kind, value
    if path is None:
        return kind, None
    with open(path, "wb") as f:
        f.write(data)
    return kind, check_cli(path, (kind, value))


def run_scripts(count: int, seed: int, cli_every: int = 20, save_crashers: bool = True) -> Dict[str, Any]:
    """Check ``count`` script mutants; counts, time and findings (saving each crasher)."""
    rng = random.Random(seed)
    seeds = seed_scripts()
    findings = Findings(SCRIPT_CRASHERS, ".jsonl", save_crashers)
    outcome = {"accepted": 0, "refused": 0, "cli": 0}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "input.jsonl")
        for n in range(count):
            data = script_mutant(seeds, rng)
            cli = path if cli_every and n % cli_every == 0 else None
            kind, why = check_script(data, cli)
            outcome["cli"] += cli is not None
            if kind == "ops":
                outcome["accepted"] += 1
            elif kind == "refused":
                outcome["refused"] += 1
            if why is not None:
                findings.add(why, data)
    return {"target": "script", "inputs": count, "seed": seed, **outcome,
            "seconds": round(time.perf_counter() - started, 1), "findings": findings.report()}


# --- the naming target ------------------------------------------------------------------------------

def _random_name(rng: random.Random) -> Any:
    r = rng.random()
    if r < 0.3:
        n = rng.choice((0, 1, 5, 78, 79, 80, 81, rng.randrange(200)))
        raw = bytes(rng.choice((rng.randrange(0x20, 0x7F), rng.randrange(256), 0x5C, 0x60, 0x24, 0x5B, 0x5D,
                                0)) for _ in range(n))
        return raw if rng.random() < 0.5 else bytearray(raw)
    if r < 0.7:
        n = rng.choice((0, 1, 3, 79, 80, rng.randrange(120)))
        alphabet = rng.choice(("abc xyz:_-.", "abc\\`$[]", "a\x00\x01\x7f\x85\xa0\xe9",
                               "\u2028\u00e9\u4e2d\U0001f600", "\ud800\udc00\udfff",
                               "".join(map(chr, range(0x20, 0x7F)))))
        return "".join(rng.choice(alphabet) for _ in range(n))
    if r < 0.8:
        return rng.choice(("", "x" * 79, "x" * 80, "a\x00b", "\x00", " ", "[anon:x]", "é" * 40, "é" * 39))
    return rng.choice((None, 0, 1.5, ["a"], ("a",), {"a": 1}, memoryview(b"a"), object(), True))


def _random_int(rng: random.Random) -> Any:
    r = rng.random()
    if r < 0.7:
        base = rng.choice((0, PAGE, 0x4000000000, U64 + 1 - PAGE, U64, 1 << 63, rng.randrange(1 << 20) * PAGE,
                           rng.randrange(U64 + 1)))
        return base + rng.choice((0, 0, 0, 1, -1, PAGE, -PAGE, PAGE - 1))
    if r < 0.9:
        return rng.choice((-1, -PAGE, U64 + 1, 1 << 70, -(1 << 70), 0, True, False))
    return rng.choice((1.5, 4096.0, float("nan"), float("inf"), None, "4096", b"\x00", [4096], 4096j))


def naming_inputs(rng: random.Random) -> Iterator[Tuple[Any, Any, Any]]:
    """Endless (name, addr, length) triples."""
    while True:
        yield _random_name(rng), _random_int(rng), _random_int(rng)


def _outcome(call: Callable[[], Any]) -> Tuple[str, Any]:
    """("ok", value), ("OSError", errno), ("TypeError", None), or ("other", traceback)."""
    try:
        return "ok", call()
    except OSError as exc:
        return "OSError", exc.errno
    except TypeError:
        return "TypeError", None
    except Exception:  # noqa: BLE001 - anything else is a finding
        return "other", traceback.format_exc(limit=3)


#: An arena the model names in: one private anonymous VMA (0x4000000000, 16 pages)
ARENA = 0x4000000000


def check_naming(name: Any, addr: Any, length: Any, mm: Optional[Mm] = None) -> Optional[str]:
    """Why the naming checks break their contract on these arguments, or None."""
    checked = _outcome(lambda: check_anon_name(name))
    validated = _outcome(lambda: validate_name(name))
    rng_checked = _outcome(lambda: check_range(addr, length))
    rng_validated = _outcome(lambda: validate_range(addr, length))
    for what, got in (("check_anon_name", checked), ("validate_name", validated),
                      ("check_range", rng_checked), ("validate_range", rng_validated)):
        if got[0] == "other":
            return f"{what} raised something else: {got[1].strip().splitlines()[-1]}"
        if got[0] == "OSError" and got[1] != errno.EINVAL:
            return f"{what} refused with errno {got[1]}, not EINVAL"
    # validate_name: None clears; a NUL is refused where the kernel cuts the name there
    if name is None:
        if validated != ("ok", None):
            return "validate_name(None) does not clear"
    elif isinstance(name, (str, bytes, bytearray)) and "\x00" in (name if isinstance(name, str) else
                                                                   name.decode("latin-1")):
        if validated[0] != "OSError":
            return "validate_name accepted a NUL"
    elif validated != checked:
        return f"validate_name {validated} and check_anon_name {checked} disagree"
    if rng_checked[0] == "ok":
        if rng_validated != ("ok", rng_checked[1] - addr):
            return f"validate_range {rng_validated} and check_range {rng_checked} disagree"
    elif rng_validated[0] != rng_checked[0]:
        return f"validate_range {rng_validated} and check_range {rng_checked} disagree"
    # the model: the name first, then the range; a valid request may still fail on the VMAs
    if mm is None:
        mm = Mm("refcount")
        mm.mmap(ARENA, 16 * PAGE, "rw")
    before = mm.maps()
    modelled = _outcome(lambda: mm.set_anon_name(addr, length, name))  # type: ignore[union-attr]
    if modelled[0] == "other":
        return f"Mm.set_anon_name raised something else: {modelled[1].strip().splitlines()[-1]}"
    if name is not None and checked[0] != "ok":
        expected = checked
    elif rng_checked[0] != "ok":
        expected = rng_checked
    else:
        if modelled[0] == "TypeError" or modelled == ("OSError", errno.EINVAL):
            return f"Mm.set_anon_name refused valid arguments: {modelled}"
        return None
    if modelled[0] != expected[0] or (expected[0] == "OSError" and modelled[1] != expected[1]):
        return f"Mm.set_anon_name {modelled} where the checks say {expected}"
    if mm.maps() != before:
        return "Mm.set_anon_name refused but changed the maps"
    return None


def _tag(value: Any) -> Any:
    """A JSON form of an argument (types kept)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, str):
        return {"str": value.encode("utf-8", "surrogatepass").hex()}
    if isinstance(value, (bytes, bytearray)):
        return {type(value).__name__: bytes(value).hex()}
    return {"repr": repr(value)}


def untag(value: Any) -> Any:
    """The argument back from :func:`_tag` (other objects come back as their repr, a str)."""
    if not isinstance(value, dict):
        return value
    (kind, text), = value.items()
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "str":
        return bytes.fromhex(text).decode("utf-8", "surrogatepass")
    if kind == "bytes":
        return bytes.fromhex(text)
    if kind == "bytearray":
        return bytearray.fromhex(text)
    return text


def _valid(name: Any, addr: Any, length: Any) -> bool:
    """Whether the arguments pass both checks (the request then reaches the VMAs)."""
    try:
        if name is not None:
            check_anon_name(name)
        check_range(addr, length)
    except (OSError, TypeError):
        return False
    return True


def run_naming(count: int, seed: int, save_crashers: bool = True) -> Dict[str, Any]:
    """Check ``count`` random argument triples; counts, time and findings."""
    rng = random.Random(seed)
    findings = Findings(NAMING_CRASHERS, ".json", save_crashers)
    outcome = {"valid": 0, "refused": 0}
    started = time.perf_counter()
    mm = Mm("refcount")
    mm.mmap(ARENA, 16 * PAGE, "rw")
    inputs = naming_inputs(rng)
    for n in range(count):
        name, addr, length = next(inputs)
        why = check_naming(name, addr, length, mm)
        if why is None:
            outcome["valid" if _valid(name, addr, length) else "refused"] += 1
            continue
        blob = json.dumps({"name": _tag(name), "addr": _tag(addr), "length": _tag(length)})
        findings.add(why, blob.encode())
        if n % 1000 == 0:  # a finding may leave the model's state odd: start over now and then
            mm = Mm("refcount")
            mm.mmap(ARENA, 16 * PAGE, "rw")
    return {"target": "naming", "inputs": count, "seed": seed, **outcome,
            "seconds": round(time.perf_counter() - started, 1), "findings": findings.report()}


def _job(args: Tuple[str, int, int, int]) -> Dict[str, Any]:
    target, count, seed, cli_every = args
    return run_scripts(count, seed, cli_every) if target == "script" else run_naming(count, seed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=("script", "naming"), required=True)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--cli-every", type=int, default=20, help="script target: run replay on every Nth input")
    args = ap.parse_args()
    started = time.perf_counter()
    per = [args.count // args.jobs + (i < args.count % args.jobs) for i in range(args.jobs)]
    jobs = [(args.target, n, args.seed + i, args.cli_every) for i, n in enumerate(per)]
    if args.jobs == 1:
        parts = [_job(jobs[0])]
    else:
        with multiprocessing.Pool(args.jobs) as pool:
            parts = pool.map(_job, jobs)
    findings: Dict[str, Dict[str, Any]] = {}
    for p in parts:
        for k, v in p["findings"].items():
            mine = findings.setdefault(k, {"inputs": 0, "saved": []})
            mine["inputs"] += v["inputs"]
            mine["saved"] += v["saved"]
    keys = [k for k in parts[0] if isinstance(parts[0][k], int) and k != "seed"]
    report = {"target": args.target, **{k: sum(p[k] for p in parts) for k in keys}, "jobs": args.jobs,
              "seeds": [j[2] for j in jobs], "cpu_seconds": round(sum(p["seconds"] for p in parts), 1),
              "wall_seconds": round(time.perf_counter() - started, 1), "findings": findings}
    print(json.dumps(report, indent=2))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
