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

import numpy as np

from featurestore.frontends.melfilters import mel_filterbank

#: Version of the computation above; bump it when the numbers change.
LOGMEL_VERSION = 1


def logmel_params(*, sample_rate=48000, n_mels=128, win_length=1920, hop_length=480,
                  n_fft=None, fmin=0.0, fmax=None, amin=1e-10):
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
    """
    n_fft = int(win_length if n_fft is None else n_fft)
    if not (0 < hop_length and 0 < win_length <= n_fft):
        raise ValueError(f"logmel: need 0 < hop_length and 0 < win_length <= n_fft, got "
                         f"hop_length={hop_length}, win_length={win_length}, n_fft={n_fft}")
    if n_mels < 1 or sample_rate <= 0 or amin <= 0:
        raise ValueError(f"logmel: invalid n_mels={n_mels}, sample_rate={sample_rate} "
                         f"or amin={amin}")
    return {
        "feature": "logmel", "version": LOGMEL_VERSION,
        "sample_rate": int(sample_rate), "n_mels": int(n_mels), "n_fft": n_fft,
        "win_length": int(win_length), "hop_length": int(hop_length),
        "fmin": float(fmin), "fmax": float(sample_rate / 2 if fmax is None else fmax),
        "window": "hann_periodic", "center": True, "pad_mode": "constant", "power": 2.0,
        "mel_scale": "slaney", "mel_norm": "slaney", "mixdown": "mean",
        "scale": "10*log10(max(mel, amin))", "amin": float(amin),
        "timestamps": "frame centre k*hop_length/sample_rate",
    }


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
            fbank = mel_filterbank(sr=params["sample_rate"], n_fft=params["n_fft"],
                                   n_mels=params["n_mels"], fmin=params["fmin"],
                                   fmax=params["fmax"])
            self.register_buffer("fbank", torch.from_numpy(fbank))
            self.register_buffer("window", torch.hann_window(params["win_length"], periodic=True))

        def forward(self, batch):
            spec = torch.stft(batch, n_fft=params["n_fft"], hop_length=params["hop_length"],
                              win_length=params["win_length"], window=self.window, center=True,
                              pad_mode="constant", normalized=False, onesided=True,
                              return_complex=True)
            power = spec.real.square() + spec.imag.square()          # (B, F, T)
            mel = torch.matmul(power.transpose(1, 2), self.fbank)    # (B, T, n_mels)
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
        row[:len(signal)] = signal
    with torch.inference_mode():
        out = module(torch.from_numpy(batch).to(device)).float().cpu().numpy()
    return [(np.ascontiguousarray(out[i, :frame_count(len(m), params)]),
             frame_timestamps(len(m), params)) for i, m in enumerate(mono)]
