"""Media probing and decoding on files the tests make (WAV via soundfile, H.264 mp4 via PyAV)."""

import fractions

import numpy as np
import pytest

from featurestore.errors import MediaError
from featurestore.media import decode as media
from tests import helpers


def expected_pick(frame_times, sample_times):
    """Index of the frame on screen at each sample time (independent of media.py)."""
    origin = frame_times[0]
    picks = []
    for t in sample_times:
        shown = [i for i, ft in enumerate(frame_times) if ft - origin <= t + 1e-9]
        picks.append(shown[-1] if shown else 0)
    return picks


def expected_times(duration, fps):
    return [(j + 0.5) / fps for j in range(100000) if (j + 0.5) / fps < duration]


# --- audio -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, sr, channels, subtype",
    [
        (1.0, 48000, 2, "PCM_24"),  # the dataset's format, a 1 s evaluation clip
        (2.0, 48000, 1, "PCM_24"),  # mono
        (1.5, 44100, 2, "PCM_16"),  # another sample rate
        (480001 / 48000, 48000, 2, "PCM_24"),  # the 480,001-sample file
    ],
)
def test_read_audio_returns_what_was_written(tmp_path, seconds, sr, channels, subtype):
    samples = helpers.noise(seconds, sr=sr, channels=channels, seed=int(seconds * 7))
    path = helpers.write_wav(tmp_path / "clip.wav", samples, sr, subtype)
    info = media.probe_audio(path)
    assert (info.sample_rate, info.channels, info.frames) == (sr, channels, len(samples))
    assert info.duration == pytest.approx(len(samples) / sr)
    decoded, rate = media.read_audio(path)
    assert rate == sr and decoded.dtype == np.float32 and decoded.shape == samples.shape
    step = 2.0 ** (1 - int(subtype[4:]))
    np.testing.assert_allclose(decoded, samples, atol=step)


def test_480001_samples_are_kept(tmp_path):
    samples = helpers.noise(480001 / 48000, seed=3)
    assert len(samples) == 480001
    decoded, _ = media.read_audio(helpers.write_wav(tmp_path / "long.wav", samples))
    assert len(decoded) == 480001


def test_audio_from_an_mp4_container(tmp_path):
    samples = helpers.noise(0.5, sr=44100, channels=2, seed=4, amplitude=0.3)
    path = tmp_path / "a.mp4"
    helpers.write_mp4(path, video=False, audio=(samples, 44100))
    decoded, rate = media.read_audio(path)
    assert rate == 44100 and decoded.shape[1] == 2 and decoded.dtype == np.float32
    assert len(decoded) >= len(samples)  # AAC adds priming/padding samples


def bad_audio_cases(tmp_path):
    good = helpers.write_wav(tmp_path / "good.wav", helpers.noise(1.0, seed=5))
    cases = {
        "truncated": helpers.truncate(good, 0.5, out=tmp_path / "cut.wav"),
        "header only": helpers.truncate(good, 30 / good.stat().st_size, out=tmp_path / "hdr.wav"),
        "empty": tmp_path / "empty.wav",
        "missing": tmp_path / "missing.wav",
        "not audio": tmp_path / "text.wav",
    }
    cases["empty"].write_bytes(b"")
    cases["not audio"].write_text("this is not a wav file\n")
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        samples = helpers.noise(1.0, seed=6)
        samples[1234, 1] = value
        cases[name] = helpers.write_wav(tmp_path / f"{name}.wav", samples, subtype="FLOAT")
    return cases


@pytest.mark.parametrize(
    "case", ["truncated", "header only", "empty", "missing", "not audio", "nan", "inf"]
)
def test_bad_audio_raises_one_line_media_error_naming_the_file(tmp_path, case):
    path = bad_audio_cases(tmp_path)[case]
    with pytest.raises(MediaError) as error:
        media.read_audio(path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert isinstance(error.value, ValueError)


def test_audio_shorter_than_needed(tmp_path):
    path = helpers.write_wav(tmp_path / "short.wav", helpers.noise(0.2, seed=7))
    with pytest.raises(MediaError, match="shorter than the 0.5 s needed"):
        media.read_audio(path, min_duration=0.5)
    assert len(media.read_audio(path, min_duration=0.2)[0]) == 9600


def test_audio_only_container_has_no_video_and_video_only_has_no_audio(tmp_path):
    audio_only = tmp_path / "a.mp4"
    helpers.write_mp4(audio_only, video=False, audio=(helpers.noise(0.3, seed=8), 48000))
    video_only = tmp_path / "v.mp4"
    helpers.write_mp4(video_only, n_frames=5)
    with pytest.raises(MediaError, match="no video stream"):
        media.read_video(audio_only, fps=10)
    with pytest.raises(MediaError, match="no video stream"):
        media.probe_video(audio_only)
    with pytest.raises(MediaError, match="no audio stream"):
        media.read_audio(video_only)


# --- video -----------------------------------------------------------------------------------

VIDEOS = {
    "25fps 64x48": dict(width=64, height=48, rate=25, n_frames=30),
    "29.97fps 66x50": dict(width=66, height=50, rate=fractions.Fraction(30000, 1001), n_frames=31),
    "odd 65x49": dict(width=65, height=49, rate=25, n_frames=20, pix_fmt="yuv444p"),
    "start 0.2s": dict(width=64, height=48, rate=25, n_frames=30, start=0.2),
    "b-frames": dict(width=96, height=64, rate=30, n_frames=40, bframes=2),
}


@pytest.mark.parametrize("name", list(VIDEOS))
@pytest.mark.parametrize("fps", [10, 4, 40])
def test_frames_are_picked_by_presentation_time(tmp_path, name, fps):
    spec = VIDEOS[name]
    path = tmp_path / "v.mp4"
    times = helpers.write_mp4(path, **spec)
    info = media.probe_video(path)
    assert (info.width, info.height) == (spec["width"], spec["height"])
    assert info.frame_rate == pytest.approx(float(spec["rate"]), rel=1e-3)
    assert info.start_time == pytest.approx(spec.get("start", 0.0), abs=1e-3)
    assert info.duration == pytest.approx(spec["n_frames"] / float(spec["rate"]), abs=1e-3)
    frames, stamps = media.read_video(path, fps=fps)
    np.testing.assert_allclose(stamps, expected_times(info.duration, fps), rtol=0, atol=1e-12)
    assert frames.dtype == np.uint8
    assert frames.shape == (len(stamps), spec["height"], spec["width"], 3)
    assert [helpers.frame_index(f) for f in frames] == expected_pick(times, stamps)


def test_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(11)
    times = 0.05 + np.cumsum(rng.uniform(0.01, 0.12, 25))
    path = tmp_path / "vfr.mp4"
    helpers.write_mp4(path, times=times)
    frames, stamps = media.read_video(path, fps=20, duration=times[-1] - times[0])
    assert [helpers.frame_index(f) for f in frames] == expected_pick(times, stamps)


def test_duration_from_the_audio_clock(tmp_path):
    path = tmp_path / "v.mp4"
    helpers.write_mp4(path, rate=25, n_frames=25)  # 1.0 s of video
    frames, stamps = media.read_video(path, fps=10, duration=1.2)  # held 0.15 s past the end
    assert len(stamps) == 12 and [helpers.frame_index(f) for f in frames[-3:]] == [23, 24, 24]
    frames, stamps = media.read_video(path, fps=10, duration=0.55)  # shorter: stop early
    np.testing.assert_allclose(stamps, [0.05, 0.15, 0.25, 0.35, 0.45])
    with pytest.raises(MediaError, match="shorter than the 2.000 s needed"):
        media.read_video(path, fps=10, duration=2.0)


def test_transform_is_applied_per_picked_frame(tmp_path):
    path = tmp_path / "v.mp4"
    helpers.write_mp4(path, width=64, height=48, rate=25, n_frames=50)
    calls = []

    def shrink(rgb):
        calls.append(rgb.shape)
        return rgb[::8, ::8].astype(np.float32)

    out, stamps = media.read_video(path, fps=2, transform=shrink)
    assert out.shape == (4, 6, 8, 3) and out.dtype == np.float32 and len(calls) == 4


def test_truncated_video_with_index_first_is_shorter_than_needed(tmp_path):
    path = tmp_path / "v.mp4"
    helpers.write_mp4(path, width=160, height=90, n_frames=50, faststart=True)
    info = media.probe_video(path)
    helpers.truncate(path, 0.4)
    with pytest.raises(MediaError) as error:
        media.read_video(path, fps=10, duration=info.duration)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("case", ["truncated", "empty", "missing", "garbage"])
def test_bad_video_raises_one_line_media_error_naming_the_file(tmp_path, case):
    path = tmp_path / "v.mp4"
    if case != "missing":
        helpers.write_mp4(path, n_frames=30)
    if case == "truncated":
        helpers.truncate(path, 0.5)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(MediaError) as error:
        media.read_video(path, fps=10)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(MediaError):
        media.probe_video(path)


@pytest.mark.parametrize(
    "duration, fps",
    [(10.0, 10), (1.0, 10), (0.75, 10), (10.00002, 10), (1.0, 29.97), (0.01, 10), (3.3, 7)],
)
def test_sample_times(duration, fps):
    np.testing.assert_allclose(
        media.sample_times(duration, fps), expected_times(duration, fps), rtol=0, atol=1e-12
    )
    assert len(media.sample_times(10.0, 10)) == 100
