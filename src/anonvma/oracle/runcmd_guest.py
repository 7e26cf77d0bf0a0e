"""Inside the guest of ``anonvma run``: start the command, feed its stdin, sample its process tree.

``python -m anonvma.oracle.runcmd_guest DIR`` (DIR a host directory, seen through hostfs) reads
``DIR/run.json`` (argv, environment, working directory, interval), starts the command with its
stdout and stderr on ``DIR/out`` and ``DIR/err`` (the host copies them out as they grow), copies
the host's stdin chunks ``DIR/stdin.0``, ``stdin.1`` ... into its stdin until ``DIR/stdin.end``,
and samples the smaps of every process below this one into ``DIR/samples`` (``anonvma record``
lines, each with which processes held each name). This process is the tree's subreaper, so
orphaned grandchildren stay in the tree. When the command exits, its status goes to
``DIR/status`` (written last: the host then has every sample and every byte of output).

The guest sees the host's files but not its processes, so the host's anonvma registries
(:mod:`anonvma.live.registry`) mean nothing here: the sampler and the command use
``DIR/registry`` instead (``ANONVMA_REGISTRY_DIR``), and never see or touch the host's.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence

from anonvma.fleet.record import header, sample_line
from anonvma.live.registry.places import DIR_ENV
from anonvma.procmaps.files import write_atomically
from anonvma.procmaps.system import read_system

#: prctl(2) option: orphaned descendants are re-parented to this process, not to init.
PR_SET_CHILD_SUBREAPER = 36
#: Sampling takes at most this share of the time: after a sample that took T seconds the next
#: one waits at least T * (1 - share) / share, however many processes the tree holds.
MAX_SHARE = 0.2
#: How often the stdin copier looks for the host's next chunk: at first, and at most.
STDIN_POLL = (0.02, 0.2)


def exit_status(returncode: int) -> int:
    """A shell's exit status for a ``subprocess`` return code: the code, or 128+N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


def registry_dir(work: Path) -> str:
    """The guest's own registry directory (not the host's: its pids are not the guest's)."""
    return str(work / "registry")


def start(spec: Dict[str, Any], work: Path) -> "subprocess.Popen[bytes] | Dict[str, Any]":
    """Start the command of ``spec`` (with the guest's registry directory); its
    :class:`~subprocess.Popen`, or the status to report when it cannot start (127 not found,
    126 not executable, as a shell says)."""
    env = {os.fsencode(k): os.fsencode(v) for k, v in {**spec["env"], DIR_ENV: registry_dir(work)}.items()}
    try:
        with open(work / "out", "wb") as out, open(work / "err", "wb") as err:
            return subprocess.Popen(spec["argv"], cwd=spec["cwd"], env=env, stdout=out, stderr=err,
                                    stdin=subprocess.PIPE if spec["stdin"] else subprocess.DEVNULL)
    except FileNotFoundError as exc:
        return {"status": 127, "error": f"{spec['argv'][0]}: {exc.strerror}"}
    except OSError as exc:
        return {"status": 126, "error": f"{spec['argv'][0]}: {exc.strerror}"}


def feed_stdin(work: Path, pipe: IO[bytes]) -> None:
    """Copy the host's stdin chunks into ``pipe`` in order, removing each once read; close the
    pipe after the last (``stdin.end`` holds their number) or when the command stops reading."""
    index, wait = 0, STDIN_POLL[0]
    try:
        while True:
            chunk = work / f"stdin.{index}"
            try:
                data = chunk.read_bytes()
            except FileNotFoundError:
                end = work / "stdin.end"
                if end.exists() and int(end.read_text()) <= index:
                    return
                time.sleep(wait)
                wait = min(wait * 2, STDIN_POLL[1])  # an idle terminal costs little
                continue
            wait = STDIN_POLL[0]
            chunk.unlink()
            index += 1
            pipe.write(data)
            pipe.flush()
    except (BrokenPipeError, OSError):
        pass  # the command closed its stdin or exited; the host's extra input is dropped
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def descendants(root: int, procfs: str = "/proc") -> Dict[int, str]:
    """Live (not zombie) processes below ``root``: pid -> ``pid:starttime``, an id no later
    process reuses (pids are recycled; a start time in a pid's place is not)."""
    parent: Dict[int, int] = {}
    ident: Dict[int, str] = {}
    for entry in os.listdir(procfs):
        if not entry.isdigit():
            continue
        try:  # os.open/read, not open(): a third of the syscalls, which are dear in a UML guest
            fd = os.open(f"{procfs}/{entry}/stat", os.O_RDONLY)
            try:
                fields = os.read(fd, 4096).rsplit(b")", 1)[1].split()
            finally:
                os.close(fd)
        except (OSError, IndexError):
            continue  # exited while listed
        if fields[0] == b"Z":
            continue
        parent[int(entry)] = int(fields[1])
        ident[int(entry)] = f"{entry}:{fields[19].decode()}"
    children: Dict[int, List[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    found: Dict[int, str] = {}
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        found[pid] = ident[pid]
        todo.extend(children.get(pid, ()))
    return found


def sample(tree: Dict[int, str], first: Optional[float], fold: bool, match: Optional[str]) -> Dict[str, Any]:
    """One ``anonvma record`` sample of the processes ``tree``, plus ``holders``: name -> the
    ids (see :func:`descendants`) of the processes holding it."""

    system = read_system([str(pid) for pid in sorted(tree)], by="name", fold=fold, match=match)
    line = sample_line(system, system.time if first is None else first)
    holders: Dict[str, List[str]] = {}
    for proc in system.processes:
        for g in proc.groups:
            if proc.pid is not None:
                holders.setdefault(g.key, []).append(tree[proc.pid])
    line["holders"] = holders
    return line


def reap_orphans(command: int) -> None:
    """Reap the exited orphans this subreaper inherited, leaving ``command`` to its Popen."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == command:
            return
        os.waitpid(info.si_pid, 0)


def run(work: Path) -> Dict[str, Any]:
    """Run the command of ``work/run.json`` to its end, sampling; its status and sample count."""
    spec = json.loads((work / "run.json").read_text())
    os.environ[DIR_ENV] = registry_dir(work)  # this sampler's registry reads: the guest's own
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    proc = start(spec, work)
    if isinstance(proc, dict):
        return proc
    if proc.stdin is not None:
        threading.Thread(target=feed_stdin, args=(work, proc.stdin), daemon=True).start()
    pidfd = os.pidfd_open(proc.pid)
    samples, first, failed = 0, None, False
    with open(work / "samples", "w") as out:
        out.write(json.dumps(header(spec["argv"], spec["every"], spec["duration"], spec["fold"],
                                    spec["match"])) + "\n")
        out.flush()
        due = time.monotonic()
        while True:
            ready, _, _ = select.select([pidfd], [], [], max(0.0, due - time.monotonic()))
            if ready:
                break
            began = time.monotonic()
            if not failed:
                try:
                    line = sample(descendants(os.getpid()), first, spec["fold"], spec["match"])
                except Exception:  # noqa: BLE001 - a sampler bug must not lose the command's status
                    traceback.print_exc()
                    failed = True
                else:
                    first = line["t"] - line["elapsed"]
                    out.write(json.dumps(line) + "\n")
                    out.flush()
                    samples += 1
            reap_orphans(proc.pid)
            took = time.monotonic() - began
            due = max(began + spec["every"], time.monotonic() + took * (1 - MAX_SHARE) / MAX_SHARE)
    os.close(pidfd)
    return {"status": exit_status(proc.wait()), "samples": samples}


def main(argv: Sequence[str]) -> int:
    """``DIR``: run, then write ``DIR/status``."""
    work = Path(argv[0])
    result = run(work)
    write_atomically(str(work / "status"), json.dumps(result).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
