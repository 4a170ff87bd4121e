"""Crash safety and parallel writers: killed runs resume to the same bytes; writers share
nothing."""

import multiprocessing
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from featurestore.store import COMMITTED, PENDING, FeatureStore
from tests.helpers import (
    all_arrays,
    assert_same_arrays,
    audio_like,
    fill_store,
    make_clips,
    new_store,
)

ROOT = str(pathlib.Path(__file__).resolve().parents[2])
N_CLIPS, SEED = 14, 31

WRITER = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    from featurestore.store import FeatureStore
    from tests.helpers import audio_like, make_clips

    where, kill_after, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    clips = {{c.clip_id: c for c in make_clips({n}, seed={seed})}}
    store = FeatureStore.open(where, mode="r+")
    done = 0
    print("started", flush=True)
    for block in store.blocks():
        with store.block_writer("audio", block, commit_seconds=0) as writer:
            for clip_id in store.pending("audio", block=block):
                writer.write(clip_id, *audio_like(clips[clip_id], dim=8, seed=1))
                done += 1
                if done == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(pause)
""").format(root=ROOT, n=N_CLIPS, seed=SEED)


def _clips():
    return make_clips(N_CLIPS, seed=SEED)


def _reference(tmp_path):
    store = new_store(tmp_path / "reference.zarr", _clips())
    fill_store(store, "audio", _clips(), audio_like, dim=8, seed=1)
    return all_arrays(store)


def _run_writer(script, where, kill_after=-1, pause=0.0):
    return subprocess.run(
        [sys.executable, str(script), str(where), str(kill_after), str(pause)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("kill_after", [3, 10])
def test_sigkill_mid_write_then_rerun_equals_uninterrupted(tmp_path, kill_after):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    where = tmp_path / "crashed.zarr"
    new_store(where, _clips())
    killed = _run_writer(script, where, kill_after)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    crashed = FeatureStore.open(where, mode="r")
    status = crashed.status("audio")
    assert 0 < np.sum(status == COMMITTED) < kill_after  # some rows flushed, not committed
    assert crashed.verify() == []  # a crashed store is consistent, just incomplete
    rerun = _run_writer(script, where)
    assert rerun.returncode == 0, rerun.stderr
    resumed = FeatureStore.open(where, mode="r")
    assert np.all(resumed.status("audio") == COMMITTED)
    assert_same_arrays(all_arrays(resumed), _reference(tmp_path))


def test_sigkill_at_a_random_moment_then_rerun_equals_uninterrupted(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    where = tmp_path / "crashed.zarr"
    new_store(where, _clips())
    process = subprocess.Popen(
        [sys.executable, str(script), str(where), "-1", "0.02"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "started"
    time.sleep(np.random.default_rng().uniform(0.02, 0.2))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stdout.close()
    assert _run_writer(script, where).returncode == 0
    assert_same_arrays(all_arrays(FeatureStore.open(where, mode="r")), _reference(tmp_path))


def test_exception_inside_a_writer_then_rerun_equals_uninterrupted(tmp_path):
    clips = _clips()
    store = new_store(tmp_path / "s.zarr", clips)
    by_id = {c.clip_id: c for c in clips}
    with pytest.raises(RuntimeError, match="decoder"):
        for block in store.blocks():
            with store.block_writer("audio", block, commit_seconds=0) as writer:
                for n, clip_id in enumerate(store.pending("audio", block=block)):
                    if block.index == 1 and n == 2:
                        raise RuntimeError("decoder crashed")
                    writer.write(clip_id, *audio_like(by_id[clip_id], dim=8, seed=1))
    status = store.status("audio")
    assert list(status[:6]) == [COMMITTED] * 6 and np.all(status[6:] == PENDING)
    fill_store(store, "audio", clips, audio_like, dim=8, seed=1)
    assert_same_arrays(all_arrays(store), _reference(tmp_path))


def _write_blocks(where, blocks):
    clips = {c.clip_id: c for c in _clips()}
    store = FeatureStore.open(where, mode="r+")
    for index in blocks:
        with store.block_writer("audio", index, commit_seconds=0) as writer:
            for clip_id in store.pending("audio", block=index):
                writer.write(clip_id, *audio_like(clips[clip_id], dim=8, seed=1))
                time.sleep(0.005)  # interleave the two writers
    return len(blocks)


def test_two_processes_on_disjoint_blocks_lose_nothing(tmp_path):
    where = tmp_path / "parallel.zarr"
    store = new_store(where, _clips())
    n_blocks = len(store.blocks())
    halves = [list(range(0, n_blocks, 2)), list(range(1, n_blocks, 2))]
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        assert (
            sum(pool.starmap(_write_blocks, [(str(where), half) for half in halves])) == n_blocks
        )
    parallel = FeatureStore.open(where, mode="r")
    assert np.all(parallel.status("audio") == COMMITTED) and parallel.verify() == []
    assert_same_arrays(all_arrays(parallel), _reference(tmp_path))
