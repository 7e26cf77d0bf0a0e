"""``anonvma oracle build`` and ``anonvma oracle status``: the cached UML kernels, one per release
of :mod:`anonvma.releases` and variant."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from anonvma import releases
from anonvma.oracle.build import (
    VARIANTS,
    OracleBuildError,
    build_command,
    build_kernel,
    cache_dir,
    cached_kernels,
    clean_work,
    find_kernel,
    resolve,
)
from anonvma.oracle import drift
from anonvma.oracle.procgroup import sigterm_interrupts


def _log(msg: str) -> None:
    print(f"anonvma oracle: {msg}", file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    chosen = releases.names() if args.linux == "all" else (resolve(args.linux, _log).name,)
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    try:
        with sigterm_interrupts():
            for linux in chosen:
                for variant in variants:
                    build_kernel(variant, linux=linux, force=args.force, jobs=args.jobs,
                                 keep_tree=args.keep_tree, log=_log)
            if not args.keep_tree:
                clean_work(log=_log)
    except OracleBuildError as exc:
        _log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _log("interrupted: build processes killed, nothing half-built left in the cache")
        return 130
    return 0


def _status(args: argparse.Namespace) -> int:
    """Every release of the table and variant: built (source version, size, build time, path)
    or the command that builds it; then cached builds no release uses."""
    print(f"cache: {cache_dir()}")
    used = set()
    for rel in releases.RELEASES:
        for variant in VARIANTS:
            b = find_kernel(variant, linux=rel.name)
            if b is None:
                print(f"Linux {rel.name:8} {variant:9} {rel.source.version:18} not built "
                      f"(run `{build_command(variant, rel.name)}`)")
                continue
            used.add(b.path)
            print(f"Linux {rel.name:8} {variant:9} {b.version:18} {b.size / 2**20:6.1f} MiB  "
                  f"built in {b.seconds:5.0f} s  {b.path}")
    for b in cached_kernels():
        if b.path not in used:
            print(f"unused: {b.version} {b.variant} (older recipe or not in the release table) {b.path}")
    if not used:
        print("no oracle kernel built: run `anonvma oracle build`")
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add ``oracle build`` and ``oracle status`` to the ``anonvma`` command."""
    p = subparsers.add_parser(
        "oracle", help="build and inspect the UML oracle kernels (every release of the table)",
        description="User-Mode Linux kernels with CONFIG_ANON_VMA_NAME, built from the Debian "
                    "source package each release of the table pins (src/anonvma/releases.py) and "
                    "cached; they run ops scripts as the truth the model is compared with.",
        epilog="examples:\n  anonvma oracle status\n  anonvma oracle build --linux 6.12")
    sub = p.add_subparsers(dest="oracle_command", metavar="ACTION")
    sub.required = True
    b = sub.add_parser(
        "build", help="fetch, patch and build the kernels (cached: a no-op when built)",
        description="Fetch Debian's kernel source with apt-get download (a private sources list "
                    "and state under the cache; the system's apt configuration is left alone), "
                    "build User-Mode Linux with ANON_VMA_NAME and HOSTFS, and cache the binary. "
                    "A build takes minutes (4 to 8 on 2 cores). Ctrl-C stops "
                    "it without leaving processes or a half-built kernel behind.",
        epilog="examples:\n  anonvma oracle build --linux 6.12 --variant refcount\n"
               "  anonvma oracle build --linux all --jobs 2")
    b.add_argument("--linux", choices=(*releases.choices(), "all"), default=releases.DEFAULT,
                   help=f"release: {', '.join(releases.names())}; a series ({', '.join(releases.series())}) "
                        f"for its newest; or all (default: {releases.DEFAULT})")
    b.add_argument("--variant", choices=(*VARIANTS, "all"), default="all",
                   help="refcount: the kernel as is; strdup: dup_anon_vma_name copies the string "
                        "(default: all)")
    b.add_argument("--force", action="store_true", help="rebuild even when a cached build exists")
    b.add_argument("--jobs", "-j", type=int, default=None, help="make -j (default: CPU count)")
    b.add_argument("--keep-tree", action="store_true",
                   help="keep the downloaded package and the built source trees (under the cache's work/)")
    b.set_defaults(func=_build)
    s = sub.add_parser(
        "status", help="what is built, where, which version, how large",
        description="List every release of the table and variant: the Debian source version, "
                    "and its size, build time and path when built, or the command that builds it. "
                    "Exit status 1 when none is built.",
        epilog="example:\n  anonvma oracle status")
    s.set_defaults(func=_status)
    drift.register(sub, _log)
