"""The fork sweep on the UML oracle kernels: every release asked for, both variants, with the
host's vm.max_map_count raised for the run where the populated counts need it (and allowed)."""

from __future__ import annotations

import errno
import sys
from contextlib import ExitStack
from typing import Any, Dict, List, Sequence, Tuple

from anonvma import releases
from anonvma.bench import backends, max_map_count
from anonvma.bench.fork import Cell, cells_from_worker
from anonvma.bench.layout import SCENARIOS


def parse_linux(value: str) -> List[str]:
    """``--linux``: a release, a series (its newest), ``all``, or a comma list of them.

    :raises ValueError: a name the release table does not have.
    """
    if value == "all":
        return list(releases.names())
    return list(dict.fromkeys(releases.resolve(v).name for v in value.split(",") if v))


def counts_that_fit(counts: Sequence[int], scenarios: Sequence[str],
                    limit: int) -> Tuple[List[int], List[int]]:
    """(counts a host limit of ``limit`` allows, counts it does not)."""
    most = max_map_count.fits(limit, max(SCENARIOS[s] for s in scenarios))
    return [c for c in counts if c <= most], [c for c in counts if c > most]


def run(linuxes: Sequence[str], strategies: Sequence[str], options: Sequence[str],
        worker_cfg: Dict[str, Any], meta: Dict[str, Any],
        labels: Dict[str, str]) -> Tuple[List[Cell], List[int]]:
    """Boot each release's kernel of each strategy and run the worker in it.

    :return: (cells, the counts left out because the host's limit is too low and may not be
        raised: the caller reports them and fails).
    :raises ValueError: --oracle-kernel (or its environment variables) with several releases.
    """
    if len(linuxes) > 1 and options:
        raise ValueError("--oracle-kernel names one kernel per variant: use it with one --linux")
    counts: List[int] = worker_cfg["counts"]
    need = max_map_count.needed(max(counts), max(SCENARIOS[s] for s in worker_cfg["scenarios"]))
    skipped: List[int] = []
    cells: List[Cell] = []
    with ExitStack() as stack:  # the host's limit goes back however the loop ends
        try:
            old = stack.enter_context(max_map_count.raised(need))
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EACCES):
                raise
            counts, skipped = counts_that_fit(counts, worker_cfg["scenarios"], max_map_count.read())
            print(f"[uml] {exc.strerror}; counts {', '.join(map(str, skipped))} left out",
                  file=sys.stderr)
            old = None
        if old is not None:
            print(f"[uml] vm.max_map_count raised from {old} to {need} for the run "
                  "(put back after it)", file=sys.stderr)
        for linux in linuxes if counts else ():
            cells += _release(linux, strategies, options, {**worker_cfg, "counts": counts}, meta,
                              labels)
    return cells, skipped

def _release(linux: str, strategies: Sequence[str], options: Sequence[str], cfg: Dict[str, Any],
             meta: Dict[str, Any], labels: Dict[str, str]) -> List[Cell]:
    kernels = backends.find_kernels(options, linux)
    missing = [v for v in strategies if v not in kernels]
    if missing:
        print(f"[uml] Linux {linux}: no oracle kernel for {', '.join(missing)}: skipped (build it "
              f"with `anonvma oracle build --linux {linux} --variant {missing[0]}`, or pass "
              "--oracle-kernel VARIANT=PATH)", file=sys.stderr)
    cells: List[Cell] = []
    for variant in [v for v in strategies if v in kernels]:
        print(f"[uml] booting {kernels[variant]} ({linux}, {variant})", file=sys.stderr, flush=True)
        try:
            res = backends.run_uml(kernels[variant], variant, cfg)
        except (RuntimeError, OSError) as err:
            print(f"[uml] {linux} {variant}: {err}", file=sys.stderr)
            meta["backends"][f"uml-{linux}-{variant}"] = {"error": str(err)}
            continue
        if "incomplete" in res:
            print(f"[uml] {linux} {variant}: {res['incomplete']}", file=sys.stderr)
        cells += cells_from_worker(res, variant)
        labels[res["backend"]] = f"{backends.UML_LABEL}; kernel {res['kernel']}"
        meta["backends"][f"{res['backend']}-{variant}"] = {k: v for k, v in res.items() if k != "cells"}
    return cells
