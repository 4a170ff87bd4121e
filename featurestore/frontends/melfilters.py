"""Slaney mel filterbank in NumPy, equal to ``librosa.filters.mel(htk=False, norm='slaney')``.

librosa is not a dependency: this module repeats librosa 0.10's arithmetic step by step (the
same float64 operations in the same order, the weights stored as float32 and then scaled by the
Slaney area normalisation), so the matrix equals librosa's bit for bit. It is used by the OpenL3
frontend (kapre builds its mel matrix with librosa) and by the log-mel feature. No torch here.
"""

import numpy as np

_F_SP = 200.0 / 3  # linear part: 66.67 Hz per mel
_MIN_LOG_HZ = 1000.0  # the scale turns logarithmic above 1 kHz
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(frequencies):
    """Slaney mel value of ``frequencies`` (Hz); array in, float64 array out."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    mels = frequencies / _F_SP
    log_part = frequencies >= _MIN_LOG_HZ
    mels = np.where(
        log_part,
        _MIN_LOG_MEL
        + np.log(np.where(log_part, frequencies, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP,
        mels,
    )
    return mels


def mel_to_hz(mels):
    """Inverse of :func:`hz_to_mel` (Slaney scale); float64 array out."""
    mels = np.asarray(mels, dtype=np.float64)
    freqs = _F_SP * mels
    log_part = mels >= _MIN_LOG_MEL
    return np.where(log_part, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels - _MIN_LOG_MEL)), freqs)


def mel_filterbank(*, sr, n_fft, n_mels, fmin=0.0, fmax=None):
    """Triangular Slaney mel filters with Slaney area normalisation.

    Parameters
    ----------
    sr : float
        Sample rate in Hz.
    n_fft : int
        FFT length; the filterbank has ``n_fft // 2 + 1`` rows (rfft bins).
    n_mels : int
        Number of mel bands.
    fmin, fmax : float
        Band edges in Hz; ``fmax=None`` means ``sr / 2``.

    Returns
    -------
    W : ndarray, shape (n_fft // 2 + 1, n_mels), float32
        ``mel = magnitude @ W`` for a magnitude spectrum of shape (..., n_fft // 2 + 1).
        Equal to ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
        htk=False, norm='slaney').T``.
    """
    if sr <= 0 or n_fft < 2 or n_mels < 1:
        raise ValueError(f"mel_filterbank: invalid sr={sr}, n_fft={n_fft} or n_mels={n_mels}")
    if fmax is None:
        fmax = float(sr) / 2
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    # The exp/log round trip lands within one ulp of fmax, on either side depending on the
    # libm build; librosa's reference build lands on or below it, which leaves the Nyquist bin
    # of the top band exactly 0. Pinning the top edge gives that result on every platform.
    mel_edges[-1] = fmax
    widths = np.diff(mel_edges)
    ramps = np.subtract.outer(mel_edges, fft_freqs)
    weights = np.zeros((n_mels, len(fft_freqs)), dtype=np.float32)
    for band in range(n_mels):
        lower = -ramps[band] / widths[band]
        upper = ramps[band + 2] / widths[band + 1]
        weights[band] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_edges[2 : n_mels + 2] - mel_edges[:n_mels]))[:, np.newaxis]
    return np.ascontiguousarray(weights.T)
