"""Parse /proc/PID/maps or smaps content into :class:`~anonvma.procmaps.records.Vma` records.

Hot path, written for speed on purpose: a 64K-VMA smaps is ~1.6M lines, 45 MB, and splitting it
into lines alone costs half as much as reading it. So :func:`_parse_fast` never does: it cuts
the bytes once per VMA (at ``VmFlags:``, the last line of every entry, and ``Size:``, the
first), converts each *distinct* counter block once (VMAs of the same size and residency repeat
a lot), and otherwise works column-wise with C-level calls (``bytes.translate``,
``json.loads``, ``map``/``zip``): no regex, no per-line Python code.

Anything irregular (Android ``Name:`` lines, blank lines, hand-edited files, garbage) goes
through :func:`_parse_lines`, an obvious line-by-line state machine, which is also the one that
reports the number of a garbled line. Tests check that both agree on real files.
"""

from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from functools import partial
from itertools import repeat
from operator import itemgetter
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from anonvma.procmaps.errors import ProcmapsParseError
from anonvma.procmaps.records import INT_FIELDS, KB_FIELDS, SMAPS_INDEX, VMFLAGS_KEY, Smaps, Vma

Header = Tuple[int, int, str, int, str, int, str]
_make_vma: Callable[[Sequence[object]], Vma] = partial(tuple.__new__, Vma)
_make_smaps: Callable[[Sequence[object]], Smaps] = partial(tuple.__new__, Smaps)
_SMAPS_DEFAULTS: Tuple[object, ...] = tuple(Smaps._field_defaults[f] for f in Smaps._fields)
_DIGITS_SPACE = b"0123456789 "
_KEY_CHARS = bytes(range(65, 91)) + bytes(range(97, 123)) + b"_:"
_NL_TO_COMMA = bytes.maketrans(b"\n", b",")


class _Irregular(Exception):
    """The fast path cannot take this input; use the line-by-line parser."""


def parse(data: Union[bytes, str], source: str = "<text>") -> Tuple[List[Vma], Tuple[str, ...]]:
    """Parse maps or smaps content; return the VMAs and the smaps keys present (empty for maps).

    Unknown ``Key: value`` lines go to :attr:`Vma.extra`; blank lines are ignored; CRLF is
    accepted; bytes that are not UTF-8 are kept (surrogateescape).

    :raises ProcmapsParseError: (a ValueError) naming the first bad line's number.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    with _gc_paused():
        try:
            return _parse_fast(data)
        except (_Irregular, ValueError, IndexError):
            pass
        return _parse_lines(data.decode("utf-8", "surrogateescape").split("\n"), source)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building ~100K tuples and lists that form no cycles.

    Otherwise CPython runs dozens of collections over the growing result (measured: the final
    zip/tuple steps run 2-5x slower). Restores the previous state, as ``timeit`` does.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _is_field(line: str) -> bool:
    """``Key: ...`` lines have a colon before the first space; headers (``a-b rw-p 0 fe:00``) do not."""
    colon = line.find(":")
    space = line.find(" ")
    return colon > 0 and (space < 0 or colon < space)


def parse_header(line: str) -> Header:
    """``start-end perms offset dev inode [name]`` -> typed tuple; the name keeps inner and trailing spaces.

    :raises ValueError: not a header line.
    """
    parts = line.split(None, 5)
    start, dash, end = parts[0].partition("-")
    if not dash or len(parts) < 5 or len(parts[1]) != 4 or ":" not in parts[3]:
        raise ValueError("not a maps line (start-end perms offset dev inode [name])")
    return (int(start, 16), int(end, 16), parts[1], int(parts[2], 16), parts[3], int(parts[4]),
            parts[5] if len(parts) == 6 else "")


class _Names(Dict[str, str]):
    """Padding+name -> name, computed once per distinct name (most names repeat)."""

    def __missing__(self, key: str) -> str:
        value = self[key] = key.lstrip(" ")
        return value


class _Flags(Dict[str, Tuple[str, ...]]):
    """VmFlags text -> tuple of mnemonics, computed once per distinct flag set."""

    def __missing__(self, key: str) -> Tuple[str, ...]:
        value = self[key] = tuple(key.split())
        return value


class _Ints(Dict[str, int]):
    """Number text -> int in a fixed base, once per distinct text (offsets, inodes repeat)."""

    def __init__(self, base: int) -> None:
        super().__init__()
        self.base = base

    def __missing__(self, key: str) -> int:
        value = self[key] = int(key, self.base)
        return value


def _header_columns(heads: List[str]) -> List[Iterable[object]]:
    """Header lines -> 7 columns (start, end, perms, offset, dev, inode, name), C-level map/zip.

    Kernel lines always end the inode with one space (then padding and the name, or nothing).
    """
    parts = [h.split(" ", 5) for h in heads]
    if min(map(len, parts), default=6) != 6:
        return list(zip(*[parse_header(h) for h in heads], strict=True)) or [[]] * 7
    ranges, perms, offsets, devs, inodes, rest = zip(*parts, strict=True)
    bounds = " ".join(ranges).replace("-", " ").split()
    if len(bounds) != 2 * len(heads) or set(map(len, perms)) != {4} \
            or "".join(devs).count(":") != len(heads):
        raise _Irregular
    return [list(map(int, bounds[0::2], repeat(16))), list(map(int, bounds[1::2], repeat(16))),
            perms, list(map(_Ints(16).__getitem__, offsets)), devs,
            list(map(_Ints(10).__getitem__, inodes)), list(map(_Names().__getitem__, rest))]


def _parse_fast(data: bytes) -> Tuple[List[Vma], Tuple[str, ...]]:
    """Fast path for unedited kernel output; raises _Irregular/ValueError to fall back."""
    if not data:
        return [], ()
    if not data.endswith(b"\n"):
        data += b"\n"
    nl = data.index(b"\n")
    second = data[nl + 1:data.find(b"\n", nl + 1)].decode("utf-8", "surrogateescape")
    if not second or not _is_field(second):
        heads = data.decode("utf-8", "surrogateescape").split("\n")
        heads.pop()
        columns = _header_columns(heads) + [repeat(None), repeat(()), repeat(())]
        return list(map(_make_vma, zip(*columns, strict=False))), ()

    # Entry i is "header\nSize: ...\nTHPeligible: 0\nVmFlags: rd wr\n": cut at "\nVmFlags:",
    # then each piece at "\nSize:" into ("flags of i-1\nheader of i", counter block of i).
    chunks = data.split(b"\nVmFlags:")
    count = len(chunks) - 1
    cut = [c.partition(b"\nSize:") for c in chunks]
    if count < 1 or cut[-1][1]:
        raise _Irregular
    pres, seps, blocks = zip(*cut[:-1], strict=True)
    if seps.count(b"\nSize:") != count:
        raise _Irregular
    text = b"\n".join(pres + (chunks[-1],)).decode("utf-8", "surrogateescape").split("\n")
    if len(text) != 2 * count + 1 or text[-1]:
        raise _Irregular

    distinct = list(dict.fromkeys(blocks))
    skeleton = distinct[0].translate(None, _DIGITS_SPACE)
    joined = b"\n".join(distinct)
    if joined.translate(None, _DIGITS_SPACE) != b"\n".join([skeleton] * len(distinct)):
        raise _Irregular
    keys: List[str] = []
    where: Dict[int, int] = {}  # Smaps index -> position in a block's numbers
    for pos, entry in enumerate(("Size:" + skeleton.decode()).split("\n")):
        key, _, unit = entry.partition(":")
        field = KB_FIELDS.get(key) if unit == "kB" else INT_FIELDS.get(key) if not unit else None
        if field is None or key in keys:
            raise _Irregular
        keys.append(key)
        where[SMAPS_INDEX[field]] = pos
    numbers = json.loads(b"[" + joined.translate(_NL_TO_COMMA, _KEY_CHARS) + b"]")
    width = len(keys)
    if len(numbers) != width * len(distinct):
        raise _Irregular
    # A block's numbers, plus the defaults 0 and None, -> Smaps fields by one C-level itemgetter.
    pick = itemgetter(*[where.get(i, width if d == 0 else width + 1)
                        for i, d in enumerate(_SMAPS_DEFAULTS)])
    rows = zip(*[iter(numbers)] * width, repeat(0), repeat(None), strict=False)
    counters = dict(zip(distinct, map(_make_smaps, map(pick, rows)), strict=True))
    columns = _header_columns(text[0:2 * count:2])
    columns += [list(map(counters.__getitem__, blocks)),
                list(map(_Flags().__getitem__, text[1:2 * count:2])), repeat(())]
    return list(map(_make_vma, zip(*columns, strict=False))), tuple(keys) + (VMFLAGS_KEY,)


def _parse_lines(lines: List[str], source: str) -> Tuple[List[Vma], Tuple[str, ...]]:
    """Slow, obvious path: one line at a time; raises ProcmapsParseError at the first bad line."""
    vmas: List[Vma] = []
    keys: Dict[str, None] = {}
    header: Optional[Header] = None
    counters: List[object] = []
    flags: Tuple[str, ...] = ()
    extra: List[Tuple[str, str]] = []
    has_fields = False

    def finish() -> None:
        if header is not None:
            smaps = _make_smaps(counters) if has_fields else None
            vmas.append(_make_vma((*header, smaps, flags, tuple(extra))))

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not _is_field(line):
            finish()
            try:
                header = parse_header(line)
            except (ValueError, IndexError) as err:
                raise ProcmapsParseError(source, lineno, line, str(err)) from err
            counters, flags, extra, has_fields = list(_SMAPS_DEFAULTS), (), [], False
            continue
        if header is None:
            raise ProcmapsParseError(source, lineno, line, "smaps field before any maps line")
        has_fields = True
        key, _, value = line.partition(":")
        keys[key] = None
        try:
            if key in KB_FIELDS:
                number, unit = value.split()
                if unit != "kB":
                    raise ValueError(f"expected a size in kB for {key}")
                counters[SMAPS_INDEX[KB_FIELDS[key]]] = int(number)
            elif key in INT_FIELDS:
                counters[SMAPS_INDEX[INT_FIELDS[key]]] = int(value)
            elif key == VMFLAGS_KEY:
                flags = tuple(value.split())
            else:
                extra.append((key, value.strip()))
        except ValueError as err:
            raise ProcmapsParseError(source, lineno, line, f"bad value for {key}") from err
    finish()
    return vmas, tuple(keys)
