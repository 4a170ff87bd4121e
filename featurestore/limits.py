"""The bounds of the extraction's numeric settings, one table for the Python API and the CLI.

Each setting is checked where it is taken (:class:`~featurestore.extraction.Plan`, the
extractors, :func:`~featurestore.frontends.logmel.logmel_params`, the extraction job), so an
absurd value stops with a one-line ``ValueError`` before anything is planned or written; the
``avscene extract`` options are parsed with the same bounds (docs/extraction.md lists them).

- ``HOP_SECONDS``: the hop of windowed audio embeddings (OpenL3's 1 s windows, PANNs CNN14):
  10 ms (100 rows per second) to 10 s.
- ``FPS``: video frames sampled per second.
- ``MAX_FRAME_RATE``: rows per second of media of any feature; the store reserves
  ``ceil(duration * frame_rate) + 2`` rows per clip.
- ``N_MELS``, ``FFT_SAMPLES`` (``win_length`` and ``n_fft``), ``LOGMEL_HOP_SECONDS``
  (``hop_length / sample_rate``), ``SAMPLE_RATE``: the log-mel frontend; besides,
  ``n_mels <= n_fft // 2 + 1`` (no more bands than FFT bins).
- ``BATCH``, ``WORKERS``, ``CLIP_TIMEOUT``, ``MIN_DURATION``, ``LIMIT``, ``SHARDS``: the job.
- ``HTTP_TIMEOUT``: each request of a store or archive read over HTTP(S).
"""

import math
import numbers
from dataclasses import dataclass


@dataclass(frozen=True)
class Bounds:
    """A closed interval ``[low, high]`` of an ``int`` or ``float`` setting."""

    low: float
    high: float
    kind: type = float

    def check(self, name, value):
        """Return ``value`` if it is a finite number of the right kind within the bounds.

        Raises
        ------
        ValueError
            One line naming the setting, the bounds and the value.
        """
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or (self.kind is int and int(value) != value)
            or not math.isfinite(value)
        ):
            raise ValueError(
                f"{name} must be {'an integer' if self.kind is int else 'a number'}"
                f" from {self.low:g} to {self.high:g}, got {value!r}"
            )
        if not self.low <= value <= self.high:
            raise ValueError(f"{name} must be from {self.low:g} to {self.high:g}, got {value!r}")
        return value


HOP_SECONDS = Bounds(0.01, 10.0)
FPS = Bounds(0.1, 120.0)
MAX_FRAME_RATE = 1000.0
N_MELS = Bounds(1, 512, int)
FFT_SAMPLES = Bounds(16, 65536, int)
LOGMEL_HOP_SECONDS = Bounds(0.001, 1.0)
SAMPLE_RATE = Bounds(8000, 192000, int)
BATCH = Bounds(1, 1024, int)
WORKERS = Bounds(0, 256, int)
CLIP_TIMEOUT = Bounds(0.0, 86400.0)
MIN_DURATION = Bounds(0.0, 3600.0)
LIMIT = Bounds(1, 10**9, int)
SHARDS = Bounds(1, 100000, int)
#: Seconds an HTTP(S) request of a store or archive may take (``--timeout``).
HTTP_TIMEOUT = Bounds(0.001, 86400.0)


def mel_bins(n_fft):
    """FFT bins of a one-sided spectrum of ``n_fft`` samples: the most mel bands that fit."""
    return int(n_fft) // 2 + 1
