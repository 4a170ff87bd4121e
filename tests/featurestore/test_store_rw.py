"""Writing and reading frames: block writers, selection, failures, float16, appends."""

import numpy as np
import pytest
import zarr

from featurestore.errors import StoreError, StoreFormatError
from featurestore.store import COMMITTED, FAILED, PENDING, FeatureStore
from featurestore.store.chunks import ChunkReader, gather_rows, plan_pieces
from tests.helpers import audio_like, fill_store, make_clips, new_store, video_like


@pytest.mark.parametrize("kind", ["path", "memorystore"])
def test_frames_round_trip_for_clips_of_every_length(tmp_path, kind):
    clips = make_clips(18, seed=1)
    where = tmp_path / "s.zarr" if kind == "path" else zarr.storage.MemoryStore()
    store = new_store(where, clips, features=(("audio", 8, 10.0), ("video", 6, 5.0)))
    audio = fill_store(store, "audio", clips, audio_like, dim=8, seed=1)
    video = fill_store(store, "video", clips, video_like, dim=6, seed=2)
    reopened = FeatureStore.open(where, mode="r")
    assert ChunkReader(reopened._feature("audio").values).fast == (kind == "path")
    for clip in clips:
        for name, written in (("audio", audio), ("video", video)):
            values, times = reopened.frames(name, clip.clip_id)
            assert values.dtype == np.float32 and times.dtype == np.float64
            np.testing.assert_array_equal(values, written[clip.clip_id][0])
            np.testing.assert_array_equal(times, written[clip.clip_id][1])
    assert {len(audio[c.clip_id][0]) for c in clips} == {96, 6, 3, 97}
    assert np.all(reopened.status("audio") == COMMITTED)
    frames = reopened.read("audio")
    expected = np.concatenate([audio[c.clip_id][0] for c in clips])
    np.testing.assert_array_equal(frames.values, expected)
    np.testing.assert_array_equal(frames.positions, np.arange(len(clips)))
    assert reopened.verify() == []


def test_select_by_every_index_column(tmp_path):
    clips = make_clips(40, seed=2)
    store = new_store(tmp_path / "s.zarr", clips)

    def expect(keep):
        return np.array([i for i, clip in enumerate(clips) if keep(clip)], dtype=np.int64)

    np.testing.assert_array_equal(store.select(), np.arange(40))
    np.testing.assert_array_equal(store.select(scene="bus"), expect(lambda c: c.scene == "bus"))
    np.testing.assert_array_equal(
        store.select(city=["lyon", "milan"]), expect(lambda c: c.city in ("lyon", "milan"))
    )
    np.testing.assert_array_equal(
        store.select(location="lisbon-1"), expect(lambda c: c.location == "lisbon-1")
    )
    np.testing.assert_array_equal(store.select(fold="test"), expect(lambda c: "test" in c.folds))
    np.testing.assert_array_equal(
        store.select(fold="evaluate"), expect(lambda c: "evaluate" in c.folds)
    )
    np.testing.assert_array_equal(
        store.select(fold=["train", "eval"]), expect(lambda c: {"train", "eval"} & set(c.folds))
    )
    ids = [clips[7].clip_id, clips[3].clip_id]
    np.testing.assert_array_equal(store.select(clips=ids), [3, 7])
    np.testing.assert_array_equal(
        store.select(scene="park", city="lyon", fold="evaluate"),
        expect(lambda c: c.scene == "park" and c.city == "lyon" and "evaluate" in c.folds),
    )
    assert store.select(city="nowhere").size == 0
    with pytest.raises(StoreFormatError):
        store.select(clips=["not-a-clip"])


def test_selected_reads_touch_only_needed_rows(tmp_path):
    clips = make_clips(30, seed=4)
    store = new_store(tmp_path / "s.zarr", clips)
    written = fill_store(store, "audio", clips, audio_like, dim=8, seed=4)
    selection = store.select(city="lyon")
    frames = store.read("audio", selection=selection)
    expected = np.concatenate([written[clips[p].clip_id][0] for p in selection])
    np.testing.assert_array_equal(frames.values, expected)
    np.testing.assert_array_equal(
        frames.counts, [len(written[clips[p].clip_id][0]) for p in selection]
    )


def test_failures_overflow_and_pending(tmp_path):
    clips = make_clips(8, seed=5)
    store = new_store(tmp_path / "s.zarr", clips)
    with store.block_writer("audio", 0, commit_seconds=0) as writer:
        first, second, third, _ = store.blocks()[0].clip_ids
        assert writer.write(first, *audio_like(clips[0], dim=8, seed=0))
        assert not writer.write(first, *audio_like(clips[0], dim=8, seed=0))  # once only
        too_long = np.zeros((13, 8), np.float32)  # a 1 s clip at 10 frames/s: 12 reserved
        assert not writer.write(second, too_long, np.arange(len(too_long)) * 0.1)
        writer.fail(third, "video stream\nmissing")
        with pytest.raises(StoreFormatError, match="expected"):
            writer.write(clips[3].clip_id, np.zeros((3, 7), np.float32), np.zeros(3))
        with pytest.raises(StoreFormatError, match="not in block 0"):
            writer.write(clips[5].clip_id, np.zeros((3, 8), np.float32), np.zeros(3))
    status = store.status("audio")
    assert list(status[:4]) == [COMMITTED, FAILED, FAILED, PENDING]
    failures = {(f, c): r for f, c, r in store.failures()}
    assert "13 frames exceed the 12 rows reserved" in failures[("audio", second)]
    assert failures[("audio", third)] == "video stream missing"
    assert store.pending("audio", block=0) == [clips[3].clip_id]
    assert len(store.pending("audio")) == 5
    with pytest.raises(StoreError, match="failed"):
        store.frames("audio", second)
    with store.block_writer("audio", 0, commit_seconds=0) as writer:  # a failed clip can be redone
        assert writer.write(second, *audio_like(clips[1], dim=8, seed=0))
    assert store.status("audio")[1] == COMMITTED and store.failures("audio")[0][1] == third
    assert store.read("audio").positions.tolist() == [0, 1]
    assert store.verify() == []


def test_float16_storage_error_bound(tmp_path):
    rng = np.random.default_rng(7)
    clips = make_clips(6, seed=7)
    store = new_store(tmp_path / "s.zarr", clips, storage_dtype="float16")
    written = {}
    with store.block_writer("audio", 0) as writer:
        for clip in clips[:4]:
            values = (rng.standard_normal((5, 8)) * 4).astype(np.float32)
            writer.write(clip.clip_id, values, np.arange(5) * 0.1)
            written[clip.clip_id] = values
    for clip_id, values in written.items():
        stored, _ = store.frames("audio", clip_id)
        assert stored.dtype == np.float32
        # float16 keeps 11 significant bits: relative error <= 2**-11 (normal range)
        assert np.all(np.abs(stored - values) <= np.abs(values) * 2.0**-11 + 1e-7)
        np.testing.assert_array_equal(stored, values.astype(np.float16).astype(np.float32))
    assert store.feature_attrs("audio")["storage_dtype"] == "float16"
    assert store._feature("audio").values.dtype == np.float16
    big = clips[4].clip_id
    with store.block_writer("audio", 1) as writer:
        assert not writer.write(big, np.full((2, 8), 1e6, np.float32), np.arange(2) * 0.1)
    assert "float16 range" in store.failures("audio")[0][2]


def test_out_of_order_writes_and_appended_clips(tmp_path):
    clips = make_clips(14, seed=8)
    store = new_store(tmp_path / "s.zarr", clips[:6])  # blocks of 4: the last one partial
    first = fill_store(store, "audio", clips, audio_like, dim=8, seed=8, order=lambda p: p[::-1])
    assert store.add_clips(clips) == 8  # grows block 1 and appends blocks
    assert len(store.blocks()) == 4
    assert store.pending("audio") == [c.clip_id for c in clips[6:]]
    second = fill_store(store, "audio", clips, audio_like, dim=8, seed=8)
    reopened = FeatureStore.open(tmp_path / "s.zarr", mode="r")
    for clip in clips:
        values, _ = reopened.frames("audio", clip.clip_id)
        np.testing.assert_array_equal(values, {**first, **second}[clip.clip_id][0])
    expected = np.concatenate([{**first, **second}[c.clip_id][0] for c in clips])
    np.testing.assert_array_equal(reopened.read("audio").values, expected)
    assert reopened.verify() == []


def test_zero_frame_clips_and_empty_stores(tmp_path):
    store = FeatureStore.open(tmp_path / "s.zarr", mode="w")
    store.create_feature("audio", dim=4, frame_rate=10, params={})
    assert store.read("audio").values.shape == (0, 4)
    assert len(store.segments("audio")) == 0 and store.verify() == []
    clips = make_clips(2)
    store.add_clips(clips)
    with store.block_writer("audio", 0) as writer:
        writer.write(clips[0].clip_id, np.zeros((0, 4), np.float32), np.zeros(0))
        writer.write(clips[1].clip_id, *audio_like(clips[1], dim=4, seed=0))
    assert store.frames("audio", clips[0].clip_id)[0].shape == (0, 4)
    assert store.read("audio").counts.tolist() == [0, 6]
    assert store.verify() == []


@pytest.mark.parametrize("seed", range(3))
def test_gather_rows_matches_numpy_indexing(tmp_path, seed):
    rng = np.random.default_rng(seed)
    store = FeatureStore.open(tmp_path / "s.zarr", mode="w")
    store.create_feature("x", dim=3, frame_rate=1, params={}, chunk_mib=0.0001)  # 8-row chunks
    array = store._feature("x").values
    array.resize((100, 3))
    data = rng.standard_normal((100, 3)).astype(np.float32)
    array[:96] = data[:96]  # rows 96..99 never written: fill value 0
    data[96:] = 0
    starts = rng.integers(0, 100, 25)
    counts = np.minimum(rng.integers(0, 20, 25), 100 - starts)
    reader = ChunkReader(array)
    assert reader.fast
    got = gather_rows(reader, starts, counts)
    expected = np.concatenate([data[s : s + c] for s, c in zip(starts, counts)])
    np.testing.assert_array_equal(got, expected)
    chunk, offset, length, dest = plan_pieces(starts, counts, 8)
    assert np.all(offset + length <= 8) and length.sum() == counts.sum()


@pytest.mark.slow
def test_default_layout_at_scale(tmp_path):
    """1,000 ten-second clips of 512-d frames with the default chunking and block size."""
    n_clips, n_frames, dim = 1000, 96, 512
    clips = make_clips(n_clips, seed=9, durations=(10.0,))
    store = FeatureStore.open(tmp_path / "big.zarr", mode="w")
    store.add_clips(clips)
    store.create_feature("audio", dim=dim, frame_rate=10, params={"hop": 0.1})
    rng = np.random.default_rng(9)
    data = rng.standard_normal((n_clips, n_frames, dim), dtype=np.float32)
    times = np.arange(n_frames) * 0.1
    for block in store.blocks():
        with store.block_writer("audio", block) as writer:
            for i in range(block.start, block.stop):
                writer.write(clips[i].clip_id, data[i], times)
    reopened = FeatureStore.open(tmp_path / "big.zarr", mode="r")
    np.testing.assert_array_equal(reopened.read("audio").values, data.reshape(-1, dim))
    segments = reopened.segments("audio", pooling="meanstd")
    full = data[:, :90].reshape(n_clips, 9, 10, dim)
    expected_mean = np.concatenate([full.mean(axis=2), data[:, None, 90:].mean(axis=2)], axis=1)
    expected_std = np.concatenate([full.std(axis=2), data[:, None, 90:].std(axis=2)], axis=1)
    expected = np.concatenate([expected_mean, expected_std], axis=2).reshape(-1, 2 * dim)
    np.testing.assert_allclose(segments.X(), expected, rtol=1e-4, atol=1e-5)
    lyon = reopened.select(city="lyon")
    np.testing.assert_array_equal(
        reopened.read("audio", selection=lyon).values, data[lyon].reshape(-1, dim)
    )
    assert reopened.verify() == []
