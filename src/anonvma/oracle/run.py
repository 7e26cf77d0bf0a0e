"""Run ops scripts inside the oracle kernels.

The host side (:func:`run_scripts`) runs a list of scripts on a :class:`~anonvma.oracle.pool.GuestPool`
of the cached kernel of a release and variant and returns one outcome per script. The guest
side (:func:`guest_main`, ``python -m anonvma.oracle.run DIR``) runs the chunks of scripts the
host drops into DIR with one :class:`~anonvma.live.runner.LiveSession`, writing each outcome as
soon as it has it, so a guest that dies part-way still reports the scripts it finished.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from anonvma.ops import Op, parse_script
from anonvma import releases
from anonvma.oracle.build import require_kernel
from anonvma.oracle.pool import GuestPool, ScriptOutcome, run_all

__all__ = ["OracleRun", "ScriptOutcome", "default_jobs", "guest_main", "run_scripts"]

#: Scripts per guest below which one more guest does not pay for its boot.
SCRIPTS_PER_GUEST = 40
#: An idle guest halts when the host has not touched its ``alive`` file for this many seconds.
IDLE_HALT = 120.0


@dataclass(frozen=True)
class OracleRun:
    """Outcomes of one run, in script order, with the kernel used, the wall time and the boots."""

    outcomes: list[ScriptOutcome]
    kernel: Path
    seconds: float
    boots: int = 1


def default_jobs(n_scripts: int) -> int:
    """Guests for ``n_scripts``: one per CPU, but no more than the scripts keep busy."""
    return max(1, min(os.cpu_count() or 1, math.ceil(n_scripts / SCRIPTS_PER_GUEST)))


def run_scripts(scripts: Sequence[Sequence[Op]], variant: str = "refcount", kernel: Optional[Path] = None,
                timeout: float = 120.0, linux: str = releases.DEFAULT,
                jobs: Optional[int] = None) -> OracleRun:
    """Run every script in the oracle kernel of release (or series) ``linux`` and ``variant`` (or ``kernel``).

    :param timeout: seconds a guest may go without finishing a script before it counts as hung
        (killed; the script is reported lost, the others rerun in a new guest).
    :param jobs: guests at once (default :func:`default_jobs`).
    :raises OracleMissingError: no kernel given and none cached for ``linux`` and ``variant``.
    :raises OracleBootError: the guests do not come up.
    """
    kernel = require_kernel(variant, linux=linux).path if kernel is None else kernel
    started = time.monotonic()
    with GuestPool(kernel, jobs=jobs or default_jobs(len(scripts)), script_timeout=timeout) as pool:
        outcomes = run_all(pool, scripts)
        boots = pool.boots
    return OracleRun(outcomes, kernel, time.monotonic() - started, boots)


def _host_gone(work: Path) -> bool:
    """The host removed our directory, or has not touched ``alive`` for :data:`IDLE_HALT` seconds
    (it was killed, or keeps us idle): halt rather than wait for ever."""
    try:
        return time.time() - (work / "alive").stat().st_mtime > IDLE_HALT
    except FileNotFoundError:
        return True


def guest_main(argv: Sequence[str]) -> int:
    """Inside the guest: run the chunks ``DIR/in.0``, ``DIR/in.1``, ... (JSON lists of
    ``[index, script text]``, removed once read), one outcome line per script to ``DIR/out.K``
    for chunk K, until ``DIR/end`` appears or the host stops touching ``DIR/alive``."""
    from anonvma.live.runner import LiveSession, RunnerError

    work = Path(argv[0])
    with LiveSession() as session:
        (work / "ready").touch()
        chunk = 0
        while True:
            path = work / f"in.{chunk}"
            while not path.exists():
                if (work / "end").exists() or _host_gone(work):
                    return 0
                time.sleep(0.01)
            scripts = json.loads(path.read_text())
            path.unlink()
            with open(work / f"out.{chunk}", "w") as out:
                for index, text in scripts:
                    try:
                        outcome: dict[str, Any] = {"results": session.run(parse_script(text))}
                    except RunnerError as exc:
                        outcome = {"error": str(exc)}
                    except Exception:  # report and go on: one bad script must not lose the others
                        outcome = {"error": traceback.format_exc()}
                    out.write(json.dumps({"i": index, **outcome}) + "\n")
                    out.flush()
            chunk += 1


if __name__ == "__main__":
    sys.exit(guest_main(sys.argv[1:]))
