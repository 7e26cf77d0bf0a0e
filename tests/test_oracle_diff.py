"""The model against real kernels: curated and seeded random scripts, compared line by line.

The UML oracle runs the scripts of each release and variant on a pool of guests (session
fixtures). Every curated script runs on every release's kernel against its recorded output
(tests/recordings.py) and the model. Every run compares ANONVMA_DIFF_SCRIPTS (default 1,000)
random scripts per release with the model under both name strategies, from a fresh seed printed
at the start (ANONVMA_DIFF_SEED repeats a run). A mismatch is shrunk (delta debugging) and saved
as a regression script under tests/scripts/regress/ with the kernel's output as .expected; from
then on it runs with the curated scripts. Without an oracle kernel these tests skip, saying what
is missing.
"""

from __future__ import annotations

import os
import platform
import random
from pathlib import Path
from typing import Any, Iterator

import pytest

from anonvma.difftest.compare import (
    Divergence,
    OracleBackend,
    coalesced_maps,
    compare,
    host_backend,
    model_lines,
    model_supports,
    shrink_divergence,
)
from anonvma.difftest.generate import HOST_KWARGS, random_scripts
from anonvma.ops import OPS, Op, format_result, parse_script, script_text
from anonvma import releases
from anonvma.oracle.pool import ScriptOutcome
from oracle_helpers import oracle_kernel_or_skip
from recordings import curated as curated_scripts, expected as expected_output

SCRIPTS = Path(__file__).parent / "scripts"
REGRESS = SCRIPTS / "regress"
N_RANDOM = int(os.environ.get("ANONVMA_DIFF_SCRIPTS", "1000"))
SEED = int(os.environ.get("ANONVMA_DIFF_SEED") or random.SystemRandom().randrange(10**9))
#: Releases whose kernels the model is compared with (every release it speaks).
MODEL_RELEASES = tuple(r for r in releases.names() if not model_supports(r))
N_HOST = 200


def curated(linux: str) -> list[Path]:
    """The curated scripts (tests/scripts/) and the regressions saved on ``linux``."""
    stem = f"linux{linux.replace('.', '_')}_"
    return curated_scripts() + sorted(REGRESS.glob(f"{stem}*.jsonl"))


def expected(path: Path, linux: str) -> str:
    """What ``linux``'s kernel printed for a curated script or one of its saved regressions."""
    if path.parent == REGRESS:
        return path.with_suffix(".expected").read_text()
    return expected_output(path, linux)


CURATED = [(linux, path) for linux in releases.names() for path in curated(linux)]
#: Shrinking costs guest time; past this many mismatches a failure shows the unshrunk script.
SHRINK_AT_MOST = 5


class OracleSession:
    """The outcomes of one kernel (generation, variant) for the whole test session."""

    def __init__(self, linux: str, variant: str, with_random: bool) -> None:
        oracle_kernel_or_skip(variant, linux)
        self.linux = linux
        self.variant = variant
        self.backend = OracleBackend(variant, linux)
        self.paths = curated(linux)
        self.curated = [parse_script(p.read_text()) for p in self.paths]
        self.random = random_scripts(N_RANDOM, seed=SEED) if with_random else []
        outcomes = self.backend(self.curated + self.random)
        self.curated_out = outcomes[:len(self.curated)]
        self.random_out = outcomes[len(self.curated):]
        self.shrunk = 0


class Oracles:
    """The :class:`OracleSession` of each (generation, variant), made when first asked for."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.made: dict[tuple[str, str], OracleSession] = {}
        self.skipped: dict[tuple[str, str], BaseException] = {}

    def get(self, linux: str, variant: str = "refcount") -> OracleSession:
        key = (linux, variant)
        if key in self.skipped:
            raise self.skipped[key]
        if key not in self.made:
            with_random = variant == "refcount" and linux in MODEL_RELEASES
            if with_random:
                self.say(f"test_oracle_diff: {N_RANDOM} random scripts on Linux {linux}, seeds "
                         f"{SEED}..{SEED + N_RANDOM - 1} (repeat with ANONVMA_DIFF_SEED={SEED})")
            try:
                self.made[key] = OracleSession(linux, variant, with_random)
            except pytest.skip.Exception as exc:
                self.skipped[key] = exc
                raise
        return self.made[key]

    def say(self, line: str) -> None:
        """A line on the terminal now, past pytest's output capture (the seed of this run)."""
        plugins = self.request.config.pluginmanager
        reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n{line}")

    def close(self) -> None:
        for session in self.made.values():
            session.backend.close()


@pytest.fixture(scope="session")
def oracles(request: pytest.FixtureRequest) -> Iterator[Oracles]:
    made = Oracles(request)
    try:
        yield made
    finally:
        made.close()


def _lines(results: list[dict[str, Any]]) -> list[str]:
    return [format_result(r) for r in results]


def _model_or_skip(linux: str) -> None:
    if linux not in MODEL_RELEASES:
        why = model_supports(linux) or f"Linux {linux} is not in MODEL_RELEASES yet"
        pytest.skip(f"the model does not follow Linux {linux}'s rules yet ({why}): "
                    "compared with the model once anonvma.model speaks it")


def _save_regression(div: Divergence, linux: str, seed: int) -> Path:
    """The shrunk script and the kernel's output, as a regression script run with the curated ones."""
    REGRESS.mkdir(parents=True, exist_ok=True)
    base = REGRESS / f"linux{linux.replace('.', '_')}_seed{seed}"
    base.with_suffix(".jsonl").write_text(script_text(div.ops))
    base.with_suffix(".expected").write_text("".join(line + "\n" for line in div.kernel))
    return base.with_suffix(".jsonl")


def _fail_with_divergence(ops: list[Op], kernel: list[str], session: OracleSession,
                          seed: int | None = None) -> None:
    model = model_lines(ops, linux=session.linux)
    if session.shrunk < SHRINK_AT_MOST:
        session.shrunk += 1
        div = shrink_divergence(ops, session.backend, linux=session.linux)
    else:
        div = Divergence(list(ops), model, kernel)
    where = ""
    if seed is not None:
        where = (f" (seed {seed}; repeat with ANONVMA_DIFF_SEED={SEED}); saved as "
                 f"{_save_regression(div, session.linux, seed)}")
    pytest.fail(f"model differs from the Linux {session.linux} {session.variant} oracle at result line "
                f"{div.line + 1}{where}\n" + div.report(), pytrace=False)


def _ran(out: ScriptOutcome, what: str) -> list[str]:
    assert out.error is None, f"the oracle could not run {what}: {out.error}"
    assert out.results is not None
    return _lines(out.results)


def _curated_id(value: Any) -> str:
    return value.stem if isinstance(value, Path) else str(value)


@pytest.mark.oracle
@pytest.mark.parametrize("linux, path", CURATED, ids=_curated_id)
def test_oracle_reproduces_curated_script(path: Path, linux: str, oracles: Oracles) -> None:
    """The oracle gives the output recorded for its release, and the model gives the oracle's."""
    oracle = oracles.get(linux)
    kernel = _ran(oracle.curated_out[oracle.paths.index(path)], path.name)
    assert "".join(line + "\n" for line in kernel) == expected(path, linux)
    _model_or_skip(oracle.linux)
    ops = parse_script(path.read_text())
    if model_lines(ops, linux=oracle.linux) != kernel:
        _fail_with_divergence(ops, kernel, oracle)


@pytest.mark.oracle
@pytest.mark.parametrize("linux, path", CURATED, ids=_curated_id)
def test_strdup_and_refcount_kernels_agree(path: Path, linux: str, oracles: Oracles) -> None:
    """How a name is duplicated (reference or copy) never shows in results or maps."""
    refcount, strdup = oracles.get(linux, "refcount"), oracles.get(linux, "strdup")
    a = refcount.curated_out[refcount.paths.index(path)]
    b = strdup.curated_out[strdup.paths.index(path)]
    assert a.error is None and b.error is None, (a.error, b.error)
    assert b.results == a.results


@pytest.mark.oracle
@pytest.mark.parametrize("linux", MODEL_RELEASES)
@pytest.mark.parametrize("index", range(N_RANDOM), ids=lambda i: f"seed{SEED + i}")
def test_model_matches_oracle_on_random_script(index: int, linux: str, oracles: Oracles) -> None:
    """Both name strategies of the model print what the release's kernel printed."""
    oracle = oracles.get(linux)
    ops = oracle.random[index]
    kernel = _ran(oracle.random_out[index], f"seed {SEED + index} (ANONVMA_DIFF_SEED={SEED})")
    if model_lines(ops, linux=oracle.linux) != kernel:
        _fail_with_divergence(ops, kernel, oracle, seed=SEED + index)
    assert model_lines(ops, "strdup", linux=oracle.linux) == kernel


SHMEM_NAMING = ('{"op": "mmap", "addr": 0, "len": 8192, "prot": "rw", "share": "shared"}\n'
                '{"op": "name", "addr": 0, "len": 8192, "name": "shm"}\n{"op": "maps"}\n')


@pytest.mark.oracle
@pytest.mark.parametrize("linux", releases.names())
def test_shared_anonymous_memory_is_nameable_from_6_2_on(linux: str) -> None:
    """Before 6.2 naming shmem is EBADF; from 6.2 on maps shows [anon_shmem:NAME]: on each
    release's kernel as the model's rule for that release says."""
    from anonvma.model.kernel import get_kernel
    from anonvma.model.madvise import anon_vma_name_allowed_shmem
    from anonvma.oracle.run import run_scripts

    oracle_kernel_or_skip("refcount", linux)
    named = get_kernel(linux).anon_vma_name_allowed is anon_vma_name_allowed_shmem
    (out,) = run_scripts([parse_script(SHMEM_NAMING)], linux=linux).outcomes
    assert out.results == ([{"ret": 0}, {"ret": 0}, {"maps": ["0-2000 rw-s [anon_shmem:shm]"]}] if named else
                           [{"ret": 0}, {"errno": "EBADF"}, {"maps": ["0-2000 rw-s shmem"]}])


def test_random_scripts_exercise_every_op_and_outcome() -> None:
    """The generator is worth running: every op, both successes and each common errno."""
    scripts = random_scripts(200, seed=SEED)
    ops = [op for s in scripts for op in s]
    assert {op.op for op in ops} == set(OPS)
    assert {op.args["advice"] for op in ops if op.op == "madvise"} == {
        "dontfork", "dofork", "wipeonfork", "keeponfork", "dontneed", "normal", "random", "sequential",
        "guard_install", "guard_remove"}
    for op_name, flag in (("mmap", "noreserve"), ("mmap", "populate"), ("mlock", "onfault")):
        assert any(op.args.get(flag) for op in ops if op.op == op_name), flag
    outcomes = {line.split('"')[1] if "errno" not in line else line
                for s in scripts for line in model_lines(s)}
    for want in ("ret", "maps", '{"errno": "EINVAL"}', '{"errno": "ENOMEM"}', '{"errno": "EFAULT"}'):
        assert want in outcomes


# --- the running (host) kernel ------------------------------------------------------------------

def _host_scripts() -> list[list[Op]]:
    # No names (hosts lack CONFIG_ANON_VMA_NAME), no mremap (6.17 reordered its checks), nothing
    # that needs the oracle's own limits (vm.max_map_count, its RAM): as difftest --host.
    return random_scripts(N_HOST, seed=SEED + 100_000, **HOST_KWARGS)


@pytest.fixture(scope="module")
def host_run() -> tuple[list[list[Op]], Any]:
    if platform.system() != "Linux":
        pytest.skip("needs Linux to run scripts on the running kernel")
    scripts = _host_scripts()
    # the host's kernel is newer than 6.12: it has the 7.x rules these scripts reach (guard
    # regions, merges into unfaulted neighbours), so the model is the table's newest release
    return scripts, compare(scripts, host_backend(), task_size=_host_task_size(),
                            linux=releases.RELEASES[-1].name)


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
        seed = SEED + 100_000 + index
        pytest.fail(f"model differs from the host kernel ({platform.release()}; seed {seed}, "
                    f"ANONVMA_DIFF_SEED={SEED})\n{div.report()}", pytrace=False)
