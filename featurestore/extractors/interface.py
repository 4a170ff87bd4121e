"""The one interface of every frame-wise feature: :class:`Extractor`, its inputs and its media.

An extractor is plain data plus two functions:

- ``prepare(media, clip) -> FeatureInput`` runs in the decoding worker processes, without
  torch. ``media`` is the clip's decoded audio (an :class:`AudioSignal`, shared by every audio
  extractor of the job) or its sampled video frames (a :class:`VideoFrames`, one pass of
  ``(timestamp, rgb)`` pairs, shared by every video extractor). It raises
  :class:`~featurestore.errors.MediaError` for media it cannot use.
- ``load(device=..., batch=...) -> embed`` runs once per process that owns the device;
  ``embed(slices)`` maps a list of item slices (taken from the ``items`` of many clips'
  :class:`FeatureInput`) to their rows, shape (total rows, dim) float32, in order. An extractor
  whose row count only the model knows (a HEAR module) leaves ``item_rows`` and ``timestamps``
  of its inputs as None and returns instead one ``(values, timestamps)`` pair per item.

``params`` is the feature's stored provenance and fingerprint: everything that determines the
numbers (weight-file sha256, framing, preprocessing, precision, code version), nothing that does
not (device, paths, batch size). Precision is therefore chosen when an extractor is built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from featurestore.limits import MAX_FRAME_RATE

AUDIO, VIDEO = "audio", "video"
MODALITIES = (AUDIO, VIDEO)


@dataclass(frozen=True)
class Extractor:
    """One frame-wise feature (see the module docstring).

    Attributes
    ----------
    name : str
        Feature name in the store (letters, digits, ``_``, ``-``, ``.``).
    modality : "audio" or "video"
    frame_rate : float
        Rows per second of media, at most :data:`featurestore.limits.MAX_FRAME_RATE` (the store
        reserves ``ceil(duration * frame_rate) + 2`` rows per clip).
    timestamps : str
        Where row j sits on the clip clock, e.g. ``"window centre j*hop"``.
    dim : int
        Values per row.
    params : dict
        JSON provenance (the feature's fingerprint).
    prepare : callable
        ``prepare(media, clip) -> FeatureInput``; picklable and torch-free.
    load : callable
        ``load(*, device, batch) -> embed``; picklable, imports torch when called.
    batch_items : int or None
        Items per ``embed`` call; None: the job's ``batch`` (network inputs per call).
    info : dict
        Settings that do not change the numbers (paths, layout), for the run log only.
    """

    name: str
    modality: str
    frame_rate: float
    timestamps: str
    dim: int
    params: dict[str, Any]
    prepare: Callable[..., Any]
    load: Callable[..., Any]
    batch_items: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(
                f"extractor {self.name!r}: modality must be one of {MODALITIES}, "
                f"got {self.modality!r}"
            )
        if int(self.dim) != self.dim or self.dim <= 0:
            raise ValueError(
                f"extractor {self.name!r}: dim must be a positive integer, got {self.dim!r}"
            )
        if not np.isfinite(self.frame_rate) or not 0 < self.frame_rate <= MAX_FRAME_RATE:
            raise ValueError(
                f"extractor {self.name!r}: frame_rate must be positive and at "
                f"most {MAX_FRAME_RATE:g} rows per second, got {self.frame_rate!r}"
            )
        if self.batch_items is not None and int(self.batch_items) < 1:
            raise ValueError(f"extractor {self.name!r}: batch_items must be positive")
        try:
            json.dumps(self.params, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"extractor {self.name!r}: params are not plain JSON ({error})"
            ) from None


@dataclass
class FeatureInput:
    """Network input of one clip for one feature.

    ``items`` is sliceable along axis 0 (the model consumes batches of items from many clips);
    ``item_rows`` (int array, one per item) says how many rows each item yields and
    ``timestamps`` (float64 seconds on the clip clock) where they sit. Both are None when the
    model decides (then ``embed`` returns ``(values, timestamps)`` per item).
    """

    items: object
    item_rows: NDArray[Any] | None = None
    timestamps: NDArray[Any] | None = None

    @property
    def n_rows(self) -> int | None:
        return None if self.timestamps is None else len(self.timestamps)


class AudioSignal:
    """A clip's decoded audio as every audio extractor sees it: mono float32, 48 kHz.

    :meth:`at` gives it at another rate (resampy 0.2.2 ``kaiser_best``, computed once per rate
    and clip). ``path`` names the file, for error messages.
    """

    RATE = 48000

    def __init__(self, mono_48k: NDArray[Any], *, path: str | os.PathLike[str] = "") -> None:
        self.mono_48k = mono_48k
        self.path = str(path)
        self._rates: dict[float, NDArray[Any]] = {self.RATE: mono_48k}

    @property
    def duration(self) -> float:
        return len(self.mono_48k) / self.RATE

    def at(self, rate: float) -> NDArray[Any]:
        """The signal at ``rate`` Hz, shape (int(n * rate / 48000),), float32."""
        if rate not in self._rates:
            from featurestore.media import resample

            self._rates[rate] = resample(self.mono_48k, self.RATE, rate)
        return self._rates[rate]


class VideoFrames:
    """One pass over a clip's sampled frames: iterate ``(timestamp, rgb)`` pairs.

    ``rgb`` is (H, W, 3) uint8, ``timestamp`` seconds on the clip clock; ``path`` names the
    file and ``sampling`` says how the frames were picked (for error messages).
    """

    def __init__(
        self,
        frames: Iterable[tuple[float, NDArray[Any]]],
        *,
        path: str | os.PathLike[str] = "",
        sampling: str = "",
    ) -> None:
        self._frames = frames
        self.path, self.sampling = str(path), sampling

    def __iter__(self) -> Iterator[tuple[float, NDArray[Any]]]:
        return iter(self._frames)


__all__ = [
    "AUDIO",
    "MODALITIES",
    "VIDEO",
    "AudioSignal",
    "Extractor",
    "FeatureInput",
    "VideoFrames",
]
