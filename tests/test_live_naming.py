"""anonvma.live naming: validation before any syscall, and the unsupported-kernel error on this host."""

from __future__ import annotations

import errno
import mmap

import pytest

from anonvma import live
from anonvma.live import naming, syscalls

PAGE = syscalls.PAGE_SIZE


@pytest.fixture
def no_syscalls(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record prctl calls instead of making them; tests assert the list stays empty."""
    calls: list = []
    monkeypatch.setattr(syscalls, "prctl_set_vma_anon_name", lambda *a: calls.append(a))
    return calls


@pytest.mark.parametrize(("name", "index"), [
    ("a$b", 1), ("x`", 1), ("[x", 0), ("x]", 1), ("back\\slash", 4), ("tab\there", 3),
    ("é", 0), (b"ok\x7f", 2), (b"nul\x00", 3), ("new\nline", 3),
])
def test_bad_character_is_einval_naming_its_index_before_any_syscall(name, index, no_syscalls):
    with pytest.raises(live.InvalidAnonNameError) as exc:
        live.set_anon_name(0x10000, PAGE, name)
    assert exc.value.errno == errno.EINVAL
    assert exc.value.index == index
    assert f"at index {index}" in str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert no_syscalls == []


def test_80_byte_name_is_einval_before_any_syscall_and_79_passes_validation(no_syscalls):
    with pytest.raises(live.InvalidAnonNameError, match="80 bytes long; Linux allows at most 79"):
        live.set_anon_name(0x10000, PAGE, "a" * 80)
    assert no_syscalls == []
    assert naming.validate_name("a" * 79) == b"a" * 79


def test_name_is_checked_before_the_address_like_the_kernel(no_syscalls):
    with pytest.raises(live.InvalidAnonNameError):
        live.set_anon_name(0x10001, PAGE, "a$")
    assert no_syscalls == []


def test_unaligned_address_is_einval_before_any_syscall(no_syscalls):
    with pytest.raises(live.InvalidRangeError, match="not page-aligned") as exc:
        live.set_anon_name(0x10001, PAGE, "ok")
    assert exc.value.errno == errno.EINVAL
    assert no_syscalls == []


def test_wrapping_range_is_einval(no_syscalls):
    with pytest.raises(live.InvalidRangeError, match="wraps"):
        live.set_anon_name((1 << 64) - PAGE, 2 * PAGE, "ok")
    with pytest.raises(live.InvalidRangeError, match="overflows"):
        live.set_anon_name(0, (1 << 64) - 1, "ok")
    assert no_syscalls == []


def test_valid_arguments_reach_the_prctl_with_bytes(no_syscalls):
    live.set_anon_name(0x10000, 100, "glibc: malloc")
    live.set_anon_name(0x10000, 0, "")
    live.set_anon_name(0x10000, PAGE, None)
    assert no_syscalls == [(0x10000, 100, b"glibc: malloc"), (0x10000, 0, b""),
                           (0x10000, PAGE, None)]


def test_wrong_name_type_is_a_type_error(no_syscalls):
    with pytest.raises(TypeError):
        live.set_anon_name(0x10000, PAGE, 42)  # type: ignore[arg-type]


def test_buffer_covering_no_whole_page_is_a_clear_value_error(no_syscalls):
    with pytest.raises(ValueError, match="covers no whole page"):
        live.name_buffer(bytearray(100), "x")
    assert no_syscalls == []


def test_buffer_is_named_by_the_whole_pages_it_covers(no_syscalls):
    buf = bytearray(5 * PAGE)
    start, length = live.name_buffer(buf, "buf")
    addr, _ = naming.buffer_span(buf)
    assert start % PAGE == 0 and addr <= start < addr + PAGE
    assert start + length <= addr + len(buf) and length >= 3 * PAGE
    assert no_syscalls == [(start, length, b"buf")]
    buf.extend(b"x" * 10)  # the buffer export was released


def test_read_only_buffer_is_refused(no_syscalls):
    with pytest.raises(ValueError, match="read-only"):
        live.name_buffer(bytes(3 * PAGE), "x")


def test_memoryview_and_mmap_are_named(no_syscalls):
    m = mmap.mmap(-1, 3 * PAGE, flags=mmap.MAP_PRIVATE)
    try:
        assert live.name_mmap(m, "m")[1] == 3 * PAGE
        live.name_buffer(memoryview(m)[PAGE:], "view")
        assert no_syscalls[1][1] == 2 * PAGE
    finally:
        m.close()


def test_numpy_array_is_named_when_numpy_is_installed(no_syscalls):
    np = pytest.importorskip("numpy", reason="numpy is not installed (optional)")
    arr = np.zeros(4 * PAGE, dtype=np.uint8)
    live.name_buffer(arr, "np")
    assert len(no_syscalls) == 1


def test_this_host_kernel_reports_unsupported_with_an_actionable_message():
    if live.supported():
        pytest.skip("this kernel has CONFIG_ANON_VMA_NAME; the unsupported path cannot be seen")
    with pytest.raises(live.AnonNameUnsupportedError) as exc:
        live.named_mmap(PAGE, "x")
    assert exc.value.errno == errno.EINVAL
    assert "CONFIG_ANON_VMA_NAME" in str(exc.value)
    assert "CONFIG_ANON_VMA_NAME=y" in str(exc.value) and "boot such a kernel" in str(exc.value)
    assert "run `anonvma oracle build`" not in str(exc.value)  # it cannot make this host name memory
    assert isinstance(exc.value.__cause__, OSError)
    first, hint = str(exc.value).split("\n")  # one line saying what failed and why, then the hint
    assert first == exc.value.strerror and len(first) < 150 and "Errno" not in first
    assert first.startswith("naming 0x") and hint == exc.value.hint
    assert hint.startswith("pass fallback=True, or set ANONVMA_FALLBACK=1")


def test_named_mmap_names_the_mapping_when_the_kernel_supports_it():
    if not live.supported():
        pytest.skip("this kernel was built without CONFIG_ANON_VMA_NAME (the oracle kernel has it)")
    m = live.named_mmap(2 * PAGE, "anonvma-test")
    try:
        with open("/proc/self/maps") as f:
            assert "[anon:anonvma-test]" in f.read()
    finally:
        m.close()
