"""One kernel judged against another (``python -m anonvma.difftest --kernel A --against B``):
real campaigns on the UML oracle kernels of the table, run as the command line runs them.

Between the oldest and the newest 6.1 release the model has three mremap rules that differ; the
first 20 scripts from seed 0 reach each of them (seeds 2, 12 and 17; measured on the model, where
the first 3,000 seeds reach them in 126, 16 and 32 scripts).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Sequence

import pytest

from anonvma import releases
from anonvma.model import mremap
from anonvma.model.kernel import get_kernel
from oracle_helpers import oracle_kernel_or_skip
from process_helpers import PYTHON, REPO

SERIES = releases.RELEASES[0].series
SIX_ONE = [r.name for r in releases.RELEASES if r.series == SERIES]
OLDEST, NEWEST = SIX_ONE[0], releases.newest_in(SERIES).name
#: Enough scripts from seed 0 to reach every rule that differs between OLDEST and NEWEST.
COUNT, SEED = 20, 0


def difftest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "anonvma.difftest", *args], cwd=REPO, capture_output=True,
                          text=True, env=env)


def report(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def rules_between(a: str, b: str) -> set[str]:
    """The model's rules whose versions differ between releases ``a`` and ``b``."""
    ka, kb = get_kernel(a), get_kernel(b)
    return {name for name in ka.rule_names() if getattr(ka, name) is not getattr(kb, name)}


def named(groups: Sequence[dict[str, Any]]) -> set[str]:
    return {g["rule"]["name"] for g in groups if g["rule"] is not None}


@pytest.mark.oracle
def test_oldest_against_newest_6_1_finds_the_three_mremap_rules_and_names_them(tmp_path: Path) -> None:
    oracle_kernel_or_skip(linux=OLDEST)
    oracle_kernel_or_skip(linux=NEWEST)
    want = rules_between(OLDEST, NEWEST)
    assert len(want) == 3 and want <= set(mremap.RULES), want
    saved = tmp_path / "diffs"
    res = difftest("--kernel", OLDEST, "--against", NEWEST, "--count", str(COUNT), "--seed", str(SEED),
                   "--jobs", "2", "--json", "--save", str(saved))
    assert res.returncode == 1, res.stderr
    doc = report(res)
    groups = doc["groups"]
    assert named(groups) == want and all(g["rule"] is not None for g in groups), groups
    assert doc["scripts"] == COUNT and doc["differ"] == sum(g["count"] for g in groups)
    assert doc["could_not_run"] == [] and doc["lost"] == []
    for g in groups:
        short = g["shortest"]
        assert short["shrunk"] and short["ops"] < short["original_ops"], short
        assert short["a"][short["line"]] != short["b"][short["line"]]
        base = saved / f"against_seed{short['seed']}"
        assert base.with_suffix(".jsonl").read_text() == short["script"]
        assert Path(f"{base}.out-{OLDEST}").read_text().splitlines() == short["a"]
        assert Path(f"{base}.out-{NEWEST}").read_text().splitlines() == short["b"]


@pytest.mark.oracle
def test_a_release_against_its_other_build_agrees() -> None:
    """The same release against itself, built the other way (strdup names, given by its path):
    the name strategy changes no result line, so the two agree."""
    oracle_kernel_or_skip(linux=NEWEST)
    strdup = oracle_kernel_or_skip("strdup", linux=NEWEST)
    res = difftest("--kernel", NEWEST, "--against", str(strdup), "--count", "30", "--seed", "700",
                   "--jobs", "2", "--json")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    doc = report(res)
    assert doc["scripts"] == 30 and doc["differ"] == 0 and doc["groups"] == []
    assert doc["sides"]["b"]["release"] == NEWEST  # a cached kernel's path is known as its release


@pytest.mark.oracle
def test_the_model_of_a_release_agrees_with_its_real_kernel() -> None:
    oracle_kernel_or_skip(linux=releases.DEFAULT)
    res = difftest("--kernel", releases.DEFAULT, "--against", f"model:{releases.DEFAULT}", "--count", "40",
                   "--seed", "900", "--jobs", "2")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    assert "40 scripts" in res.stdout and "0 differ, 0 could not run, 0 lost" in res.stdout


@pytest.mark.oracle
def test_shards_of_a_campaign_merge_into_its_groups(tmp_path: Path) -> None:
    oracle_kernel_or_skip(linux=OLDEST)
    outs = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}.json"
        res = difftest("--kernel", OLDEST, "--against", f"model:{NEWEST}", "--count", str(COUNT), "--seed",
                       str(SEED), "--jobs", "2", "--shard", f"{k}/2", "--out", str(out))
        assert res.returncode == 1, res.stderr
        outs.append(str(out))
    merged = difftest("--merge", *outs, "--json")
    assert merged.returncode == 1, merged.stderr
    doc = report(merged)
    assert doc["scripts"] == COUNT and named(doc["groups"]) == rules_between(OLDEST, NEWEST)
    text = difftest("--merge", *outs).stdout.splitlines()
    assert text[0].startswith(f"campaign: {COUNT} scripts from seed {SEED}"), text
    assert text[1].startswith(f"Linux {OLDEST} against the model of Linux {NEWEST} (refcount): {COUNT} "
                              "scripts"), text
    for rule in rules_between(OLDEST, NEWEST):  # each rule: its scripts, then each kind of first difference
        head = next(i for i, line in enumerate(text) if line.startswith(f"{rule}: mm/"))
        assert re.fullmatch(r"  \d+ scripts?, shortest \d+ ops", text[head + 1]), text[head + 1]
        assert re.match(r"  \d+ scripts? whose first difference is maps: ", text[head + 2]), text[head + 2]
    partial = difftest("--merge", outs[0])
    assert partial.returncode == 2 and "shards missing: 2 of 2" in partial.stderr


def usage_cases() -> list[tuple[list[str], str]]:
    first = releases.names()[0]
    return [
        (["--kernel", "9.99", "--against", first], "unknown Linux release '9.99'"),
        (["--kernel", first, "--against", "model:9.99"], "unknown Linux release '9.99'"),
        (["--kernel", first], "--kernel and --against go together"),
        (["--kernel", f"model:{first}", "--against", first], "name a real kernel there"),
        (["--kernel", "/nonexistent/linux", "--against", first], "/nonexistent/linux: no executable there"),
        (["--kernel", first, "--against", first, "--linux", first], "--linux does not go with"),
        (["--kernel", first, "--against", "model:" + first, "--count", "-1"], "--count must be >= 0"),
        (["--json", "--count", "1"], "--json goes with --against"),
    ]


@pytest.mark.parametrize("args, message", usage_cases())
def test_bad_usage_exits_2_with_one_line(args: list[str], message: str) -> None:
    res = difftest(*args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("python -m anonvma.difftest: "), res.stderr
    assert message in res.stderr, res.stderr
    assert res.stdout == ""


def test_the_same_kernel_twice_exits_2() -> None:
    first = releases.names()[0]
    oracle_kernel_or_skip(linux=first)
    res = difftest("--kernel", first, "--against", first)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "both name Linux" in res.stderr and "nothing to compare" in res.stderr, res.stderr


def test_a_kernel_not_built_exits_2_naming_the_build_command(tmp_path: Path) -> None:
    first, last = releases.names()[0], releases.names()[-1]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}  # an empty cache: nothing built
    res = difftest("--kernel", first, "--against", last, env=env)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"`anonvma oracle build --linux {first} --variant refcount`" in res.stderr, res.stderr
