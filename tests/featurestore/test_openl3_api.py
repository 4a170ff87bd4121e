"""OpenL3 public API: framing and image preprocessing rules, batching across clips, options,
caching, and the torch-free worker side."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from featurestore import openl3
from featurestore.errors import MediaError
from tests.helpers import BLOCK_TORCH


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return {
        "audio": openl3.load_audio_model(
            openl3.random_weights_file(folder / "a.h5", kind="audio", seed=1)
        ),
        "image": openl3.load_image_model(
            openl3.random_weights_file(folder / "i.h5", kind="image", seed=2)
        ),
    }


# -- framing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_samples,sr,hop_size,center,expected",
    [
        (480000, 48000, 0.1, True, 96),
        (480001, 48000, 0.1, True, 97),
        (110250, 44100, 0.1, True, 21),
        (36000, 48000, 0.1, True, 4),
        (110250, 44100, 0.5, False, 4),
        (48000, 48000, 0.1, False, 1),
        (100, 48000, 0.1, False, 1),
        (48000, 48000, 0.1, True, 6),
        (96000, 32000, 0.25, True, 11),
    ],
)
def test_window_counts(n_samples, sr, hop_size, center, expected):
    audio = np.zeros(n_samples, dtype=np.float32)
    windows, timestamps = openl3.frame_audio(audio, sr, hop_size=hop_size, center=center)
    assert windows.shape == (expected, 48000)
    assert openl3.count_windows(n_samples, sr, hop_size=hop_size, center=center) == expected
    np.testing.assert_array_equal(timestamps, np.arange(expected) * hop_size)


def test_window_positions_hop_truncation_and_padding():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(70000)  # float64: cast after padding
    windows, timestamps = openl3.frame_audio(audio, 48000, hop_size=0.29, center=True)
    hop = 13919  # int(0.29 * 48000)
    padded = np.concatenate([np.zeros(24000), audio])
    padded = np.concatenate([padded, np.zeros(len(windows) * hop + 48000)])
    for i, window in enumerate(windows):
        np.testing.assert_array_equal(window, padded[i * hop : i * hop + 48000].astype(np.float32))
    assert len(windows) == 1 + -(-(70000 + 24000 - 48000) // hop)
    np.testing.assert_array_equal(timestamps, np.arange(len(windows)) * 0.29)
    assert not windows.flags.writeable


def test_mixdown_is_channel_mean_and_errors():
    stereo = np.random.default_rng(1).standard_normal((50000, 2)).astype(np.float32)
    a, _ = openl3.frame_audio(stereo, 48000)
    b, _ = openl3.frame_audio(stereo.mean(axis=1), 48000)
    np.testing.assert_array_equal(a, b)
    for bad in (np.zeros(0, np.float32), np.zeros((4, 4, 4), np.float32), np.zeros(9, np.int16)):
        with pytest.raises(MediaError):
            openl3.frame_audio(bad, 48000)
    with pytest.raises(MediaError):
        openl3.frame_audio(stereo, -1)
    with pytest.raises(ValueError):  # MediaError is a ValueError
        openl3.frame_audio(stereo, 48000, hop_size=0)


# -- image preprocessing ------------------------------------------------------------------------


def test_image_224_goes_to_minus_one_one_and_others_to_zero_one():
    rng = np.random.default_rng(2)
    exact = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    exact[0, 0] = [0, 255, 7]
    pre = openl3.preprocess_images(exact)
    assert pre.shape == (1, 224, 224, 3) and pre.min() == -1 and pre.max() == 1
    big = rng.integers(0, 256, (2, 300, 400, 3), dtype=np.uint8)
    pre = openl3.preprocess_images(big)
    assert pre.shape == (2, 224, 224, 3) and pre.min() >= 0 and pre.max() <= 1  # the quirk
    paper = openl3.preprocess_images(big, scaling="paper")
    np.testing.assert_allclose(paper, 2 * pre - 1, atol=1e-6)


def test_crop_only_path_divides_by_the_batch_maximum():
    images = np.random.default_rng(3).integers(0, 200, (2, 240, 256, 3), dtype=np.uint8)
    images[1, 120, 128] = 250  # inside the crop
    pre = openl3.preprocess_images(images)
    crop = images[:, 8:232, 16:240].astype(np.float32)
    np.testing.assert_allclose(pre, crop / 250, rtol=1e-6)


@pytest.mark.parametrize("shape", [(300, 500), (720, 1280), (257, 900), (1000, 260)])
def test_resize_equals_torch_bilinear_without_antialiasing(shape):
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape + (3,), dtype=np.uint8)
    scale = 256 / min(shape)
    out = (int(round(shape[0] * scale)), int(round(shape[1] * scale)))
    x = torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255
    resized = (
        torch.nn.functional.interpolate(
            x, size=out, mode="bilinear", align_corners=False, antialias=False
        )[0]
        .permute(1, 2, 0)
        .numpy()
    )
    top, left = out[0] // 2 - 112, out[1] // 2 - 112
    expected = resized[top : top + 224, left : left + 224].astype(np.float32)
    np.testing.assert_allclose(openl3.preprocess_images(image)[0], expected, rtol=0, atol=1e-7)


def test_image_errors():
    for bad in (
        np.zeros((200, 300, 3), np.uint8),
        np.zeros((224, 224, 4), np.uint8),
        np.zeros((224, 224, 3), np.int8),
        np.zeros((0, 224, 224, 3), np.uint8),
    ):
        with pytest.raises(MediaError):
            openl3.preprocess_images(bad)
    with pytest.raises(ValueError):
        openl3.preprocess_images(np.zeros((224, 224, 3), np.uint8), scaling="other")


# -- batching across clips and options ----------------------------------------------------------


def test_batched_audio_equals_per_clip(models):
    rng = np.random.default_rng(4)
    clips = [
        (rng.standard_normal((30000, 2)) * 0.1, 48000),
        (rng.standard_normal(20000) * 0.2, 32000),
    ]
    framed = [openl3.frame_audio(a, sr, hop_size=0.5) for a, sr in clips]
    together = openl3.embed_audio_frames(
        [w for w, _ in framed], model=models["audio"], batch_size=3
    )
    stacked = openl3.embed_audio_frames(
        np.concatenate([w for w, _ in framed]), model=models["audio"], batch_size=8
    )
    assert isinstance(together, list) and len(together) == 2
    np.testing.assert_allclose(np.concatenate(together), stacked, rtol=0, atol=1e-5)
    for (audio, sr), emb in zip(clips, together):
        single, ts = openl3.audio_embeddings(audio, sr, model=models["audio"], hop_size=0.5)
        np.testing.assert_allclose(single, emb, rtol=0, atol=1e-5)
        assert single.shape == (len(ts), 512) and ts.dtype == np.float64


def test_batched_images_and_worker_tensor_input(models):
    rng = np.random.default_rng(5)
    clips = [rng.integers(0, 256, (n, 300, 400, 3), dtype=np.uint8) for n in (2, 1)]
    batches = [openl3.preprocess_images(c) for c in clips]
    together = openl3.embed_images(batches, model=models["image"])
    direct = openl3.image_embeddings(clips, model=models["image"])
    from_tensor = openl3.embed_images(torch.from_numpy(batches[0]), model=models["image"])
    for a, b in zip(together, direct):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    np.testing.assert_allclose(from_tensor, together[0], rtol=0, atol=1e-5)
    single = openl3.image_embeddings(clips[1][0], model=models["image"])
    assert single.shape == (1, 512)


def test_model_kinds_are_checked(models):
    with pytest.raises(TypeError):
        openl3.embed_images(np.zeros((1, 224, 224, 3), np.float32), model=models["audio"])
    with pytest.raises(TypeError):
        openl3.audio_embeddings(np.zeros(48000, np.float32), 48000, model=models["image"])


def test_cached_device_dtype_and_tf32_options(tmp_path):
    path = openl3.random_weights_file(tmp_path / "w.h5", kind="audio", seed=3)
    model = openl3.load_audio_model(path, device="auto")
    assert model is openl3.load_audio_model(path, device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device.type == expected and model.provenance["device"].startswith(expected)
    assert model.provenance["allow_tf32"] is False and model.provenance["dtype"] == "float32"
    assert openl3.load_audio_model(path, bf16=True).dtype == "bfloat16"
    with pytest.raises(ValueError):
        openl3.load_audio_model(path, dtype="float16")


def test_worker_side_needs_no_torch():
    code = (
        BLOCK_TORCH
        + """
import numpy as np
from featurestore import openl3
from featurestore.frontends import melfilters
from featurestore.media import resample
w, ts = openl3.frame_audio(np.zeros(30000, np.float32), 44100)
p = openl3.preprocess_images(np.zeros((2, 300, 300, 3), np.uint8))
assert w.shape == (3, 48000) and p.shape == (2, 224, 224, 3)
assert 'torch' not in sys.modules
"""
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
