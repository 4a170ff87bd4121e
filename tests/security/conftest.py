"""A small store and a trained run for the security tests, made once per test module.

The store (written through the store API, :mod:`tests.helpers`) holds one feature of 8-d frames
for 40 labelled clips in folds ``train`` and ``evaluate``; every clip of ``evaluate`` is also in
fold ``plots/x``, a fold name with a slash (a store names its folds; a fold name becomes part of
the file names ``avscene evaluate`` writes). ``victim`` is the file hostile links point to.
"""

import dataclasses

import pytest

from pipelines.commands import cli
from tests.helpers import audio_like, fill_store, make_clips, new_store

#: The fold whose name holds a folder component.
SLASHED_FOLD = "plots/x"
#: What the victim file holds before and after every test of a write.
VICTIM_BYTES = b"# ~/.bashrc of the user running avscene\nexport PATH=$HOME/bin:$PATH\n"


@pytest.fixture
def victim(tmp_path):
    """A file standing for the user's ``~/.bashrc``, which no test may change."""
    path = tmp_path / "home" / ".bashrc"
    path.parent.mkdir()
    path.write_bytes(VICTIM_BYTES)
    return path


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    clips = []
    for clip in make_clips(40, seed=3, durations=(2.0,)):
        folds = ("evaluate", SLASHED_FOLD) if "evaluate" in clip.folds else ("train",)
        clips.append(dataclasses.replace(clip, folds=folds))
    path = tmp_path_factory.mktemp("store") / "features.zarr"
    store = new_store(path, clips, features=(("audio", 8, 10.0),))
    fill_store(store, "audio", clips, audio_like, dim=8, seed=0)
    store.close()
    return path


@pytest.fixture(scope="module")
def run_dir(store_path, tmp_path_factory):
    """A run trained on the store (logistic regression, preset fast), never written to again:
    tests copy it."""
    run = tmp_path_factory.mktemp("runs") / "lr"
    assert (
        cli.main(
            [
                "-q",
                "train",
                str(store_path),
                "--features",
                "audio",
                "--model",
                "lr",
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
