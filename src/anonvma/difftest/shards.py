"""Shards of a difftest campaign: which scripts shard K of N runs, and whether the ``--out``
files of a campaign's shards make the whole campaign (one campaign, each shard once, every
script run). Shared by the model campaigns and the kernel-against-kernel ones."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

#: A shard's ``--out`` file, read back: where it came from and its JSON.
ShardDoc = tuple[Path, dict[str, Any]]


class ShardError(ValueError):
    """A shard file that cannot be read as JSON; the message names it."""


def parse_shard(value: str) -> tuple[int, int]:
    """``"K/N"`` as (K, N), for argparse."""
    k, sep, n = value.partition("/")
    try:
        kk, nn = int(k), int(n)
    except ValueError:
        kk = nn = 0
    if not sep or not 1 <= kk <= nn:
        raise argparse.ArgumentTypeError(f"{value!r} is not K/N with 1 <= K <= N (e.g. 2/8)")
    return kk, nn


def shard_range(count: int, k: int, n: int) -> range:
    """The script indexes of shard ``k`` (1-based) of ``n``: the k-th of n equal slices of range(count)."""
    return range((k - 1) * count // n, k * count // n)


def load(paths: Sequence[Path]) -> list[ShardDoc]:
    """Every file's JSON.

    :raises ShardError: a file that cannot be read or is not JSON.
    """
    docs = []
    for path in paths:
        try:
            docs.append((path, json.loads(path.read_text())))
        except (OSError, ValueError) as exc:
            raise ShardError(f"{path}: {exc}") from None
    return docs


def problems(docs: Sequence[ShardDoc]) -> list[str]:
    """What keeps the shards from being one whole campaign (empty when they are): another
    campaign than the first file's, a shard twice, a shard that ran other scripts, a shard missing."""
    campaign = docs[0][1]["campaign"]
    found = [f"{p}: another campaign ({d['campaign']})" for p, d in docs if d["campaign"] != campaign]
    seen: dict[int, Path] = {}
    for path, doc in docs:
        k = doc["shard"]["k"]
        if k in seen:
            found.append(f"{path}: shard {k} again (also {seen[k]})")
        seen[k] = path
        want = shard_range(campaign["count"], k, campaign["shards"])
        ran = (doc["shard"]["first"], doc["shard"]["stop"], doc["scripts"])
        if ran != (want.start, want.stop, len(want)):
            found.append(f"{path}: shard {k} ran {doc['scripts']} scripts, expected {len(want)}")
    missing = sorted(set(range(1, campaign["shards"] + 1)) - set(seen))
    if missing:
        found.append(f"shards missing: {', '.join(map(str, missing))} of {campaign['shards']}")
    return found
