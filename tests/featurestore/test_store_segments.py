"""The per-second segment view against an independent numpy computation."""

import numpy as np
import pytest

from featurestore.store import FeatureStore
from tests.helpers import audio_like, fill_store, make_clips, new_store, video_like

POOLINGS = ("mean", "max", "meanstd", "center", "none")


def reference_segments(clips, written, pooling):
    """{(clip_id, k): (pooled, n_frames)} computed clip by clip, second by second."""
    out = {}
    for clip in clips:
        if clip.clip_id not in written:
            continue
        values, times = written[clip.clip_id]
        n_segments = max(1, int(np.floor(clip.duration + 1e-6)))
        for k in range(n_segments):
            inside = (times >= k - 1e-9) & (times < k + 1 - 1e-6)
            frames = values[inside]
            if not len(frames):
                continue
            if pooling == "mean":
                pooled = frames.mean(axis=0)
            elif pooling == "max":
                pooled = frames.max(axis=0)
            elif pooling == "meanstd":
                pooled = np.concatenate([frames.mean(axis=0), frames.std(axis=0)])
            elif pooling == "center":
                pooled = frames[np.argmin(np.abs(times[inside] - (k + 0.5)))]
            else:
                pooled = frames
            out[(clip.clip_id, k)] = (pooled, len(frames))
    return out


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    clips = make_clips(23, seed=11)
    where = tmp_path_factory.mktemp("segments") / "s.zarr"
    store = new_store(where, clips, features=(("audio", 8, 10.0), ("video", 5, 5.0)))
    audio = fill_store(store, "audio", clips, audio_like, dim=8, seed=11)
    skip = {clips[4].clip_id, clips[9].clip_id}  # pending / failed for video
    video = fill_store(
        store, "video", [c for c in clips if c.clip_id not in skip], video_like, dim=5, seed=12
    )
    with store.block_writer("video", 2) as writer:
        writer.fail(clips[9].clip_id, "no video stream")
    return FeatureStore.open(where, mode="r"), clips, audio, video


@pytest.mark.parametrize("pooling", POOLINGS)
def test_single_feature_pooling_matches_numpy(filled, pooling):
    store, clips, audio, _ = filled
    segments = store.segments("audio", pooling=pooling)
    expected = reference_segments(clips, audio, pooling)
    assert len(segments) == len(expected)
    keys = list(zip(segments.clip_id.tolist(), segments.second.tolist()))
    assert keys == sorted(
        expected, key=lambda key: ([c.clip_id for c in clips].index(key[0]), key[1])
    )
    for row, key in enumerate(keys):
        reference, n_frames = expected[key]
        got = segments.features["audio"][row]
        assert segments.counts["audio"][row] == n_frames
        if pooling == "none":
            assert np.array_equal(got[:n_frames], reference)
            assert np.array_equal(
                got[n_frames:], np.repeat(reference[-1:], len(got) - n_frames, 0)
            )
        else:
            np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-5)
    clip_of = {c.clip_id: c for c in clips}
    assert segments.y.tolist() == [clip_of[c].scene for c in segments.clip_id]
    assert segments.groups.tolist() == [clip_of[c].location for c in segments.clip_id]
    assert segments.city.tolist() == [clip_of[c].city for c in segments.clip_id]


def test_segment_counts_follow_the_one_clock_rules(filled):
    store, clips, audio, _ = filled
    segments = store.segments("audio")
    counts = {}
    for clip_id, n in zip(segments.clip_id, segments.counts["audio"]):
        counts.setdefault(str(clip_id), []).append(int(n))
    by_duration = {c.duration: counts[c.clip_id] for c in clips}
    assert by_duration[10.0] == [10] * 9 + [6]  # frames 90..95 in segment 9
    assert by_duration[1.0] == [6]  # a 1 s evaluation clip
    assert by_duration[0.75] == [3]  # one segment, at least
    assert by_duration[480_001 / 48_000] == [10] * 9 + [7]  # 97 frames, 10 segments


@pytest.mark.parametrize("pooling", ["mean", "meanstd", "none"])
def test_two_features_are_joined_on_clip_and_second(filled, pooling):
    store, clips, audio, video = filled
    selection = store.select(city=["lyon", "lisbon"])
    segments = store.segments(["audio", "video"], selection=selection, pooling=pooling)
    chosen = [clips[p] for p in selection]
    ref_audio = reference_segments(chosen, audio, pooling)
    ref_video = reference_segments(chosen, video, pooling)
    common = [key for key in ref_audio if key in ref_video]
    keys = list(zip(segments.clip_id.tolist(), segments.second.tolist()))
    assert sorted(keys) == sorted(common) and len(keys) == len(common)
    assert clips[4].clip_id not in segments.clip_id and clips[9].clip_id not in segments.clip_id
    for row, key in enumerate(keys):
        for name, reference in (("audio", ref_audio), ("video", ref_video)):
            got = segments.features[name][row]
            expected, n_frames = reference[key]
            if pooling == "none":
                got = got[:n_frames]
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    X = segments.X()
    width = {"mean": 13, "meanstd": 26, "none": 13}[pooling]
    assert X.shape[0] == len(keys) and X.shape[-1] == width
    np.testing.assert_array_equal(segments.X(["video"]), segments.features["video"])
    assert np.all(np.isin(segments.city, ["lyon", "lisbon"]))


def test_random_timestamps_and_lengths(tmp_path):
    """Frames at arbitrary times (including past the last segment) and random durations."""
    rng = np.random.default_rng(21)
    durations = rng.uniform(0.3, 4.5, 15)
    clips = make_clips(15, seed=21, durations=durations)
    store = new_store(tmp_path / "s.zarr", clips, features=(("x", 4, 20.0),))

    def random_frames(clip, **_):
        n = rng.integers(0, int(clip.duration * 20) + 2)
        times = np.sort(rng.uniform(0, clip.duration + 0.3, n))
        return rng.standard_normal((n, 4)).astype(np.float32), times

    written = fill_store(store, "x", clips, random_frames)
    for pooling in POOLINGS:
        segments = store.segments("x", pooling=pooling)
        expected = reference_segments(clips, written, pooling)
        got = dict(
            zip(zip(segments.clip_id.tolist(), segments.second.tolist()), segments.features["x"])
        )
        assert set(got) == set(expected)
        for key, (reference, n_frames) in expected.items():
            value = got[key][:n_frames] if pooling == "none" else got[key]
            np.testing.assert_allclose(value, reference, rtol=1e-5, atol=1e-5)
