"""Each backbone's embeddings through avscene's path equal its reference implementation's.

avscene's path: the extractor's ``prepare`` (NumPy resize and crop, or 32 kHz windows, as in the
decoding workers) and its batched ``embed`` (BatchNorm folded, channels-last; fp32 and bf16).
The references, on the same decoded frames or audio and the same RANDOM weight file (official
layout, fresh seed):

- torchvision: ``get_model(arch, weights=None)`` with the file's state dict loaded, classifier
  replaced by the identity (the pooled penultimate features), eager, after the weight set's own
  ``transforms()`` (``ImageClassification``) on the uint8 frame tensor; Places365 with the
  Places365 repository's ``Resize((256, 256))``, ``CenterCrop(224)``, ``Normalize``;
- open_clip: ``create_model(config)`` with the file's ``visual.`` weights, ``encode_image`` after
  open_clip's own preprocess of the frame as a PIL image;
- PANNs CNN14: a re-statement in this file, from the paper and the authors' released code, in
  NumPy (frontend) and torch.nn.functional (network), reading the checkpoint's state dict.

Tolerances (docs/extractors.md): fp32 cosine >= 0.9999 and max |difference| <= 1e-2 x max
|reference| (the workers' float64 resize differs from torch's float32 one by one grey level on a
few pixels in a thousand, more so from PIL's fixed point); CNN14 fp32 max |difference| <= 1e-4 x
max |reference|; bf16 cosine >= 0.99.
"""

import numpy as np
import pytest
import torch

from featurestore.backbones import clip, cnn14, images, weight_files
from featurestore.backbones.image_transforms import resize_crop
from featurestore.extractors import AudioSignal, VideoFrames, builtin
from featurestore.frontends.melfilters import mel_filterbank
from featurestore.media import resample

FAST = ["resnet50", "efficientnet_b0", "efficientnet_v2_s", "clip_vit_b32"]
MEDIUM = ["efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4"]
SLOW = [
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_m",
    "clip_vit_l14",
]


def frames(n=1, height=360, width=640):
    """Frames with smooth structure and noise (fresh each run)."""
    rng = np.random.default_rng()
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for _ in range(n):
        phase = rng.uniform(0, 6, 3)
        base = np.stack(
            [np.sin(x / (17 + 9 * c) + y / (23 + 5 * c) + phase[c]) for c in range(3)], axis=-1
        )
        noisy = 127 + 90 * base + rng.normal(0, 12, base.shape)
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


def ours(extractor, media, *, device="cpu", batch=8):
    prepared = extractor.prepare(media, None)
    embed = extractor.load(device=device, batch=batch)
    return np.asarray(embed([prepared.items]))


def compare(got, expected, *, rel, cosine):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape
    cos = np.sum(got * expected, axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    error = np.abs(got - expected).max() / np.abs(expected).max()
    assert cos.min() >= cosine and error <= rel, (cos.min(), error)
    return cos.min(), error


def seed():
    return int(np.random.default_rng().integers(1 << 20))


# -- torchvision -------------------------------------------------------------------------------


def torchvision_reference(arch, path, images_, *, transform):
    import torchvision

    state, _, _ = weight_files.unwrap(torch.load(str(path), weights_only=True), path)
    net = torchvision.models.get_model(
        arch, weights=None, num_classes=images.classes_of(arch, state)
    )
    net.load_state_dict(state)
    setattr(net, "fc" if arch == "resnet50" else "classifier", torch.nn.Identity())
    net.eval()
    batch = torch.stack([transform(torch.from_numpy(im).permute(2, 0, 1)) for im in images_])
    with torch.inference_mode():
        return net(batch).numpy()


def torchvision_transform(arch):
    import torchvision

    return torchvision.models.get_model_weights(arch).DEFAULT.transforms()


@pytest.mark.parametrize("arch", [a for a in FAST if a in images.WEIGHT_SETS])
def test_torchvision_backbones_fp32_and_bf16(arch, tmp_path):
    path = images.write_random(arch, tmp_path / images.WEIGHT_SETS[arch][0].file, seed=seed())
    shots = frames(2)
    expected = torchvision_reference(arch, path, shots, transform=torchvision_transform(arch))
    extractor = builtin(arch, weights={arch: path})
    media = VideoFrames(zip([0.05, 0.15], shots))
    compare(ours(extractor, media), expected, rel=1e-2, cosine=0.9999)
    bf16 = builtin(arch, weights={arch: path}, bf16=True)
    compare(ours(bf16, VideoFrames(zip([0.05, 0.15], shots))), expected, rel=1.0, cosine=0.99)


def check_one_frame(arch, tmp_path, *, bf16):
    """One frame through ``arch`` on random weights against torchvision (and bf16 if asked)."""
    path = images.write_random(arch, tmp_path / images.WEIGHT_SETS[arch][0].file, seed=seed())
    shots = frames(1)
    expected = torchvision_reference(arch, path, shots, transform=torchvision_transform(arch))
    compare(
        ours(builtin(arch, weights={arch: path}), VideoFrames(zip([0.5], shots))),
        expected,
        rel=1e-2,
        cosine=0.9999,
    )
    if bf16:
        compare(
            ours(builtin(arch, weights={arch: path}, bf16=True), VideoFrames(zip([0.5], shots))),
            expected,
            rel=1.0,
            cosine=0.99,
        )


@pytest.mark.parametrize("arch", MEDIUM)
def test_larger_efficientnets_fp32(arch, tmp_path):
    check_one_frame(arch, tmp_path, bf16=False)


@pytest.mark.slow
@pytest.mark.parametrize("arch", [a for a in SLOW if a in images.WEIGHT_SETS])
def test_largest_efficientnets_fp32_and_bf16(arch, tmp_path):
    check_one_frame(arch, tmp_path, bf16=True)


def test_places365_checkpoint_loads_into_resnet50_with_its_preprocessing(tmp_path):
    """The CSAIL file's layout: {"epoch", "arch", "state_dict": {"module.<key>": ...}}, 365
    classes; resized to 256 x 256 (aspect ratio not kept), then the centre 224 x 224."""
    from torchvision import transforms

    template = images.build("resnet50", classes=365).state_dict()
    arrays = weight_files.random_state(template, seed=seed())
    state = {"module." + key: torch.from_numpy(np.array(value)) for key, value in arrays.items()}
    path = tmp_path / "resnet50_places365.pth.tar"
    torch.save({"epoch": 90, "arch": "resnet50", "state_dict": state, "best_prec1": 54.65}, path)
    extractor = builtin("resnet50", weights={"resnet50": path})
    assert extractor.params["model"]["weight_set"] == "PLACES365"
    assert extractor.params["model"]["classes"] == 365
    assert extractor.params["preprocessing"]["keep_ratio"] is False
    places = transforms.Compose(
        [
            transforms.Resize((256, 256), antialias=True),
            transforms.CenterCrop(224),
            transforms.ConvertImageDtype(torch.float),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    shots = frames(1, 300, 500)
    expected = torchvision_reference("resnet50", path, shots, transform=places)
    compare(ours(extractor, VideoFrames(zip([0.5], shots))), expected, rel=1e-2, cosine=0.9999)


# -- open_clip ----------------------------------------------------------------------------------


def clip_reference(name, path, images_):
    import open_clip
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(
        clip.MODELS[name].config, pretrained=None
    )
    state, _, _ = weight_files.unwrap(torch.load(str(path), weights_only=True), path)
    model.visual.load_state_dict(clip.visual_state(state))
    model.eval()
    batch = torch.stack([preprocess(Image.fromarray(im)) for im in images_])
    with torch.inference_mode():
        return model.encode_image(batch).numpy()


def _clip_case(name, tmp_path, bf16):
    path = clip.write_random(name, tmp_path / "open_clip_pytorch_model.bin", seed=seed())
    shots = frames(2)
    expected = clip_reference(name, path, shots)
    extractor = builtin(name, weights={name: path})
    compare(
        ours(extractor, VideoFrames(zip([0.05, 0.15], shots))), expected, rel=1e-2, cosine=0.9999
    )
    if bf16:
        compare(
            ours(
                builtin(name, weights={name: path}, bf16=True),
                VideoFrames(zip([0.05, 0.15], shots)),
            ),
            expected,
            rel=1.0,
            cosine=0.99,
        )


def test_clip_vit_b32_fp32_and_bf16(tmp_path):
    _clip_case("clip_vit_b32", tmp_path, bf16=True)


@pytest.mark.slow
def test_clip_vit_l14_fp32_and_bf16(tmp_path):
    _clip_case("clip_vit_l14", tmp_path, bf16=True)


# -- PANNs CNN14 --------------------------------------------------------------------------------


def cnn14_restated(state, windows):
    """CNN14 on 32 kHz windows (N, 32000), re-stated from the paper and the released code."""
    import torch.nn.functional as F

    n_fft, hop = 1024, 320
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    padded = np.pad(windows.astype(np.float64), ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    n_frames = 1 + (padded.shape[1] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    power = np.abs(np.fft.rfft(padded[:, idx] * window, axis=-1)) ** 2  # (N, T, 513)
    mel = power @ mel_filterbank(sr=32000, n_fft=n_fft, n_mels=64, fmin=50, fmax=14000)
    x = torch.from_numpy(10 * np.log10(np.maximum(mel, 1e-10))).float()[:, None]  # (N,1,T,64)

    def bn(x, name):
        return F.batch_norm(
            x,
            state[f"{name}.running_mean"],
            state[f"{name}.running_var"],
            state[f"{name}.weight"],
            state[f"{name}.bias"],
            False,
            0.0,
            1e-5,
        )

    x = bn(x.transpose(1, 3), "bn0").transpose(1, 3)
    for block in range(1, 7):
        for layer in (1, 2):
            x = F.conv2d(x, state[f"conv_block{block}.conv{layer}.weight"], padding=1)
            x = F.relu(bn(x, f"conv_block{block}.bn{layer}"))
        if block < 6:
            x = F.avg_pool2d(x, 2)
    x = x.mean(dim=3)
    x = x.max(dim=2).values + x.mean(dim=2)
    return F.relu(F.linear(x, state["fc1.weight"], state["fc1.bias"])).numpy()


def test_panns_cnn14_equals_a_restatement_of_the_released_code(tmp_path):
    path = cnn14.write_random(tmp_path / "Cnn14_mAP=0.431.pth", seed=seed())
    stored = torch.load(str(path), weights_only=True)
    assert set(stored) == {"model", weight_files.RANDOM_KEY}  # the official wrapper
    assert stored["model"]["logmel_extractor.melW"].shape == (513, 64)
    rng = np.random.default_rng()
    mono = (rng.uniform(-0.3, 0.3, int(48000 * 1.7)) * np.hanning(int(48000 * 1.7))).astype(
        np.float32
    )
    extractor = builtin("panns_cnn14", weights={"panns_cnn14": path}, hop=0.5, center=True)
    assert extractor.dim == 2048 and extractor.modality == "audio"
    prepared = extractor.prepare(AudioSignal(mono), None)
    np.testing.assert_array_equal(prepared.timestamps, [0.0, 0.5, 1.0, 1.5])
    signal = np.concatenate([np.zeros(16000, np.float32), resample(mono, 48000, 32000)])
    signal = np.concatenate([signal, np.zeros(3 * 16000 + 32000 - len(signal), np.float32)])
    windows = np.stack([signal[j * 16000 : j * 16000 + 32000] for j in range(4)])
    np.testing.assert_array_equal(prepared.items[:], windows)
    expected = cnn14_restated(stored["model"], windows)
    got = ours(extractor, AudioSignal(mono), batch=3)
    compare(got, expected, rel=1e-4, cosine=0.99999)
    bf16 = builtin("panns_cnn14", weights={"panns_cnn14": path}, hop=0.5, bf16=True)
    compare(ours(bf16, AudioSignal(mono)), expected, rel=1.0, cosine=0.99)


# -- preprocessing alone, every weight set ------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(images.WEIGHT_SETS))
def test_weight_sets_are_torchvisions(arch):
    import torchvision

    published = {w.name: w for w in torchvision.models.get_model_weights(arch)}
    for weight_set in images.WEIGHT_SETS[arch]:
        if weight_set.name == "PLACES365":
            continue
        preset = published[weight_set.name].transforms()
        assert published[weight_set.name].url == weight_set.url
        assert (preset.resize_size, preset.crop_size) == ([weight_set.resize], [weight_set.crop])
        assert preset.interpolation.value == weight_set.interpolation
        assert tuple(preset.mean) == weight_set.mean and tuple(preset.std) == weight_set.std
    assert (
        torchvision.models.get_model_weights(arch).DEFAULT.name == images.WEIGHT_SETS[arch][0].name
    )


@pytest.mark.parametrize("size", [(360, 640), (1080, 1920), (225, 224), (100, 90)])
def test_resize_and_crop_equal_torchvision_within_one_grey_level(size):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    (shot,) = frames(1, *size)
    tensor = torch.from_numpy(shot).permute(2, 0, 1)
    for sets in images.WEIGHT_SETS.values():
        for s in sets:
            resize = [s.resize] if s.keep_ratio else [s.resize, s.resize]
            reference = (
                F.center_crop(
                    F.resize(
                        tensor,
                        resize,
                        antialias=True,
                        interpolation=InterpolationMode(s.interpolation),
                    ),
                    [s.crop],
                )
                .permute(1, 2, 0)
                .numpy()
                .astype(int)
            )
            got = resize_crop(
                shot,
                resize=s.resize,
                crop=s.crop,
                interpolation=s.interpolation,
                keep_ratio=s.keep_ratio,
            ).astype(int)
            assert got.shape == reference.shape
            difference = np.abs(got - reference)
            assert difference.max() <= 1 and (difference > 0).mean() < 0.005, s


def test_clip_resize_and_crop_equal_open_clip_on_pil_within_one_grey_level():
    import open_clip
    from PIL import Image

    _, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32-quickgelu", pretrained=None)
    resize, crop = preprocess.transforms[0], preprocess.transforms[1]
    (shot,) = frames(1, 480, 854)
    reference = np.asarray(crop(resize(Image.fromarray(shot)))).astype(int)
    got = resize_crop(shot, resize=224, crop=224, interpolation="bicubic").astype(int)
    difference = np.abs(got - reference)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.2  # PIL: fixed point


def test_a_file_gets_its_weight_sets_preprocessing(tmp_path):
    template = images.build("resnet50").state_dict()
    arrays = weight_files.random_state(template, seed=seed())
    state = {key: torch.from_numpy(np.array(value)) for key, value in arrays.items()}
    sets = {}
    for name in ("resnet50-0676ba61.pth", "fine-tuned.pth"):
        torch.save(state, tmp_path / name)
        params = builtin("resnet50", weights={"resnet50": tmp_path / name}).params
        sets[name] = (
            params["model"]["weight_set"],
            params["preprocessing"]["resize"],
            params["model"]["random_weights"],
        )
    assert sets == {
        "resnet50-0676ba61.pth": ("IMAGENET1K_V1", 256, None),
        "fine-tuned.pth": ("IMAGENET1K_V2", 232, None),
    }
