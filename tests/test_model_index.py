"""The VMA index: chunked sorted list against a plain sorted list, and the model with tiny chunks."""

from __future__ import annotations

import random
from bisect import bisect_right
from pathlib import Path

import pytest

from anonvma.model import index as index_mod
from anonvma.model.index import VmaIndex
from anonvma.model.vma import Vma
from anonvma.ops import format_result, parse_script
from anonvma.model.replay import run_ops
from recordings import expected as recorded_output, recorded_pairs

PAGE = 4096


def _vma(page: int, pages: int = 1) -> Vma:
    return Vma(page * PAGE, (page + pages) * PAGE, 0, 0, None)


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 2-4 VMAs, so every operation crosses chunk boundaries."""
    monkeypatch.setattr(index_mod, "CHUNK", 2)


@pytest.mark.parametrize("seed", range(5))
def test_index_answers_like_a_flat_sorted_list_under_random_inserts_and_removals(tiny_chunks, seed: int):
    rng = random.Random(seed)
    idx, ref = VmaIndex(), []
    for _ in range(600):
        r = rng.random()
        if ref and r < 0.3:
            vma = ref.pop(rng.randrange(len(ref)))
            idx.remove(vma)
        elif ref and r < 0.45:  # split one VMA of 1 page into... itself and a shifted copy
            k = rng.randrange(len(ref))
            old = ref[k]
            new = [_vma(old.start // PAGE)]
            if rng.random() < 0.5 and not any(v.start == old.start + PAGE for v in ref):
                new.append(_vma(old.start // PAGE + 1))
            ref[k:k + 1] = new
            idx.replace(old, *new)
        else:
            page = rng.randrange(0, 400) * 2  # 1-page VMAs on even pages never overlap
            if any(v.start // PAGE in (page, page + 1) for v in ref):
                continue
            vma = _vma(page)
            ref.insert(bisect_right([v.start for v in ref], vma.start), vma)
            idx.insert(vma)
        assert len(idx) == len(ref) and idx.vmas == ref and list(reversed(idx)) == ref[::-1]
        assert idx.consistency_errors() == []
        addr = rng.randrange(0, 820) * PAGE + rng.choice((0, 1, PAGE - 1))
        i = bisect_right([v.end for v in ref], addr)
        assert idx.find_vma(addr) is (ref[i] if i < len(ref) else None)
        assert idx.around(addr) == ((ref[i - 1] if i else None), (ref[i] if i < len(ref) else None))
        lo, hi = sorted((addr, rng.randrange(0, 820) * PAGE))
        assert idx.intersecting(lo, hi) == [v for v in ref if v.start < hi and v.end > lo]
        if ref:
            k = rng.randrange(len(ref))
            assert idx.prev_of(ref[k]) is (ref[k - 1] if k else None)
            assert idx.next_of(ref[k]) is (ref[k + 1] if k + 1 < len(ref) else None)
            assert idx.vma_lookup(ref[k].start) is ref[k] and idx.vma_lookup(ref[k].end) is not ref[k]


def test_built_from_a_sorted_list_and_splits_chunks_as_it_grows(tiny_chunks):
    vmas = [_vma(2 * i) for i in range(9)]
    idx = VmaIndex(vmas[:5])
    for v in vmas[5:]:
        idx.insert(v)
    assert idx.vmas == vmas and len(idx) == 9
    assert all(len(c) <= 4 for c in idx._chunks)
    with pytest.raises(AssertionError, match="not in the index"):
        idx.remove(_vma(2))


@pytest.mark.parametrize("release, script", recorded_pairs(),
                         ids=lambda v: v.stem if isinstance(v, Path) else v)
def test_curated_scripts_give_the_recorded_output_with_tiny_chunks(tiny_chunks, release: str, script: Path):
    expected = recorded_output(script, release).splitlines()
    got = [format_result(r) for r in run_ops(parse_script(script.read_text()), check=True, linux=release)]
    assert got == expected
