"""OpenL3 audio, OpenL3 video and log-mel as extractors: the params and fingerprints that stores
made before the extractor interface hold, and their inputs against the plain functions.

The pinned hashes were computed on main at 22af08a (before the interface existed) with
``load_runners`` on seeded random weights (seed 7): sha256 of the canonical JSON of
``{"params": params without "avscene", "dim": dim, "storage_dtype": "float32"}``, i.e. the store
fingerprint with the version-dependent key left out (it changes with every release as before).
"""

import numpy as np
import pytest

from featurestore import __version__, openl3
from featurestore.extraction import Plan, plan_extractors
from featurestore.extractors import AudioSignal, builtin
from featurestore.frontends import logmel
from featurestore.provenance import sha256_json
from featurestore.store.layout import definition, fingerprint

PINNED = {  # (plan options, feature) -> (hash, dim, frame rate)
    ("default", "openl3_audio"): (
        "602b2a54ff128bf4d999de40d294c2ab4ed7162d5ba411692804480d2a9e1bc3",
        512,
        10.0,
    ),
    ("default", "openl3_video"): (
        "cf59513f61fa98e663853aca7b7c4a35de86a36ad66807be4fcb7b8f0bb370df",
        512,
        10.0,
    ),
    ("default", "logmel"): (
        "53bf3f3f521d198b5c373c4ccf4124081b346664c4f1295a5ca19bc2e982efe3",
        128,
        100.0,
    ),
    ("window", "openl3_audio"): (
        "af94482dce951a7656fec529d97cec1b7d79bf0cffbd508b3ace1961f8047e27",
        512,
        2.0,
    ),
    ("window", "openl3_video"): (
        "7f012098b35e998adc53a9934b81b6d7b59e8d9410111b568ce299d32e802a05",
        512,
        2.0,
    ),
    ("window", "logmel"): (
        "53bf3f3f521d198b5c373c4ccf4124081b346664c4f1295a5ca19bc2e982efe3",
        128,
        100.0,
    ),
}
PLANS = {
    "default": Plan(),
    "window": Plan(video_frames="per-audio-window", hop=0.5, center=False, fps=2.0),
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return openl3.random_weights_folder(7, folder=tmp_path_factory.mktemp("weights"))


@pytest.mark.parametrize("plan_name", sorted(PLANS))
def test_params_and_fingerprints_equal_those_of_stores_made_before(plan_name, weights):
    for extractor in plan_extractors(PLANS[plan_name], weights=weights):
        expected, dim, rate = PINNED[(plan_name, extractor.name)]
        params = dict(extractor.params)
        assert params.pop("avscene") == __version__
        got = sha256_json({"params": params, "dim": extractor.dim, "storage_dtype": "float32"})
        assert (got, extractor.dim, extractor.frame_rate) == (expected, dim, rate), params
        # the store's own fingerprint is the same hash with the version in
        full = fingerprint(
            definition(dim=dim, frame_rate=rate, params=extractor.params, storage_dtype="float32")
        )
        assert len(full) == 64


def test_random_weights_seed_is_recorded_and_bf16_changes_the_fingerprint(weights):
    fp32 = builtin("openl3_audio", weights={None: weights})
    bf16 = builtin("openl3_audio", weights={None: weights}, bf16=True)
    assert fp32.params["model"]["random_weights"] == 7
    assert (fp32.params["model"]["dtype"], bf16.params["model"]["dtype"]) == (
        "float32",
        "bfloat16",
    )
    assert sha256_json(fp32.params) != sha256_json(bf16.params)


def test_inputs_equal_the_plain_functions(weights):
    rng = np.random.default_rng()
    mono = rng.uniform(-0.5, 0.5, 48000 * 2 + 123).astype(np.float32)
    audio = AudioSignal(mono)
    windows = builtin("openl3_audio", weights={None: weights}).prepare(audio, None)
    expected, stamps = openl3.frame_audio(mono, 48000, hop_size=0.1, center=True)
    np.testing.assert_array_equal(windows.items[:], expected)
    np.testing.assert_array_equal(windows.timestamps, stamps)
    params = logmel.logmel_params(sample_rate=16000, win_length=640, hop_length=160)
    mel = builtin("logmel", logmel_params=params).prepare(audio, None)
    from featurestore.media import resample

    np.testing.assert_array_equal(mel.items[0], resample(mono, 48000, 16000))
    np.testing.assert_array_equal(
        mel.timestamps, logmel.frame_timestamps(len(mel.items[0]), params)
    )
    video = builtin("openl3_video", weights={None: weights})
    frames = rng.integers(0, 256, (3, 300, 400, 3), dtype=np.uint8)
    from featurestore.extractors import VideoFrames

    got = video.prepare(VideoFrames(zip([0.05, 0.15, 0.25], frames)), None)
    np.testing.assert_array_equal(
        got.items, np.concatenate([openl3.preprocess_images(f) for f in frames])
    )
