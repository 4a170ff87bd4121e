"""OpenL3's audio frontend in torch (kapre 0.3.7 layers + openl3's own dB step), on any device.

For each 1 s window of 48 kHz samples (float32):

1. STFT = ``tf.signal.stft`` as kapre calls it: periodic Hann window, no centring, no reflect
   padding. mel128/mel256: n_fft 2048, hop 242, ``pad_end=True`` (zeros appended to
   (199 - 1) * 242 + 2048 samples) -> 199 frames x 1025 bins. linear: n_fft 512, hop 242,
   no end padding -> 197 frames x 257 bins.
2. magnitude ``|X|`` (not squared); mel: ``|X| @ W`` with the Slaney filterbank
   (:func:`featurestore.frontends.melfilters.mel_filterbank`, fmin 0, fmax 24 kHz).
3. openl3's "kapre 0.1.4" dB: ``10 * log10(max(S, 1e-10))`` minus its maximum over the whole
   window, floored at -80. (10, not 20, although S is a magnitude: that is openl3's formula.)
4. layout (N, 1, bands, frames): frequency is the image height, time the width.
"""

import torch
from torch import nn

from featurestore.frontends import mel_filterbank
from featurestore.openl3.describe import (  # noqa: F401 (re-exported)
    FRONTENDS,
    HOP,
    SAMPLE_RATE,
    WINDOW,
    frontend_parameters,
)

AMIN = 1e-10
DYNAMIC_RANGE = 80.0


class Spectrogram(nn.Module):
    """Windows (N, 48000) float32 -> network input (N, 1, bands, frames) float32 in [-80, 0]."""

    def __init__(self, input_repr):
        super().__init__()
        self.input_repr = input_repr
        self.n_fft, n_mels, self.pad_end = FRONTENDS[input_repr]
        self.register_buffer(
            "window", torch.hann_window(self.n_fft, periodic=True, dtype=torch.float32)
        )
        self.register_buffer("log10", torch.log(torch.tensor(10.0, dtype=torch.float32)))
        if n_mels is None:
            self.register_buffer("mel_t", None)
        else:
            weights = mel_filterbank(sr=SAMPLE_RATE, n_fft=self.n_fft, n_mels=n_mels)
            self.register_buffer("mel_t", torch.from_numpy(weights.T.copy()))

    def magnitude(self, frames):
        """|STFT|: (N, 48000) -> (N, bins, stft_frames) float32."""
        frames = frames.to(torch.float32)
        if self.pad_end:
            n_frames = -(-frames.shape[-1] // HOP)
            padding = (n_frames - 1) * HOP + self.n_fft - frames.shape[-1]
            frames = nn.functional.pad(frames, (0, padding))
        spec = torch.stft(
            frames,
            n_fft=self.n_fft,
            hop_length=HOP,
            window=self.window,
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        return spec.abs()

    def mel_magnitude(self, frames):
        """Before dB: (N, bands, stft_frames); bands = mel bands, or STFT bins for linear."""
        magnitude = self.magnitude(frames)
        if self.mel_t is None:
            return magnitude
        return torch.matmul(self.mel_t, magnitude)

    def forward(self, frames):
        with torch.autocast(frames.device.type, enabled=False):
            spec = self.mel_magnitude(frames)
            # log(x) / log(10) in float32, as openl3's TF code computes log10
            db = 10.0 * (torch.log(torch.clamp(spec, min=AMIN)) / self.log10)
            db = db - db.amax(dim=(1, 2), keepdim=True)
            return torch.clamp(db, min=-DYNAMIC_RANGE).unsqueeze(1)
