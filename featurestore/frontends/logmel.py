"""Log-mel spectrograms in torch, batched across clips, with a timestamp for every frame.

What is computed (all recorded in :func:`logmel_params`, which is stored as the feature's
provenance):

1. mono mixdown by the mean over channels (float32);
2. STFT with centred frames: ``n_fft // 2`` zeros are added at both ends (``pad_mode
   "constant"``, like librosa >= 0.10; reflection would fail on very short clips), frame k is
   centred on sample ``k * hop_length``; periodic Hann window of ``win_length`` samples,
   zero-padded to ``n_fft`` at both sides; no normalisation;
3. power spectrum ``|X|^2``;
4. Slaney mel filterbank (:func:`featurestore.frontends.melfilters.mel_filterbank`, equal to librosa's
   ``filters.mel(htk=False, norm='slaney')``);
5. decibels ``10 * log10(max(mel, amin))`` with ``amin = 1e-10`` (a floor at -100 dB), referenced
   to 1.0 (full-scale audio), no per-clip normalisation: values are comparable across clips.
   This equals ``librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)``.

A signal of n samples gives ``1 + n // hop_length`` frames with timestamps
``k * hop_length / sample_rate`` (frame centres) in seconds from the clip start. Defaults: 48 kHz,
128 mels, 40 ms window (1920 samples), 10 ms hop (480 samples): a 10 s clip gives 1001 frames.
Batching pads clips with zeros at the end; since the centring pad is zeros as well, every clip's
frames equal those computed on the clip alone.
"""

import math
import numbers

import numpy as np

from featurestore import limits
from featurestore.frontends.melfilters import mel_filterbank

#: Version of the computation above; bump it when the numbers change.
LOGMEL_VERSION = 1
#: The settings :func:`check_logmel` bounds.
CHECKED = ("sample_rate", "n_mels", "win_length", "hop_length", "n_fft", "fmin", "fmax", "amin")


def logmel_params(
    *,
    sample_rate=48000,
    n_mels=128,
    win_length=1920,
    hop_length=480,
    n_fft=None,
    fmin=0.0,
    fmax=None,
    amin=1e-10,
):
    """Return the complete, JSON-able parameter dict of the log-mel feature.

    Parameters
    ----------
    sample_rate : int
        Rate the input must have (callers resample first).
    n_mels : int
    win_length, hop_length : int
        Window and hop in samples (defaults: 40 ms and 10 ms at 48 kHz).
    n_fft : int, optional
        FFT length >= ``win_length``; defaults to ``win_length``.
    fmin, fmax : float
        Mel band edges in Hz; ``fmax=None`` means ``sample_rate / 2``.
    amin : float
        Floor of the mel power before the log.

    Returns
    -------
    params : dict
        Every setting, plus the fixed choices (window, padding, scale) spelt out.

    Raises
    ------
    ValueError
        A setting outside its bounds (:func:`check_logmel`), in one line.
    """
    n_fft = win_length if n_fft is None else n_fft
    check_logmel(
        sample_rate=sample_rate,
        n_mels=n_mels,
        win_length=win_length,
        hop_length=hop_length,
        n_fft=n_fft,
        fmin=fmin,
        fmax=fmax,
        amin=amin,
    )
    n_fft = int(n_fft)
    return {
        "feature": "logmel",
        "version": LOGMEL_VERSION,
        "sample_rate": int(sample_rate),
        "n_mels": int(n_mels),
        "n_fft": n_fft,
        "win_length": int(win_length),
        "hop_length": int(hop_length),
        "fmin": float(fmin),
        "fmax": float(sample_rate / 2 if fmax is None else fmax),
        "window": "hann_periodic",
        "center": True,
        "pad_mode": "constant",
        "power": 2.0,
        "mel_scale": "slaney",
        "mel_norm": "slaney",
        "mixdown": "mean",
        "scale": "10*log10(max(mel, amin))",
        "amin": float(amin),
        "timestamps": "frame centre k*hop_length/sample_rate",
    }


def check_logmel(*, sample_rate, n_mels, win_length, hop_length, n_fft, fmin, fmax, amin):
    """Refuse settings outside :mod:`featurestore.limits` with a one-line ``ValueError``.

    ``win_length <= n_fft``, ``n_mels <= n_fft // 2 + 1`` (no more bands than FFT bins),
    ``0 <= fmin < fmax <= sample_rate / 2`` and ``amin > 0`` besides the bounds of each.
    """
    limits.SAMPLE_RATE.check("logmel sample_rate", sample_rate)
    limits.FFT_SAMPLES.check("logmel win_length", win_length)
    limits.FFT_SAMPLES.check("logmel n_fft", n_fft)
    limits.N_MELS.check("logmel n_mels", n_mels)
    limits.Bounds(*hop_length_bounds(sample_rate), int).check(
        f"logmel hop_length (samples at {sample_rate} Hz)", hop_length
    )
    if win_length > n_fft:
        raise ValueError(
            f"logmel win_length must be <= n_fft, got win_length={win_length}, n_fft={n_fft}"
        )
    if n_mels > limits.mel_bins(n_fft):
        raise ValueError(
            f"logmel n_mels must be <= n_fft // 2 + 1 = {limits.mel_bins(n_fft)} "
            f"(FFT bins of n_fft={n_fft}), got n_mels={n_mels}"
        )
    top = sample_rate / 2 if fmax is None else fmax
    if (
        not all(isinstance(f, numbers.Real) and math.isfinite(f) for f in (fmin, top, amin))
        or not 0 <= fmin < top <= sample_rate / 2
        or amin <= 0
    ):
        raise ValueError(
            f"logmel needs 0 <= fmin < fmax <= sample_rate / 2 and amin > 0, got "
            f"fmin={fmin!r}, fmax={fmax!r}, amin={amin!r}"
        )


def check_params(params):
    """:func:`check_logmel` on a parameter dict (from :func:`logmel_params`, or made by hand)."""
    if not isinstance(params, dict):
        raise TypeError(f"logmel params must be a dict, got {type(params).__name__}")
    check_logmel(**{key: params.get(key) for key in CHECKED})


def hop_length_bounds(sample_rate):
    """The shortest and longest ``hop_length`` in samples at ``sample_rate``
    (:data:`featurestore.limits.LOGMEL_HOP_SECONDS`)."""
    seconds = limits.LOGMEL_HOP_SECONDS
    return math.ceil(seconds.low * sample_rate), math.floor(seconds.high * sample_rate)


def frame_count(n_samples, params):
    """Number of frames of a signal of ``n_samples`` samples: ``1 + n_samples // hop``."""
    return 1 + int(n_samples) // params["hop_length"]


def frame_timestamps(n_samples, params):
    """Frame centres in seconds, shape (frame_count(n_samples),), float64."""
    seconds_per_hop = params["hop_length"] / params["sample_rate"]
    return np.arange(frame_count(n_samples, params)) * seconds_per_hop


def mixdown(samples):
    """Mean over channels: (n,) or (n, channels) -> (n,) float32."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        return samples.mean(axis=1, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"logmel: audio must be (n,) or (n, channels), got shape {samples.shape}")
    return samples


def make_logmel_module(params, *, device="cpu"):
    """Build a torch module mapping a (batch, n_samples) float32 tensor to (batch, frames, n_mels).

    The filterbank and window are buffers on ``device``; the module has no trainable weights.
    """
    import torch

    class LogMel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            fbank = mel_filterbank(
                sr=params["sample_rate"],
                n_fft=params["n_fft"],
                n_mels=params["n_mels"],
                fmin=params["fmin"],
                fmax=params["fmax"],
            )
            self.register_buffer("fbank", torch.from_numpy(fbank))
            self.register_buffer("window", torch.hann_window(params["win_length"], periodic=True))

        def forward(self, batch):
            spec = torch.stft(
                batch,
                n_fft=params["n_fft"],
                hop_length=params["hop_length"],
                win_length=params["win_length"],
                window=self.window,
                center=True,
                pad_mode="constant",
                normalized=False,
                onesided=True,
                return_complex=True,
            )
            power = spec.real.square() + spec.imag.square()  # (B, F, T)
            mel = torch.matmul(power.transpose(1, 2), self.fbank)  # (B, T, n_mels)
            return 10.0 * torch.log10(torch.clamp(mel, min=params["amin"]))

    return LogMel().to(device).eval()


def logmel(signals, params=None, *, device="cpu", module=None):
    """Log-mel spectrograms of several clips, computed as one padded batch.

    Parameters
    ----------
    signals : list of ndarray, each shape (n_samples,) or (n_samples, n_channels)
        Audio at ``params["sample_rate"]``; multichannel audio is mixed down by the mean.
    params : dict, optional
        From :func:`logmel_params` (defaults when None).
    device : str or torch.device
    module : torch.nn.Module, optional
        A module from :func:`make_logmel_module` to reuse (skips rebuilding the filterbank).

    Returns
    -------
    list of (values, timestamps)
        values : ndarray, shape (n_frames, n_mels), float32;
        timestamps : ndarray, shape (n_frames,), float64 (frame centres, seconds).
    """
    import torch

    params = logmel_params() if params is None else params
    mono = [mixdown(s) for s in signals]
    if not mono:
        return []
    if any(len(m) == 0 for m in mono):
        raise ValueError("logmel: empty signal")
    module = module if module is not None else make_logmel_module(params, device=device)
    device = module.fbank.device
    batch = np.zeros((len(mono), max(len(m) for m in mono)), dtype=np.float32)
    for row, signal in zip(batch, mono):
        row[: len(signal)] = signal
    with torch.inference_mode():
        out = module(torch.from_numpy(batch).to(device)).float().cpu().numpy()
    return [
        (
            np.ascontiguousarray(out[i, : frame_count(len(m), params)]),
            frame_timestamps(len(m), params),
        )
        for i, m in enumerate(mono)
    ]
