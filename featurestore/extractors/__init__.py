"""Extractors: every frame-wise feature of the store behind one interface.

An :class:`Extractor` names a feature, its modality, frame timing, dimension and provenance,
and carries a torch-free ``prepare`` (run in the decoding workers) and a device-side ``load``
(:mod:`~featurestore.extractors.interface`). Built-in ones, by feature name
(:func:`builtin`): OpenL3 audio/video and log-mel (:mod:`~featurestore.extractors.openl3_logmel`),
any HEAR-API audio module (:mod:`~featurestore.extractors.hear`), and the image and audio
backbones of the DCASE 2021 top systems (:mod:`~featurestore.extractors.backbones`);
:mod:`~featurestore.extractors.catalog` maps the names to them and to the extractors of installed
packages (entry point group ``avscene.extractors``).
:mod:`~featurestore.extractors.sampling` holds the frame and window timing shared by all.

Importing this package does not import torch.
"""

from featurestore.extractors.catalog import (
    BASELINE,
    CATALOG,
    GROUP,
    HEAR_PREFIX,
    builtin,
    builtin_names,
    check_name,
    names,
    official_file,
    plugins,
    store_name,
)
from featurestore.extractors.interface import (
    AUDIO,
    MODALITIES,
    VIDEO,
    AudioSignal,
    Extractor,
    FeatureInput,
    VideoFrames,
)
from featurestore.extractors.sampling import (
    FPS,
    PER_AUDIO_WINDOW,
    VideoSampling,
    Windows,
    frame_windows,
)

__all__ = [
    "AUDIO",
    "BASELINE",
    "CATALOG",
    "FPS",
    "GROUP",
    "HEAR_PREFIX",
    "MODALITIES",
    "PER_AUDIO_WINDOW",
    "VIDEO",
    "AudioSignal",
    "Extractor",
    "FeatureInput",
    "VideoFrames",
    "VideoSampling",
    "Windows",
    "builtin",
    "builtin_names",
    "check_name",
    "frame_windows",
    "names",
    "official_file",
    "plugins",
    "store_name",
]
