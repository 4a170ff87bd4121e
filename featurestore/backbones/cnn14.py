"""PANNs CNN14 (Kong et al. 2020, AudioSet tagging), re-stated in torch, as a window embedder.

Frontend (the authors' released configuration of ``Cnn14`` for AudioSet: 32 kHz, window 1024,
hop 320, 64 mel bins, 50..14000 Hz; torchlibrosa's layers): STFT with a periodic Hann window of
1024 samples, centred frames with reflection padding (``n_fft // 2`` at both ends), power
``|X|^2``; Slaney mel filterbank with Slaney area normalisation
(:func:`featurestore.frontends.melfilters.mel_filterbank`, librosa's default, as torchlibrosa
builds it); ``10 * log10(max(mel, 1e-10))`` (ref 1.0, amin 1e-10, no top_db). A window of
32,000 samples gives 101 frames x 64 bands, laid out (N, 1, frames, bands).

Network (eval mode: dropout and SpecAugment off): BatchNorm over the 64 mel bands; six conv
blocks (3x3 convolution without bias, BatchNorm, ReLU, twice) of 64, 128, 256, 512, 1024 and
2048 channels, each followed by 2x2 average pooling (the last by 1x1); mean over frequency;
max plus mean over time; ``relu(fc1(x))``, the 2048-value embedding (``fc_audioset``, the 527
AudioSet logits, is not used). BatchNorm epsilon 1e-5 (torch's default, as in the released code).

The official checkpoint (``Cnn14_mAP=0.431.pth``, Zenodo record 3987831) is ``{"model":
state_dict, ...}``; its frontend buffers (``spectrogram_extractor.*``, ``logmel_extractor.*``)
are not needed and are ignored, the rest must match. It is read with
``torch.load(weights_only=True)``.
"""

import numpy as np

from featurestore.backbones import weight_files
from featurestore.frontends.melfilters import mel_filterbank
from featurestore.netcache import cached_network

SAMPLE_RATE = 32000
N_FFT = 1024
HOP = 320
N_MELS = 64
FMIN, FMAX = 50.0, 14000.0
AMIN = 1e-10
CHANNELS = (64, 128, 256, 512, 1024, 2048)
CLASSES = 527
DIM = 2048
FRONTEND_PREFIXES = ("spectrogram_extractor.", "logmel_extractor.")
ZENODO_URL = "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth"


def frontend_parameters():
    return {
        "sample_rate": SAMPLE_RATE,
        "n_fft": N_FFT,
        "win_length": N_FFT,
        "hop_length": HOP,
        "window": "hann_periodic",
        "center": True,
        "pad_mode": "reflect",
        "power": 2.0,
        "n_mels": N_MELS,
        "fmin": FMIN,
        "fmax": FMAX,
        "mel_scale": "slaney",
        "mel_norm": "slaney",
        "scale": "10*log10(max(mel, amin)), ref 1.0, no top_db",
        "amin": AMIN,
    }


def _modules():
    import torch
    from torch import nn

    class ConvBlock(nn.Module):
        def __init__(self, inputs, outputs):
            super().__init__()
            self.conv1 = nn.Conv2d(inputs, outputs, 3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(outputs)
            self.bn2 = nn.BatchNorm2d(outputs)

        def forward(self, x, pool):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = torch.relu(self.bn2(self.conv2(x)))
            return nn.functional.avg_pool2d(x, pool) if pool != 1 else x

    class LogMel(nn.Module):
        """Windows (N, samples) -> (N, 1, frames, 64) dB, always in float32."""

        def __init__(self):
            super().__init__()
            self.register_buffer("window", torch.hann_window(N_FFT, periodic=True))
            fbank = mel_filterbank(
                sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX
            )
            self.register_buffer("fbank", torch.from_numpy(fbank))

        def forward(self, windows):
            with torch.autocast(windows.device.type, enabled=False):
                spec = torch.stft(
                    windows.float(),
                    n_fft=N_FFT,
                    hop_length=HOP,
                    window=self.window,
                    center=True,
                    pad_mode="reflect",
                    return_complex=True,
                )
                power = spec.real.square() + spec.imag.square()  # (N, 513, T)
                mel = torch.matmul(power.transpose(1, 2), self.fbank)  # (N, T, 64)
                return (10.0 * torch.log10(torch.clamp(mel, min=AMIN))).unsqueeze(1)

    class Cnn14(nn.Module):
        """Log-mel (N, 1, frames, 64) -> embedding (N, 2048)."""

        def __init__(self):
            super().__init__()
            self.bn0 = nn.BatchNorm2d(N_MELS)
            inputs = 1
            for index, outputs in enumerate(CHANNELS, start=1):
                setattr(self, f"conv_block{index}", ConvBlock(inputs, outputs))
                inputs = outputs
            self.fc1 = nn.Linear(DIM, DIM)
            self.fc_audioset = nn.Linear(DIM, CLASSES)

        def forward(self, x):
            x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
            for index in range(1, len(CHANNELS) + 1):
                x = getattr(self, f"conv_block{index}")(x, 1 if index == len(CHANNELS) else 2)
            x = x.mean(dim=3)
            x = x.max(dim=2).values + x.mean(dim=2)
            return torch.relu(self.fc1(x))

    return LogMel, Cnn14


def build():
    """``(frontend, network)`` torch modules, eval mode, random initial weights."""
    frontend_class, network_class = _modules()
    return frontend_class().eval(), network_class().eval()


def official_frontend_buffers():
    """The frontend buffers of the official checkpoint, computed here (for random files):
    torchlibrosa's DFT-as-convolution kernels (window applied) and mel matrix."""
    n = np.arange(N_FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)
    k = np.arange(N_FFT // 2 + 1)[:, None]
    angle = 2 * np.pi * k * n[None, :] / N_FFT
    buffers = {
        "spectrogram_extractor.stft.conv_real.weight": (np.cos(angle) * window)[:, None, :],
        "spectrogram_extractor.stft.conv_imag.weight": (-np.sin(angle) * window)[:, None, :],
    }
    buffers["logmel_extractor.melW"] = mel_filterbank(
        sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX
    )
    return {key: value.astype(np.float32) for key, value in buffers.items()}


def write_random(path, *, seed):
    """RANDOM CNN14 weights in the official checkpoint layout ``{"model": state_dict}``."""
    _, network = build()
    return weight_files.write_random(
        path,
        network.state_dict(),
        seed=seed,
        what="PANNs CNN14",
        wrapper="model",
        extra=official_frontend_buffers(),
    )


def load_state(path):
    """``(network state dict checked against the architecture, random seed)``."""
    state, seed, _ = weight_files.unwrap(weight_files.read_checkpoint(path), path)
    state = {key: value for key, value in state.items() if not key.startswith(FRONTEND_PREFIXES)}
    _, network = build()
    shapes = {key: tuple(value.shape) for key, value in network.state_dict().items()}
    return weight_files.check_state(state, shapes, path, what="PANNs CNN14"), seed


def fold_batchnorm(network):
    """Fold each conv block's BatchNorms into its convolutions (same function up to rounding)."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for index in range(1, len(CHANNELS) + 1):
        block = getattr(network, f"conv_block{index}")
        block.conv1 = fuse_conv_bn_eval(block.conv1, block.bn1)
        block.conv2 = fuse_conv_bn_eval(block.conv2, block.bn2)
        block.bn1, block.bn2 = torch.nn.Identity(), torch.nn.Identity()
    return network


def load_network(path, *, device, fold_bn=True, channels_last=False):
    """``(frontend, network)`` loaded (cached per process) from ``path`` on ``device``.

    ``fold_bn`` folds the conv blocks' BatchNorms (faster, same function up to rounding);
    channels-last is off by default, being slower for CNN14 (docs/benchmarks.md).
    """
    import torch

    device = torch.device(device)

    def make():
        state, seed = load_state(path)
        weight_files.warn_random("PANNs CNN14", path, seed)
        frontend, network = build()
        network.load_state_dict(state)
        network = network.eval().requires_grad_(False)
        if fold_bn:
            network = fold_batchnorm(network)
        network = network.to(device)
        if channels_last:
            network = network.to(memory_format=torch.channels_last)
        return frontend.to(device), network

    return cached_network(path, ("cnn14", str(device), fold_bn, channels_last), make)
