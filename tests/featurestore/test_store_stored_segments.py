"""Stored per-second segments: equal to pooling the frames, never used when stale, checked by
verify; and the xarray / pandas views of Segments."""

import numpy as np
import pytest
import zarr

import featurestore.store.feature_store as feature_store_module
from featurestore.store import FeatureStore
from featurestore.store.segment_pooling import pool_feature
from tests.featurestore.test_store_segments import reference_segments
from tests.helpers import audio_like, fill_store, make_clips, new_store, video_like

STORED = ("mean", "max", "meanstd", "center")


def fresh_seed():
    seed = int(np.random.SeedSequence().entropy % 2**31)
    print(f"seed {seed}")  # shown when a test fails
    return seed


@pytest.fixture
def store_with_frames(tmp_path):
    seed = fresh_seed()
    clips = make_clips(21, seed=seed)
    store = new_store(tmp_path / "s.zarr", clips, features=(("audio", 8, 10.0), ("video", 5, 5.0)))
    audio = fill_store(store, "audio", clips, audio_like, dim=8, seed=seed)
    video = fill_store(store, "video", clips[:-3], video_like, dim=5, seed=seed + 1)
    return store, clips, audio, video, tmp_path / "s.zarr"


def refuse_pooling(*args, **kwargs):
    raise AssertionError("pooled the frames although stored segments were up to date")


@pytest.mark.parametrize("pooling", STORED)
def test_stored_segments_equal_pooling_the_frames(store_with_frames, pooling, monkeypatch):
    store, clips, audio, video, where = store_with_frames
    selection = store.select(fold="train")
    on_the_fly = store.segments(["audio", "video"], selection=selection, pooling=pooling)
    done = store.write_segments(poolings=(pooling,))
    assert {(d["feature"], d["written"]) for d in done} == {("audio", True), ("video", True)}
    reader = FeatureStore.open(where, mode="r")
    monkeypatch.setattr(feature_store_module, "pool_feature", refuse_pooling)
    stored = reader.segments(["audio", "video"], selection=selection, pooling=pooling)
    for name in ("audio", "video"):
        assert np.array_equal(stored.features[name], on_the_fly.features[name])
        assert np.array_equal(stored.counts[name], on_the_fly.counts[name])
    for column in ("clip_id", "second", "scene", "city", "location", "folds", "position"):
        assert np.array_equal(getattr(stored, column), getattr(on_the_fly, column))
    expected = reference_segments(clips, audio, pooling)  # numpy, clip by clip
    full = reader.segments("audio", pooling=pooling)
    assert len(full) == len(expected)
    for row, key in enumerate(zip(full.clip_id.tolist(), full.second.tolist())):
        np.testing.assert_allclose(
            full.features["audio"][row], expected[key][0], rtol=1e-5, atol=1e-5
        )
        assert full.counts["audio"][row] == expected[key][1]
    group = zarr.open_group(str(where), mode="r")[f"segments/audio/{pooling}"]
    assert group.attrs["frames_fingerprint"] and group.attrs["n_segments"] == len(expected)
    assert reader.verify() == []


def test_up_to_date_segments_are_left_alone(store_with_frames):
    store = store_with_frames[0]
    store.write_segments(["audio"], poolings=("mean",))
    again = store.write_segments(["audio"], poolings=("mean",))
    assert [entry["written"] for entry in again] == [False]
    assert [
        entry["written"]
        for entry in store.write_segments(["audio"], poolings=("mean",), overwrite=True)
    ] == [True]


def test_appending_clips_makes_stored_segments_stale(store_with_frames, monkeypatch):
    store, clips, audio, _, where = store_with_frames
    store.write_segments(poolings=("mean",))
    assert all(entry["fresh"] for entry in store.stored_segments())
    more = make_clips(6, seed=fresh_seed())
    store.add_clips(more)
    stale = FeatureStore.open(where, mode="r")
    assert [entry["fresh"] for entry in stale.stored_segments()] == [False, False]
    audio.update(fill_store(store, "audio", more, audio_like, dim=8, seed=3))
    reader = FeatureStore.open(where, mode="r")
    segments = reader.segments("audio")  # pooled: the copy is stale
    assert set(segments.clip_id.tolist()) == set(audio)
    assert len(segments) == len(reference_segments(clips + more, audio, "mean"))
    assert reader.verify() == []  # stale is not corrupt
    from featurestore.store.integrity import stale_segments

    assert stale_segments(reader) == ["audio mean", "video mean"]
    store.write_segments(["audio"], poolings=("mean",))
    reader = FeatureStore.open(where, mode="r")
    monkeypatch.setattr(feature_store_module, "pool_feature", refuse_pooling)
    assert np.array_equal(reader.segments("audio").features["audio"], segments.features["audio"])


def test_committing_a_pending_clip_makes_them_stale(tmp_path):
    clips = make_clips(9, seed=5)
    store = new_store(tmp_path / "s.zarr", clips)
    fill_store(store, "audio", clips[:-1], audio_like, dim=8, seed=5)
    store.write_segments(poolings=("mean",))
    fill_store(store, "audio", clips[-1:], audio_like, dim=8, seed=5)
    assert [entry["fresh"] for entry in store.stored_segments()] == [False]
    assert clips[-1].clip_id in store.segments("audio").clip_id


def test_a_copy_whose_writer_died_is_not_used(store_with_frames, monkeypatch):
    store, _, _, _, where = store_with_frames
    store.write_segments(["audio"], poolings=("mean",))
    group = zarr.open_group(str(where), mode="r+")["segments/audio/mean"]
    group.attrs["frames_fingerprint"] = None  # as left before the commit point
    reader = FeatureStore.open(where, mode="r")
    assert [entry["fresh"] for entry in reader.stored_segments()] == [False]
    calls = []
    monkeypatch.setattr(
        feature_store_module,
        "pool_feature",
        lambda *a, **k: calls.append(1) or pool_feature(*a, **k),
    )
    reader.segments("audio")
    assert calls


def _tamper(where, path, change):
    array = zarr.open_group(str(where), mode="r+")[path]
    data = np.asarray(array[...])
    change(data)
    array[...] = data


@pytest.mark.parametrize(
    "path, change, expected",
    [
        (
            "segments/audio/mean/values",
            lambda v: v.__setitem__((3, 2), v[3, 2] + 0.5),
            "1 segments differ from pooling the frames",
        ),
        (
            "segments/audio/mean/count",
            lambda c: c.__setitem__(0, c[0] + 1),
            "holds other segments",
        ),
        (
            "segments/audio/mean/second",
            lambda s: s.__setitem__(1, 99),
            "is impossible or out of order",
        ),
    ],
)
def test_verify_catches_a_tampered_segment_group(store_with_frames, path, change, expected):
    store, _, _, _, where = store_with_frames
    store.write_segments(["audio"], poolings=("mean",))
    _tamper(where, path, change)  # valid checksums: zarr rewrote the chunk
    problems = FeatureStore.open(where, mode="r").verify()
    assert len(problems) == 1 and expected in problems[0], problems
    assert problems[0].startswith("segments/audio/mean")


def test_verify_catches_corrupt_and_missing_segment_chunks(store_with_frames):
    store, _, _, _, where = store_with_frames
    store.write_segments(["audio"], poolings=("mean",))
    chunk = where / "segments/audio/mean/values/c/0/0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    (where / "segments/audio/mean/position/c/0").unlink()
    problems = FeatureStore.open(where, mode="r").verify()
    assert any("corrupt chunk segments/audio/mean/values/c/0/0" in p for p in problems), problems
    assert any("missing chunk segments/audio/mean/position/c/0" in p for p in problems), problems


def test_forged_positions_are_refused_with_one_line(store_with_frames):
    store, _, _, _, where = store_with_frames
    store.write_segments(["audio"], poolings=("mean",))
    _tamper(where, "segments/audio/mean/position", lambda p: p.__setitem__(-1, 10**9))
    with pytest.raises(Exception) as refused:
        FeatureStore.open(where, mode="r").segments("audio")
    assert "segments/audio/mean" in str(refused.value) and "\n" not in str(refused.value)


def test_pooling_none_is_not_stored(store_with_frames):
    with pytest.raises(Exception, match="cannot be stored"):
        store_with_frames[0].write_segments(poolings=("none",))


# -- xarray and pandas -------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["mean", "meanstd", "none"])
def test_to_xarray_holds_the_segments_and_their_coordinates(store_with_frames, pooling):
    store = store_with_frames[0]
    segments = store.segments(["audio", "video"], pooling=pooling)
    dataset = segments.to_xarray()
    assert dataset.sizes["segment"] == len(segments)
    for name in ("audio", "video"):
        assert dataset[name].dims[0] == "segment"
        assert np.array_equal(dataset[name].values, segments.features[name])
        assert np.array_equal(dataset[f"count_{name}"].values, segments.counts[name])
    for column in ("clip_id", "second", "scene", "city", "location", "folds", "position"):
        assert dataset.coords[column].dims == ("segment",)
        assert dataset.coords[column].values.tolist() == getattr(segments, column).tolist()
    assert dataset.attrs["pooling"] == pooling


def test_to_xarray_names_one_shared_width_dim(tmp_path):
    clips = make_clips(6, seed=2)
    store = new_store(tmp_path / "s.zarr", clips, features=(("a", 4, 10.0), ("b", 4, 10.0)))
    for name, seed in (("a", 1), ("b", 2)):
        fill_store(store, name, clips, audio_like, dim=4, seed=seed)
    dataset = store.segments(["a", "b"]).to_xarray()
    assert dataset["a"].dims == ("segment", "dim") == dataset["b"].dims


def test_to_pandas_one_row_per_segment(store_with_frames):
    store = store_with_frames[0]
    segments = store.segments(["audio", "video"], pooling="meanstd")
    frame = segments.to_pandas()
    assert len(frame) == len(segments)
    assert frame["clip_id"].tolist() == segments.clip_id.tolist()
    assert frame["second"].tolist() == segments.second.tolist()
    assert frame["scene"].tolist() == segments.scene.tolist()
    assert np.array_equal(np.stack(frame["audio"].to_list()), segments.features["audio"])
    assert frame["count_video"].tolist() == segments.counts["video"].tolist()
    wide = segments.to_pandas(wide=True)
    columns = [f"audio_{i}" for i in range(16)] + [f"video_{i}" for i in range(10)]
    assert np.array_equal(wide[columns].to_numpy(), segments.X())
    assert wide["folds"].tolist() == segments.folds.tolist()
