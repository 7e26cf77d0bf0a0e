"""The model's shape holds: VMAs are immutable values, releases differ only through Kernel rules."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import anonvma.model
from anonvma import releases
from anonvma.model.kernel import Kernel, get_kernel, has_version, info_of, rule_versions
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


#: Strings that name a release or a series of the table.
RELEASE_WORDS = set(releases.choices())


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.name)
def test_no_module_compares_kernel_releases(path: Path):
    """Releases differ through Kernel rule fields, never through version checks."""
    tree = ast.parse(path.read_text())
    bad = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare)
           for operand in [node.left, *node.comparators]
           if isinstance(operand, ast.Attribute) and operand.attr == "release"
           or isinstance(operand, ast.Constant) and operand.value in RELEASE_WORDS]
    assert bad == []


def _python_files() -> list[Path]:
    root = Path(__file__).parent.parent
    return sorted([*(root / "src").rglob("*.py"), *(root / "tests").rglob("*.py"),
                   *(root / "benchmarks").glob("*.py")])


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.name))
def test_no_release_is_named_outside_the_table(path: Path):
    """A release or series appears as a string only in anonvma/releases.py: no list, default
    or check elsewhere (docstrings, comments and a rule version's ``since`` tag may name one;
    tests use the table)."""
    if path.name == "releases.py" and path.parent.name == "anonvma":
        return
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    tags = {id(arg) for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name) and node.func.id == "rule" for arg in node.args}
    bad = [f"line {node.lineno}: {node.value!r}" for node in ast.walk(tree)
           if isinstance(node, ast.Constant) and isinstance(node.value, str)
           and node.value in RELEASE_WORDS and id(node) not in docstrings | tags]
    assert bad == []


def test_every_release_gives_every_rule_with_its_origin():
    rule_fields = [f.name for f in dataclasses.fields(Kernel) if f.name != "release"]
    assert sorted(rule_versions()) == sorted(rule_fields)
    for release in releases.names():
        kernel = get_kernel(release)
        assert kernel.release == release
        assert sorted(kernel.rules()) == sorted(rule_fields), release
        for info in kernel.rules().values():
            assert info.function and info.title and (info.since or info.commit)


def test_every_version_of_every_rule_is_some_release_s():
    """A version no release resolves to is dead code; a rule with one version is no difference."""
    used = {id(getattr(get_kernel(r), name)) for r in releases.names() for name in rule_versions()}
    for name, versions in rule_versions().items():
        assert len(versions) >= 2, name
        for v in versions:
            assert id(v) in used, f"{name}: {v.__name__} is no release's"


def test_a_backport_names_a_version_of_some_rule():
    """Every commit a release lists as backported is the tag of a rule version it then has."""
    tags = {info_of(v).commit: v for versions in rule_versions().values() for v in versions}
    for rel in releases.RELEASES:
        for commit in rel.backports:
            assert commit in tags, (rel.name, commit)
            assert has_version(rel, info_of(tags[commit]))


def test_a_series_means_its_newest_release_and_the_default_is_in_the_table():
    for series in releases.series():
        newest = releases.newest_in(series)
        assert get_kernel(series) is get_kernel(newest.name)
        assert all(releases.version_key(r.name) <= releases.version_key(newest.name)
                   for r in releases.RELEASES if r.mainline == series)
    assert releases.DEFAULT in releases.names()
    assert anonvma.model.Mm().kernel is get_kernel(releases.DEFAULT)


def test_unknown_release_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=", ".join(releases.names())):
        anonvma.model.Mm("refcount", linux="5.15")
