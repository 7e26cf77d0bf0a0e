"""``python -m anonvma.difftest --kernel A --against B``: one kernel judged against another.

The random scripts of a model campaign (script i from seed SEED+i) run on both sides: two UML
kernels, or a kernel and the model speaking a release (``model:RELEASE``). Each script whose
result lines differ is shrunk to the smallest that still differs between the two (both sides'
guests stay booted; every script's round in one batch), saved with ``--save``, and grouped by
its first differing op and the model's rule behind it (:mod:`anonvma.difftest.groups`).
``--out`` writes the report as JSON, which ``--merge`` adds up over shards. Exit status: 0 the
two agree, 1 they differ or scripts could not run or were lost, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from anonvma.difftest.generate import random_script
from anonvma.difftest.groups import Difference, by_rule, group, merge_groups, report
from anonvma.difftest.paired import differs, lines, paired, run_pairs, shrink_many
from anonvma.difftest.shards import ShardDoc, problems, shard_range
from anonvma.difftest.sides import Runner, Side, UsageError, open_runner, resolve_side
from anonvma.procmaps.files import write_atomically

RESULTS_FORMAT = "anonvma-difftest-against-1"
PROG = "python -m anonvma.difftest"
#: Seconds between progress lines on stderr.
PROGRESS_SECONDS = 30.0


@dataclass(frozen=True)
class Plan:
    """One campaign (or shard of one), checked: the two sides and what to run."""

    a: Side
    b: Side
    variant: str
    count: int
    seed: int
    shard: tuple[int, int]
    jobs: int
    script_timeout: float
    shrink: Optional[int]
    save: Optional[Path]
    out: Optional[Path]
    as_json: bool

    def campaign(self) -> dict[str, Any]:
        """What the shards of one campaign share."""
        return {"count": self.count, "seed": self.seed, "kernel": self.a.name, "against": self.b.name,
                "variant": self.variant, "shards": self.shard[1]}


def plan(args: argparse.Namespace) -> Plan:
    """The campaign ``args`` ask for.

    :raises UsageError: options that do not go together, a side that names no kernel (or one
        not built), the model as ``--kernel``, or the same kernel twice.
    """
    if args.kernel is None or args.against is None:
        raise UsageError("--kernel and --against go together: --kernel A --against B")
    for given, option in ((args.linux, "--linux"), (args.host, "--host"), (args.no_model, "--no-model"),
                          (args.coverage, "--coverage")):
        if given:
            raise UsageError(f"{option} does not go with --kernel/--against (they name both sides)")
    if args.count < 0 or args.jobs < 1:
        raise UsageError("--count must be >= 0 and --jobs >= 1")
    variant = args.variant or "refcount"
    a, b = resolve_side(args.kernel, variant), resolve_side(args.against, variant)
    if a.is_model:
        raise UsageError(f"--kernel {args.kernel}: name a real kernel there; the model goes in --against")
    if a.same_as(b):
        raise UsageError(f"--kernel and --against both name {a.title}: nothing to compare")
    return Plan(a, b, variant, args.count, args.seed, args.shard, args.jobs, args.script_timeout,
                args.shrink, args.save, args.out, args.json)


def main(args: argparse.Namespace) -> int:
    """Run the campaign ``args`` ask for and report it; the exit status (module doc)."""
    from anonvma.oracle.boot import OracleBootError
    from anonvma.oracle.procgroup import sigterm_interrupts

    try:
        p = plan(args)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        with sigterm_interrupts():
            return run(p)
    except OracleBootError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; every guest killed", file=sys.stderr)
        return 130


def _runners(p: Plan) -> tuple[Runner, Runner, str]:
    """Both sides' runners and how many guests each has: ``--jobs`` split between two kernels
    (at least one each, on different CPUs first), all of it for a kernel against the model."""
    if p.b.is_model:
        guests = f"{p.jobs} guest" + ("s" if p.jobs > 1 else "")
        return (open_runner(p.a, p.variant, p.jobs, p.script_timeout),
                open_runner(p.b, p.variant, 0, p.script_timeout), guests)
    ja, jb = max(1, (p.jobs + 1) // 2), max(1, p.jobs // 2)
    cpus = sorted(os.sched_getaffinity(0))
    turn = ja % len(cpus)
    return (open_runner(p.a, p.variant, ja, p.script_timeout, cpus),
            open_runner(p.b, p.variant, jb, p.script_timeout, cpus[turn:] + cpus[:turn]),
            f"{ja} + {jb} guests")


def run(p: Plan) -> int:
    """The campaign: run, shrink, save, report; the exit status."""
    k, n = p.shard
    indexes = shard_range(p.count, k, n)
    ra, rb, guests = _runners(p)
    print(f"difftest: scripts {indexes.start}..{indexes.stop - 1} of {p.count} (shard {k}/{n}), seeds "
          f"{p.seed + indexes.start}..{p.seed + indexes.stop - 1}: {p.a.title} against {p.b.title} "
          f"({p.variant}, {guests})", file=sys.stderr, flush=True)
    graceful = False
    try:
        doc = _campaign(p, indexes, ra, rb)
        graceful = True
    finally:
        ra.close(graceful)
        rb.close(graceful)
    if p.out is not None:
        p.out.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(str(p.out), (json.dumps(doc, indent=1) + "\n").encode())
    if p.as_json:
        print(json.dumps(doc, indent=1))
    else:
        print_report(doc)
    if p.out is not None:
        print(f"results: {p.out}", file=sys.stderr if p.as_json else sys.stdout)
    return 1 if doc["differ"] or doc["could_not_run"] or doc["lost"] else 0


def _campaign(p: Plan, indexes: range, ra: Runner, rb: Runner) -> dict[str, Any]:
    """Every script of the shard on both sides; the differences shrunk, saved and grouped: the
    report, as JSON is written."""
    started = last = time.monotonic()
    scripts = ops = 0
    diffs: list[Difference] = []
    broken: dict[str, list[dict[str, Any]]] = {"could_not_run": [], "lost": []}
    for i, script, oa, ob in paired(ra, rb, (random_script(p.seed + j) for j in indexes)):
        scripts += 1
        seed = p.seed + indexes[i]
        la, lb = lines(oa), lines(ob)
        for side, o in ((p.a, oa), (p.b, ob)):
            if o.results is None:
                broken["lost" if o.lost else "could_not_run"].append(
                    {"seed": seed, "side": side.name, "error": o.error})
                print(f"seed {seed}: {'lost' if o.lost else 'could not run'} on {side.title}: {o.error}",
                      file=sys.stderr, flush=True)
        if la is None or lb is None:
            continue
        ops += len(la)
        if la != lb:
            diffs.append(Difference(seed, list(script), la, lb, len(script)))
        if time.monotonic() - last > PROGRESS_SECONDS:
            last = time.monotonic()
            print(f"difftest: {scripts}/{len(indexes)} scripts, {len(diffs)} differ, "
                  f"{len(broken['could_not_run'])} could not run, {len(broken['lost'])} lost "
                  f"({scripts / (last - started):.1f} scripts/s)", file=sys.stderr, flush=True)
    seconds = time.monotonic() - started
    diffs.sort(key=lambda d: d.seed)
    chosen = diffs if p.shrink is None else diffs[:p.shrink]
    if chosen:
        print(f"difftest: shrinking {len(chosen)} differences", file=sys.stderr, flush=True)
    shrink_started = time.monotonic()
    _shrink(chosen, ra, rb)
    shrink_seconds = time.monotonic() - shrink_started
    if p.save is not None:
        _save(p, diffs)
    return {"format": RESULTS_FORMAT, "campaign": p.campaign(),
            "sides": {"a": {"title": p.a.title, "release": p.a.release},
                      "b": {"title": p.b.title, "release": p.b.release}},
            "shard": {"k": p.shard[0], "first": indexes.start, "stop": indexes.stop},
            "scripts": scripts, "ops": ops, "differ": len(diffs), "shrunk": sum(d.shrunk for d in diffs),
            "seconds": round(seconds, 1), "shrink_seconds": round(shrink_seconds, 1),
            "boots": ra.boots + rb.boots, "jobs": p.jobs,
            "groups": group(diffs, p.a.release, p.b.release), **broken}


def _shrink(diffs: Sequence[Difference], ra: Runner, rb: Runner) -> None:
    """Shrink each difference in place; one that no longer differs when run again (flaky) stays
    as it was generated."""
    small = shrink_many(ra, rb, [d.ops for d in diffs])
    for diff, ops, (oa, ob) in zip(diffs, small, run_pairs(ra, rb, small), strict=True):
        la, lb = lines(oa), lines(ob)
        if differs(oa, ob) and la is not None and lb is not None:
            diff.ops, diff.a, diff.b, diff.shrunk = ops, la, lb, True


def _save(p: Plan, diffs: Sequence[Difference]) -> None:
    """Each difference as ``DIR/against_seed<N>.jsonl`` and each side's result lines beside it."""
    from anonvma.ops import script_text

    assert p.save is not None
    p.save.mkdir(parents=True, exist_ok=True)
    tags = (p.a.tag("a"), p.b.tag("b"))
    for diff in diffs:
        base = p.save / f"against_seed{diff.seed}"
        base.with_suffix(".jsonl").write_text(script_text(diff.ops))
        for tag, got in zip(tags, (diff.a, diff.b), strict=True):
            Path(f"{base}.out-{tag}").write_text("".join(line + "\n" for line in got))
    if diffs:
        print(f"saved {len(diffs)} differences as {p.save}/against_seed<N>.jsonl, .out-{tags[0]} "
              f"({p.a.title}) and .out-{tags[1]} ({p.b.title})", file=sys.stderr)


def print_report(doc: dict[str, Any]) -> None:
    """The report as text: the totals, then each group (largest first), then what could not run."""
    sides = doc["sides"]
    ta, tb = sides["a"]["title"], sides["b"]["title"]
    seconds = doc["seconds"]
    print(f"{ta} against {tb} ({doc['campaign']['variant']}): {doc['scripts']} scripts, "
          f"{doc['ops']} ops on each side in {seconds:.1f} s "
          f"({doc['scripts'] / seconds if seconds else 0.0:.1f} scripts/s, {doc['boots']} boots); "
          f"{doc['differ']} differ, {len(doc['could_not_run'])} could not run, {len(doc['lost'])} lost")
    if doc["differ"]:
        rules = by_rule(doc["groups"])
        print(f"{doc['shrunk']} of {doc['differ']} shrunk in {doc['shrink_seconds']:.1f} s; "
              f"{len(rules)} rules, {len(doc['groups'])} kinds of first difference (A = {ta}, B = {tb}):")
    unknown = [s["title"] for s in (sides["a"], sides["b"]) if s["release"] is None]
    why = (f"the model does not know the release of {' or '.join(unknown)}" if unknown
           else "no single rule of the model explains it")
    for kinds in by_rule(doc["groups"]):
        print()
        print(report(kinds, ta, tb, why))
    for key in ("could_not_run", "lost"):
        for x in doc[key]:
            print(f"seed {x['seed']}: {key.replace('_', ' ')} on {x['side']}: {x['error']}")


def merge(docs: Sequence[ShardDoc], as_json: bool = False) -> int:
    """Merge the ``--out`` files of one kernel-against-kernel campaign's shards: check they make
    the whole campaign, add their groups up, report; the exit status (2: not one campaign)."""
    wrong = [f"{path} is not a --kernel/--against --out file" for path, d in docs
             if d.get("format") != RESULTS_FORMAT]
    found = wrong or problems(docs)
    first = docs[0][1]
    merged: dict[str, Any] = {
        "format": RESULTS_FORMAT, "campaign": first.get("campaign"), "sides": first.get("sides"),
        "merged": len(docs), "groups": [], "could_not_run": [], "lost": []}
    if not wrong:
        for key in ("scripts", "ops", "differ", "shrunk", "seconds", "shrink_seconds", "boots"):
            merged[key] = sum(d[key] for _, d in docs)
        merged["groups"] = merge_groups(d["groups"] for _, d in docs)
        for key in ("could_not_run", "lost"):
            merged[key] = [x for _, d in docs for x in d[key]]
        if as_json:
            print(json.dumps(merged, indent=1))
        else:
            c = merged["campaign"]
            print(f"campaign: {c['count']} scripts from seed {c['seed']}, {c['kernel']} against "
                  f"{c['against']}, {c['shards']} shards; merged {len(docs)} files "
                  f"({merged['seconds']:.0f} s of shard time)")
            print_report(merged)
    for why in found:
        print(f"{PROG}: {why}", file=sys.stderr)
    if found:
        return 2
    return 1 if merged["differ"] or merged["could_not_run"] or merged["lost"] else 0
