"""What a loaded OpenL3 tower will be, known without torch: its provenance from the weight file.

:func:`describe_model` settles the model options (explicit value, else the file's attribute or
name, else the default) and returns the JSON provenance that
:func:`featurestore.openl3.load_audio_model` / ``load_image_model`` attach to the model. The
extraction job declares a feature with it before any network is loaded.
"""

import logging

import numpy as np

from featurestore.errors import WeightsFormatError
from featurestore.openl3 import architecture as arch
from featurestore.openl3 import weights as weight_files
from featurestore.provenance import sha256_file

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16")
SAMPLE_RATE = 48000
WINDOW = 48000
HOP = 242

#: (n_fft, n_mels or None for linear, pad_end) per input representation.
FRONTENDS = {
    "linear": (512, None, False),
    "mel128": (2048, 128, True),
    "mel256": (2048, 256, True),
}


def frontend_parameters(input_repr):
    """JSON-able description of the audio frontend, for provenance."""
    n_fft, n_mels, pad_end = FRONTENDS[input_repr]
    return {
        "sample_rate": SAMPLE_RATE,
        "window_samples": WINDOW,
        "n_fft": n_fft,
        "stft_hop": HOP,
        "stft_window": "hann (periodic)",
        "pad_end": pad_end,
        "n_mels": n_mels,
        "mel_scale": "slaney" if n_mels else None,
        "fmin": 0.0 if n_mels else None,
        "fmax": SAMPLE_RATE / 2 if n_mels else None,
        "db": "10*log10(max(S, 1e-10)) - max over window, floor -80",
        "resampler": "resampy 0.2.2 kaiser_best (featurestore.resample)",
    }


def resolve_dtype(dtype, bf16):
    """ "float32" or "bfloat16" from a dtype name (or torch dtype) and the bf16 shorthand."""
    if bf16:
        dtype = "bfloat16"
    dtype = {"bf16": "bfloat16", "fp32": "float32"}.get(dtype, dtype)
    dtype = {"torch.bfloat16": "bfloat16", "torch.float32": "float32"}.get(str(dtype), dtype)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return dtype


def settle(name, given, from_file, default, path, choices):
    """A model option: explicit value, else the file's, else the default; conflicts are errors."""
    if given is not None and given not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {given!r}")
    if given is not None and from_file is not None and given != from_file:
        raise WeightsFormatError(
            f"{path}: the file is for {name}={from_file!r}, but {name}={given!r} was asked for"
        )
    return given or from_file or default


def file_attributes(path):
    """Root attributes of an OpenL3 weight file (strings decoded), without reading arrays."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return {
                key: (
                    weight_files._text(value)
                    if isinstance(value, (bytes, np.bytes_, str))
                    else value
                )
                for key, value in handle.attrs.items()
                if key != "layer_names"
            }
    except OSError as exc:
        raise WeightsFormatError(f"{path}: not a readable HDF5 file ({exc})") from None


def describe_model(
    kind,
    path,
    *,
    input_repr=None,
    content_type=None,
    embedding_size=512,
    dtype="float32",
    fold_bn=True,
    channels_last=True,
    allow_tf32=False,
    device="cpu",
    attrs=None,
    warn=True,
):
    """The provenance of the OpenL3 ``kind`` tower loaded from ``path`` with these options.

    Returns
    -------
    dict
        JSON-able: model, input_repr, content_type, embedding_size, weights path and sha256,
        random_weights seed (or None), dtype, fold_bn, channels_last, allow_tf32, device,
        bn_epsilon, frontend, reference.
    """
    attrs = file_attributes(path) if attrs is None else attrs
    named = weight_files.parse_name(path)
    named_kind, named_repr, named_content = named if named else (None, None, None)
    if named_kind not in (None, kind):
        raise WeightsFormatError(
            f"{path}: the file name says {named_kind}, but the {kind} network was asked for"
        )
    input_repr = settle(
        "input_repr",
        input_repr,
        attrs.get(weight_files.INPUT_REPR_ATTR) or named_repr,
        "mel256",
        path,
        arch.INPUT_REPRS,
    )
    content_type = settle(
        "content_type", content_type, named_content, "env", path, arch.CONTENT_TYPES
    )
    random_seed = attrs.get(weight_files.RANDOM_ATTR)
    if random_seed is not None:
        random_seed = int(random_seed)
        if warn:
            log.warning(
                "OpenL3 %s weights %s are RANDOM (seed %d): embeddings are meaningless",
                kind,
                path,
                random_seed,
            )
    return {
        "model": f"openl3_{kind}",
        "input_repr": input_repr,
        "content_type": content_type,
        "embedding_size": embedding_size,
        "weights_path": str(path),
        "weights_sha256": sha256_file(path),
        "random_weights": random_seed,
        "dtype": dtype,
        "fold_bn": fold_bn,
        "channels_last": channels_last,
        "allow_tf32": allow_tf32,
        "device": str(device),
        "bn_epsilon": arch.BN_EPSILON,
        "frontend": frontend_parameters(input_repr)
        if kind == arch.AUDIO
        else {
            "short_side": 256,
            "crop": 224,
            "resize": "bilinear, no antialiasing",
            "scaling": "openl3 0.4.2 ([-1, 1] only for exact 224x224 input, else [0, 1])",
        },
        "reference": "openl3 0.4.2 (kapre 0.3.7 frontend)",
    }
