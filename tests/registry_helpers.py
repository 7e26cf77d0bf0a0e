"""Real processes that name memory through anonvma's registry, driven line by line from a test.

:class:`Namer` runs a Python child that executes one statement block per request (sent as a
JSON string) with ``anonvma.live`` at hand, and answers ``{"ok": result}`` or ``{"error":
[type, errno, message]}``. The child names memory on this machine's kernel, which lacks
CONFIG_ANON_VMA_NAME, so ``fallback=True`` puts the names in its registry file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, Optional, Sequence

CHILD = r"""
import ctypes, json, mmap, os, sys, traceback
from anonvma import live
from anonvma.live import registry, syscalls
P = mmap.PAGESIZE
RW = syscalls.PROT_READ | syscalls.PROT_WRITE
ANON = syscalls.MAP_PRIVATE | syscalls.MAP_ANONYMOUS

def touch(addr, pages, write=True):
    for i in range(pages):
        if write:
            ctypes.memset(addr + i * P, 1, 1)
        else:
            ctypes.string_at(addr + i * P, 1)

def entries():
    return [list(e) for e in registry.entries()]

space = dict(globals())
print(json.dumps({"ok": os.getpid()}), flush=True)
for line in sys.stdin:
    space["result"] = None
    try:
        exec(json.loads(line), space)
        reply = {"ok": space["result"]}
    except Exception as err:
        reply = {"error": [type(err).__name__, getattr(err, "errno", None), str(err)]}
    print(json.dumps(reply), flush=True)
"""


class ChildError(Exception):
    """The child's statement raised: ``kind`` (exception type name), ``errno``, ``message``."""

    def __init__(self, kind: str, code: Optional[int], message: str) -> None:
        super().__init__(f"{kind} [{code}] {message}")
        self.kind, self.errno, self.message = kind, code, message


class Namer:
    """A child process that runs the statements it is sent (see the module docstring)."""

    def __init__(self, env: Optional[Dict[str, str]] = None, prefix: Sequence[str] = ()) -> None:
        """``prefix``: a command to start the child under (``unshare ...``); ``pid`` is then the
        pid the child sees for itself."""
        full = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen([*prefix, sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=full)
        self.pid = self._reply()

    def _reply(self) -> Any:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise AssertionError(f"the child {self.proc.pid} exited ({self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise ChildError(*reply["error"])
        return reply["ok"]

    def run(self, code: str) -> Any:
        """Run ``code`` in the child; return what it put in ``result``.

        :raises ChildError: the code raised.
        """
        self.proc.stdin.write(json.dumps(code) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self._reply()

    def close(self) -> int:
        """End the child normally (stdin closed: its loop ends, atexit runs), or reap it if it
        has ended; its exit status. Idempotent."""
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:  # it is gone already
                pass
        status = self.proc.wait(timeout=30)
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        return status

    def __enter__(self) -> "Namer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
