"""The extraction job: a dataset's clips -> per-frame features -> the store, resumable.

>>> from featurestore.extraction import ExtractJob, Plan, extract
>>> summary = ExtractJob("dataset", "features.zarr", Plan(), weights="openl3-weights").run()
>>> summary = extract("dataset", "features.zarr", extractors=[my_extractor])   # any Extractor

The features are :class:`~featurestore.extractors.Extractor` objects; nothing here knows any
particular one. Modules, in the order a clip meets them: :mod:`~featurestore.extraction.prepare`
(the :class:`Plan`, per-clip decoding shared by the extractors of one modality and their
``prepare``, run in worker processes without torch),
:mod:`~featurestore.extraction.workers` (the probing and decoding process pool that survives
crashing decoders and stops hanging ones), :mod:`~featurestore.extraction.batching` (network
batches formed across clips), :mod:`~featurestore.extraction.runners` (each extractor loaded
once), :mod:`~featurestore.extraction.progress` (progress display and time accounting),
:mod:`~featurestore.extraction.job` (the loop tying them to the store's block writers) and
:mod:`~featurestore.extraction.dask_job` (the same job as one Dask task per store block).
"""

from featurestore.extraction.api import extract
from featurestore.extraction.dask_job import DaskExtraction
from featurestore.extraction.job import CLIP_TIMEOUT, ExtractJob, ShardSetupError
from featurestore.extraction.prepare import (
    FEATURES,
    Plan,
    plan_extractors,
    prepare_clip,
    probe_duration,
)
from featurestore.extraction.progress import Progress
from featurestore.extraction.runners import load_runners

__all__ = [
    "CLIP_TIMEOUT",
    "FEATURES",
    "DaskExtraction",
    "ExtractJob",
    "Plan",
    "Progress",
    "ShardSetupError",
    "extract",
    "load_runners",
    "plan_extractors",
    "prepare_clip",
    "probe_duration",
]
