"""``python -m anonvma.difftest``: random scripts on the model and a kernel; shrink and save mismatches.

    python -m anonvma.difftest --count 2000 --seed 5000 [--host] [--save tests/scripts]

Each mismatch is shrunk and printed; with ``--save DIR`` it is written as
``DIR/regress_<seed>.jsonl`` with the kernel's output as ``.expected`` (the kernel is the truth).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from anonvma.difftest.compare import coalesced_maps, compare, host_backend, oracle_backend, shrink_divergence
from anonvma.difftest.generate import random_scripts
from anonvma.ops import script_text


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m anonvma.difftest", description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=1000, help="scripts per oracle boot")
    p.add_argument("--variant", choices=("refcount", "strdup"), default="refcount")
    p.add_argument("--host", action="store_true",
                   help="the running kernel instead of the oracle (no names, no mremap; maps coalesced "
                        "unless the host runs 6.1)")
    p.add_argument("--shrink", type=int, default=10, help="shrink at most this many mismatches")
    p.add_argument("--save", type=Path, default=None, metavar="DIR",
                   help="write regress_seed<N>.jsonl/.expected there")
    args = p.parse_args(argv)

    task_size = None
    if args.host:
        import platform

        from anonvma.model.mm import TASK_SIZE

        backend, task_size = host_backend(), TASK_SIZE
        scripts = random_scripts(args.count, seed=args.seed, names=False, mremap=False)
        norm = (lambda lines: lines) if platform.release().startswith("6.1.") else coalesced_maps
    else:
        backend = oracle_backend(args.variant)
        scripts = random_scripts(args.count, seed=args.seed)
        norm = lambda lines: lines  # noqa: E731
    started = time.monotonic()
    mismatches, nops, errors = [], 0, 0
    for lo in range(0, len(scripts), args.batch):
        chunk = scripts[lo:lo + args.batch]
        got = compare(chunk, backend, task_size=task_size)
        nops += got.ops_compared
        for i, kernel in enumerate(got.kernel):
            if kernel is None:
                errors += 1
                print(f"seed {args.seed + lo + i}: kernel run failed: {got.errors[i]}", file=sys.stderr)
            elif norm(kernel) != norm(got.model[i]):
                mismatches.append(lo + i)
    seconds = time.monotonic() - started
    print(f"{len(scripts)} scripts, {nops} ops compared in {seconds:.1f} s "
          f"({len(scripts) / seconds:.1f} scripts/s); {len(mismatches)} differ, {errors} could not run")
    for n, i in enumerate(mismatches):
        if n >= args.shrink:
            break
        div = shrink_divergence(scripts[i], backend, task_size=task_size)
        print(f"\n=== seed {args.seed + i}\n{div.report()}")
        if args.save is not None:
            base = args.save / f"regress_seed{args.seed + i}"
            base.with_suffix(".jsonl").write_text(script_text(div.ops))
            base.with_suffix(".expected").write_text("".join(line + "\n" for line in div.kernel))
            print(f"saved {base}.jsonl/.expected")
    return 1 if mismatches or errors else 0


if __name__ == "__main__":
    sys.exit(main())
