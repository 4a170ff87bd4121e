"""The README's commands exist: every ``avscene`` invocation in its code names a real
sub-command and only options that sub-command accepts; the make targets and benchmark names
it gives are real."""

import pathlib
import re

import pytest

from benchmarks.__main__ import MODULES
from pipelines.cli import COMMANDS, build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_fragments(markdown):
    """Fenced block lines (continuations joined) and inline code spans of ``markdown``."""
    fence = r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```"     # fences may be indented (in list items)
    fenced = re.findall(fence, markdown, flags=re.S | re.M)
    prose = re.sub(fence, "", markdown, flags=re.S | re.M)
    lines = [line for block in fenced for line in block.replace("\\\n", " ").splitlines()]
    return lines + re.findall(r"`([^`\n]+)`", prose)


def invocations(fragments):
    """(sub-command, options) for each ``avscene [-v|-q] COMMAND ...`` in the fragments."""
    found = []
    for fragment in fragments:
        for match in re.finditer(r"(?:^|[\s$/(])avscene (?:-[vq] )?([a-z]+)([^|;&#]*)", fragment):
            command, rest = match.group(1), match.group(2).split(" avscene ")[0]
            found.append((command, re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest)))
    return found


def subparser_options():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    return {name: set(sub._option_string_actions) for name, sub in subparsers.items()}


def test_readme_avscene_invocations_are_real():
    options = subparser_options()
    found = invocations(code_fragments(README))
    assert len(found) > 50, "the README should show many commands"
    unknown = sorted({command for command, _ in found} - set(options))
    assert not unknown, f"README names sub-commands that do not exist: {unknown}"
    bad = sorted({(command, flag) for command, flags in found for flag in flags
                  if flag not in options[command]})
    assert not bad, f"README passes options the commands do not accept: {bad}"
    assert {command for command, _ in found} == {name for name, _, _ in COMMANDS}


def test_invocation_parser_catches_a_wrong_option():
    found = invocations(["avscene train s.zarr --feature x", "avscene bogus --x"])
    assert found == [("train", ["--feature"]), ("bogus", ["--x"])]
    assert "--feature" not in subparser_options()["train"]
    markdown = "1. step:\n\n   ```\n   avscene scan ROOT \\\n       --jsn\n   ```\n\nthen `avscene info S --json`\n"
    assert invocations(code_fragments(markdown)) == [("scan", ["--jsn"]), ("info", ["--json"])]


@pytest.mark.parametrize("target", ["demo", "test", "install", "bench", "test-slow"])
def test_readme_make_targets_exist(target):
    assert f"make {target}" in README
    assert re.search(rf"^{re.escape(target)}:", (ROOT / "Makefile").read_text(), flags=re.M)


def test_readme_benchmark_names_exist():
    named = set(re.findall(r"python -m benchmarks ([a-z0-9]+)", README))
    assert named and named <= {name for name, _ in MODULES}
    modules = set(re.findall(r"python -m (benchmarks\.[a-z0-9_]+)", README))
    assert modules and modules <= {module for _, module in MODULES}
