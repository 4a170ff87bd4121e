"""Loaded OpenL3 models: network + frontend on a device, precision settings, provenance.

Models are cached: loading the same file with the same options twice returns the same object.
"""

import contextlib
import logging
import pathlib

import numpy as np
import torch

from featurestore.netcache import cached_network
from featurestore.openl3 import architecture as arch
from featurestore.openl3 import describe
from featurestore.openl3 import weights as weight_files
from featurestore.openl3.frontend import Spectrogram
from featurestore.openl3.towers import build_network

log = logging.getLogger(__name__)

DTYPES = describe.DTYPES


class OpenL3Model:
    """One loaded tower. Use :meth:`embed` on network-ready tensors; see the package API.

    Attributes
    ----------
    kind : "audio" or "image"
    input_repr, content_type : str
    embedding_size : int
    device : torch.device
    dtype : "float32" or "bfloat16" (bf16 = autocast around the convolutions)
    net : torch.nn.Module, (N, C, H, W) -> (N, embedding_size)
    frontend : Spectrogram or None (audio only)
    provenance : dict (JSON-able)
    """

    def __init__(
        self, *, kind, net, frontend, device, dtype, channels_last, allow_tf32, provenance
    ):
        self.kind = kind
        self.net = net
        self.frontend = frontend
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        self.allow_tf32 = allow_tf32
        self.provenance = provenance
        self.input_repr = provenance["input_repr"]
        self.content_type = provenance["content_type"]
        self.embedding_size = provenance["embedding_size"]

    def __repr__(self):
        return (
            f"OpenL3Model({self.kind}, {self.input_repr}, {self.content_type}, "
            f"{self.embedding_size}, device={self.device}, dtype={self.dtype})"
        )

    def _autocast(self):
        if self.dtype == "bfloat16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def embed(self, x):
        """Network-ready input on any device -> (N, embedding_size) float32 tensor on the device.

        ``x``: audio windows (N, 48000); image batch (N, 224, 224, 3) channels-last float32.
        """
        _configure_tf32(self.device, self.allow_tf32)
        x = x.to(self.device, non_blocking=True)
        if self.kind == arch.AUDIO:
            x = self.frontend(x.to(torch.float32))
        else:
            x = x.to(torch.float32).permute(0, 3, 1, 2)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        x = x.contiguous(memory_format=memory_format)
        with self._autocast():
            y = self.net(x)
        return y.float()


def _configure_tf32(device, allow):
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = allow
        torch.backends.cudnn.allow_tf32 = allow


def resolve_device(device):
    """ "auto" -> cuda when available, else cpu; anything else as torch.device.

    Raises
    ------
    ValueError
        ``device`` is not a device name torch knows (one line).
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None


def bf16_is_fast(device="auto"):
    """True where bfloat16 inference has hardware support: a CUDA device that reports it, or a
    CPU with AMX or AVX-512 BF16 (Linux /proc/cpuinfo). Elsewhere bf16 autocast is emulated and
    slower than float32, so callers choosing a default should stay with float32."""
    device = resolve_device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_dtype(dtype, bf16):
    return describe.resolve_dtype(
        {torch.bfloat16: "bfloat16", torch.float32: "float32"}.get(dtype, dtype), bf16
    )


def load_model(
    kind,
    weights=None,
    *,
    input_repr=None,
    content_type=None,
    embedding_size=512,
    device="cpu",
    dtype="float32",
    bf16=False,
    fold_bn=True,
    channels_last=True,
    allow_tf32=False,
):
    """Load (or fetch from the cache) one tower; see ``featurestore.openl3.load_audio_model``."""
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, bf16)
    if embedding_size not in arch.EMBEDDING_SIZES[kind]:
        raise ValueError(
            f"{kind} embedding_size must be one of {arch.EMBEDDING_SIZES[kind]}, "
            f"got {embedding_size!r}"
        )
    path = weight_files.find_weights(
        kind,
        input_repr=input_repr or "mel256",
        content_type=content_type or "env",
        weights=weights,
    )
    settings = (
        kind,
        input_repr,
        content_type,
        embedding_size,
        str(device),
        dtype,
        fold_bn,
        channels_last,
        allow_tf32,
    )
    return cached_network(
        path,
        settings,
        lambda: _build(
            kind,
            path,
            input_repr=input_repr,
            content_type=content_type,
            embedding_size=embedding_size,
            device=device,
            dtype=dtype,
            fold_bn=fold_bn,
            channels_last=channels_last,
            allow_tf32=allow_tf32,
        ),
    )


def _build(
    kind,
    path,
    *,
    input_repr,
    content_type,
    embedding_size,
    device,
    dtype,
    fold_bn,
    channels_last,
    allow_tf32,
):
    arrays, attrs = weight_files.load_weights(path, kind)
    provenance = describe.describe_model(
        kind,
        path,
        input_repr=input_repr,
        content_type=content_type,
        embedding_size=embedding_size,
        dtype=dtype,
        fold_bn=fold_bn,
        channels_last=channels_last,
        allow_tf32=allow_tf32,
        device=device,
        attrs=attrs,
    )
    input_repr = provenance["input_repr"]
    net = build_network(
        kind, arrays, input_repr=input_repr, embedding_size=embedding_size, fold_bn=fold_bn
    )
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net = net.to(device)
    frontend = Spectrogram(input_repr).to(device) if kind == arch.AUDIO else None
    _configure_tf32(device, allow_tf32)
    return OpenL3Model(
        kind=kind,
        net=net,
        frontend=frontend,
        device=device,
        dtype=dtype,
        channels_last=channels_last,
        allow_tf32=allow_tf32,
        provenance=provenance,
    )


def run_batches(model, items, batch_size):
    """Embed ``items`` (ndarray or tensor, first axis = samples) in chunks -> (N, D) float32."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    out = np.empty((len(items), model.embedding_size), dtype=np.float32)
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        if isinstance(chunk, np.ndarray):
            chunk = torch.from_numpy(np.require(chunk, requirements=["C", "W"]))
        out[start : start + len(chunk)] = model.embed(chunk).cpu().numpy()
    return out
