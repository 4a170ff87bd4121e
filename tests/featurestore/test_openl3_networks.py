"""Every OpenL3 variant on random official-layout files: shapes, Keras flatten order (checked in
NumPy), frontends against NumPy, folded/channels-last and bf16 paths against eager fp32."""

import numpy as np
import pytest
import torch

from featurestore import openl3
from featurestore.frontends import mel_filterbank
from featurestore.openl3 import architecture as arch
from tests.helpers import REFERENCE_DIR

REFERENCE = REFERENCE_DIR


@pytest.fixture(scope="module")
def random_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("random")
    return {
        kind: openl3.random_weights_file(folder / f"{kind}.h5", kind=kind, seed=11 + i)
        for i, kind in enumerate(arch.KINDS)
    }


def numpy_keras_pool_flatten(feature_map, pool):
    """Keras MaxPooling2D(pool, padding='same') on exact multiples, then Flatten (H, W, C)."""
    n, height, width, channels = feature_map.shape
    ph, pw = pool
    blocks = feature_map.reshape(n, height // ph, ph, width // pw, pw, channels)
    return blocks.max(axis=(2, 4)).reshape(n, -1)


def random_noise_windows(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 48000)) * rng.uniform(0.01, 0.5, (n, 1))).astype(np.float32)


@pytest.mark.parametrize("input_repr", arch.INPUT_REPRS)
@pytest.mark.parametrize("embedding_size", arch.EMBEDDING_SIZES["audio"])
def test_audio_variants_shapes_and_flatten_order(random_files, input_repr, embedding_size):
    model = openl3.load_audio_model(
        random_files["audio"], input_repr=input_repr, embedding_size=embedding_size
    )
    windows = random_noise_windows(1, seed=len(input_repr) + embedding_size)
    emb = openl3.embed_audio_frames(windows, model=model)
    assert emb.shape == (1, embedding_size) and emb.dtype == np.float32
    with torch.inference_mode():
        spec = model.frontend(torch.from_numpy(windows))
        assert spec.shape[1:] == (1,) + arch.INPUT_SHAPES[input_repr]
        spec = spec.contiguous(memory_format=torch.channels_last)  # as embed() feeds it
        trunk = model.net.trunk(spec).permute(0, 2, 3, 1).numpy()
        np.testing.assert_array_equal(model.net(spec).numpy(), emb)
    assert trunk.shape[1:3] == tuple(s // 8 for s in arch.INPUT_SHAPES[input_repr])
    expected = numpy_keras_pool_flatten(trunk, arch.POOL_SIZES[input_repr][embedding_size])
    assert np.array_equal(emb, expected)


@pytest.mark.parametrize("embedding_size", arch.EMBEDDING_SIZES["image"])
def test_image_variants_shapes_and_flatten_order(random_files, embedding_size):
    model = openl3.load_image_model(random_files["image"], embedding_size=embedding_size)
    images = np.random.default_rng(3).integers(0, 256, (2, 240, 320, 3), dtype=np.uint8)
    emb = openl3.image_embeddings(images, model=model)
    assert emb.shape == (2, embedding_size) and emb.dtype == np.float32
    batch = torch.from_numpy(openl3.preprocess_images(images)).permute(0, 3, 1, 2)
    with torch.inference_mode():
        trunk = model.net.trunk(batch.contiguous(memory_format=torch.channels_last))
        trunk = trunk.permute(0, 2, 3, 1).numpy()
    assert trunk.shape[1:] == (28, 28, 512)
    expected = numpy_keras_pool_flatten(trunk, arch.POOL_SIZES["image"][embedding_size])
    assert np.array_equal(emb, expected)


def numpy_frontend(windows, input_repr):
    """float64 NumPy: end-padded frames, periodic Hann, |rfft|, Slaney mel, openl3's dB."""
    n_fft, pad_end = (512, False) if input_repr == "linear" else (2048, True)
    x = windows.astype(np.float64)
    n_frames = -(-48000 // 242) if pad_end else 1 + (48000 - n_fft) // 242
    x = np.pad(x, ((0, 0), (0, max(0, (n_frames - 1) * 242 + n_fft - 48000))))
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([x[:, t * 242 : t * 242 + n_fft] for t in range(n_frames)], axis=1)
    magnitude = np.abs(np.fft.rfft(frames * hann, axis=-1))  # (N, frames, bins)
    if input_repr != "linear":
        magnitude = magnitude @ mel_filterbank(
            sr=48000, n_fft=2048, n_mels=int(input_repr[3:])
        ).astype(np.float64)
    db = 10 * np.log10(np.maximum(magnitude, 1e-10))
    db = np.maximum(db - db.max(axis=(1, 2), keepdims=True), -80)
    return db.transpose(0, 2, 1)  # (N, bands, frames)


@pytest.mark.parametrize("input_repr", arch.INPUT_REPRS)
def test_frontends_against_numpy(input_repr):
    windows = random_noise_windows(2, seed=7)
    spec = openl3.spectrogram(windows, input_repr=input_repr)[:, 0]
    expected = numpy_frontend(windows, input_repr)
    assert spec.shape == expected.shape == (2,) + arch.INPUT_SHAPES[input_repr]
    np.testing.assert_allclose(spec, expected, rtol=0, atol=2e-3)


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def weights(random_files):
    """The reference weights (calibrated BN statistics) when present, else random ones."""
    if REFERENCE.is_dir():
        return {kind: REFERENCE / f"openl3_{kind}_mel256_env.h5" for kind in arch.KINDS}
    return random_files


@pytest.fixture(scope="module")
def audio_inputs():
    """A few real-ish windows: tones, noise bursts and chirps at several levels."""
    t = np.arange(48000) / 48000
    rng = np.random.default_rng(21)
    return np.stack(
        [
            0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(48000),
            0.3 * np.sin(2 * np.pi * (100 + 8000 * t) * t) * np.exp(-3 * t),
            0.2 * rng.standard_normal(48000) * (t > 0.4),
        ]
    ).astype(np.float32)


@pytest.fixture(scope="module")
def eager_audio(weights, audio_inputs):
    model = openl3.load_audio_model(weights["audio"], fold_bn=False, channels_last=False)
    return openl3.embed_audio_frames(audio_inputs, model=model)


def test_folded_channels_last_equals_eager(weights, audio_inputs, eager_audio):
    for fold_bn, channels_last in ((True, True), (True, False), (False, True)):
        model = openl3.load_audio_model(
            weights["audio"], fold_bn=fold_bn, channels_last=channels_last
        )
        emb = openl3.embed_audio_frames(audio_inputs, model=model)
        np.testing.assert_allclose(emb, eager_audio, rtol=0, atol=2e-5 * np.abs(eager_audio).max())


def test_bf16_audio_close_to_fp32(weights, audio_inputs, eager_audio):
    model = openl3.load_audio_model(weights["audio"], dtype="bfloat16")
    assert model is openl3.load_audio_model(weights["audio"], bf16=True)
    assert model.provenance["dtype"] == "bfloat16"
    emb = openl3.embed_audio_frames(audio_inputs, model=model)
    assert emb.dtype == np.float32
    assert cosine(emb, eager_audio).min() >= 0.9999
    assert np.abs(emb - eager_audio).max() <= 0.05 * np.abs(eager_audio).max()


def test_bf16_and_folded_image_close_to_eager(weights):
    images = np.random.default_rng(4).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    eager = openl3.image_embeddings(
        images, model=openl3.load_image_model(weights["image"], fold_bn=False, channels_last=False)
    )
    folded = openl3.image_embeddings(images, model=openl3.load_image_model(weights["image"]))
    np.testing.assert_allclose(folded, eager, rtol=0, atol=2e-5 * np.abs(eager).max())
    bf16 = openl3.image_embeddings(
        images, model=openl3.load_image_model(weights["image"], bf16=True)
    )
    assert cosine(bf16, eager).min() >= 0.9999
