"""Parse /proc/PID/maps or smaps content into :class:`~anonvma.procmaps.records.Vma` records.

Every input either parses into a possible address space (page-aligned VMAs with start < end,
in increasing address order without overlaps, no negative or malformed numbers, smaps
``Size`` equal to the address range, smaps fields for every VMA or for none) or raises
:class:`~anonvma.procmaps.errors.ProcmapsParseError` naming the first bad line.

Hot path, written for speed on purpose: a 64K-VMA smaps is ~1.6M lines, 45 MB, and splitting it
into lines alone costs half as much as reading it. So :func:`_parse_fast` never does: it cuts
the bytes once per VMA (at ``VmFlags:``, the last line of every entry, and ``Size:``, the
first), converts each *distinct* counter block once (VMAs of the same size and residency repeat
a lot), and otherwise works column-wise with C-level calls (``bytes.translate``,
``json.loads``, ``map``/``zip``): no regex, no per-line Python code. It checks the same rules
as the slow path, column-wise, and hands anything it does not like to the slow path.

Anything irregular (Android ``Name:`` lines, which name a VMA whose maps line has no name,
blank lines, hand-edited files, garbage) goes through :func:`_parse_lines`, an obvious
line-by-line state machine: it is the definition of what is accepted, and the one that reports
the number of a bad line. Both paths agree on every input the fast path accepts (tests and
the fuzzer check it). :class:`ChunkParser` runs the fast path on complete entries while the
rest of a file is still being read.
"""

from __future__ import annotations

import gc
import json
import re
from collections import Counter
from contextlib import contextmanager
from functools import partial
from itertools import repeat
from operator import itemgetter, lt, sub
from typing import (Callable, Dict, Generic, Iterator, List, NamedTuple, Optional, Sequence, Tuple,
                    TypeVar, Union)

from anonvma.procmaps.errors import ProcmapsParseError
from anonvma.procmaps.records import INT_FIELDS, KB_FIELDS, SMAPS_INDEX, VMFLAGS_KEY, Counts, Smaps, Vma
from anonvma.procmaps.tally import fold_counts, tally_vmas

Header = Tuple[int, int, str, int, str, int, str]
Parsed = Tuple[List[Vma], Tuple[str, ...]]
_make_vma: Callable[[Sequence[object]], Vma] = partial(tuple.__new__, Vma)
_make_smaps: Callable[[Sequence[object]], Smaps] = partial(tuple.__new__, Smaps)
_SMAPS_DEFAULTS: Tuple[object, ...] = tuple(Smaps._field_defaults[f] for f in Smaps._fields)
_SIZE_AT = SMAPS_INDEX["size"]
_DIGITS_SPACE = b"0123456789 "
_KEY_CHARS = bytes(range(65, 91)) + bytes(range(97, 123)) + b"_:"
_NL_TO_COMMA = bytes.maketrans(b"\n", b",")
_HEX = b"0123456789abcdefABCDEF"
_DEC = b"0123456789"
_PERMS = frozenset(r + w + x + s for r in "r-" for w in "w-" for x in "x-" for s in "ps")
#: Every VMA starts and ends on a page boundary; no Linux page is smaller than 4 KiB.
_PAGE_MASK = 0xFFF
#: The header as the kernel prints it (fs/proc/task_mmu.c show_vma_header_prefix), then the name.
_HEADER = re.compile(r"([0-9a-fA-F]+)-([0-9a-fA-F]+) +([r-][w-][x-][ps]) +([0-9a-fA-F]+)"
                     r" +([0-9a-fA-F]+:[0-9a-fA-F]+) +([0-9]+)(?: +(.*))?", re.S)


class _Irregular(Exception):
    """The fast path cannot take this input; use the line-by-line parser."""


def parse(data: Union[bytes, str], source: str = "<text>") -> Parsed:
    """Parse maps or smaps content; return the VMAs and the smaps keys present (empty for maps).

    Unknown ``Key: value`` lines go to :attr:`Vma.extra`; blank lines are ignored; CRLF is
    accepted; bytes that are not UTF-8 are kept (surrogateescape). Empty input is an empty
    address space (a kernel thread's maps is empty).

    :raises ProcmapsParseError: (a ValueError) naming the first bad line's number.
    """
    data = _normalize(data)
    with gc_paused():
        try:
            return _parse_fast(data)
        except (_Irregular, ValueError, IndexError):
            pass
        return _parse_lines(data.decode("utf-8", "surrogateescape").split("\n"), source)


#: The start of a VMA's header line (maps and smaps alike), for counting without parsing.
_HEADER_START = re.compile(rb"^[0-9a-fA-F]+-[0-9a-fA-F]+ ", re.M)


def count_vmas(data: bytes) -> int:
    """How many VMAs maps or smaps text lists, without building a record for any (constant
    memory: for a process that must not disturb its own address space while it counts it)."""
    return sum(1 for _ in _HEADER_START.finditer(data))


def _normalize(data: Union[bytes, str]) -> bytes:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    return data


@contextmanager
def gc_paused() -> Iterator[None]:
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
    m = _HEADER.fullmatch(line)
    if m is None:
        raise ValueError("not a maps line (start-end perms offset dev inode [name])")
    start, end, perms, offset, dev, inode, name = m.groups()
    return (int(start, 16), int(end, 16), perms, int(offset, 16), dev, int(inode),
            name if name is not None else "")


def _only(text: str, allowed: bytes) -> bool:
    """True if every character of ``text`` is one of the ASCII ``allowed`` (C-level check)."""
    return not text.encode("utf-8", "surrogateescape").translate(None, allowed)


class _Rests(Dict[str, Tuple[str, int, str, int, str]]):
    """A header after its range -> (perms, offset, dev, inode, name), checked once per distinct text.

    Most headers share it (anonymous memory: ``rw-p 00000000 00:00 0 ``). Checks what the
    slow path's pattern checks; raises _Irregular if not (a header without the space the
    kernel prints after the inode included: the slow path takes those).
    """

    def __missing__(self, rest: str) -> Tuple[str, int, str, int, str]:
        parts = rest.split(" ", 4)
        if len(parts) != 5:
            raise _Irregular
        perms, offset, dev, inode, name = parts
        major, colon, minor = dev.partition(":")
        if (perms not in _PERMS or not offset or not _only(offset, _HEX) or not major or not minor
                or not _only(major + minor, _HEX) or not inode or not _only(inode, _DEC)):
            raise _Irregular
        value = self[rest] = (perms, int(offset, 16), dev, int(inode), name.lstrip(" "))
        return value


class _Flags(Dict[str, Tuple[str, ...]]):
    """VmFlags text -> tuple of mnemonics, computed once per distinct flag set."""

    def __missing__(self, key: str) -> Tuple[str, ...]:
        value = self[key] = tuple(key.split())
        return value


def _header_columns(heads: List[str], full: bool = True) -> List[List[object]]:
    """Header lines -> 7 columns (start, end, perms, offset, dev, inode, name), C-level map/zip.

    Each header is cut at its first space into the range and the rest (checked and converted
    once per distinct rest, see :class:`_Rests`). The ranges are checked column-wise as the
    slow path's pattern would check them, and for page alignment (they end in ``000``);
    raises _Irregular if not. ``full=False`` builds only start, end and name (the others are
    empty lists).
    """
    n = len(heads)
    ranges, _, rests = zip(*map(str.partition, heads, repeat(" ")), strict=True) if heads else ((), (), ())
    joined = " ".join(ranges) + " "
    bounds = joined.replace("-", " ").split()
    if (len(bounds) != 2 * n or joined.count("-") != n or joined.count("000-") != n
            or joined.count("000 ") != n or not _only(joined, _HEX + b"- ")):
        raise _Irregular
    infos = list(map(_Rests().__getitem__, rests))
    starts, ends = list(map(int, bounds[0::2], repeat(16))), list(map(int, bounds[1::2], repeat(16)))
    names: List[object] = list(map(itemgetter(4), infos))
    if not full:
        return [starts, ends, [], [], [], [], names]  # type: ignore[list-item]
    return [starts, ends, *(list(map(itemgetter(k), infos)) for k in range(4)), names]


def _check_order(starts: List[int], ends: List[int]) -> None:
    """start <= end, and each VMA at or above the end of the one before; raises _Irregular if not.

    (start == end is caught apart: maps by :func:`_check_nonempty`, smaps by ``Size`` > 0.)
    """
    bounds = [0] * (2 * len(starts))
    bounds[0::2], bounds[1::2] = starts, ends
    if sorted(bounds) != bounds:  # timsort checks a sorted list in one C-level pass
        raise _Irregular


def _parse_fast(data: bytes) -> Parsed:
    """Fast path for unedited kernel output; raises _Irregular/ValueError to fall back."""
    if not data:
        return [], ()
    if not data.endswith(b"\n"):
        data += b"\n"
    nl = data.index(b"\n")
    second = data[nl + 1:data.find(b"\n", nl + 1)].decode("utf-8", "surrogateescape")
    if not second or not _is_field(second):
        if b"\0" in data:
            raise _Irregular
        heads = data.decode("utf-8", "surrogateescape").split("\n")
        heads.pop()
        columns = _header_columns(heads)
        _check_order(columns[0], columns[1])  # type: ignore[arg-type]
        if not all(map(lt, columns[0], columns[1])):  # type: ignore[arg-type]
            raise _Irregular
        return list(map(_make_vma, zip(*columns, repeat(None), repeat(()), repeat(()),
                                       strict=False))), ()
    entries = _fast_smaps(data, full=True)
    columns = entries.columns + [list(map(entries.counters.__getitem__, entries.blocks)),
                                 list(map(_Flags().__getitem__, entries.lines[1::2]))]
    return list(map(_make_vma, zip(*columns, repeat(()), strict=False))), entries.keys


class _Entries(NamedTuple):
    """The checked pieces of an smaps text, column-wise (see :func:`_fast_smaps`)."""

    lines: List[str]  # header 0, flags 0, header 1, flags 1 ...
    blocks: Tuple[bytes, ...]  # each VMA's counter block (the text after "Size:")
    counters: Dict[bytes, Smaps]  # block -> its counters, once per distinct block
    keys: Tuple[str, ...]  # the smaps keys, VmFlags last
    columns: List[List[object]]  # of the headers: see _header_columns


def _fast_smaps(data: bytes, full: bool) -> _Entries:
    """Cut and check an smaps text that ends with a newline; raises _Irregular/ValueError."""
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
    text = b"\n".join(pres + (chunks[-1],)).decode("utf-8", "surrogateescape")
    if "\0" in text:
        raise _Irregular
    lines = text.split("\n")
    if len(lines) != 2 * count + 1 or lines[-1]:
        raise _Irregular
    lines.pop()

    distinct = list(dict.fromkeys(blocks))
    skeleton = distinct[0].translate(None, _DIGITS_SPACE)
    joined = b"\n".join(distinct)
    if joined.translate(None, _DIGITS_SPACE) != b"\n".join([skeleton] * len(distinct)) \
            or joined.count(b"\n ") != len(distinct) - 1:  # only where blocks (" 4 kB...") join
        raise _Irregular  # not the same keys, units and line breaks in every block; or " Key:"
    _check_template(distinct[0])
    _check_tokens(joined, distinct[0].split(), len(distinct))
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
    if min(c.size for c in counters.values()) <= 0:
        raise _Irregular  # an empty VMA (with Size == range below: start == end)
    columns = _header_columns(lines[0::2], full)
    starts, ends = columns[0], columns[1]
    _check_order(starts, ends)  # type: ignore[arg-type]
    size_bytes = {block: c.size << 10 for block, c in counters.items()}
    if list(map(size_bytes.__getitem__, blocks)) != list(map(sub, ends, starts)):
        raise _Irregular  # Size must be the address range
    return _Entries(lines, blocks, counters, tuple(keys) + (VMFLAGS_KEY,), columns)


class _TallyPart(NamedTuple):
    counts: Counts
    vmas: int
    keys: Tuple[str, ...]
    first_start: int
    last_end: int


def _tally_fast(data: bytes) -> _TallyPart:
    """Like :func:`_parse_fast` for smaps, but counting VMAs per (name, counters), no records.

    Checks exactly what the fast path checks; maps content raises _Irregular.
    """
    if not data.endswith(b"\n"):
        data += b"\n"
    entries = _fast_smaps(data, full=False)
    starts, ends, names = entries.columns[0], entries.columns[1], entries.columns[6]
    # distinct blocks may hold equal counters (padding)
    counts = fold_counts(Counter(zip(names, entries.blocks, strict=True)), entries.counters)  # type: ignore[arg-type]
    return _TallyPart(counts, len(names), entries.keys, starts[0], ends[-1])  # type: ignore[arg-type]


def _check_template(block: bytes) -> None:
    """The first block, line by line, as the slow path reads it: ``Key: <digits> [kB]``.

    (The other blocks are compared with this one column-wise by :func:`_check_tokens`.)
    """
    for line in (b"Size:" + block).split(b"\n"):
        key, _, value = line.partition(b":")
        words = value.split()
        if b" " in key or not words or not words[0].isdigit() or words[1:] not in ([b"kB"], []):
            raise _Irregular


def _check_tokens(joined: bytes, template: List[bytes], blocks: int) -> None:
    """Every block splits into the first one's words, numbers where it has numbers (C-level).

    With the skeleton check this makes each line ``Key: <digits> kB`` (or ``Key: <digits>``)
    exactly as the slow path reads it: ``4kB``, ``4 k B`` or ``4 4 kB`` fall back.
    """
    tokens = joined.split()
    width = len(template)
    if len(tokens) != width * blocks:
        raise _Irregular
    for k, word in enumerate(template):
        column = tokens[k::width]
        if word.isdigit():
            if not b"".join(column).isdigit():
                raise _Irregular
        elif column.count(word) != blocks:
            raise _Irregular


def name_line(extra: Sequence[Tuple[str, str]]) -> str:
    """The maps name a ``Name:`` line gives, or ``""``: Android's kernels print one in smaps for
    named anonymous memory (fs/proc/task_mmu.c show_smap, seq_print_vma_name: ``[anon:NAME]``;
    hand-written and older files have the bare NAME), as ``anonvma snapshot`` does for names a
    process registered. It names a VMA whose maps line has no name; the maps line's name wins.
    """
    for key, value in extra:
        if key == "Name" and value:
            return value if value.startswith("[anon:") and value.endswith("]") else f"[anon:{value}]"
    return ""


def _digits(text: str) -> int:
    """A non-negative decimal number, strictly: no sign, no ``_``, ASCII digits only."""
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"not a non-negative decimal number: {text!r}")
    return int(text)


def _parse_lines(lines: List[str], source: str) -> Parsed:
    """Slow, obvious path: one line at a time; raises ProcmapsParseError at the first bad line.

    This is the definition of what is accepted (see the module docstring).
    """
    vmas: List[Vma] = []
    keys: Dict[str, None] = {}
    header: Optional[Header] = None
    header_at = size_at = 0
    counters: List[object] = []
    seen: Dict[str, None] = {}
    flags: Tuple[str, ...] = ()
    extra: List[Tuple[str, str]] = []
    has_fields = False
    smaps_file: Optional[bool] = None  # decided by the first VMA: every VMA has fields, or none
    prev_end = 0

    def fail(lineno: int, why: str) -> ProcmapsParseError:
        return ProcmapsParseError(source, lineno, lines[lineno - 1], why)

    def finish() -> None:
        nonlocal smaps_file
        if header is None:
            return
        if smaps_file is None:
            smaps_file = has_fields
        elif smaps_file and not has_fields:
            raise fail(header_at, "no smaps fields for this VMA (a maps line in an smaps file, "
                                  "or the file was cut short)")
        if has_fields and "Size" not in seen:  # smaps_rollup and hand-made files: the range says it
            counters[_SIZE_AT] = (header[1] - header[0]) >> 10
        smaps = _make_smaps(counters) if has_fields else None
        if smaps is not None and smaps.size != (header[1] - header[0]) >> 10:
            raise fail(size_at, f"Size {smaps.size} kB does not match the VMA's address range "
                                f"({(header[1] - header[0]) >> 10} kB)")
        name = header[6] or name_line(extra)
        vmas.append(_make_vma((*header[:6], name, smaps, flags, tuple(extra))))

    for lineno, line in enumerate(lines, 1):
        if "\0" in line:
            raise fail(lineno, "binary data (a NUL byte), not maps/smaps text")
        if not line.strip():
            continue
        if not _is_field(line):
            finish()
            try:
                header = parse_header(line)
            except ValueError as err:
                raise fail(lineno, str(err)) from err
            start, end = header[0], header[1]
            if (start | end) & _PAGE_MASK:
                raise fail(lineno, "VMA not aligned to a 4 KiB page")
            if end <= start:
                raise fail(lineno, "VMA ends before it starts" if end < start else "empty VMA (start == end)")
            if start < prev_end:
                raise fail(lineno, f"VMA overlaps or precedes the one before it (ending at {prev_end:x}); "
                                   "the kernel prints VMAs once each, in increasing address order")
            prev_end, header_at = end, lineno
            counters, flags, extra, has_fields, seen = list(_SMAPS_DEFAULTS), (), [], False, {}
            continue
        if header is None:
            raise fail(lineno, "smaps field before any maps line")
        if smaps_file is False:
            raise fail(lineno, "smaps field in a maps file (the first VMA had none)")
        has_fields = True
        key, _, value = line.partition(":")
        if key in seen and (key in KB_FIELDS or key in INT_FIELDS or key == VMFLAGS_KEY):
            raise fail(lineno, f"{key} given twice for one VMA")
        seen[key] = None
        keys[key] = None
        try:
            if key in KB_FIELDS:
                number, unit = value.split()
                if unit != "kB":
                    raise ValueError(f"expected a size in kB for {key}")
                counters[SMAPS_INDEX[KB_FIELDS[key]]] = _digits(number)
                if key == "Size":
                    size_at = lineno
            elif key in INT_FIELDS:
                counters[SMAPS_INDEX[INT_FIELDS[key]]] = _digits(value.strip(" "))
            elif key == VMFLAGS_KEY:
                flags = tuple(value.split())
            else:
                extra.append((key, value.strip()))
        except ValueError as err:
            raise fail(lineno, f"bad value for {key}") from err
    finish()
    return vmas, tuple(keys)


Result = TypeVar("Result")
Part = TypeVar("Part")


class Chunked(Generic[Part, Result]):
    """Parse smaps as it is read: complete entries go through a fast path chunk by chunk.

    ``feed`` each piece as it arrives, then ``finish``. Anything the fast path does not take
    (maps content, irregular entries, disorder across chunks) makes ``finish`` parse the whole
    text with :func:`parse`, so results and errors are exactly those of :func:`parse`.
    Call both with the GC paused (:func:`gc_paused`) for speed.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._chunks: List[bytes] = []
        self._pending = b""
        self._parts: List[Part] = []
        self._ok = True

    @property
    def empty(self) -> bool:
        """Nothing fed yet."""
        return not self._chunks

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the file; parse the complete entries among them."""
        self._chunks.append(chunk)
        if b"\r" in chunk:
            self._ok = False  # CRLF: parse() normalizes the whole text
        if not self._ok:
            return
        buf = self._pending + chunk if self._pending else chunk
        last = buf.rfind(b"\nVmFlags:")
        end = buf.find(b"\n", last + 1) if last >= 0 else -1
        if end < 0 and last >= 0:
            last = buf.rfind(b"\nVmFlags:", 0, last)
            end = buf.find(b"\n", last + 1) if last >= 0 else -1
        if end < 0:
            self._pending = buf
            return
        self._pending = buf[end + 1:]
        try:
            self._parts.append(self._segment(buf[:end + 1]))
        except (_Irregular, ValueError, IndexError):
            self._ok = False

    def finish(self) -> Result:
        """What :func:`parse` of the whole text gives, in this parser's form."""
        if self._ok and self._pending.strip():
            try:
                self._parts.append(self._segment(self._pending))
            except (_Irregular, ValueError, IndexError):
                self._ok = False
        if self._ok:
            joined = self._join(self._parts)
            if joined is not None:
                return joined
        return self._whole(parse(b"".join(self._chunks), self.source))

    def _segment(self, data: bytes) -> Part:
        raise NotImplementedError

    def _join(self, parts: List[Part]) -> Optional[Result]:
        """The parts as one result, or None if they do not join (keys differ, disorder)."""
        raise NotImplementedError

    def _whole(self, parsed: Parsed) -> Result:
        raise NotImplementedError


class ChunkParser(Chunked[Parsed, Parsed]):
    """:class:`Chunked` giving what :func:`parse` gives: the VMAs and the smaps keys."""

    def _segment(self, data: bytes) -> Parsed:
        return _parse_fast(data)

    def _join(self, parts: List[Parsed]) -> Optional[Parsed]:
        parts = [p for p in parts if p[0]]
        for prev, p in zip(parts, parts[1:], strict=False):
            if p[1] != prev[1] or p[0][0].start < prev[0][-1].end:
                return None
        if len(parts) == 1:
            return parts[0]
        return [v for p in parts for v in p[0]], parts[0][1] if parts else ()

    def _whole(self, parsed: Parsed) -> Parsed:
        return parsed


#: (VMAs, smaps keys, (name, counters) -> VMAs, name -> kB of VMAs without counters)
TallyResult = Tuple[int, Tuple[str, ...], Counts, Dict[str, int]]


class ChunkTally(Chunked[_TallyPart, TallyResult]):
    """:class:`Chunked` counting VMAs per (name, counters), without VMA records.

    What ``group`` needs from a large live smaps, at a fraction of the cost of building every
    VMA (see :class:`~anonvma.procmaps.records.Tally`); same checks, same errors.
    """

    def _segment(self, data: bytes) -> _TallyPart:
        return _tally_fast(data)

    def _join(self, parts: List[_TallyPart]) -> Optional[TallyResult]:
        counts: Counts = {}
        for prev, p in zip(parts, parts[1:], strict=False):
            if p.keys != prev.keys or p.first_start < prev.last_end:
                return None
        for p in parts:
            for key, n in p.counts.items():
                counts[key] = counts.get(key, 0) + n
        return sum(p.vmas for p in parts), parts[0].keys if parts else (), counts, {}

    def _whole(self, parsed: Parsed) -> TallyResult:
        n, counts, sizes = tally_vmas(parsed[0])
        return n, parsed[1], counts, sizes
