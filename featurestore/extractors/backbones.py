"""The image and audio backbones of the DCASE 2021 top systems as extractors.

Image (video modality; every frame the job samples, ``--fps`` or ``--video-frames
per-audio-window``): ``resnet50``, ``efficientnet_b0`` .. ``efficientnet_b7``,
``efficientnet_v2_s``, ``efficientnet_v2_m`` (torchvision, pooled penultimate features,
:mod:`featurestore.backbones.images`) and ``clip_vit_b32``, ``clip_vit_l14`` (open_clip image
towers, :mod:`featurestore.backbones.clip`). The decoding workers resize and crop each frame in
NumPy as the weight set's published preprocessing does and ship the uint8 crop; the device
scales, normalises and runs the network.

Audio: ``panns_cnn14`` (:mod:`featurestore.backbones.cnn14`) on 1 s windows of the clip at 32 kHz,
cut every ``--hop`` seconds by OpenL3's rule (centred with ``--center``), so its rows sit on the
OpenL3 audio rows' timestamps.

:func:`torchvision_backbone`, :func:`clip_backbone` and :func:`panns_cnn14` are the factories
the catalog registers (:mod:`featurestore.extractors.catalog`, one entry per backbone). Each
extractor is built from a local weight file (checked against the architecture when the
extractor is built, so a wrong file stops the job before it starts) or, with a seed, from
RANDOM weights written in the official layout under the official file name in a temporary
folder of this process. Its params record the weight file's sha256, the random seed, the weight
set and its preprocessing, the frame timing and the dtype.
"""

import atexit
import functools
import logging
import pathlib
import shutil
import tempfile

import numpy as np

from featurestore import __version__, limits
from featurestore.backbones import clip, cnn14, images
from featurestore.backbones.image_transforms import resize_crop
from featurestore.errors import ProvenanceMismatchError, WeightsNotFoundError
from featurestore.extractors.interface import AUDIO, VIDEO, Extractor, FeatureInput
from featurestore.extractors.sampling import VideoSampling, frame_windows
from featurestore.provenance import sha256_file

LOG = logging.getLogger("avscene.extract")
CNN14_WINDOW = 1.0
PREPROCESS = (
    "featurestore.backbones.image_transforms: antialiased resize of the frame in float64, "
    "round half to even to uint8, centre crop; then x / 255, (x - mean) / std"
)

_RANDOM: dict = {}


def random_weights_file(name, seed, write):
    """RANDOM weights of backbone ``name`` (seeded) under its official file name, written by
    ``write(path, seed=seed)`` once per process and seed."""
    from featurestore.extractors.catalog import official_file

    key = (name, seed)
    if key not in _RANDOM:
        folder = pathlib.Path(tempfile.mkdtemp(prefix=f"avscene-{name}-{seed}-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / official_file(name)
        write(path, seed=seed)
        _RANDOM[key] = path
    return _RANDOM[key]


def weights_path(name, weights, random_weights, write_random):
    """The weight file of backbone ``name``: ``weights``, else random ones of seed
    ``random_weights``; WeightsNotFoundError naming the official file otherwise."""
    from featurestore.extractors.catalog import official_file

    if weights is not None:
        path = pathlib.Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"{name}: weight file {path} not found")
        return path
    if random_weights is not None:
        return random_weights_file(name, random_weights, write_random)
    raise WeightsNotFoundError(
        f"{name}: no weights; avscene never downloads: pass --weights {name}=PATH with the "
        f"official file ({official_file(name)}, see docs/extractors.md) or --random-weights SEED"
    )


def _dtype(bf16):
    return "bfloat16" if bf16 else "float32"


# -- catalog factories (featurestore.extractors.catalog) -----------------------------------------


def torchvision_backbone(
    name, *, weights=None, random_weights=None, bf16=False, sampling=VideoSampling(), **options
):
    """The extractor of torchvision backbone ``name`` (e.g. ``resnet50``)."""
    path = weights_path(
        name, weights, random_weights, functools.partial(images.write_random, name)
    )
    return torchvision_extractor(name, path, dtype=_dtype(bf16), sampling=sampling)


def clip_backbone(
    name, *, weights=None, random_weights=None, bf16=False, sampling=VideoSampling(), **options
):
    """The extractor of CLIP image tower ``name`` (``clip_vit_b32``, ``clip_vit_l14``)."""
    path = weights_path(name, weights, random_weights, functools.partial(clip.write_random, name))
    return clip_extractor(name, path, dtype=_dtype(bf16), sampling=sampling)


def panns_cnn14(
    name, *, weights=None, random_weights=None, bf16=False, hop=0.1, center=True, **options
):
    """The extractor of PANNs CNN14 (``name`` is ``panns_cnn14``)."""
    path = weights_path(name, weights, random_weights, cnn14.write_random)
    return cnn14_extractor(path, dtype=_dtype(bf16), hop=hop, center=center)


def _video_extractor(name, *, dim, model, preprocessing, dtype, sampling, load, path):
    frames = sampling.params()
    params = {
        "feature": name,
        "model": model,
        "preprocessing": preprocessing,
        "preprocess": PREPROCESS,
        "dtype": dtype,
        **frames,
        "avscene": __version__,
    }
    crop = {key: preprocessing[key] for key in ("resize", "crop", "interpolation", "keep_ratio")}
    return Extractor(
        name=name,
        modality=VIDEO,
        frame_rate=sampling.frame_rate,
        timestamps=frames["timestamps"],
        dim=dim,
        params=params,
        prepare=functools.partial(prepare_frames, **crop),
        load=load,
        info={"weights_path": str(path)},
    )


def torchvision_extractor(arch, path, *, dtype, sampling):
    state, seed, wrapper = images.load_state(arch, path)
    sha256 = sha256_file(path)
    weight_set, recognised = images.identify(arch, path, sha256, wrapper)
    model = {
        "architecture": f"torchvision {arch}",
        "weights_sha256": sha256,
        "random_weights": seed,
        "weight_set": weight_set.name,
        "weight_set_file": weight_set.file,
        "classes": images.classes_of(arch, state),
        "embedding": "global average pool of the last feature map (classifier removed)",
    }
    preprocessing = weight_set.describe()
    for key in ("name", "file", "classes"):
        preprocessing.pop(key)
    load = functools.partial(
        load_torchvision, arch, str(path), dtype, weight_set.mean, weight_set.std, sha256
    )
    LOG.info("%s: %s is weight set %s (%s)", arch, path, weight_set.name, recognised)
    return _video_extractor(
        arch,
        dim=images.DIMS[arch],
        model=model,
        preprocessing=preprocessing,
        dtype=dtype,
        sampling=sampling,
        load=load,
        path=path,
    )


def clip_extractor(name, path, *, dtype, sampling):
    _, seed = clip.load_state(name, path)
    spec = clip.MODELS[name]
    model = {
        "architecture": f"open_clip {spec.config} image tower",
        "weights_sha256": sha256_file(path),
        "random_weights": seed,
        "embedding": "image tower output (encode_image, not normalised)",
    }
    load = functools.partial(load_clip, name, str(path), dtype, model["weights_sha256"])
    return _video_extractor(
        name,
        dim=spec.dim,
        model=model,
        preprocessing=spec.preprocessing(),
        dtype=dtype,
        sampling=sampling,
        load=load,
        path=path,
    )


def prepare_frames(frames, clip_, *, resize, crop, interpolation, keep_ratio):
    """Each sampled frame resized and centre-cropped as the weight set's preset does (uint8)."""
    crops, stamps = [], []
    for stamp, rgb in frames:
        crops.append(
            resize_crop(
                rgb, resize=resize, crop=crop, interpolation=interpolation, keep_ratio=keep_ratio
            )
        )
        stamps.append(stamp)
    return FeatureInput(
        np.stack(crops), np.ones(len(stamps), np.int64), np.asarray(stamps, np.float64)
    )


def check_weights(path, expected):
    """Refuse a weight file that is not the one the feature was declared with (its sha256)."""
    found = sha256_file(path)
    if found != expected:
        raise ProvenanceMismatchError(
            f"{path}: sha256 {found[:12]} differs from the declared "
            f"feature's {expected[:12]} (weights changed since?)"
        )


def _image_embed(network, batch):
    def run(slices):
        return network.embed(np.concatenate(slices), batch_size=batch)

    return run


def load_torchvision(arch, path, dtype, mean, std, sha256, *, device, batch):
    from featurestore.openl3.models import resolve_device

    check_weights(path, sha256)
    device = resolve_device(device)
    net = images.load_network(arch, path, device=device, dtype=dtype)
    return _image_embed(
        images.ImageNetwork(
            net, mean=mean, std=std, device=device, dtype=dtype, channels_last=True
        ),
        batch,
    )


def load_clip(name, path, dtype, sha256, *, device, batch):
    from featurestore.openl3.models import resolve_device

    check_weights(path, sha256)
    device = resolve_device(device)
    net = clip.load_network(name, path, device=device, dtype=dtype)
    return _image_embed(
        images.ImageNetwork(
            net,
            mean=clip.OPENAI_MEAN,
            std=clip.OPENAI_STD,
            device=device,
            dtype=dtype,
            channels_last=False,
            cast_weights=True,
        ),
        batch,
    )


# -- PANNs CNN14 ---------------------------------------------------------------------------------


def cnn14_extractor(path, *, dtype, hop, center):
    limits.HOP_SECONDS.check("panns_cnn14 hop (seconds)", hop)
    _, seed = cnn14.load_state(path)
    timestamps = "window centre j*hop" if center else "window start j*hop"
    params = {
        "feature": "panns_cnn14",
        "model": {
            "architecture": "PANNs Cnn14 (Kong et al. 2020), re-stated in avscene",
            "weights_sha256": sha256_file(path),
            "random_weights": seed,
            "embedding": "relu(fc1) of max + mean over time of the mean over frequency",
            "bn_epsilon": 1e-5,
        },
        "frontend": cnn14.frontend_parameters(),
        "window_seconds": CNN14_WINDOW,
        "hop": hop,
        "center": center,
        "mixdown": "mean (float32)",
        "resample": "resampy 0.2.2 kaiser_best 48 kHz -> 32 kHz (featurestore.resample)",
        "dtype": dtype,
        "timestamps": timestamps,
        "avscene": __version__,
    }
    return Extractor(
        name="panns_cnn14",
        modality=AUDIO,
        frame_rate=1.0 / hop,
        timestamps=timestamps,
        dim=cnn14.DIM,
        params=params,
        prepare=functools.partial(prepare_cnn14, hop=hop, center=center),
        load=functools.partial(load_cnn14, str(path), dtype, params["model"]["weights_sha256"]),
        info={"weights_path": str(path)},
    )


def prepare_cnn14(audio, clip_, *, hop, center):
    windows, stamps = frame_windows(
        audio.at(cnn14.SAMPLE_RATE),
        cnn14.SAMPLE_RATE,
        window_seconds=CNN14_WINDOW,
        hop_seconds=hop,
        center=center,
    )
    return FeatureInput(windows, np.ones(len(stamps), np.int64), stamps)


def load_cnn14(path, dtype, sha256, *, device, batch):
    import torch

    from featurestore.openl3.models import resolve_device

    check_weights(path, sha256)
    device = resolve_device(device)
    frontend, network = cnn14.load_network(path, device=device)

    def run(slices):
        windows = np.concatenate([np.asarray(s) for s in slices])
        out = []
        for start in range(0, len(windows), batch):
            x = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch]))
            with torch.inference_mode():
                spec = frontend(x.to(device))
                with images.autocast(device, dtype):
                    out.append(network(spec).float().cpu().numpy())
        return np.concatenate(out)

    return run
