"""Parity with openl3 0.4.2 on TensorFlow: every output in the shared reference folder, within
the tolerances stated with the reference outputs, also for weight files with other layer numbering."""

import numpy as np
import pytest
import torch

from featurestore import openl3
from featurestore.openl3 import architecture as arch
from tests.helpers import REFERENCE_DIR, renumbered_copy

REFERENCE = REFERENCE_DIR
pytestmark = pytest.mark.needs_reference(REFERENCE)

HOP_VARIANTS = [
    ("", 0.1, True),
    ("_center_false_hop0p5", 0.5, False),
    ("_center_true_hop0p25", 0.25, True),
]
IMAGE_FILES = [
    "image_224x224",
    "image_frames_360x640",
    "image_portrait_400x300",
    "image_croponly_250x300",
]
# weight-file layouts: the official one, and the same weights renumbered (h5py-only copies)
LAYOUTS = {
    "official": None,
    "tf2_unsuffixed_str_toplevel": dict(first_suffix=0, text="str", top_level_group=True),
    "continuing_counters_bytes": dict(first_suffix=8, text="bytes"),
}


def load(name):
    return np.load(REFERENCE / f"{name}.npz")


@pytest.fixture(scope="module", params=list(LAYOUTS))
def weights_dir(request, tmp_path_factory):
    if LAYOUTS[request.param] is None:
        return REFERENCE
    folder = tmp_path_factory.mktemp(request.param)
    for kind in arch.KINDS:
        name = f"openl3_{kind}_mel256_env.h5"
        renumbered_copy(REFERENCE / name, folder / name, **LAYOUTS[request.param])
    return folder


@pytest.fixture(scope="module")
def audio_model(weights_dir):
    return openl3.load_audio_model(weights_dir, device="cpu")


@pytest.fixture(scope="module")
def image_model(weights_dir):
    return openl3.load_image_model(weights_dir, device="cpu")


# -- audio frontend (independent of the weights) ------------------------------------------------


def test_frames_mel_magnitude_and_spectrogram_48k():
    ref = load("audio_mono_48k_short")
    windows, timestamps = openl3.frame_audio(
        ref["audio"], int(ref["sr"]), hop_size=0.1, center=True
    )
    assert windows.shape == (4, 48000) and windows.dtype == np.float32
    assert np.array_equal(windows, ref["frames"][:, 0])
    assert np.array_equal(timestamps, ref["timestamps"])
    magnitude = openl3.spectrogram(windows, db=False)  # (N, mel, time)
    np.testing.assert_allclose(
        magnitude, ref["mel_magnitude"][..., 0].transpose(0, 2, 1), rtol=1e-5, atol=1e-6
    )
    spec = openl3.spectrogram(windows)
    assert spec.shape == (4, 1, 256, 199)
    assert np.abs(spec[:, 0] - ref["spectrogram"][..., 0]).max() <= 2e-3  # dB


def test_mixdown_resampling_and_spectrogram_44k1_stereo():
    ref = load("audio_stereo_44k1")
    windows, timestamps = openl3.frame_audio(ref["audio"], int(ref["sr"]))
    assert np.array_equal(
        openl3.framing.mono_48k(ref["audio"], int(ref["sr"])), ref["audio_48k_mono"]
    )  # bit-exact
    assert windows.shape == (21, 48000)
    np.testing.assert_allclose(timestamps, ref["timestamps"], rtol=1e-12, atol=0)
    spec = openl3.spectrogram(windows)[:, 0]
    expected = ref["spectrogram"][..., 0]
    loud = (
        expected > -50
    )  # below that sits float32 FFT noise (as stated with the reference outputs)
    assert np.abs(spec - expected)[loud].max() <= 2e-3


# -- audio network and full chain ---------------------------------------------------------------


def test_network_alone_on_reference_spectrogram(audio_model):
    ref = load("audio_mono_48k_short")
    x = torch.from_numpy(ref["spectrogram"]).permute(0, 3, 1, 2)  # NHWC -> NCHW
    with torch.inference_mode():
        emb = audio_model.net(x.contiguous(memory_format=torch.channels_last)).numpy()
    np.testing.assert_allclose(emb, ref["embedding"], rtol=0, atol=2e-4)


@pytest.mark.parametrize("suffix,hop_size,center", HOP_VARIANTS)
def test_embeddings_48k_all_hop_center_variants(suffix, hop_size, center):
    model = openl3.load_audio_model(REFERENCE, device="cpu")
    ref = load("audio_mono_48k_short")
    emb, ts = openl3.audio_embeddings(
        ref["audio"], int(ref["sr"]), model=model, hop_size=hop_size, center=center
    )
    assert emb.dtype == np.float32 and ts.dtype == np.float64
    assert emb.shape == ref[f"embedding{suffix}"].shape
    np.testing.assert_allclose(emb, ref[f"embedding{suffix}"], rtol=0, atol=2e-4)
    np.testing.assert_allclose(ts, ref[f"timestamps{suffix}"], rtol=1e-12, atol=0)


def check_stereo_embeddings(keep):
    """Full chain on the 44.1 kHz stereo clip; ``keep(n)`` picks which windows to embed."""
    model = openl3.load_audio_model(REFERENCE, device="cpu")
    ref = load("audio_stereo_44k1")
    framed = [
        openl3.frame_audio(ref["audio"], int(ref["sr"]), hop_size=hop, center=center)
        for _, hop, center in HOP_VARIANTS
    ]
    picks = [keep(len(windows)) for windows, _ in framed]
    embeddings = openl3.embed_audio_frames(
        [windows[p] for (windows, _), p in zip(framed, picks)], model=model
    )
    for (suffix, _, _), emb, (windows, ts), pick in zip(HOP_VARIANTS, embeddings, framed, picks):
        expected = ref[f"embedding{suffix}"]
        assert len(windows) == len(expected)
        np.testing.assert_allclose(ts, ref[f"timestamps{suffix}"], rtol=1e-12, atol=0)
        diff = np.abs(emb - expected[pick])
        # reference outputs: atol 0.25 or 2 % of max|embedding| (top mel bands hold FFT noise); mean ~8e-3
        assert diff.max() <= min(0.25, 0.02 * np.abs(expected).max())
        assert diff.mean() <= 0.02


def test_embeddings_44k1_stereo_all_variants_first_middle_last_windows():
    check_stereo_embeddings(lambda n: np.unique([0, 1, n // 2, n - 1]))


@pytest.mark.slow
def test_embeddings_44k1_stereo_all_variants_every_window():
    check_stereo_embeddings(np.arange)


def test_renumbered_layouts_load_the_same_network(weights_dir, audio_model, image_model):
    for model, load_model in (
        (audio_model, openl3.load_audio_model),
        (image_model, openl3.load_image_model),
    ):
        official = load_model(REFERENCE).net.state_dict()
        state = model.net.state_dict()
        assert state.keys() == official.keys()
        assert all(torch.equal(state[key], official[key]) for key in state)


def test_eager_network_matches_reference_too():
    model = openl3.load_audio_model(REFERENCE, fold_bn=False, channels_last=False)
    ref = load("audio_mono_48k_short")
    emb, _ = openl3.audio_embeddings(ref["audio"], int(ref["sr"]), model=model)
    np.testing.assert_allclose(emb, ref["embedding"], rtol=0, atol=2e-4)


# -- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", IMAGE_FILES)
def test_image_preprocessing_exact(name):
    ref = load(name)
    pre = openl3.preprocess_images(ref["image"])
    assert pre.dtype == np.float32 and pre.shape == ref["preprocessed"].shape
    assert np.array_equal(pre, ref["preprocessed"])


@pytest.mark.parametrize("name", IMAGE_FILES)
def test_image_embeddings(image_model, name):
    ref = load(name)
    emb = openl3.image_embeddings(ref["image"], model=image_model)
    assert emb.shape == ref["embedding"].shape and emb.dtype == np.float32
    np.testing.assert_allclose(emb, ref["embedding"], rtol=0, atol=2e-4)


# -- per-stage activations ----------------------------------------------------------------------


def stage_outputs(model, x):
    """Outputs after the input BN, after each block's max-pool, and of the last conv (NHWC)."""
    specs = arch.layer_specs(model.kind)
    outputs = []
    with torch.inference_mode():
        for index, layer in enumerate(model.net.trunk):
            x = layer(x)
            if index == 0 or specs[index][0] == "pool" or index == len(specs) - 1:
                outputs.append(x.permute(0, 2, 3, 1).numpy().copy())
    return outputs


@pytest.mark.parametrize("kind", arch.KINDS)
def test_debug_layers(kind):
    ref = load("debug_layers")
    load_model = openl3.load_audio_model if kind == "audio" else openl3.load_image_model
    model = load_model(REFERENCE, fold_bn=False, channels_last=False)
    if kind == "audio":
        x = model.frontend(torch.from_numpy(ref["audio_input_frame"][:, 0]))
        last = "audio_embedding_layer_out"
    else:
        x = torch.from_numpy(ref["image_input_preprocessed"]).permute(0, 3, 1, 2).contiguous()
        last = "image_vision_embedding_layer_out"
    names = [f"{kind}_after_input_bn"] + [f"{kind}_after_block{k}_pool" for k in (1, 2, 3)]
    for name, got in zip(names + [last], stage_outputs(model, x)):
        expected = ref[name]
        assert got.shape == expected.shape, name
        assert np.abs(got - expected).max() <= 2e-4 * max(1.0, np.abs(expected).max() / 10), name
