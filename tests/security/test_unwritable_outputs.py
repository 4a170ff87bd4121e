"""Every command with an output checks that it can write it before it does its work.

An output below a regular file (``--out a-file/x``) cannot be created by anyone, root included,
so these tests fail the same way whoever runs them. Each command must stop with one line naming
the file in the way and exit status 2, having read, trained or written nothing.
"""

import os

import pytest

from pipelines.commands import cli

BLOCKER_BYTES = b"a regular file where a folder is needed\n"


@pytest.fixture(scope="module")
def exported(store_path, tmp_path_factory):
    """The store exported to HDF5 (what ``import`` reads)."""
    path = tmp_path_factory.mktemp("exported") / "features.h5"
    assert cli.main(["-q", "export", str(store_path), "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def packed(store_path, tmp_path_factory):
    """The store packed into a zip archive (what ``unpack`` reads)."""
    path = tmp_path_factory.mktemp("packed") / "features.zarr.zip"
    assert cli.main(["-q", "pack", str(store_path), "--out", str(path)]) == 0
    return path


def command_line(command, out, *, store, run, exported, packed, dataset):
    """The command line of ``command`` with its output at ``out``."""
    return {
        "train": [
            "train",
            store,
            "--features",
            "audio",
            "--preset",
            "fast",
            "--threads",
            "1",
            "--out",
            out,
        ],
        "evaluate": ["evaluate", out, store, "--bootstrap", "0"],
        "predict": ["predict", run, store, "--out", out / "output.csv"],
        "report": ["report", run, "--out", out / "report.md"],
        "split": ["split", store, "--out", out / "split.csv"],
        "export": ["export", store, "--out", out / "features.h5"],
        "import": ["import", exported, "--out", out / "features.zarr"],
        "pack": ["pack", store, "--out", out / "features.zarr.zip"],
        "unpack": ["unpack", packed, "--out", out / "features.zarr"],
        "segments": ["segments", out / "features.zarr"],
        "extract": ["extract", dataset, out / "features.zarr", "--features", "logmel"],
        "synth": ["synth", "--out", out, "--clips-per-class", "1", "--workers", "0"],
        "demo": ["demo", "--out", out, "--workers", "0"],
    }[command]


def tree(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.mark.parametrize(
    "command",
    [
        "train",
        "evaluate",
        "predict",
        "report",
        "split",
        "export",
        "import",
        "pack",
        "unpack",
        "segments",
        "extract",
        "synth",
        "demo",
    ],
)
def test_an_output_below_a_file_is_refused_before_the_work(
    command, store_path, run_dir, exported, packed, tmp_path, capsys
):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(BLOCKER_BYTES)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    argv = command_line(
        command,
        blocker / "out",
        store=store_path,
        run=run_dir,
        exported=exported,
        packed=packed,
        dataset=dataset,
    )
    before = tree(tmp_path)
    capsys.readouterr()
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2, captured.err
    assert len(lines) == 1, captured.err  # no log line: nothing was read before
    assert lines[0] == (
        f"avscene {command}: error: cannot write {argv_output(argv, command)}: "
        f"{blocker} is not a folder"
    )
    assert captured.out == ""
    assert blocker.read_bytes() == BLOCKER_BYTES and tree(tmp_path) == before


def argv_output(argv, command):
    """The output path in a command line of :func:`command_line`."""
    positional = {"evaluate": 1, "segments": 1, "extract": 2}
    return argv[positional[command]] if command in positional else argv[argv.index("--out") + 1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
@pytest.mark.parametrize("command", ["train", "predict", "synth"])
def test_an_output_in_a_read_only_folder_is_refused_before_the_work(
    command, store_path, run_dir, tmp_path, capsys
):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        argv = command_line(
            command,
            folder / "out",
            store=store_path,
            run=run_dir,
            exported=None,
            packed=None,
            dataset=None,
        )
        capsys.readouterr()
        status = cli.main([str(a) for a in argv])
        lines = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(lines) == 1, lines
        assert lines[0].endswith(f"{folder} is not writable"), lines
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)
