"""Pieces of the extraction job: cross-clip batching, the worker pool, shipped audio windows."""

import os
import pickle
import signal
import time

import numpy as np
import pytest

from featurestore.extraction.batching import Batcher
from featurestore.extraction.prepare import AudioWindows, FeatureInput
from featurestore.extraction.workers import TaskError, WorkerCrash, WorkerPool
from featurestore.openl3 import framing


def clip_input(n_items, rows_per_item=1, *, seed):
    items = np.random.default_rng(seed).normal(size=(n_items, 3)).astype(np.float32)
    rows = np.full(n_items, rows_per_item, np.int64)
    return FeatureInput(items, rows, np.arange(n_items * rows_per_item) * 0.1)


def test_batches_span_clips_and_rows_return_to_their_clips():
    calls = []

    def run(slices):
        batch = np.concatenate(slices)
        calls.append(len(batch))
        return np.repeat(batch * 2, 2, axis=0)  # two rows per item

    batcher = Batcher(run, batch_items=4)
    inputs = {f"c{i}": clip_input(n, 2, seed=i) for i, n in enumerate([3, 6, 1, 2])}
    done = {}
    for key, feature_input in inputs.items():
        batcher.add(key, feature_input)
        while batcher.full():
            done.update({k: (v, t) for k, v, t in batcher.step()})
    while batcher:
        done.update({k: (v, t) for k, v, t in batcher.step()})
    assert calls == [4, 4, 4]  # full batches across clip boundaries
    for key, feature_input in inputs.items():
        values, stamps = done[key]
        np.testing.assert_array_equal(values, np.repeat(feature_input.items * 2, 2, axis=0))
        np.testing.assert_array_equal(stamps, feature_input.timestamps)


@pytest.mark.parametrize(
    "hop_size, center, seconds",
    [(0.1, True, 2.0), (0.5, False, 1.3), (1.5, False, 4.0), (0.25, True, 0.3)],
)
def test_audio_windows_ship_one_signal_and_rebuild_the_windows(hop_size, center, seconds):
    audio = np.random.default_rng().uniform(-1, 1, int(seconds * 48000)).astype(np.float32)
    windows, _ = framing.frame_audio(audio, 48000, hop_size=hop_size, center=center)
    shipped = pickle.loads(pickle.dumps(AudioWindows(windows)))
    assert len(shipped) == len(windows)
    np.testing.assert_array_equal(shipped[:], windows)
    np.testing.assert_array_equal(shipped[1:3], windows[1:3])
    assert len(pickle.dumps(AudioWindows(windows))) < 1.3 * (len(audio) + 48000) * 4


def square_or_die(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    if x == 5:
        raise ValueError("five is bad")
    return x * x


@pytest.mark.parametrize("workers", [0, 2])
def test_pool_survives_crashes_and_errors(workers):
    tasks = list(range(8))
    if workers == 0:
        tasks.remove(3)  # inline: a crash would kill the test
    with WorkerPool(square_or_die, workers=workers) as pool:
        results = dict(pool.imap_unordered(tasks))
    assert sorted(results) == list(range(len(tasks)))
    for index, task in enumerate(tasks):
        if task == 3:
            assert isinstance(results[index], WorkerCrash) and "signal 9" in str(results[index])
        elif task == 5:
            assert isinstance(results[index], TaskError) and "five is bad" in str(results[index])
        else:
            assert results[index] == task * task


def sleep_on_two(x):
    if x == 2:
        time.sleep(3600)
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_pool_stops_a_task_past_the_time_limit_and_carries_on(workers):
    with WorkerPool(sleep_on_two, workers=workers, timeout=1) as pool:
        results = dict(pool.imap_unordered(range(6)))
    assert sorted(results) == list(range(6))
    assert isinstance(results[2], WorkerCrash)
    assert str(results[2]) == "decoding took longer than 1 s (worker stopped)"
    assert {i: r for i, r in results.items() if i != 2} == {i: i * i for i in (0, 1, 3, 4, 5)}


def big_result_after(seconds):
    time.sleep(seconds)
    return np.full(200_000, seconds)  # 1.6 MB: the worker blocks in send


def test_a_result_waiting_for_a_slow_consumer_is_not_timed():
    """Only a task's own time counts. Both tasks take well under the limit; the pool sees the
    1 s task running, then the consumer spends 4 s on the other result while that task's
    result waits in its worker: the wait must not count."""
    got = {}
    with WorkerPool(big_result_after, workers=2, timeout=2.5) as pool:
        for index, result in pool.imap_unordered([1.0, 0.6]):
            got[index] = result
            time.sleep(4)  # the consumer (the model) falls behind
    assert sorted(got) == [0, 1]
    assert all(isinstance(r, np.ndarray) for r in got.values()), got
    assert got[0][0] == 1.0 and got[1][0] == 0.6
