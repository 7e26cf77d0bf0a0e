"""anonvma.live and `anonvma show` on a kernel that can name memory: inside the UML 6.1 oracle.

The host kernel has no CONFIG_ANON_VMA_NAME, so the naming paths can only be seen in the oracle.
One boot runs tests/guest_live_show.py (name with anonvma.live, read back with `anonvma show`);
another runs the live naming and procmaps test files under pytest inside the guest, where their
"needs CONFIG_ANON_VMA_NAME" tests run instead of skipping.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from anonvma.oracle.boot import boot_python
from oracle_helpers import oracle_kernel_or_skip

from anonvma import releases
from anonvma.model.replay import run_ops
from anonvma.ops import parse_script

HERE = Path(__file__).parent
PAGE_KB = 4
#: the guest these tests boot
LINUX = releases.DEFAULT


@pytest.fixture(scope="module")
def guest() -> dict[str, Any]:
    res = boot_python(oracle_kernel_or_skip(linux=LINUX), [str(HERE / "guest_live_show.py")], cwd=HERE.parent,
                      timeout=300)
    assert res.returncode == 0, f"guest script failed:\n{res.stderr}\n{res.console[-2000:]}"
    return json.loads(res.stdout)


def _groups(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["key"]: g for g in report["groups"]}


def test_the_oracle_kernel_supports_naming(guest):
    assert guest["supported"] is True


def test_named_memory_shows_in_maps_with_its_name(guest):
    maps = guest["maps"]
    for name in ("anonvma-test heap", "anonvma-test mmap", "anonvma-test bytearray", "stack_and_tls:102"):
        assert f"[anon:{name}]" in maps
    assert "about to be cleared" not in maps


def test_show_groups_named_memory_under_its_name_with_sizes_and_rss(guest):
    assert guest["show"]["rc"] == 0, guest["show"]["stderr"]
    groups = _groups(guest["show"]["json"])
    heap = groups["[anon:anonvma-test heap]"]
    assert (heap["kind"], heap["count"]) == ("anon_named", 1)
    assert (heap["size"], heap["rss"]) == (4 * PAGE_KB, 3 * PAGE_KB)
    assert heap["uss"] == heap["rss"] == heap["pss"]
    mm = groups["[anon:anonvma-test mmap]"]
    assert (mm["count"], mm["size"], mm["rss"]) == (1, 2 * PAGE_KB, PAGE_KB)
    start, length = guest["name_buffer"]
    arr = groups["[anon:anonvma-test bytearray]"]
    assert arr["size"] == length // 1024 and arr["count"] == 1
    assert arr["rss"] == arr["size"]  # every page of the bytearray was written
    for tid in (101, 102, 103):
        t = groups[f"[anon:stack_and_tls:{tid}]"]
        assert (t["count"], t["size"], t["rss"]) == (1, 2 * PAGE_KB, PAGE_KB)


def test_show_fold_puts_numbered_names_in_one_group(guest):
    assert guest["fold"]["rc"] == 0
    groups = _groups(guest["fold"]["json"])
    folded = groups["[anon:stack_and_tls:*]"]
    assert (folded["count"], folded["size"], folded["rss"]) == (3, 6 * PAGE_KB, 3 * PAGE_KB)
    assert not any(k.startswith("[anon:stack_and_tls:1") for k in groups)


def test_show_table_lists_the_names(guest):
    assert guest["table"]["rc"] == 0
    table = guest["table"]["stdout"]
    assert table.splitlines()[1].split()[:2] == ["COUNT", "SIZE"]
    for name in ("[anon:anonvma-test heap]", "[anon:anonvma-test bytearray]", "[anon:stack_and_tls:101]"):
        assert any(line.endswith(name) for line in table.splitlines())


def _model_names_shared_memory(linux: str) -> bool:
    """Whether the model of ``linux`` lets a MAP_SHARED anonymous mapping be named (6.2 on)."""
    script = parse_script('{"op": "mmap", "addr": 0, "len": 4096, "prot": "rw", "share": "shared"}\n'
                          '{"op": "name", "addr": 0, "len": 4096, "name": "nope"}\n')
    return run_ops(script, linux=linux)[-1] == {"ret": 0}


def test_kernel_refusals_come_back_as_the_right_errors(guest):
    """A bad or long name is EINVAL everywhere; shared memory is EBADF where the release cannot
    name it (the model says which), and named where it can."""
    shared = None if _model_names_shared_memory(LINUX) else ["OSError", errno.EBADF]
    assert guest["errors"] == {
        "shared": shared,
        "bad name": ["InvalidAnonNameError", errno.EINVAL],
        "too long": ["InvalidAnonNameError", errno.EINVAL],
    }


def test_live_naming_and_procmaps_tests_pass_inside_the_oracle():
    """The test files whose naming cases skip on this host run, and pass, on the 6.1 oracle."""
    files = ["tests/test_live_naming.py", "tests/test_procmaps_live.py"]
    res = boot_python(oracle_kernel_or_skip(), ["-m", "pytest", "-v", "-p", "no:cacheprovider", *files],
                      cwd=HERE.parent, timeout=600)
    summary = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-2000:]
    assert res.returncode == 0, f"{summary}\n{res.stdout[-4000:]}\n{res.stderr[-2000:]}"
    assert "failed" not in summary and "passed" in summary
    verdicts = {line.split(" ")[0].split("::")[-1]: line.split(" ")[1]
                for line in res.stdout.splitlines() if "::" in line and " " in line}
    assert verdicts["test_named_mmap_names_the_mapping_when_the_kernel_supports_it"] == "PASSED"
    assert verdicts["test_named_child_mappings_are_read_back_and_grouped_by_name"] == "PASSED"
    # the host-only case (a kernel without naming) is the one that may skip here
    assert verdicts["test_this_host_kernel_reports_unsupported_with_an_actionable_message"] == "SKIPPED"
