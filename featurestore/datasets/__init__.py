"""Datasets: the TAU Urban Audio-Visual Scenes 2021 vocabulary, clip records and manifests.

>>> from featurestore.datasets import load_manifest
>>> manifest = load_manifest("TAU-urban-audio-visual-scenes-2021-development")
>>> manifest.kind, len(manifest.clips), manifest.problems[:3]

Modules: :mod:`~featurestore.datasets.labels` (scenes and cities),
:mod:`~featurestore.datasets.clips` (the :class:`Clip` record), :mod:`~featurestore.datasets.manifest` (layout detection and
:func:`load_manifest`), :mod:`~featurestore.datasets.tau` (the development and evaluation
layouts), :mod:`~featurestore.datasets.csv_manifest` (a generic CSV manifest) and
:mod:`~featurestore.datasets.manifest_rows` (delimited tables, safe paths, TAU file names).
"""

from featurestore.datasets.clips import FOLDS, Clip
from featurestore.datasets.labels import (
    DEVELOPMENT_CITIES,
    EVALUATION_ONLY_CITIES,
    SCENES,
)
from featurestore.datasets.manifest import (
    KINDS,
    Manifest,
    find_dataset_root,
    load_manifest,
)
from featurestore.datasets.manifest_rows import parse_tau_name

__all__ = [
    "DEVELOPMENT_CITIES",
    "EVALUATION_ONLY_CITIES",
    "FOLDS",
    "KINDS",
    "SCENES",
    "Clip",
    "Manifest",
    "find_dataset_root",
    "load_manifest",
    "parse_tau_name",
]
