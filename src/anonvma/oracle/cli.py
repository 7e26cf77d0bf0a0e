"""``anonvma oracle build`` and ``anonvma oracle status``: the cached UML kernels, one per release
of :mod:`anonvma.releases` and variant."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

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
from anonvma.oracle import bisect, drift, labels
from anonvma.oracle.procgroup import sigterm_interrupts


def _log(msg: str) -> None:
    print(f"anonvma oracle: {msg}", file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    if args.source is not None or args.label is not None:
        return _build_source(args)
    if args.rules is not None or args.build_dir is not None:
        _log("error: --rules and --build-dir go with --source PATH --label NAME")
        return 2
    linux = args.linux or releases.DEFAULT
    chosen = releases.names() if linux == "all" else (resolve(linux, _log).name,)
    variants = VARIANTS if args.variant == "all" else (args.variant,)

    def build() -> None:
        for linux in chosen:
            for variant in variants:
                build_kernel(variant, linux=linux, force=args.force, jobs=args.jobs,
                             keep_tree=args.keep_tree, log=_log)
        if not args.keep_tree:
            clean_work(log=_log)

    return _building(build)


def _building(build: Callable[[], object]) -> int:
    """Run ``build`` with SIGTERM as Ctrl-C: 0, 1 when it failed (said why), 130 interrupted."""
    try:
        with sigterm_interrupts():
            build()
    except OracleBuildError as exc:
        _log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _log("interrupted: build processes killed, nothing half-built left in the cache")
        return 130
    return 0


def _build_source(args: argparse.Namespace) -> int:
    """``build --source PATH --label NAME``: a kernel of the user's own source."""
    if args.source is None or args.label is None:
        _log("error: --source PATH and --label NAME go together")
        return 2
    if args.linux is not None:
        _log("error: --linux names a release of the table; with --source, --rules RELEASE says "
             "which release the tree should behave like")
        return 2
    try:
        labels.check_label(args.label)
        if args.rules is not None:
            releases.resolve(args.rules)
    except ValueError as exc:
        _log(f"error: {exc}")
        return 2
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    return _building(lambda: [labels.build(args.source, args.label, variant, rules=args.rules,
                                           jobs=args.jobs, build_dir=args.build_dir, log=_log)
                              for variant in variants])


def _remove(args: argparse.Namespace) -> int:
    try:
        count = labels.remove(args.label, log=_log)
    except OracleBuildError as exc:
        _log(f"error: {exc}")
        return 1
    _log(f"removed {args.label} ({count} variant{'s' if count != 1 else ''})")
    return 0


def _bisect_run(args: argparse.Namespace) -> int:
    try:
        with sigterm_interrupts():
            return bisect.step(args.script, expect=args.expect, like=args.like, tree=args.tree,
                               build_dir=args.build_dir, jobs=args.jobs,
                               log=lambda msg: print(f"anonvma bisect-run: {msg}", file=sys.stderr,
                                                     flush=True))
    except KeyboardInterrupt:
        _log("interrupted")
        return 130


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
    for item in labels.listed():
        used.add(item.path)
        print(f"label {item.label:8} {item.variant:9} Linux {item.version:12} rules {item.rules:9} "
              f"{item.path.stat().st_size / 2**20:6.1f} MiB  built in {item.seconds:5.0f} s  "
              f"from {item.source}")
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
               "  anonvma oracle build --linux all --jobs 2\n"
               "  anonvma oracle build --source ~/src/linux --label mine --variant refcount")
    b.add_argument("--linux", choices=(*releases.choices(), "all"), default=None,
                   help=f"release: {', '.join(releases.names())}; a series ({', '.join(releases.series())}) "
                        f"for its newest; or all (default: {releases.DEFAULT})")
    b.add_argument("--source", type=Path, metavar="PATH",
                   help="build your own kernel source instead: a tree (a git checkout too), a "
                        "tarball (.tar.xz, .tar.gz) or a Debian linux-source .deb; Linux 5.17 or "
                        "later (the first with CONFIG_ANON_VMA_NAME); needs --label")
    b.add_argument("--label", metavar="NAME",
                   help="the name the --source kernel is kept and used under (difftest --kernel "
                        "NAME, bench --oracle-kernel)")
    b.add_argument("--rules", metavar="RELEASE",
                   help="with --source: the model's release it should match (default: the nearest "
                        "release the table has, said aloud)")
    b.add_argument("--build-dir", type=Path, metavar="DIR",
                   help="with --source of a clean tree: build out of tree in DIR and keep it "
                        "(the next build of that tree is incremental); default: a scratch "
                        "directory, removed after")
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
    r = sub.add_parser(
        "remove", help="remove a kernel built with --source --label",
        description="Remove every variant of the kernel built under LABEL from the cache.",
        epilog="example:\n  anonvma oracle remove mine")
    r.add_argument("label", metavar="LABEL")
    r.set_defaults(func=_remove)
    g = sub.add_parser(
        "bisect-run", help="one step of `git bisect run` in a kernel tree: build, run a script, compare",
        description="Build the kernel tree as checked out (out of tree, reusing the last step's "
                    "objects), run the ops script in it under UML, and compare the output with "
                    "--expect FILE (a recorded .expected) or with the model's output for --like "
                    "RELEASE. Exit status: 0 the output matches (good), 1 it differs (bad), 125 "
                    "the commit does not build or cannot name memory (skip), 128 a usage error "
                    "(git bisect run stops). Run it inside a kernel git tree, or name one with --tree.",
        epilog="examples:\n"
               "  anonvma oracle bisect-run ~/s.jsonl --like 6.1.176 --tree ~/linux\n"
               "  git bisect start v6.1.192 v6.1.176\n"
               "  git bisect run anonvma oracle bisect-run ~/s.jsonl --expect ~/s.expected")
    g.add_argument("script", type=Path, metavar="SCRIPT", help="an ops script (.jsonl)")
    how = g.add_mutually_exclusive_group()
    how.add_argument("--expect", type=Path, metavar="FILE",
                     help="the output a good commit prints (e.g. recorded on the good kernel)")
    how.add_argument("--like", metavar="RELEASE",
                     help="a good commit prints what the model prints for RELEASE")
    g.add_argument("--tree", type=Path, default=Path("."), metavar="DIR",
                   help="the kernel tree (default: the current directory)")
    g.add_argument("--build-dir", type=Path, metavar="DIR",
                   help="where the objects are kept between steps (default: one per tree in the cache)")
    g.add_argument("--jobs", "-j", type=int, default=None, help="make -j (default: CPU count)")
    g.set_defaults(func=_bisect_run)
    drift.register(sub, _log)
