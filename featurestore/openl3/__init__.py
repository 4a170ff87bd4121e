"""OpenL3 in PyTorch: the official weights, the numbers of openl3 0.4.2, batched inference.

Single clips and images::

    from featurestore import openl3
    m = openl3.load_audio_model(weights, device="cpu")
    emb, ts = openl3.audio_embeddings(audio, sr, model=m, hop_size=0.1, center=True)
    im = openl3.load_image_model(weights, device="cpu")
    emb = openl3.image_embeddings(images, model=im)

Batching across clips (the extraction job): per clip, in a worker process and without torch,
``frame_audio`` (windows + timestamps) and ``preprocess_images`` (network-ready frames); then,
in the process that owns the device, ``embed_audio_frames`` / ``embed_images`` on windows or
frames stacked from many clips (or on a list of per-clip arrays, which returns a list).

Importing this package does not import torch: the functions that load or run a network do.
Weights: an explicit file or directory, ``$AVSCENE_OPENL3_WEIGHTS``, or the ``.h5`` files of an
installed ``openl3`` package (see :func:`find_weights`). Random weights exist only through
:func:`random_weights_file`, and models loaded from such files say so (log WARNING,
``provenance["random_weights"]``).
"""

import numpy as np

from featurestore.openl3.architecture import CONTENT_TYPES, EMBEDDING_SIZES, INPUT_REPRS
from featurestore.openl3.framing import count_windows, frame_audio
from featurestore.openl3.image import preprocess_images
from featurestore.openl3.weights import ENV_VAR, find_weights, official_name

__all__ = [
    "CONTENT_TYPES",
    "EMBEDDING_SIZES",
    "ENV_VAR",
    "INPUT_REPRS",
    "audio_embeddings",
    "bf16_is_fast",
    "count_windows",
    "embed_audio_frames",
    "embed_images",
    "find_weights",
    "frame_audio",
    "image_embeddings",
    "load_audio_model",
    "load_image_model",
    "official_name",
    "preprocess_images",
    "random_weights_file",
    "random_weights_folder",
    "spectrogram",
]


def load_audio_model(
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
    """Load the OpenL3 audio network (cached: same arguments give the same object).

    Parameters
    ----------
    weights : str or Path or None
        An official-layout ``.h5`` file, a directory holding ``openl3_audio_<input_repr>_
        <content_type>.h5``, or None to search ``$AVSCENE_OPENL3_WEIGHTS`` and an installed
        ``openl3`` package.
    input_repr : "linear", "mel128", "mel256" or None
        None: from the file name (``openl3_audio_<repr>_...``), else "mel256". The ``.h5`` holds
        no hyper-parameters and all three share the same weight shapes; a value that
        contradicts the file name is an error.
    content_type : "env", "music" or None
        Same architecture; only the weights differ. Recorded in the provenance.
    embedding_size : 512 or 6144
    device : "cpu", "cuda", "cuda:1", "auto" (cuda when available), ...
    dtype : "float32" or "bfloat16"
        bfloat16 runs the convolutions under autocast (CPU AMX, GPU); the frontend stays float32.
    bf16 : bool
        Shorthand for ``dtype="bfloat16"``.
    fold_bn, channels_last : bool
        Fold BatchNorm into the convolutions / use the channels-last memory layout (same
        numbers within float rounding, faster). False, False is the plain eager network.
    allow_tf32 : bool
        On CUDA, TF32 matmuls and convolutions are switched off unless this is True.

    Returns
    -------
    OpenL3Model
        ``.provenance`` is a JSON-able dict (input_repr, content_type, embedding_size,
        weights path and sha256, frontend parameters, dtype, random_weights seed or None).
    """
    from featurestore.openl3.models import load_model

    return load_model(
        "audio",
        weights,
        input_repr=input_repr,
        content_type=content_type,
        embedding_size=embedding_size,
        device=device,
        dtype=dtype,
        bf16=bf16,
        fold_bn=fold_bn,
        channels_last=channels_last,
        allow_tf32=allow_tf32,
    )


def load_image_model(
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
    """Load the OpenL3 image network (cached); options as :func:`load_audio_model`.

    ``embedding_size`` is 512 or 8192. ``input_repr`` / ``content_type`` name the audio model
    the image tower was trained with (they select the file; the architecture is the same).
    """
    from featurestore.openl3.models import load_model

    return load_model(
        "image",
        weights,
        input_repr=input_repr,
        content_type=content_type,
        embedding_size=embedding_size,
        device=device,
        dtype=dtype,
        bf16=bf16,
        fold_bn=fold_bn,
        channels_last=channels_last,
        allow_tf32=allow_tf32,
    )


def bf16_is_fast(device="auto"):
    """True where bfloat16 inference has hardware support (AMX / AVX-512 BF16 CPU, CUDA);
    elsewhere bf16 is emulated and slower than float32."""
    from featurestore.openl3.models import bf16_is_fast as check

    return check(device)


def _split(items, model, batch_size):
    """Embed one array, or a list of arrays stacked into one batch and split again (a list)."""
    from featurestore.openl3.models import run_batches

    if not isinstance(items, (list, tuple)):
        return run_batches(model, items, batch_size)
    counts = [len(item) for item in items]
    stacked = run_batches(model, np.concatenate([np.asarray(i) for i in items]), batch_size)
    return np.split(stacked, np.cumsum(counts)[:-1])


def _check_kind(model, kind):
    if getattr(model, "kind", None) != kind:
        raise TypeError(f"need an OpenL3 {kind} model (from load_{kind}_model), got {model!r}")


def embed_audio_frames(frames, *, model, batch_size=32):
    """Embed windows from :func:`frame_audio` (of one clip or stacked from many).

    Parameters
    ----------
    frames : ndarray or torch.Tensor, shape (n_windows, 48000), or a list of such arrays
    model : OpenL3Model from :func:`load_audio_model`
    batch_size : int
        Windows per network call (memory vs. speed; values do not depend on it).

    Returns
    -------
    ndarray, shape (n_windows, embedding_size), float32; a list of them for a list input
    """
    _check_kind(model, "audio")
    return _split(frames, model, batch_size)


def embed_images(batch, *, model, batch_size=32):
    """Embed frames from :func:`preprocess_images` (of one clip or stacked from many).

    Parameters
    ----------
    batch : ndarray or torch.Tensor, shape (N, 224, 224, 3), float32, or a list of such arrays
    model : OpenL3Model from :func:`load_image_model`

    Returns
    -------
    ndarray, shape (N, embedding_size), float32; a list of them for a list input
    """
    _check_kind(model, "image")
    return _split(batch, model, batch_size)


def audio_embeddings(audio, sr, *, model=None, hop_size=0.1, center=True, batch_size=32):
    """OpenL3 audio embeddings of one clip, as ``openl3.get_audio_embedding`` (0.4.2).

    Parameters
    ----------
    audio : ndarray, shape (n,) or (n, channels), float32 or float64
    sr : float
        Sample rate; other rates than 48 kHz are resampled as openl3 does.
    model : OpenL3Model or None
        None loads the default (mel256, env, 512) audio model via :func:`find_weights`.
    hop_size : float
        Seconds between windows.
    center : bool
        Timestamps at window centres (True) or starts (False).

    Returns
    -------
    embeddings : ndarray, shape (n_windows, embedding_size), float32
    timestamps : ndarray, shape (n_windows,), float64 seconds
    """
    model = load_audio_model() if model is None else model
    _check_kind(model, "audio")
    windows, timestamps = frame_audio(audio, sr, hop_size=hop_size, center=center)
    return embed_audio_frames(windows, model=model, batch_size=batch_size), timestamps


def image_embeddings(images, *, model=None, batch_size=32, scaling="openl3"):
    """OpenL3 image embeddings, as ``openl3.get_image_embedding`` (0.4.2).

    Parameters
    ----------
    images : ndarray, shape (H, W, 3) or (N, H, W, 3), uint8; or a list of such arrays (each
        preprocessed as its own batch, as openl3 does; returns a list)
    model : OpenL3Model or None
        None loads the default (mel256, env, 512) image model.
    scaling : "openl3" or "paper"
        See :func:`preprocess_images`.

    Returns
    -------
    ndarray, shape (N, embedding_size), float32 (a list of them for a list input)
    """
    model = load_image_model() if model is None else model
    _check_kind(model, "image")
    if isinstance(images, (list, tuple)):
        return embed_images(
            [preprocess_images(i, scaling=scaling) for i in images],
            model=model,
            batch_size=batch_size,
        )
    return embed_images(
        preprocess_images(images, scaling=scaling), model=model, batch_size=batch_size
    )


def spectrogram(frames, *, model=None, input_repr="mel256", db=True):
    """The frontend alone: windows (N, 48000) -> float32 ndarray (N, 1, bands, frames) in dB
    (``db=False``: (N, bands, frames) before dB, i.e. the mel magnitude). For inspection/tests.
    """
    import torch

    from featurestore.openl3.frontend import Spectrogram

    frontend = model.frontend if model is not None else Spectrogram(input_repr)
    device = model.device if model is not None else torch.device("cpu")
    with torch.inference_mode():
        x = torch.as_tensor(np.ascontiguousarray(frames), dtype=torch.float32, device=device)
        y = frontend(x) if db else frontend.mel_magnitude(x)
    return y.cpu().numpy()


def random_weights_file(path, *, kind="audio", input_repr=None, seed=0):
    """Write seeded RANDOM weights in the official layout, for tests and demos only.

    The file loads through the normal path; the loaded model logs a WARNING and reports
    ``provenance["random_weights"] = seed``. Embeddings made with it are meaningless.

    Returns
    -------
    pathlib.Path
    """
    from featurestore.openl3.weights import write_random

    return write_random(path, kind=kind, seed=seed, input_repr=input_repr)


_RANDOM_FOLDERS: dict = {}


def random_weights_folder(seed, *, folder=None):
    """A folder holding seeded RANDOM audio and image weights under their official names.

    With ``folder`` the files are written there; without, into a temporary folder made once per
    process and seed (removed when the process exits), so that every caller of one process
    shares one set of files.

    Returns
    -------
    pathlib.Path
    """
    import atexit
    import pathlib
    import shutil
    import tempfile

    if folder is None:
        if seed not in _RANDOM_FOLDERS:
            made = pathlib.Path(tempfile.mkdtemp(prefix="avscene-weights-"))
            atexit.register(shutil.rmtree, made, ignore_errors=True)
            _RANDOM_FOLDERS[seed] = random_weights_folder(seed, folder=made)
        return _RANDOM_FOLDERS[seed]
    folder = pathlib.Path(folder)
    for kind in ("audio", "image"):
        random_weights_file(folder / official_name(kind, "mel256", "env"), kind=kind, seed=seed)
    return folder
