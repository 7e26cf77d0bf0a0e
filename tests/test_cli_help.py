"""Every ``--help`` ends with an example, and every example is a command line the parser takes.

The parsers are walked, sub-commands of sub-commands included, so a command added without an
example fails here. An example ends the help as ``example:`` (or ``examples:``) and indented
command lines (some may prepare a file); each ``anonvma ...`` or ``python -m anonvma.difftest
...`` in them must parse.
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Dict, List

import pytest

from anonvma.cli import COMMANDS, build_parser
from anonvma.difftest.__main__ import parser as difftest_parser

#: What separates the commands of one shell line.
OPERATORS = {"|", "||", "&&", ";", "&"}
#: What redirects a command's input or output (followed by a file name).
REDIRECTS = {"<", ">", ">>", "2>"}


def parsers() -> Dict[str, argparse.ArgumentParser]:
    """Every parser by the command line that reaches it: ``anonvma``, ``anonvma oracle build``,
    ... and ``python -m anonvma.difftest``."""
    found: Dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        found[prefix] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}")
    walk(build_parser(), "anonvma")
    found["python -m anonvma.difftest"] = difftest_parser()
    return found


def examples(help_text: str) -> List[str]:
    """The command lines of the example that ends ``help_text``.

    :raises AssertionError: the help does not end with ``example:`` and one indented line, or
        ``examples:`` and several.
    """
    last = help_text.rstrip("\n").split("\n\n")[-1].splitlines()
    head, lines = last[0], last[1:]
    assert head in ("example:", "examples:"), f"the help ends with {last!r}, not an example"
    assert lines and all(line.startswith("  ") and line.strip() for line in lines), last
    assert head == ("example:" if len(lines) == 1 else "examples:"), last
    return [line.strip() for line in lines]


def commands(line: str) -> List[List[str]]:
    """The words of each command of a shell line (pipes, ``&&``, ``;`` and redirections cut it;
    leading ``VAR=value`` words dropped; ``$$`` is this process)."""
    lexer = shlex.shlex(line.replace("$$", str(os.getpid())), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    out: List[List[str]] = [[]]
    redirected = False
    for word in lexer:
        if word in OPERATORS:
            out.append([])
        elif word in REDIRECTS:
            redirected = True
        elif redirected:
            redirected = False
        elif out[-1] or "=" not in word:
            out[-1].append(word)
    return [words for words in out if words]


def ours(words: List[str]) -> bool:
    return words[0] == "anonvma" or words[:3] in (["python", "-m", "anonvma.difftest"],
                                                  ["python3", "-m", "anonvma.difftest"])


@pytest.fixture(autouse=True)
def width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")


def test_every_help_ends_with_an_example_each_of_whose_commands_parses(capsys):
    missing, refused = {}, {}
    for name, parser in parsers().items():
        try:
            lines = examples(parser.format_help())
        except AssertionError as err:
            missing[name] = str(err)
            continue
        mine = [words for line in lines for words in commands(line) if ours(words)]
        if not mine:
            refused[name] = "the example runs no anonvma command"
        for words in mine:
            try:
                if words[0] == "anonvma":
                    build_parser(words[1:]).parse_args(words[1:])
                else:
                    difftest_parser().parse_args(words[3:])
            except SystemExit:
                refused[" ".join(words)] = f"{name}: {capsys.readouterr().err.strip()}"
    assert missing == {} and refused == {}
    walked = set(parsers())  # every command, and the commands of oracle and bench
    assert {f"anonvma {name}" for name in COMMANDS} < walked
    assert {"anonvma oracle build", "anonvma oracle status", "anonvma oracle drift",
            "anonvma bench fork"} < walked


def test_the_top_level_and_a_nested_help_end_with_their_examples():
    helps = {name: parser.format_help() for name, parser in parsers().items()}
    assert "\nexamples:\n  anonvma show --all --top 10\n" in helps["anonvma"]
    assert examples(helps["anonvma oracle build"])[0].startswith("anonvma oracle build --linux ")
    assert examples(helps["anonvma bench fork"])[0] == "anonvma bench fork --quick"
    assert examples(helps["python -m anonvma.difftest"])[0].startswith("python -m anonvma.difftest --count")


def test_a_help_without_an_example_or_with_a_wrapped_one_is_refused():
    plain = argparse.ArgumentParser(prog="anonvma new", description="a command added without an example")
    with pytest.raises(AssertionError, match="not an example"):
        examples(plain.format_help())
    wrapped = argparse.ArgumentParser(prog="anonvma new", epilog="example:\n  anonvma new --x")
    with pytest.raises(AssertionError):  # argparse's default formatter folds it into one line
        examples(wrapped.format_help())
    two = argparse.ArgumentParser(prog="anonvma new", epilog="example:\n  anonvma a\n  anonvma b",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    with pytest.raises(AssertionError):  # two lines are "examples:"
        examples(two.format_help())


def test_an_example_line_is_cut_into_its_commands():
    assert commands("GLIBC_TUNABLES=x anonvma run --json-out - -- ls / | python3 -m json.tool") == [
        ["anonvma", "run", "--json-out", "-", "--", "ls", "/"], ["python3", "-m", "json.tool"]]
    assert commands("anonvma snapshot $$ -o a.gz && anonvma show a.gz > out.txt") == [
        ["anonvma", "snapshot", str(os.getpid()), "-o", "a.gz"], ["anonvma", "show", "a.gz"]]


def test_descriptions_are_filled_to_the_width_and_examples_kept_whole():
    text = parsers()["anonvma show"].format_help()
    assert max(len(line) for line in text.splitlines()) <= 98
    assert "\n  anonvma show --all --top 10\n" in text
