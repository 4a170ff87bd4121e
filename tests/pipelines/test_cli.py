"""The command line: every sub-command is wired and has help; bad usage exits 2."""

import pathlib
import subprocess
import sys

import pytest

from pipelines.commands import cli


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for name, _, _ in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", [c[0] for c in cli.COMMANDS])
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([name, "--help"])
    assert stop.value.code == 0
    assert "usage: avscene" in capsys.readouterr().out


def test_no_command_exits_2(capsys):
    assert cli.main([]) == cli.EXIT_ERROR


def test_console_script_is_installed():
    script = pathlib.Path(sys.executable).with_name("avscene")
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("avscene ")


@pytest.mark.parametrize("name", [c[0] for c in cli.COMMANDS])
def test_every_command_can_print_json_and_shows_defaults(name, capsys):
    with pytest.raises(SystemExit):
        cli.main([name, "--help"])
    text = capsys.readouterr().out
    assert "--json" in text
    assert "(default: False)" in " ".join(text.split())  # ArgumentDefaultsHelpFormatter
