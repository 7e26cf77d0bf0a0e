"""The model against real kernels: curated and seeded random scripts, compared line by line.

The UML 6.1 oracle runs every script of a variant in one boot (session fixtures). A mismatch
is shrunk (delta debugging, a few boots) and the failure shows the small script with both
outputs. Without an oracle kernel these tests skip, saying what is missing; they never pass
silently. Knobs: ANONVMA_DIFF_SCRIPTS (default 500), ANONVMA_DIFF_SEED (default 0).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import pytest

from anonvma.difftest.compare import (
    Divergence,
    coalesced_maps,
    compare,
    host_backend,
    model_lines,
    oracle_backend,
    shrink_divergence,
)
from anonvma.difftest.generate import random_scripts
from anonvma.ops import OPS, Op, format_result, parse_script
from oracle_helpers import oracle_kernel_or_skip

SCRIPTS = Path(__file__).parent / "scripts" / "6.1"
CURATED = sorted(SCRIPTS.glob("*.jsonl"))
N_RANDOM = int(os.environ.get("ANONVMA_DIFF_SCRIPTS", "500"))
SEED = int(os.environ.get("ANONVMA_DIFF_SEED", "0"))
N_HOST = 200
#: Shrinking costs boots; past this many mismatches a failure shows the unshrunk script.
SHRINK_AT_MOST = 5


class OracleSession:
    """One boot per variant and batch, results kept for the whole test session."""

    def __init__(self, variant: str) -> None:
        oracle_kernel_or_skip(variant)
        self.variant = variant
        self.backend = oracle_backend(variant)
        self.curated = [parse_script(p.read_text()) for p in CURATED]
        self.random = random_scripts(N_RANDOM, seed=SEED) if variant == "refcount" else []
        outcomes = self.backend(self.curated + self.random)
        self.curated_out = outcomes[:len(self.curated)]
        self.random_out = outcomes[len(self.curated):]
        self.shrunk = 0


@pytest.fixture(scope="session")
def oracle() -> OracleSession:
    return OracleSession("refcount")


@pytest.fixture(scope="session")
def oracle_strdup() -> OracleSession:
    return OracleSession("strdup")


def _lines(results: list[dict[str, Any]]) -> list[str]:
    return [format_result(r) for r in results]


def _fail_with_divergence(ops: list[Op], kernel: list[str], session: OracleSession) -> None:
    model = model_lines(ops)
    if session.shrunk < SHRINK_AT_MOST:
        session.shrunk += 1
        div = shrink_divergence(ops, session.backend)
    else:
        div = Divergence(list(ops), model, kernel)
    pytest.fail(f"model differs from the {session.variant} oracle at result line {div.line + 1}\n"
                + div.report(), pytrace=False)


@pytest.mark.oracle
@pytest.mark.parametrize("path", CURATED, ids=lambda p: p.stem)
def test_oracle_reproduces_curated_script(path: Path, oracle: OracleSession) -> None:
    """The oracle gives the recorded output (where recorded), and the model gives the oracle's."""
    out = oracle.curated_out[CURATED.index(path)]
    assert out.error is None, out.error
    assert out.results is not None
    kernel = _lines(out.results)
    expected = path.with_suffix(".expected")
    if expected.exists():
        assert "".join(line + "\n" for line in kernel) == expected.read_text()
    ops = parse_script(path.read_text())
    if model_lines(ops) != kernel:
        _fail_with_divergence(ops, kernel, oracle)


@pytest.mark.oracle
@pytest.mark.parametrize("path", CURATED, ids=lambda p: p.stem)
def test_strdup_and_refcount_kernels_agree(path: Path, oracle: OracleSession,
                                           oracle_strdup: OracleSession) -> None:
    """How a name is duplicated (reference or copy) never shows in results or maps."""
    a = oracle.curated_out[CURATED.index(path)]
    b = oracle_strdup.curated_out[CURATED.index(path)]
    assert a.error is None and b.error is None, (a.error, b.error)
    assert b.results == a.results


@pytest.mark.oracle
@pytest.mark.parametrize("index", range(N_RANDOM), ids=lambda i: f"seed{SEED + i}")
def test_model_matches_oracle_on_random_script(index: int, oracle: OracleSession) -> None:
    ops = oracle.random[index]
    out = oracle.random_out[index]
    assert out.error is None, f"the oracle could not run seed {SEED + index}: {out.error}"
    assert out.results is not None
    kernel = _lines(out.results)
    if model_lines(ops) != kernel:
        _fail_with_divergence(ops, kernel, oracle)


def test_random_scripts_exercise_every_op_and_outcome() -> None:
    """The generator is worth running: every op, both successes and each common errno."""
    scripts = random_scripts(200, seed=SEED)
    ops = [op for s in scripts for op in s]
    assert {op.op for op in ops} == set(OPS)
    assert {op.args["advice"] for op in ops if op.op == "madvise"} == {
        "dontfork", "dofork", "wipeonfork", "keeponfork", "dontneed", "normal", "random", "sequential"}
    for op_name, flag in (("mmap", "noreserve"), ("mmap", "populate"), ("mlock", "onfault")):
        assert any(op.args.get(flag) for op in ops if op.op == op_name), flag
    outcomes = {line.split('"')[1] if "errno" not in line else line
                for s in scripts for line in model_lines(s)}
    for want in ("ret", "maps", '{"errno": "EINVAL"}', '{"errno": "ENOMEM"}', '{"errno": "EFAULT"}'):
        assert want in outcomes


# --- the running (host) kernel ------------------------------------------------------------------

def _host_scripts() -> list[list[Op]]:
    # No names (hosts lack CONFIG_ANON_VMA_NAME) and no mremap (6.17 reordered its checks).
    return random_scripts(N_HOST, seed=SEED + 100_000, names=False, mremap=False)


@pytest.fixture(scope="module")
def host_run() -> tuple[list[list[Op]], Any]:
    if platform.system() != "Linux":
        pytest.skip("needs Linux to run scripts on the running kernel")
    scripts = _host_scripts()
    return scripts, compare(scripts, host_backend(), task_size=_host_task_size())


def _host_task_size() -> int:
    from anonvma.model.mm import TASK_SIZE

    return TASK_SIZE


def _host_is_6_1() -> bool:
    return platform.release().startswith("6.1.")


@pytest.mark.parametrize("index", range(N_HOST), ids=lambda i: f"seed{SEED + 100_000 + i}")
def test_model_matches_host_kernel_on_unnamed_script(index: int, host_run: Any) -> None:
    """Same results on the running kernel; on kernels after 6.1 maps compare coalesced.

    Later kernels merge VMAs that 6.1 keeps apart (mprotect/fork anon_vma rules), so there the
    model is held to what is mapped where with which permissions, not to VMA boundaries.
    """
    scripts, run = host_run
    assert run.errors[index] is None, run.errors[index]
    kernel, model = run.kernel[index], run.model[index]
    if not _host_is_6_1():
        kernel, model = coalesced_maps(kernel), coalesced_maps(model)
    if kernel != model:
        div = Divergence(scripts[index], model, kernel)
        pytest.fail(f"model differs from the host kernel ({platform.release()})\n{div.report()}",
                    pytrace=False)
