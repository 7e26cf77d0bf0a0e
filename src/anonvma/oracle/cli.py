"""``anonvma oracle build`` and ``anonvma oracle status``: the cached UML kernels (6.1, 6.12)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from anonvma.oracle.build import (
    DEFAULT_LINUX,
    LINUX_VERSIONS,
    VARIANTS,
    OracleBuildError,
    build_command,
    build_kernel,
    cache_dir,
    cached_kernels,
    clean_work,
    config_key,
)
from anonvma.oracle.procgroup import sigterm_interrupts


def _log(msg: str) -> None:
    print(f"anonvma oracle: {msg}", file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    generations = LINUX_VERSIONS if args.linux == "all" else (args.linux,)
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    try:
        with sigterm_interrupts():
            for linux in generations:
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
    builds = cached_kernels()
    print(f"cache: {cache_dir()}")
    for linux in LINUX_VERSIONS:
        for variant in VARIANTS:
            if not any(b.linux == linux and b.variant == variant and b.key == config_key(variant, linux)
                       for b in builds):
                print(f"Linux {linux:5} {variant:9} not built (run `{build_command(variant, linux)}`)")
    for b in builds:
        current = "" if b.key == config_key(b.variant, b.linux) else "  (older recipe, unused)"
        print(f"Linux {b.linux:5} {b.variant:9} {b.version:18} {b.size / 2**20:6.1f} MiB  "
              f"built in {b.seconds:5.0f} s  {b.path}{current}")
    if not builds:
        print("no oracle kernel built: run `anonvma oracle build`")
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add ``oracle build`` and ``oracle status`` to the ``anonvma`` command."""
    p = subparsers.add_parser(
        "oracle", help="build and inspect the UML oracle kernels (Linux 6.1, 6.12)",
        description="User-Mode Linux kernels with CONFIG_ANON_VMA_NAME, built from Debian's "
                    "linux-source-6.1 (bookworm) and linux-source-6.12 (bookworm-backports) and "
                    "cached; they run ops scripts as the truth the model is compared with.")
    sub = p.add_subparsers(dest="oracle_command", metavar="ACTION")
    sub.required = True
    b = sub.add_parser(
        "build", help="fetch, patch and build the kernels (cached: a no-op when built)",
        description="Fetch Debian's kernel source with apt-get download (a private sources list "
                    "and state under the cache; the system's apt configuration is left alone), "
                    "build User-Mode Linux with ANON_VMA_NAME and HOSTFS, and cache the binary. "
                    "A build takes minutes (6.1 about 4, 6.12 about 7 on 2 cores). Ctrl-C stops "
                    "it without leaving processes or a half-built kernel behind.")
    b.add_argument("--linux", choices=(*LINUX_VERSIONS, "all"), default=DEFAULT_LINUX,
                   help=f"kernel generation: {', '.join(LINUX_VERSIONS)} or all (default: {DEFAULT_LINUX})")
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
        description="List every cached kernel (generation, variant, Debian version, size, build "
                    "time, path) and the command that builds each one missing. Exit status 1 when "
                    "none is built.")
    s.set_defaults(func=_status)
