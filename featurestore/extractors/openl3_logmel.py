"""The DCASE 2021 baseline's features as extractors: OpenL3 audio, OpenL3 video and log-mel.

Their params are those the extraction job has always stored (a test pins their fingerprints),
so stores made before the extractor interface existed resume unchanged. The OpenL3 provenance
comes from the weight file (:func:`featurestore.openl3.describe.describe_model`, no torch); the
loaded model's own provenance is checked against it.
"""

import functools

import numpy as np

from featurestore import __version__, limits
from featurestore.errors import MediaError
from featurestore.extractors.interface import AUDIO, VIDEO, Extractor, FeatureInput
from featurestore.extractors.sampling import PER_AUDIO_WINDOW, VideoSampling, Windows
from featurestore.frontends import logmel as logmel_frontend
from featurestore.openl3 import describe, framing, image
from featurestore.openl3.weights import find_weights

#: Log-mel clips per batch (a clip yields ~1000 frames: batching by clip keeps memory flat).
LOGMEL_CLIPS_PER_BATCH = 8

#: Keys of the OpenL3 model provenance that do not change the numbers (kept out of params).
SPEED_ONLY = ("weights_path", "device", "fold_bn", "channels_last", "allow_tf32")


def _model_params(provenance):
    return {k: v for k, v in provenance.items() if k not in SPEED_ONLY}


# -- OpenL3 audio ------------------------------------------------------------------------------


def openl3_audio(*, weights=None, hop=0.1, center=True, bf16=False):
    """The OpenL3 audio embedding (mel256, env, 512) as an extractor.

    Parameters
    ----------
    weights : str or Path, optional
        An official ``.h5`` file or a folder of them (see :func:`featurestore.openl3.find_weights`).
    hop : float
        Seconds between 1 s windows (:data:`featurestore.limits.HOP_SECONDS`).
    center : bool
        Timestamps at window centres (24,000 zeros prepended) or starts.
    bf16 : bool
        bfloat16 autocast for the convolutions (recorded as the model's ``dtype``).
    """
    limits.HOP_SECONDS.check("openl3_audio hop (seconds)", hop)
    path = find_weights("audio", weights=weights)
    provenance = describe.describe_model("audio", path, dtype="bfloat16" if bf16 else "float32")
    params = {
        "feature": "openl3_audio",
        "model": _model_params(provenance),
        "hop": hop,
        "center": center,
        "mixdown": "mean (float32)",
        "resample": "resampy 0.2.2 kaiser_best to 48 kHz (featurestore.resample)",
        "timestamps": "window centre j*hop" if center else "window start j*hop",
        "avscene": __version__,
    }
    return Extractor(
        name="openl3_audio",
        modality=AUDIO,
        frame_rate=1.0 / hop,
        timestamps=params["timestamps"],
        dim=provenance["embedding_size"],
        params=params,
        prepare=functools.partial(prepare_openl3_audio, hop=hop, center=center),
        load=functools.partial(load_openl3, "audio", str(path), params["model"]),
        info={"weights_path": str(path)},
    )


def prepare_openl3_audio(audio, clip, *, hop, center):
    """1 s windows of the 48 kHz signal, shipped as the padded signal."""
    windows, stamps = framing.frame_audio(
        audio.mono_48k, framing.SAMPLE_RATE, hop_size=hop, center=center
    )
    return FeatureInput(Windows.of(windows), np.ones(len(stamps), np.int64), stamps)


# -- OpenL3 video ------------------------------------------------------------------------------


def openl3_video(*, weights=None, sampling=VideoSampling(), image_scaling="openl3", bf16=False):
    """The OpenL3 image embedding (mel256, env, 512) of the sampled video frames."""
    if image_scaling not in image.SCALINGS:
        raise ValueError(f"image_scaling must be one of {image.SCALINGS}, got {image_scaling!r}")
    path = find_weights("image", weights=weights)
    provenance = describe.describe_model("image", path, dtype="bfloat16" if bf16 else "float32")
    frames = sampling.params()
    timestamps = frames.pop("timestamps")
    if sampling.mode == PER_AUDIO_WINDOW:
        mode = {**frames, "image_scaling": image_scaling}
    else:
        mode = {"fps": sampling.fps, "image_scaling": image_scaling}
    params = {
        "feature": "openl3_video",
        "model": _model_params(provenance),
        **mode,
        "timestamps": timestamps,
        "avscene": __version__,
    }
    return Extractor(
        name="openl3_video",
        modality=VIDEO,
        frame_rate=sampling.frame_rate,
        timestamps=timestamps,
        dim=provenance["embedding_size"],
        params=params,
        prepare=functools.partial(prepare_openl3_video, scaling=image_scaling),
        load=functools.partial(load_openl3, "image", str(path), params["model"]),
        info={"weights_path": str(path)},
    )


def _crop_only(height, width, scaling):
    """Whether openl3 would crop without resizing and then divide the batch by its maximum."""
    exact = (height, width) == (image.SIZE, image.SIZE)
    return not exact and min(height, width) <= image.SHORT_SIDE and scaling == "openl3"


def prepare_openl3_video(frames, clip, *, scaling):
    """Frames preprocessed as openl3 0.4.2 does for one clip's batch, one at a time (only the
    crop-only path, short side 224..256, keeps the small raw frames: openl3 divides that batch by
    its maximum)."""
    rows, raw, stamps = [], [], []
    for stamp, rgb in frames:
        height, width = rgb.shape[:2]
        if min(height, width) < image.SIZE:
            raise MediaError(
                f"{frames.path}: video is {width}x{height}, OpenL3 needs at least "
                f"224 pixels on the short side"
            )
        stamps.append(stamp)
        if _crop_only(height, width, scaling):
            raw.append(rgb)
        else:
            rows.append(image.preprocess_images(rgb, scaling=scaling)[0])
    items = image.preprocess_images(np.stack(raw), scaling=scaling) if raw else np.stack(rows)
    return FeatureInput(items, np.ones(len(stamps), np.int64), np.asarray(stamps, np.float64))


def load_openl3(kind, path, expected, *, device, batch):
    """Load an OpenL3 tower (cached per process); ``embed`` on stacked windows or frames."""
    from featurestore import openl3

    dtype = expected["dtype"]
    loader = openl3.load_audio_model if kind == "audio" else openl3.load_image_model
    model = loader(path, device=device, dtype=dtype)
    if _model_params(model.provenance) != expected:
        raise RuntimeError(
            f"{path}: the loaded OpenL3 {kind} model differs from the declared "
            f"feature (weights changed since?)"
        )
    embed = openl3.embed_audio_frames if kind == "audio" else openl3.embed_images

    def run(slices):
        return embed(np.concatenate(slices), model=model, batch_size=batch)

    return run


# -- catalog factories (featurestore.extractors.catalog) ---------------------------------------


def _openl3_weights(weights, random_weights):
    """The given file or folder, else seeded RANDOM weights, else None (the default place)."""
    if weights is None and random_weights is not None:
        from featurestore import openl3

        return openl3.random_weights_folder(random_weights)
    return weights


def openl3_audio_feature(
    name, *, weights=None, random_weights=None, bf16=False, hop=0.1, center=True, **options
):
    """``openl3_audio``: :func:`openl3_audio` from the catalog's options."""
    return openl3_audio(
        weights=_openl3_weights(weights, random_weights), hop=hop, center=center, bf16=bf16
    )


def openl3_video_feature(
    name,
    *,
    weights=None,
    random_weights=None,
    bf16=False,
    sampling=VideoSampling(),
    image_scaling="openl3",
    **options,
):
    """``openl3_video``: :func:`openl3_video` from the catalog's options."""
    return openl3_video(
        weights=_openl3_weights(weights, random_weights),
        sampling=sampling,
        image_scaling=image_scaling,
        bf16=bf16,
    )


def logmel_feature(name, *, logmel_params=None, **options):
    """``logmel``: :func:`logmel` from the catalog's options."""
    return logmel(logmel_params)


# -- log-mel -----------------------------------------------------------------------------------


def logmel(params=None):
    """Log-mel spectrogram frames (:mod:`featurestore.frontends.logmel`); float32 always."""
    params = logmel_frontend.logmel_params() if params is None else dict(params)
    logmel_frontend.check_params(params)
    return Extractor(
        name="logmel",
        modality=AUDIO,
        frame_rate=params["sample_rate"] / params["hop_length"],
        timestamps=params["timestamps"],
        dim=params["n_mels"],
        params={**params, "avscene": __version__},
        prepare=functools.partial(prepare_logmel, params=params),
        load=functools.partial(load_logmel, params),
        batch_items=LOGMEL_CLIPS_PER_BATCH,
    )


def prepare_logmel(audio, clip, *, params):
    mono = audio.at(params["sample_rate"])
    stamps = logmel_frontend.frame_timestamps(len(mono), params)
    return FeatureInput([mono], np.array([len(stamps)], np.int64), stamps)


def load_logmel(params, *, device, batch):
    from featurestore.openl3.models import resolve_device

    module = logmel_frontend.make_logmel_module(params, device=resolve_device(device))

    def run(slices):
        signals = [signal for chunk in slices for signal in chunk]
        out = logmel_frontend.logmel(signals, params, module=module)
        return np.concatenate([values for values, _ in out])

    return run
