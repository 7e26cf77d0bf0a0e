"""The model's shape holds: VMAs are immutable values, generations differ only through Kernel rules."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import anonvma.model
from anonvma.model.kernel import RELEASES, Kernel, get_kernel
from anonvma.model.vma import Vma

MODEL = Path(anonvma.model.__file__).parent
VMA_FIELDS = set(Vma.__slots__)


def _sources() -> list[Path]:
    return sorted(MODEL.glob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.name)
def test_no_module_assigns_a_field_of_a_vma(path: Path):
    """A Vma may be shared by a fork parent and child: changing one in place would change both."""
    if path.name == "vma.py":
        return
    tree = ast.parse(path.read_text())
    bad = [f"line {node.lineno}: .{target.attr}"
           for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AugAssign))
           for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
           if isinstance(target, ast.Attribute) and target.attr in VMA_FIELDS]
    assert bad == []


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.name)
def test_no_module_compares_kernel_releases(path: Path):
    """Generations differ through Kernel rule fields, never through version checks."""
    tree = ast.parse(path.read_text())
    bad = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare)
           for operand in [node.left, *node.comparators]
           if isinstance(operand, ast.Attribute) and operand.attr == "release"
           or isinstance(operand, ast.Constant) and operand.value in RELEASES]
    assert bad == []


def test_every_generation_gives_every_rule_with_its_origin():
    rule_fields = [f.name for f in dataclasses.fields(Kernel) if f.name != "release"]
    for release in RELEASES:
        kernel = get_kernel(release)
        assert kernel.release == release
        assert sorted(kernel.rules()) == sorted(rule_fields), release
        for info in kernel.rules().values():
            assert info.function and info.title and info.since


def test_every_rule_differs_between_the_generations():
    """A field holding the same function in both would not be a difference between them."""
    old, new = get_kernel("6.1"), get_kernel("6.12")
    same = [name for name in old.rule_names() if getattr(old, name) is getattr(new, name)]
    assert same == []


def test_unknown_generation_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="6.1, 6.12"):
        anonvma.model.Mm("refcount", linux="5.15")
