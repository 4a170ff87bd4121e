"""The model side of extraction: one :class:`Runner` per feature, loaded once per process.

A runner maps a batch of items taken from many clips (a list of slices of
:class:`~featurestore.extraction.prepare.FeatureInput` ``items``) to their rows, shape
(total rows, dim) float32, in order. Its ``params`` are the feature's provenance as stored with
``create_feature``: everything that determines the numbers (weights sha256, hop, centring, fps,
frontend parameters, dtype, code version) and nothing that does not (device, file paths,
speed-only layout options), so shards run on different machines fill one store.
torch is imported inside the functions only.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from featurestore import __version__
from featurestore.extraction.prepare import Plan
from featurestore.frontends import logmel

#: Log-mel clips per batch (a clip yields ~1000 frames: batching by clip keeps memory flat).
LOGMEL_CLIPS_PER_BATCH = 8

#: Keys of the OpenL3 model provenance that do not change the numbers (kept out of params).
_SPEED_ONLY = ("weights_path", "device", "fold_bn", "channels_last", "allow_tf32")


@dataclass(frozen=True)
class Runner:
    """A loaded feature extractor (see the module docstring)."""

    name: str
    dim: int
    frame_rate: float
    params: dict
    batch_items: int
    run: Callable
    info: dict          # speed-only settings and paths, for the run log (not the fingerprint)


def _model_params(provenance):
    return {k: v for k, v in provenance.items() if k not in _SPEED_ONLY}


def openl3_runner(name, plan, *, weights, device, bf16, batch):
    """Load the OpenL3 audio or image tower for feature ``name``."""
    from featurestore import openl3

    if name == "openl3_audio":
        model = openl3.load_audio_model(weights, device=device, bf16=bf16)
        embed = openl3.embed_audio_frames
        params = {"hop": plan.hop, "center": plan.center, "mixdown": "mean (float32)",
                  "resample": "resampy 0.2.2 kaiser_best to 48 kHz (featurestore.resample)",
                  "timestamps": "window centre j*hop" if plan.center else "window start j*hop"}
        frame_rate = 1.0 / plan.hop
    elif plan.video_frames == "per-audio-window":
        model = openl3.load_image_model(weights, device=device, bf16=bf16)
        embed = openl3.embed_images
        params = {"video_frames": "per-audio-window", "hop": plan.hop, "center": plan.center,
                  "image_scaling": plan.image_scaling,
                  "timestamps": "the OpenL3 audio windows' j * hop for the clip duration at "
                                "48 kHz; frame linspace(0, n_frames - 1, n_windows).astype(int)[j] "
                                "of all decoded frames"}
        frame_rate = 1.0 / plan.hop
    else:
        model = openl3.load_image_model(weights, device=device, bf16=bf16)
        embed = openl3.embed_images
        params = {"fps": plan.fps, "image_scaling": plan.image_scaling,
                  "timestamps": "(j + 0.5) / fps for t < clip duration; frame on screen at t "
                                "(last pts <= t, stream start_time = 0)"}
        frame_rate = float(plan.fps)

    def run(slices):
        return embed(np.concatenate(slices), model=model, batch_size=batch)

    params = {"feature": name, "model": _model_params(model.provenance), **params,
              "avscene": __version__}
    info = {k: model.provenance[k] for k in _SPEED_ONLY if k in model.provenance}
    return Runner(name, model.embedding_size, frame_rate, params, batch, run, info)


def logmel_runner(plan, *, device):
    """The log-mel module on ``device`` (float32 always)."""
    from featurestore.openl3.models import resolve_device

    device = resolve_device(device)
    module = logmel.make_logmel_module(plan.logmel, device=device)

    def run(slices):
        signals = [signal for chunk in slices for signal in chunk]
        out = logmel.logmel(signals, plan.logmel, module=module)
        return np.concatenate([values for values, _ in out])

    params = {**plan.logmel, "avscene": __version__}
    frame_rate = plan.logmel["sample_rate"] / plan.logmel["hop_length"]
    return Runner("logmel", plan.logmel["n_mels"], frame_rate, params,
                  LOGMEL_CLIPS_PER_BATCH, run, {"device": str(device)})


def load_runners(plan: Plan, *, weights=None, device="auto", bf16=False, batch=32):
    """One runner per feature of ``plan`` (OpenL3 models are loaded once and cached).

    Parameters
    ----------
    plan : Plan
    weights : str or Path, optional
        A weight file or a directory of official-layout ``.h5`` files (see
        :func:`featurestore.openl3.find_weights`).
    device : "auto", "cpu", "cuda", ...
    bf16 : bool
        bfloat16 autocast for the OpenL3 convolutions (recorded as ``dtype``).
    batch : int
        OpenL3 windows / frames per network call.

    Returns
    -------
    dict name -> Runner, in ``plan.features`` order
    """
    runners = {}
    for name in plan.features:
        if name == "logmel":
            runners[name] = logmel_runner(plan, device=device)
        else:
            runners[name] = openl3_runner(name, plan, weights=weights, device=device, bf16=bf16,
                                          batch=batch)
    return runners
