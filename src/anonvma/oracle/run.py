"""Run many ops scripts inside one boot of an oracle kernel.

The host side (:func:`run_scripts`) writes the scripts to a temp file, boots the kernel once
with ``python -m anonvma.oracle.run IN OUT``, and reads one outcome per script back. The guest
side (:func:`guest_main`) runs each script with the real-process runner
(:mod:`anonvma.live.runner`), writing each outcome as soon as it has it, so a guest that dies
part-way still reports the scripts it finished.
"""

from __future__ import annotations

import json
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from anonvma.ops import Op, parse_script, script_text
from anonvma.oracle.boot import OracleBootError, boot_python
from anonvma.oracle.build import require_kernel


@dataclass(frozen=True)
class ScriptOutcome:
    """One script's run in the oracle: its result objects, or why it could not run.

    :ivar error: ``None`` when the script ran; else the runner's message (a process died, ...).
    """

    results: Optional[list[dict[str, Any]]]
    error: Optional[str] = None


@dataclass(frozen=True)
class OracleRun:
    """Outcomes of one boot, in script order, with the kernel used and the boot's wall time."""

    outcomes: list[ScriptOutcome]
    kernel: Path
    seconds: float


def run_scripts(scripts: Sequence[Sequence[Op]], variant: str = "refcount", kernel: Optional[Path] = None,
                timeout: float = 1800.0) -> OracleRun:
    """Run every script in one boot of the oracle kernel of ``variant`` (or ``kernel``).

    :raises OracleMissingError: no kernel given and none cached for ``variant``.
    :raises OracleBootError: the guest failed before running any script.
    """
    kernel = require_kernel(variant).path if kernel is None else kernel
    with tempfile.TemporaryDirectory(prefix="anonvma-oracle-") as tmp:
        inp, out = Path(tmp) / "scripts.json", Path(tmp) / "outcomes.jsonl"
        inp.write_text(json.dumps([script_text(ops) for ops in scripts]))
        res = boot_python(kernel, ["-m", "anonvma.oracle.run", str(inp), str(out)], timeout=timeout)
        lines = out.read_text().splitlines() if out.exists() else []
    outcomes = [ScriptOutcome(o.get("results"), o.get("error")) for o in map(json.loads, lines)]
    if len(outcomes) < len(scripts):
        why = (f"the guest stopped after {len(outcomes)} of {len(scripts)} scripts "
               f"(exit {res.returncode}); stderr:\n{res.stderr[-2000:]}\nconsole:\n{res.console[-1000:]}")
        if not outcomes:
            raise OracleBootError(why)
        outcomes += [ScriptOutcome(None, why)] * (len(scripts) - len(outcomes))
    return OracleRun(outcomes, kernel, res.seconds)


def guest_main(argv: Sequence[str]) -> int:
    """Inside the guest: run the scripts of ``argv[0]`` (JSON list of texts), outcomes to ``argv[1]``."""
    from anonvma.live.runner import RunnerError, run_ops

    texts = json.loads(Path(argv[0]).read_text())
    with open(argv[1], "w") as out:
        for text in texts:
            try:
                outcome: dict[str, Any] = {"results": run_ops(parse_script(text))}
            except RunnerError as exc:
                outcome = {"error": str(exc)}
            except Exception:  # report and go on: one bad script must not lose the others
                outcome = {"error": traceback.format_exc()}
            out.write(json.dumps(outcome) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(guest_main(sys.argv[1:]))
