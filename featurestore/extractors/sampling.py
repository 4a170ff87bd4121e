"""How video frames are picked and how audio is cut into windows, for every extractor alike.

Video: the job samples one set of frames per clip and hands them to every video extractor
(:class:`VideoSampling`: ``fps`` mode, frame on screen at ``(j + 0.5) / fps``; or one decoded frame
per OpenL3 audio window, ``per-audio-window``). Its :meth:`VideoSampling.params` are part of
each video feature's provenance.

Audio windows: :func:`frame_windows` is OpenL3's framing rule (openl3 0.4.2) at any sample rate
and window length, for networks that embed fixed windows (PANNs CNN14). NumPy only.
"""

from dataclasses import dataclass

import numpy as np

from featurestore import limits
from featurestore.errors import MediaError

FPS, PER_AUDIO_WINDOW = "fps", "per-audio-window"


@dataclass(frozen=True)
class VideoSampling:
    """The frames every video extractor of a job receives.

    Attributes
    ----------
    mode : "fps" or "per-audio-window"
    fps : float
        ``fps`` mode: frames per second, sampled at ``(j + 0.5) / fps``
        (:data:`featurestore.limits.FPS`).
    hop, center : float, bool
        ``per-audio-window`` mode: the OpenL3 audio windows the frames go with (hop in seconds,
        :data:`featurestore.limits.HOP_SECONDS`).
    """

    mode: str = FPS
    fps: float = 10.0
    hop: float = 0.1
    center: bool = True

    def __post_init__(self):
        if self.mode not in (FPS, PER_AUDIO_WINDOW):
            raise ValueError(
                f"video frames must be {FPS!r} or {PER_AUDIO_WINDOW!r}, got {self.mode!r}"
            )
        limits.FPS.check("video fps", self.fps)
        limits.HOP_SECONDS.check("audio hop (seconds)", self.hop)
        if self.center not in (True, False):
            raise ValueError(f"center must be True or False, got {self.center!r}")

    @property
    def frame_rate(self):
        return 1.0 / self.hop if self.mode == PER_AUDIO_WINDOW else float(self.fps)

    @property
    def timestamps(self):
        if self.mode == PER_AUDIO_WINDOW:
            return (
                "the OpenL3 audio windows' j * hop for the clip duration at 48 kHz; frame "
                "linspace(0, n_frames - 1, n_windows).astype(int)[j] of all decoded frames"
            )
        return (
            "(j + 0.5) / fps for t < clip duration; frame on screen at t (last pts <= t, "
            "stream start_time = 0)"
        )

    def params(self):
        """The sampling part of a video feature's provenance (OpenL3 video's keys)."""
        if self.mode == PER_AUDIO_WINDOW:
            return {
                "video_frames": PER_AUDIO_WINDOW,
                "hop": self.hop,
                "center": self.center,
                "timestamps": self.timestamps,
            }
        return {"fps": self.fps, "timestamps": self.timestamps}

    def describe(self):
        """Short text for error messages."""
        if self.mode == PER_AUDIO_WINDOW:
            return f"one frame per audio window (hop {self.hop:g} s)"
        return f"{self.fps:g} fps"


class Windows:
    """Overlapping windows of one padded signal; ``[a:b]`` gives (b - a, width) float32.

    Pickling sends the signal only (about one copy of the audio), not the windows.
    """

    def __init__(self, signal, *, width, hop, n):
        self.signal, self.width, self.hop, self.n = signal, int(width), int(hop), int(n)

    @classmethod
    def of(cls, windows):
        """From a strided (n, width) view (one signal, hop = row stride) or any 2-d array."""
        n, width = windows.shape
        hop = int(windows.strides[0] // windows.itemsize) if n > 1 else width
        if n > 1 and hop <= width and windows.strides[1] == windows.itemsize:
            signal = np.concatenate([windows[:, :hop].ravel(), windows[-1, hop:]])
            return cls(signal, width=width, hop=hop, n=n)
        return cls(np.ascontiguousarray(windows).ravel(), width=width, hop=width, n=n)

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        view = np.lib.stride_tricks.as_strided(
            self.signal,
            shape=(self.n, self.width),
            strides=(self.hop * self.signal.itemsize, self.signal.itemsize),
            writeable=False,
        )
        return view[index]


def frame_windows(signal, rate, *, window_seconds, hop_seconds, center):
    """Windows of ``window_seconds`` every ``hop_seconds``, by openl3 0.4.2's rule.

    ``hop = int(hop_seconds * rate)`` samples (truncated); ``center`` prepends half a window of
    zeros; the end is zero-padded to one window, or so that the last window ends at the end;
    ``n = 1 + ceil(max(L - W, 0) / hop)``; timestamps ``j * hop_seconds`` (window centres with
    ``center``, starts without).

    Returns
    -------
    windows : Windows, n items of shape (W,), float32
    timestamps : ndarray, shape (n,), float64
    """
    width = int(round(window_seconds * rate))
    hop = int(hop_seconds * rate)
    if hop < 1 or width < 1:
        raise MediaError(
            f"window {window_seconds} s / hop {hop_seconds} s is under one sample at {rate} Hz"
        )
    signal = np.asarray(signal, dtype=np.float32)
    if center:
        signal = np.concatenate([np.zeros(width // 2, np.float32), signal])
    length = signal.shape[0]
    padding = (
        width - length if length < width else -(-(length - width) // hop) * hop - (length - width)
    )
    signal = np.concatenate([signal, np.zeros(padding, np.float32)])
    n = 1 + (signal.shape[0] - width) // hop
    return Windows(signal, width=width, hop=hop, n=n), np.arange(n) * hop_seconds
