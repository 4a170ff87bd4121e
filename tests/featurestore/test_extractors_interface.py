"""The extractor interface: a tiny custom extractor through ``extract(...)`` (resume, shards),
video extractors sharing one decoding pass, and the worker side without torch.

The custom extractors are written here in NumPy (a per-window RMS and peak of the audio; the
mean colour of each video frame); their stored rows are compared with the same numbers
computed here from the files read with soundfile / PyAV.
"""

import functools
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from featurestore.datasets import Clip
from featurestore.errors import MediaError
from featurestore.extraction import Plan, extract, plan_extractors, prepare_clip
from featurestore.extraction import prepare as prepare_module
from featurestore.extractors import (
    AUDIO,
    VIDEO,
    Extractor,
    FeatureInput,
    frame_windows,
)
from featurestore.media import resample
from featurestore.store import FeatureStore
from tests import helpers

RATE, WINDOW, HOP = 16000, 0.5, 0.25


# -- a per-window RMS and peak of the audio at 16 kHz -------------------------------------------


def prepare_rms(audio, clip):
    windows, stamps = frame_windows(
        audio.at(RATE), RATE, window_seconds=WINDOW, hop_seconds=HOP, center=True
    )
    return FeatureInput(windows, np.ones(len(stamps), np.int64), stamps)


def load_rms(*, device, batch):
    def embed(slices):
        x = np.concatenate([np.asarray(s) for s in slices]).astype(np.float64)
        return np.stack([np.sqrt(np.mean(x**2, axis=1)), np.abs(x).max(axis=1)], axis=1)

    return embed


def rms_extractor():
    return Extractor(
        name="rms",
        modality=AUDIO,
        frame_rate=1 / HOP,
        timestamps="window centre j*hop",
        dim=2,
        params={"rate": RATE, "window": WINDOW, "hop": HOP, "stat": "rms,peak"},
        prepare=prepare_rms,
        load=load_rms,
        batch_items=5,
    )


def expected_rms(path):
    """The rows computed here from the file: mean mixdown, 48 kHz -> 16 kHz, windows by hand."""
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1, dtype=np.float32)
    if rate != 48000:
        mono = resample(mono, rate, 48000)
    signal = resample(mono, 48000, RATE).astype(np.float64)
    width, hop = int(WINDOW * RATE), int(HOP * RATE)
    padded = np.concatenate([np.zeros(width // 2), signal])
    n = 1 + max(0, -(-(len(padded) - width) // hop))
    padded = np.concatenate([padded, np.zeros(max(0, (n - 1) * hop + width - len(padded)))])
    rows = [padded[j * hop : j * hop + width] for j in range(n)]
    return (
        np.array([[np.sqrt(np.mean(r**2)), np.abs(r).max()] for r in rows]),
        np.arange(n) * HOP,
    )


# -- the mean colour of each video frame, and one that refuses every clip -------------------


def prepare_colour(frames, clip, *, refuse=False):
    rows, stamps = [], []
    for stamp, rgb in frames:
        if refuse:
            raise MediaError(f"{frames.path}: refused by the test")
        rows.append(rgb.reshape(-1, 3).mean(axis=0))
        stamps.append(stamp)
    return FeatureInput(np.array(rows, np.float32), np.ones(len(rows), np.int64), np.array(stamps))


def load_identity(*, device, batch):
    return lambda slices: np.concatenate(slices)


def colour_extractor(name, refuse=False, fps=2.0):
    return Extractor(
        name=name,
        modality=VIDEO,
        frame_rate=fps,
        timestamps="(j + 0.5) / fps",
        dim=3,
        params={"stat": "mean rgb", "refuse": refuse},
        prepare=functools.partial(prepare_colour, refuse=refuse),
        load=load_identity,
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    lines = ["audio,video"]
    rng = np.random.default_rng()
    for i, seconds in enumerate([1.0, 2.3, 0.7, 3.0, 1.6, 2.0]):
        helpers.write_wav(
            root / f"a{i}.wav",
            helpers.noise(seconds, sr=44100 if i % 2 else 48000, seed=int(rng.integers(1 << 30))),
            sr=44100 if i % 2 else 48000,
        )
        helpers.write_mp4(
            root / f"v{i}.mp4", width=64, height=48, rate=4, n_frames=int(4 * seconds) + 1
        )
        lines.append(f"a{i}.wav,v{i}.mp4")
    (root / "clips.csv").write_text("\n".join(lines) + "\n")
    return root / "clips.csv"


def stored(store_path, name):
    with FeatureStore.open(store_path, mode="r") as store:
        return {str(c): store.frames(name, str(c)) for c in store.clips.clip_id}


def test_custom_extractor_rows_equal_numpy_and_a_rerun_changes_nothing(corpus, tmp_path):
    summary = extract(
        corpus,
        tmp_path / "s",
        extractors=[rms_extractor()],
        workers=1,
        device="cpu",
        progress="log",
    )
    assert summary["failed_in_scope"] == 0 and summary["done"] == 6
    assert summary["params"]["rms"] == {
        "rate": RATE,
        "window": WINDOW,
        "hop": HOP,
        "stat": "rms,peak",
    }
    first = stored(tmp_path / "s", "rms")
    for i in range(6):
        values, stamps = expected_rms(corpus.parent / f"a{i}.wav")
        got_values, got_stamps = first[f"a{i}"]
        np.testing.assert_allclose(got_stamps, stamps, atol=1e-12)
        np.testing.assert_allclose(got_values, values, rtol=1e-5, atol=1e-6)
    again = extract(
        corpus,
        tmp_path / "s",
        extractors=[rms_extractor()],
        workers=0,
        device="cpu",
        progress="log",
    )
    assert again["done"] == 0 and again["committed_in_scope"] == 6
    helpers.assert_same_arrays(
        {k: v[0] for k, v in first.items()},
        {k: v[0] for k, v in stored(tmp_path / "s", "rms").items()},
    )


def test_shards_fill_the_store_an_unsharded_run_fills(corpus, tmp_path):
    options = dict(device="cpu", progress="log", workers=0)
    whole = tmp_path / "whole"
    FeatureStore.open(whole, mode="w-", block_clips=2).close()
    extract(corpus, whole, extractors=[rms_extractor()], **options)
    sharded = tmp_path / "sharded"
    FeatureStore.open(sharded, mode="w-", block_clips=2).close()
    prepared = extract(corpus, sharded, extractors=[rms_extractor()], prepare_only=True, **options)
    assert prepared["done"] == 0
    parts = [
        extract(corpus, sharded, extractors=[rms_extractor()], shard=(i, 2), **options)
        for i in range(2)
    ]
    assert sorted(p["done"] for p in parts) == [2, 4]  # 3 blocks of 2 clips
    a, b = stored(whole, "rms"), stored(sharded, "rms")
    assert sorted(a) == sorted(b)
    for clip_id in a:
        np.testing.assert_array_equal(a[clip_id][0], b[clip_id][0])


def test_another_definition_under_the_same_name_is_refused(corpus, tmp_path):
    extract(
        corpus,
        tmp_path / "s",
        extractors=[rms_extractor()],
        workers=0,
        device="cpu",
        progress="log",
        limit=1,
    )
    import dataclasses

    other = dataclasses.replace(rms_extractor(), params={"rate": 8000})
    with pytest.raises(Exception, match="different definition"):
        extract(
            corpus,
            tmp_path / "s",
            extractors=[other],
            workers=0,
            device="cpu",
            progress="log",
            limit=1,
        )


def test_video_extractors_share_one_decoding_pass(corpus, tmp_path, monkeypatch):
    calls = []
    real = prepare_module.media.iter_video

    def counting(path, **kwargs):
        calls.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(prepare_module.media, "iter_video", counting)
    extractors = [
        colour_extractor("mean_a"),
        colour_extractor("refuses", refuse=True),
        colour_extractor("mean_b"),
    ]
    clip = Clip(clip_id="c", audio=None, video="v1.mp4", duration=2.3)
    prepared = prepare_clip(clip, corpus.parent, Plan(fps=2.0), extractors)
    assert len(calls) == 1
    assert prepared.failures == {"refuses": f"{corpus.parent / 'v1.mp4'}: refused by the test"}
    a, b = prepared.inputs["mean_a"], prepared.inputs["mean_b"]
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.timestamps, [0.25, 0.75, 1.25, 1.75, 2.25])
    frames = [(t, rgb) for t, rgb in real(corpus.parent / "v1.mp4", fps=2.0, duration=2.3)]
    np.testing.assert_allclose(
        a.items, [rgb.reshape(-1, 3).mean(axis=0) for _, rgb in frames], rtol=1e-6
    )


def test_a_decoding_error_reaches_every_video_extractor(tmp_path):
    helpers.write_mp4(tmp_path / "v.mp4", width=64, height=48, rate=4, n_frames=40, faststart=True)
    helpers.truncate(tmp_path / "v.mp4", 0.5)
    extractors = [colour_extractor("mean_a"), colour_extractor("mean_b")]
    clip = Clip(clip_id="c", audio=None, video="v.mp4", duration=10.0)
    prepared = prepare_clip(clip, tmp_path, Plan(fps=2.0), extractors)
    assert set(prepared.failures) == {"mean_a", "mean_b"} and not prepared.inputs
    assert len(set(prepared.failures.values())) == 1
    assert "v.mp4" in prepared.failures["mean_a"]


def test_extractors_reach_the_workers_without_torch(corpus, tmp_path):
    """Built-in and custom extractors built here, unpickled and run where torch cannot load."""
    names = (
        "openl3_audio",
        "openl3_video",
        "logmel",
        "efficientnet_b0",
        "clip_vit_b32",
        "panns_cnn14",
        "hear:tests.hear_module",
    )
    extractors = plan_extractors(Plan(features=names, fps=2.0), random_weights=5) + [
        rms_extractor(),
        colour_extractor("mean"),
    ]
    (tmp_path / "extractors.pkl").write_bytes(pickle.dumps(extractors))
    code = (
        helpers.BLOCK_TORCH
        + f"""
import json, pickle, pathlib
from featurestore.datasets import Clip
from featurestore.extraction import Plan, prepare_clip
extractors = pickle.loads(pathlib.Path({str(tmp_path / "extractors.pkl")!r}).read_bytes())
clip = Clip(clip_id="c", audio="a1.wav", video="v1.mp4", duration=2.3)
prepared = prepare_clip(clip, {str(corpus.parent)!r}, Plan(fps=2.0), extractors)
assert 'torch' not in sys.modules
print(json.dumps({{"inputs": sorted(prepared.inputs), "failures": prepared.failures}}))
"""
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=helpers.ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    # the 64x48 frames are too small for OpenL3 only
    assert out["inputs"] == [
        "clip_vit_b32",
        "efficientnet_b0",
        "hear-tests.hear_module",
        "logmel",
        "mean",
        "openl3_audio",
        "panns_cnn14",
        "rms",
    ]
    assert (
        list(out["failures"]) == ["openl3_video"]
        and "224 pixels" in out["failures"]["openl3_video"]
    )
