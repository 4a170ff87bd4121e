"""One CLI convention, checked on every sub-command's parser and on every command's --json.

See :mod:`pipelines.commands.options` for the convention itself.
"""

import argparse
import json

import pytest

from pipelines.commands import cli
from pipelines.commands import options as options_module

PARSER = cli.build_parser()
SUBPARSERS = next(a for a in PARSER._actions if a.dest == "command").choices
COMMANDS = [name for name, _, _ in cli.COMMANDS]
#: Commands that create a file or folder name it with --out.
CREATORS = (
    "synth",
    "export",
    "import",
    "split",
    "pack",
    "unpack",
    "train",
    "predict",
    "report",
    "demo",
)
PARALLELISM = {"--workers": "processes", "--threads": "threads", "--dask-local": "processes"}


def options(name):
    return [a for a in SUBPARSERS[name]._actions if a.option_strings and a.dest != "help"]


def flags(name):
    return {flag for action in options(name) for flag in action.option_strings}


def test_every_command_is_walked():
    assert sorted(SUBPARSERS) == sorted(COMMANDS) and len(COMMANDS) >= 14


@pytest.mark.parametrize("name", COMMANDS)
def test_one_name_per_idea(name):
    found = flags(name)
    assert not found & {"--force", "--output", "--workdir", "--jobs", "--n-jobs", "--processes"}
    if "--overwrite" in found:
        action = next(a for a in options(name) if "--overwrite" in a.option_strings)
        assert isinstance(action, argparse._StoreTrueAction)
    if name in CREATORS:
        assert "--out" in found, f"{name} creates output but has no --out"
    positional = [a.dest for a in SUBPARSERS[name]._actions if not a.option_strings]
    assert not {"out", "output"} & set(positional)


@pytest.mark.parametrize("name", COMMANDS)
def test_parallelism_names_say_processes_or_threads(name):
    for action in options(name):
        flag = action.option_strings[0]
        if flag in PARALLELISM:
            assert PARALLELISM[flag] in action.help, (name, flag, action.help)


@pytest.mark.parametrize("name", COMMANDS)
def test_list_options_are_comma_separated(name):
    for action in options(name):
        assert action.nargs not in ("+", "*"), (name, action.option_strings)
        if action.dest in ("features", "classes"):
            assert getattr(action.type, "comma_list", False), (name, action.dest)


def numeric_options(name):
    """Options taking a number: a numeric default, or a type built by pipelines.commands.options.number."""
    found = []
    for action in options(name):
        numeric_default = isinstance(action.default, (int, float)) and not isinstance(
            action.default, bool
        )
        if hasattr(action.type, "bounds") or numeric_default or action.type in (int, float):
            found.append(action)
    return found


@pytest.mark.parametrize("name", COMMANDS)
def test_every_numeric_option_is_validated(name):
    for action in numeric_options(name):
        assert hasattr(action.type, "bounds"), (name, action.option_strings)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_numeric_option_has_both_bounds_in_its_help(name):
    for action in numeric_options(name):
        bounds = action.type.bounds
        assert bounds["maximum"] is not None or bounds["below"] is not None, (
            name,
            action.option_strings,
            "no upper bound",
        )
        assert bounds["minimum"] is not None or bounds["above"] is not None, (
            name,
            action.option_strings,
            "no lower bound",
        )
        shown = SUBPARSERS[name].format_help().replace("\n", " ")
        text = options_module.bounds_text(bounds, action.metavar or action.dest.upper())
        assert f"(range: {text})" in " ".join(shown.split()), (name, action.option_strings)


def minimal_argv(name):
    """Placeholder positionals and required options, so that parsing reaches the options."""
    argv = [name]
    for action in SUBPARSERS[name]._actions:
        if not action.option_strings and action.dest != "help":
            argv += ["x"]
        elif action.required:
            argv += [action.option_strings[0], "x"]
    return argv


def bad_values(bounds):
    values = ["abc", "1e999" if bounds["kind"] is float else "1.5"]
    for key, bad in (
        ("minimum", lambda b: b - 1),
        ("above", lambda b: b),
        ("below", lambda b: b),
        ("maximum", lambda b: b + 1),
    ):
        if bounds[key] is not None:
            values.append(str(bad(bounds[key])))
    return values


CASES = [
    (name, action.option_strings[0], value)
    for name in COMMANDS
    for action in numeric_options(name)
    for value in bad_values(action.type.bounds)
]


@pytest.mark.parametrize("name, flag, value", CASES)
def test_bad_numbers_exit_2_with_one_line(name, flag, value, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([*minimal_argv(name), f"{flag}={value}"])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"avscene {name}: error: argument {flag}"), lines[-1]


def test_bad_number_cases_cover_every_numeric_option():
    assert len({(n, f) for n, f, _ in CASES}) >= 25


def test_bad_list_items_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["synth", "--out", "x", "--classes", "airport,castle"])
    assert stop.value.code == 2
    assert "castle" in capsys.readouterr().err


# -- --json: one object with sorted keys, from every command, on real inputs ------------------


def run_json(argv, capsys):
    capsys.readouterr()
    status = cli.main([str(a) for a in argv] + ["--json"])
    out = capsys.readouterr().out
    document = json.loads(out)
    assert isinstance(document, dict), argv
    assert out == json.dumps(document, indent=2, sort_keys=True) + "\n", argv
    return status, document


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("json")


def test_every_command_prints_one_sorted_json_object(workspace, capsys):
    corpus, store, run = workspace / "corpus", workspace / "s.zarr", workspace / "run"
    seen = {}

    def check(name, *argv, status=0):
        found, document = run_json([name, *argv], capsys)
        assert found == status, (name, document)
        seen[name] = document
        return document

    check(
        "synth",
        "--out",
        corpus,
        "--classes",
        "airport,bus,park",
        "--clips-per-class",
        4,
        "--seconds",
        1,
        "--size",
        "64x48",
        "--fps",
        5,
        "--eval-clips",
        3,
        "--workers",
        1,
    )
    check("scan", corpus / "development")
    for part in ("development", "evaluation"):
        extracted = check(
            "extract",
            corpus / part,
            store,
            "--features",
            "logmel",
            "--n-mels",
            16,
            "--workers",
            0,
            "--progress",
            "log",
            "--segments",
            "max",
        )
        assert [
            (e["feature"], e["pooling"], e["written"]) for e in extracted["segments"]["stored"]
        ] == [("logmel", "max", True)]
    check("info", store)
    check("verify", store)
    check("split", store, "--method", "dcase2021", "--out", workspace / "split.csv")
    check(
        "train",
        store,
        "--features",
        "logmel",
        "--pooling",
        "meanstd",
        "--preset",
        "fast",
        "--val-fraction",
        0,
        "--out",
        run,
    )
    check("evaluate", run, store, "--bootstrap", 10)
    check("predict", run, store, "--fold", "eval", "--out", workspace / "out.csv")
    check("score", workspace / "out.csv", corpus / "evaluation_truth.csv", "--bootstrap", 10)
    assert check("compare", run)["best"] == str(run)
    check("report", run, "--out", workspace / "report.md")
    check("export", store, "--out", workspace / "s.h5")
    check("import", workspace / "s.h5", "--out", workspace / "back.zarr")
    check("segments", store, "--pooling", "mean,meanstd")
    check("pack", store, "--out", workspace / "s.zarr.zip")
    check("unpack", workspace / "s.zarr.zip", "--out", workspace / "unpacked.zarr")
    assert set(seen) == set(COMMANDS) - {"demo"}  # demo: tests/pipelines/test_demo.py
