"""featurestore.outputs, the writer of every file outside zarr stores, on hostile folders."""

import csv
import json
import os

import numpy as np
import pytest

from featurestore import outputs
from featurestore.errors import OutputError, OutputExistsError, UnsafeOutputError
from tests.security.conftest import VICTIM_BYTES


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    return path


def test_a_temporary_name_taken_by_a_link_is_never_opened(folder, victim, monkeypatch):
    # Temporary names are random; force the one a link sits at: the exclusive, no-follow
    # creation must fail rather than write through the link.
    planted = folder / ".report.md.planted.partial"
    planted.symlink_to(victim)
    monkeypatch.setattr(outputs, "temp_path", lambda path: planted)
    with pytest.raises(OutputError, match="cannot write .*report.md"):
        outputs.write_text(folder / "report.md", "# report\n")
    assert victim.read_bytes() == VICTIM_BYTES
    assert planted.is_symlink() and not (folder / "report.md").exists()


def test_a_link_made_while_writing_is_not_replaced(folder, victim):
    # A link appearing at the final name between the first check and the rename is refused
    # by the check before the rename; the temporary file is removed.
    target = folder / "run.json"
    with pytest.raises(UnsafeOutputError, match="symbolic link"):
        with outputs.atomic_output(target) as handle:
            handle.write(b"{}\n")
            target.symlink_to(victim)
    assert victim.read_bytes() == VICTIM_BYTES
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_target_that_is_not_a_regular_file_is_refused(kind, folder):
    target = folder / "output.csv"
    if kind == "folder":
        target.mkdir()
    else:
        os.mkfifo(target)
    with pytest.raises(UnsafeOutputError, match="not a regular file"):
        outputs.write_csv(target, [["filename", "scene_label"]])
    with pytest.raises(UnsafeOutputError, match="not a regular file"):
        outputs.check_writable(target, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["output.csv"]


@pytest.mark.parametrize("name", ["../escape.json", "sub/../../escape.json"])
def test_a_name_leaving_its_folder_is_refused(name, folder):
    with pytest.raises(UnsafeOutputError, match=r"'\.\.'"):
        outputs.write_json(folder / name, {}, within=folder)
    assert not (folder.parent / "escape.json").exists()


def test_a_linked_folder_below_within_is_refused_but_the_given_folder_may_be_a_link(
    tmp_path, victim
):
    real = tmp_path / "real-run"
    (real / "plots").mkdir(parents=True)
    named = tmp_path / "named-run"  # a link the user typed: followed
    named.symlink_to(real)
    outputs.check_writable(named, overwrite=True, folder=True)
    outputs.write_text(named / "plots" / "a.txt", "a\n", within=named)
    assert (real / "plots" / "a.txt").read_text() == "a\n"
    (real / "linked").symlink_to(victim.parent)  # a link inside the run: refused
    for write in (
        lambda: outputs.write_bytes(named / "linked" / ".bashrc", b"x", within=named),
        lambda: outputs.check_writable(named / "linked" / ".bashrc", overwrite=True, within=named),
    ):
        with pytest.raises(UnsafeOutputError, match="linked"):
            write()
    assert victim.read_bytes() == VICTIM_BYTES


def test_check_writable_refuses_existing_outputs_without_overwrite(folder):
    (folder / "split.csv").write_text("clip_id,role\n")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        outputs.check_writable(folder / "split.csv", overwrite=False)
    outputs.check_writable(folder / "split.csv", overwrite=True)
    outputs.check_writable(folder / "new" / "deeper" / "split.csv", overwrite=False)


def test_check_writable_refuses_a_folder_this_process_cannot_write(folder, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(
        outputs.os,
        "access",
        lambda path, mode: False if str(path) == str(folder) else real_access(path, mode),
    )
    with pytest.raises(UnsafeOutputError, match=f"{folder} is not writable"):
        outputs.check_writable(folder / "run", overwrite=True, folder=True)


def test_create_new_never_opens_an_existing_name(folder, victim):
    (folder / "log.txt").symlink_to(victim)
    with pytest.raises(OutputExistsError):
        with outputs.create_new(folder / "log.txt", text=True) as handle:
            handle.write("overwritten")
    assert victim.read_bytes() == VICTIM_BYTES


def test_every_writer_round_trips_and_leaves_no_temporary_file(folder):
    from matplotlib.figure import Figure

    outputs.write_json(folder / "a.json", {"x": [1, 2]})
    outputs.write_npz(folder / "a.npz", {"w": np.arange(6.0).reshape(2, 3)})
    outputs.write_csv(folder / "a.csv", [["clip_id", "role"], ["c1", "train"]], delimiter="\t")
    figure = Figure()
    figure.add_subplot().plot([0, 1])
    outputs.write_figure(folder / "a.png", figure)
    outputs.write_bytes(folder / "a.json", b'{"x": 3}')  # replaces the first
    assert json.loads((folder / "a.json").read_text()) == {"x": 3}
    with np.load(folder / "a.npz", allow_pickle=False) as data:
        assert data["w"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    with open(folder / "a.csv", newline="") as handle:
        assert list(csv.reader(handle, delimiter="\t")) == [["clip_id", "role"], ["c1", "train"]]
    assert (folder / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in folder.iterdir()) == ["a.csv", "a.json", "a.npz", "a.png"]
