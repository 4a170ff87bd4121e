"""Received run directories and output paths that hold symbolic links: never written through.

Each test builds the hostile directory itself: a link from a name avscene writes (a plot,
``run.json``, ``split.csv``, the output file, a folder inside the run, or the fixed temporary
name older versions wrote first) to a victim file standing for the user's ``~/.bashrc``. Then it
runs the real command and checks the one-line refusal, exit status 2, and the victim's bytes.
"""

import shutil

import pytest

from pipelines.commands import cli
from tests.security.conftest import SLASHED_FOLD, VICTIM_BYTES


@pytest.fixture(scope="module")
def evaluated_run(run_dir, store_path, tmp_path_factory):
    """A copy of the run, evaluated on fold ``evaluate`` (what ``report`` reads)."""
    run = tmp_path_factory.mktemp("evaluated") / "lr"
    shutil.copytree(run_dir, run)
    assert cli.main(["-q", "evaluate", str(run), str(store_path), "--bootstrap", "0"]) == 0
    return run


@pytest.fixture(scope="module")
def lgbm_run(store_path, tmp_path_factory):
    """A LightGBM run: its booster is a ``model-*.txt`` file."""
    run = tmp_path_factory.mktemp("lgbm") / "lgbm"
    assert (
        cli.main(
            [
                "-q",
                "train",
                str(store_path),
                "--features",
                "audio",
                "--model",
                "lgbm",
                "--preset",
                "fast",
                "--threads",
                "1",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    return run


def received(run_dir, tmp_path, links, victim):
    """A copy of ``run_dir`` in which every name of ``links`` is a symbolic link to ``victim``."""
    hostile = tmp_path / "received" / "run"
    shutil.copytree(run_dir, hostile)
    for name in links:
        (hostile / name).unlink(missing_ok=True)
        (hostile / name).symlink_to(victim)
    return hostile


def contents(folder):
    """``{relative path: bytes or link target}`` of everything under ``folder``."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = ("link", str(path.readlink()))
        elif path.is_file():
            found[key] = path.read_bytes()
        else:
            found[key] = "folder"
    return found


def run_command(argv, capsys):
    capsys.readouterr()
    status = cli.main([str(a) for a in argv])
    return status, capsys.readouterr().err.strip()


def assert_refused(status, error, command, path):
    lines = error.splitlines()
    assert status == 2, error
    assert len(lines) == 1, error
    assert lines[0].startswith(f"avscene {command}: error: ") and str(path) in lines[0], error


@pytest.mark.parametrize(
    "name",
    [
        "confusion-evaluate.png",
        "confusion-evaluate-clip.png",
        "classwise-evaluate.png",
        "evaluation-evaluate.json",
        "run.json",
    ],
)
def test_evaluate_refuses_a_run_file_linked_elsewhere(
    name, run_dir, store_path, tmp_path, victim, capsys
):
    hostile = received(run_dir, tmp_path, [name], victim)
    before = contents(hostile)
    status, error = run_command(["evaluate", hostile, store_path, "--bootstrap", "0"], capsys)
    assert_refused(status, error, "evaluate", hostile / name)
    assert "symbolic link" in error
    assert victim.read_bytes() == VICTIM_BYTES
    assert contents(hostile) == before  # refused before evaluating


def test_evaluate_refuses_a_linked_folder_inside_the_run(
    run_dir, store_path, tmp_path, victim, capsys
):
    # The store names a fold "plots/x": evaluating it writes confusion-plots/x.png,
    # classwise-plots/x.png and evaluation-plots/x.json inside the run. The received run holds
    # the first two folders, and the third is a link to the victim's folder, which holds x.json.
    hostile = received(run_dir, tmp_path, [], victim)
    (hostile / "confusion-plots").mkdir()
    (hostile / "classwise-plots").mkdir()
    (hostile / "evaluation-plots").symlink_to(victim.parent)
    target = victim.parent / "x.json"
    target.write_bytes(VICTIM_BYTES)
    before_run, before_home = contents(hostile), contents(victim.parent)
    status, error = run_command(
        ["evaluate", hostile, store_path, "--fold", SLASHED_FOLD, "--bootstrap", "0"], capsys
    )
    assert_refused(status, error, "evaluate", hostile / "evaluation-plots")
    assert target.read_bytes() == VICTIM_BYTES
    assert contents(victim.parent) == before_home and contents(hostile) == before_run


@pytest.mark.parametrize("name", ["run.json", "split.csv", "model.json", "model.npz", "booster"])
def test_train_over_a_received_run_refuses_a_linked_file(
    name, lgbm_run, store_path, tmp_path, victim, capsys
):
    booster = next(lgbm_run.glob("model-*.txt")).name
    name = booster if name == "booster" else name
    hostile = received(lgbm_run, tmp_path, [name], victim)
    before = contents(hostile)
    status, error = run_command(
        [
            "train",
            store_path,
            "--features",
            "audio",
            "--model",
            "lgbm",
            "--preset",
            "fast",
            "--threads",
            "1",
            "--out",
            hostile,
            "--overwrite",
        ],
        capsys,
    )
    assert_refused(status, error, "train", hostile / name)  # one line: before reading
    assert victim.read_bytes() == VICTIM_BYTES
    assert contents(hostile) == before


def test_links_at_the_old_fixed_temporary_names_are_never_followed(
    run_dir, store_path, tmp_path, victim, capsys
):
    # Older avscene wrote NAME.tmp first and renamed it: a link there was written through.
    # Temporary names are now fresh and created exclusively, so these links are never used.
    names = [
        "evaluation-evaluate.json.tmp",
        "run.json.tmp",
        "model.json.tmp",
        "model.npz.tmp",
        "split.csv.tmp",
    ]
    hostile = received(run_dir, tmp_path, names, victim)
    output = tmp_path / "received" / "output.csv"
    output.with_name("output.csv.tmp").symlink_to(victim)
    commands = [
        ["evaluate", hostile, store_path, "--bootstrap", "0"],
        ["predict", hostile, store_path, "--out", output],
        [
            "train",
            store_path,
            "--features",
            "audio",
            "--preset",
            "fast",
            "--threads",
            "1",
            "--out",
            hostile,
            "--overwrite",
        ],
    ]
    for argv in commands:
        status, error = run_command(["-q", *argv], capsys)
        assert status == 0, error
        assert victim.read_bytes() == VICTIM_BYTES, argv[0]
    assert all((hostile / name).readlink() == victim for name in names)
    assert output.is_file() and not output.is_symlink()
    assert not list(hostile.parent.rglob("*.partial"))  # no temporary file left


@pytest.mark.parametrize("command", ["predict", "report", "split", "export", "pack"])
def test_an_output_file_that_is_a_link_is_refused(
    command, run_dir, evaluated_run, store_path, tmp_path, victim, capsys
):
    names = {
        "predict": "output.csv",
        "report": "report.md",
        "split": "split.csv",
        "export": "features.h5",
        "pack": "features.zarr.zip",
    }
    output = tmp_path / "received" / names[command]
    output.parent.mkdir()
    output.symlink_to(victim)
    argv = {
        "predict": ["predict", run_dir, store_path, "--out", output],
        "report": ["report", evaluated_run, "--out", output],
        "split": ["split", store_path, "--out", output, "--overwrite"],
        "export": ["export", store_path, "--out", output, "--overwrite"],
        "pack": ["pack", store_path, "--out", output, "--overwrite"],
    }[command]
    status, error = run_command(argv, capsys)
    assert_refused(status, error, command, output)
    assert victim.read_bytes() == VICTIM_BYTES
    assert output.is_symlink() and sorted(output.parent.iterdir()) == [output]
