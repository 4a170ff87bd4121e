"""Cut one clip into OpenL3's 1 s windows, exactly as openl3 0.4.2 does (NumPy only, no torch).

This is the cheap, per-clip part of the audio chain, meant to run in decoding worker processes;
the network (and the spectrogram) run later on stacked windows of many clips.

openl3's ``_preprocess_audio_batch``: channels averaged (dtype kept); resampled to 48 kHz with
resampy 0.2.2 ``kaiser_best`` when ``sr != 48000``; ``hop = int(hop_size * 48000)`` (truncated);
``center=True`` prepends 24,000 zeros; the end is zero-padded to 48,000 samples, or so that the
last window ends exactly at the end; ``n = 1 + ceil(max(L - 48000, 0) / hop)`` windows; window
``i`` is samples ``[i * hop, i * hop + 48000)``; ``timestamps = arange(n) * hop_size``.
"""

import numbers

import numpy as np

from featurestore.errors import MediaError
from featurestore.media import resample

SAMPLE_RATE = 48000
WINDOW = 48000


def mono_48k(audio, sr):
    """Channel mean (for (n, channels) input), then resampling to 48 kHz if needed.

    Parameters
    ----------
    audio : ndarray, shape (n,) or (n, channels), float32 or float64
    sr : float

    Returns
    -------
    ndarray, shape (m,), same dtype; m = int(n * 48000 / sr)
    """
    audio = np.asarray(audio)
    if audio.size == 0:
        raise MediaError("OpenL3: got empty audio")
    if audio.ndim > 2:
        raise MediaError(
            f"OpenL3: audio must be (samples,) or (samples, channels), got shape {audio.shape}"
        )
    if audio.dtype not in (np.float32, np.float64):
        raise MediaError(f"OpenL3: audio must be float32 or float64 samples, got {audio.dtype}")
    if not isinstance(sr, numbers.Real) or sr <= 0:
        raise MediaError(f"OpenL3: invalid sample rate {sr!r}")
    if audio.ndim == 2:
        audio = np.mean(audio, axis=1)
    if sr != SAMPLE_RATE:
        audio = resample(audio, sr, SAMPLE_RATE)
    return audio


def hop_samples(hop_size):
    """Hop in samples, truncated as openl3 does (0.29 s -> 13919)."""
    if not isinstance(hop_size, numbers.Real) or hop_size <= 0:
        raise MediaError(f"OpenL3: invalid hop size {hop_size!r}")
    hop = int(hop_size * SAMPLE_RATE)
    if hop < 1:
        raise MediaError(f"OpenL3: hop size {hop_size} s is under one sample at 48 kHz")
    return hop


def frame_audio(audio, sr, *, hop_size=0.1, center=True):
    """One clip's network windows and their timestamps, without running any network.

    Parameters
    ----------
    audio : ndarray, shape (n,) or (n, channels), float32 or float64
    sr : float
        Sample rate of ``audio``; anything but 48000 is resampled (resampy 0.2.2 kaiser_best).
    hop_size : float
        Hop in seconds.
    center : bool
        True: timestamps are window centres (24,000 zeros prepended); False: window starts.

    Returns
    -------
    windows : ndarray, shape (n_windows, 48000), float32
        A read-only strided view of one padded signal (copy it to write; stacking copies).
    timestamps : ndarray, shape (n_windows,), float64 seconds
    """
    if center not in (True, False):
        raise MediaError(f"OpenL3: center must be True or False, got {center!r}")
    hop = hop_samples(hop_size)
    signal = mono_48k(audio, sr)
    if center:
        signal = np.concatenate([np.zeros(WINDOW // 2, dtype=signal.dtype), signal])
    length = signal.shape[0]
    if length < WINDOW:
        padding = WINDOW - length
    else:
        padding = -(-(length - WINDOW) // hop) * hop - (length - WINDOW)
    signal = np.concatenate([signal, np.zeros(padding, dtype=signal.dtype)])
    signal = signal.astype(np.float32, copy=False)
    n_windows = 1 + (signal.shape[0] - WINDOW) // hop
    windows = np.lib.stride_tricks.as_strided(
        signal,
        shape=(n_windows, WINDOW),
        strides=(hop * signal.itemsize, signal.itemsize),
        writeable=False,
    )
    return windows, np.arange(n_windows) * hop_size


def count_windows(n_samples, sr, *, hop_size=0.1, center=True):
    """Number of windows :func:`frame_audio` gives for ``n_samples`` at ``sr`` (no audio needed)."""
    length = int(n_samples * (SAMPLE_RATE / sr)) if sr != SAMPLE_RATE else int(n_samples)
    length += WINDOW // 2 if center else 0
    return 1 + max(-(-(length - WINDOW) // hop_samples(hop_size)), 0)
