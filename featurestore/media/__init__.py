"""Media: probing and decoding audio and video files, and resampling to the networks' rate.

Every failure is a :class:`~featurestore.errors.MediaError` whose one-line message names the
file. Modules: :mod:`~featurestore.media.decode` (soundfile / PyAV decoding, video frames by
presentation time) and :mod:`~featurestore.media.resample` (resampy 0.2.2's ``kaiser_best``
filter re-stated in NumPy).
"""

from featurestore.media.decode import (
    HOLD_SECONDS,
    AudioInfo,
    VideoInfo,
    iter_spread_frames,
    iter_video,
    probe_audio,
    probe_video,
    read_audio,
    read_video,
    sample_times,
)
from featurestore.media.resample import resample

__all__ = [
    "HOLD_SECONDS",
    "AudioInfo",
    "VideoInfo",
    "iter_video",
    "probe_audio",
    "probe_video",
    "read_audio",
    "read_video",
    "resample",
    "sample_times",
]
__all__ += ["iter_spread_frames"]
