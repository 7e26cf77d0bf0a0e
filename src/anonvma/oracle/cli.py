"""``anonvma oracle build`` and ``anonvma oracle status``: the cached UML 6.1 kernels."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from anonvma.oracle.build import (
    VARIANTS,
    OracleBuildError,
    build_kernel,
    cache_dir,
    cached_kernels,
    clean_work,
    config_key,
)


def _log(msg: str) -> None:
    print(f"anonvma oracle: {msg}", file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    try:
        for variant in variants:
            build_kernel(variant, force=args.force, jobs=args.jobs, keep_tree=args.keep_tree, log=_log)
    except OracleBuildError as exc:
        _log(f"error: {exc}")
        return 1
    if not args.keep_tree:
        clean_work(log=_log)
    return 0


def _status(args: argparse.Namespace) -> int:
    builds = cached_kernels()
    print(f"cache: {cache_dir()}")
    if not builds:
        print("no oracle kernel built: run `anonvma oracle build`")
        return 1
    for variant in VARIANTS:
        if not any(b.variant == variant and b.key == config_key(variant) for b in builds):
            print(f"{variant}: not built (run `anonvma oracle build --variant {variant}`)")
    for b in builds:
        current = "" if b.key == config_key(b.variant) else "  (older recipe, unused)"
        print(f"{b.variant:9} {b.version:12} {b.size / 2**20:6.1f} MiB  built in {b.seconds:5.0f} s  "
              f"{b.path}{current}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``oracle build`` and ``oracle status`` to the ``anonvma`` command."""
    p = subparsers.add_parser("oracle", help="build and inspect the UML 6.1 oracle kernels",
                              description="User-Mode Linux 6.1 kernels with CONFIG_ANON_VMA_NAME, "
                                          "built from Debian's linux-source-6.1 and cached.")
    sub = p.add_subparsers(dest="oracle_command", metavar="ACTION")
    sub.required = True
    b = sub.add_parser("build", help="fetch, patch and build the kernels (cached: a no-op when built)")
    b.add_argument("--variant", choices=(*VARIANTS, "all"), default="all",
                   help="refcount: the kernel as is; strdup: dup_anon_vma_name copies the string "
                        "(default: all)")
    b.add_argument("--force", action="store_true", help="rebuild even when a cached build exists")
    b.add_argument("--jobs", "-j", type=int, default=None, help="make -j (default: CPU count)")
    b.add_argument("--keep-tree", action="store_true", help="keep the built source trees and package")
    b.set_defaults(func=_build)
    s = sub.add_parser("status", help="what is built, where, which version, how large")
    s.set_defaults(func=_status)
