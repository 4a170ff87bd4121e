"""The frame-level view: every stored frame a row, features joined on (clip, timestamp)."""

import numpy as np
import pytest

from featurestore.errors import StoreFormatError
from featurestore.store import read_frame_table
from tests import helpers


def store_with(tmp_path, video_frames):
    clips = helpers.make_clips(14, seed=2)
    store = helpers.new_store(
        tmp_path / "s.zarr", clips, features=(("audio", 5, 10.0), ("video", 3, 10.0))
    )
    audio = helpers.fill_store(store, "audio", clips[:12], helpers.audio_like, dim=5, seed=1)
    if video_frames == "per-audio-window":  # the audio's timestamps, other values

        def make(clip, *, dim, seed):
            return helpers.audio_like(clip, dim=dim, seed=seed)
    else:
        make = helpers.video_like
    video = helpers.fill_store(store, "video", clips[2:], make, dim=3, seed=2, order=reversed)
    return store, clips, audio, video


def test_frames_of_two_features_join_on_their_timestamps(tmp_path):
    store, clips, audio, video = store_with(tmp_path, "per-audio-window")
    table = read_frame_table(store, ["audio", "video"])
    both = [c for c in clips if c.clip_id in audio and c.clip_id in video]  # clips 2 .. 11
    assert list(dict.fromkeys(table.clip_id.tolist())) == [c.clip_id for c in both]
    for clip in both:
        rows = table.clip_id == clip.clip_id
        np.testing.assert_array_equal(table.features["audio"][rows], audio[clip.clip_id][0])
        np.testing.assert_array_equal(table.features["video"][rows], video[clip.clip_id][0])
        np.testing.assert_array_equal(table.timestamp[rows], audio[clip.clip_id][1])
        n = len(audio[clip.clip_id][1])
        assert table.frame[rows].tolist() == list(range(n))
        assert set(table.n_frames[rows].tolist()) == {n}
        assert set(table.n_segments[rows].tolist()) == {
            max(1, int(np.floor(clip.duration + 1e-6)))
        }
        assert set(table.scene[rows].tolist()) == {clip.scene}
        assert set(table.location[rows].tolist()) == {clip.location}
    assert table.X().shape == (len(table), 8)
    np.testing.assert_array_equal(table.X(["video", "audio"])[:, :3], table.features["video"])
    part = table.subset(np.flatnonzero(table.clip_id == both[0].clip_id))
    assert len(part) == len(audio[both[0].clip_id][1]) and part.names == ("audio", "video")


def test_a_selection_and_one_feature(tmp_path):
    store, clips, audio, _ = store_with(tmp_path, "per-audio-window")
    chosen = store.select(clips=[clips[0].clip_id, clips[5].clip_id, clips[13].clip_id])
    table = read_frame_table(store, "audio", selection=chosen)
    assert sorted(set(table.clip_id.tolist())) == sorted([clips[0].clip_id, clips[5].clip_id])
    assert len(read_frame_table(store, "audio", selection=np.zeros(0, int))) == 0


def test_features_sampled_at_other_times_are_refused_with_one_line(tmp_path):
    store, _, _, _ = store_with(tmp_path, "fps")
    with pytest.raises(StoreFormatError) as error:
        read_frame_table(store, ["audio", "video"])
    message = str(error.value)
    assert "\n" not in message and "clip 'clip-2-0002'" in message
    assert "--video-frames per-audio-window" in message
