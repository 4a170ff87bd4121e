"""``--video-frames per-audio-window``: one decoded frame per OpenL3 audio window (the baseline's).

Checked against plain statements of the rule: of all decoded frames, frame
``np.linspace(0, n_frames - 1, n_windows).astype(int)[j]`` goes with audio window j, whose
timestamp it takes; frames are identified by the index they carry (``tests.helpers.frame_index``)
or decoded here with PyAV independently of ``featurestore.media``.
"""

import numpy as np
import pytest

from featurestore import openl3
from featurestore.datasets import Clip
from featurestore.errors import MediaError, StoreFormatError
from featurestore.extraction import Plan, plan_extractors, prepare_clip
from featurestore.media import decode as media
from featurestore.openl3 import image
from featurestore.store import FeatureStore, read_frame_table
from pipelines.commands import cli
from tests import helpers


def expected_picks(n_frames, n_windows):
    return np.linspace(0, n_frames - 1, n_windows).astype(int).tolist()


def openl3_windows(seconds, hop, center=True):
    """openl3's window count for a clip of ``seconds`` at 48 kHz (its _preprocess rule)."""
    length = int(round(seconds * 48000)) + (24000 if center else 0)
    hop_samples = int(hop * 48000)
    return 1 + max(0, int(np.ceil((length - 48000) / hop_samples)))


@pytest.mark.parametrize(
    "n_frames, n_picks, options",
    [
        (50, 16, {}),  # 2 s at 25 fps, hop 0.1
        (30, 96, {}),  # more windows than frames: repeats
        (25, 1, {}),
        (40, 21, {"bframes": 2}),  # decoding order differs from display order
        (30, 11, {"start": 0.4}),  # non-zero start time
        (20, 9, {"times": np.cumsum(np.r_[0, np.random.default_rng(0).uniform(0.01, 0.2, 19)])}),
    ],
)
def test_frames_spread_over_all_decoded_frames(n_frames, n_picks, options, tmp_path):
    path = tmp_path / "clip.mp4"
    helpers.write_mp4(path, n_frames=n_frames, **options)
    found = list(media.iter_spread_frames(path, n_picks))
    assert [index for index, _ in found] == expected_picks(n_frames, n_picks)
    assert [helpers.frame_index(rgb) for _, rgb in found] == expected_picks(n_frames, n_picks)


def test_bad_videos_raise_one_line_media_error(tmp_path):
    helpers.write_mp4(tmp_path / "v.mp4", n_frames=40)
    cut = helpers.truncate(tmp_path / "v.mp4", 0.5, out=tmp_path / "cut.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    for path in (cut, tmp_path / "empty.mp4"):
        with pytest.raises(MediaError) as error:
            list(media.iter_spread_frames(path, 10))
        assert str(path) in str(error.value) and "\n" not in str(error.value)


def decoded_frames(path):
    """Every frame in presentation order, decoded here with PyAV."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize(
    "seconds, hop, center", [(2.0, 0.1, True), (1.0, 0.25, False), (480001 / 48000, 0.5, True)]
)
def test_prepared_video_takes_the_audio_windows_timestamps(seconds, hop, center, tmp_path):
    n_frames = int(seconds * 10)
    helpers.write_mp4(tmp_path / "clip.mp4", width=256, height=224, rate=10, n_frames=n_frames)
    plan = Plan(
        features=("openl3_video",), hop=hop, center=center, video_frames="per-audio-window"
    )
    clip = Clip(clip_id="c", audio=None, video="clip.mp4", duration=seconds)
    extractors = plan_extractors(plan, random_weights=0)
    prepared = prepare_clip(clip, tmp_path, plan, extractors)
    assert not prepared.failures
    got = prepared.inputs["openl3_video"]
    n_windows = openl3_windows(seconds, hop, center)
    np.testing.assert_array_equal(got.timestamps, np.arange(n_windows) * hop)
    frames = decoded_frames(tmp_path / "clip.mp4")
    picked = np.stack([frames[i] for i in expected_picks(len(frames), n_windows)])
    np.testing.assert_array_equal(got.items, image.preprocess_images(picked))


def test_extracted_video_rows_line_up_with_the_audio_rows(weights, tmp_path, capsys):
    from featurestore.synth import synth_corpus

    synth_corpus(
        tmp_path / "corpus",
        clips_per_class=1,
        seconds=2.0,
        size=(256, 224),
        fps=10,
        seed=5,
        eval_clips=0,
        classes=("airport", "bus"),
        workers=1,
    )
    root = tmp_path / "corpus" / "development"
    common = [
        "--weights",
        str(weights),
        "--features",
        "openl3_audio,openl3_video",
        "--hop",
        "0.5",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--progress",
        "log",
    ]
    assert (
        cli.main(
            [
                "extract",
                str(root),
                str(tmp_path / "w.zarr"),
                *common,
                "--video-frames",
                "per-audio-window",
            ]
        )
        == 0
    )
    assert cli.main(["extract", str(root), str(tmp_path / "fps.zarr"), *common, "--fps", "2"]) == 0
    capsys.readouterr()
    model = openl3.load_image_model(
        weights / openl3.official_name("image", "mel256", "env"), device="cpu"
    )
    with (
        FeatureStore.open(tmp_path / "w.zarr") as store,
        FeatureStore.open(tmp_path / "fps.zarr") as default,
    ):
        params = store.feature_params("openl3_video")
        assert params["video_frames"] == "per-audio-window" and "fps" not in params
        assert {"video_frames"}.isdisjoint(default.feature_params("openl3_video"))
        assert default.feature_params("openl3_video")["fps"] == 2.0
        assert store.feature_fingerprint("openl3_video") != default.feature_fingerprint(
            "openl3_video"
        )
        assert store.feature_fingerprint("openl3_audio") == default.feature_fingerprint(
            "openl3_audio"
        )
        table = read_frame_table(store, ["openl3_audio", "openl3_video"])
        for clip in store.clips.records():
            values, times = store.frames("openl3_video", clip.clip_id)
            _, audio_times = store.frames("openl3_audio", clip.clip_id)
            np.testing.assert_array_equal(times, audio_times)
            frames = decoded_frames(root / clip.video)
            picked = np.stack([frames[i] for i in expected_picks(len(frames), len(times))])
            expected = openl3.image_embeddings(picked, model=model)
            np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-4)
            assert np.sum(table.clip_id == clip.clip_id) == len(times)
        with pytest.raises(StoreFormatError, match="per-audio-window"):
            read_frame_table(default, ["openl3_audio", "openl3_video"])
