"""Any HEAR-API audio module as an extractor (``--features hear:<module>``).

The HEAR 2021 API: a Python module with ``load_model(model_file_path) -> model`` (a
``torch.nn.Module`` with ``sample_rate`` and ``timestamp_embedding_size``) and
``get_timestamp_embeddings(audio, model) -> (embeddings, timestamps)``, where ``audio`` is a
float32 tensor (n_sounds, n_samples) of mono audio in [-1, 1] at ``model.sample_rate``, all
sounds of one call of the same length, ``embeddings`` is (n_sounds, n_timestamps,
timestamp_embedding_size) and ``timestamps`` (n_sounds, n_timestamps) are the **centres** of the
embedded frames in **milliseconds** from the start of the sound.

Here each clip is one sound: the worker resamples the clip's mono 48 kHz audio to the module's
rate (resampy 0.2.2 ``kaiser_best``, as for OpenL3; no torch in the worker), the device process
calls the module on the clips of a batch grouped by length, and row j of a clip gets the
timestamp ``timestamps[j] / 1000`` seconds on the store's clock (seconds from the clip start).
The module is imported by name when the extractor is built (to learn its rate, dimension and
frame rate from one call on 2 s of silence) and in the process that owns the device; the
decoding workers never import it. The params record the module, its version (``__version__``
or its distribution's), the weight file's sha256 and the dtype.
"""

import functools
import importlib
import logging
import pathlib
import threading
from importlib import metadata

import numpy as np

from featurestore import __version__
from featurestore.errors import ProvenanceMismatchError, UsageError, WeightsNotFoundError
from featurestore.extractors.interface import AUDIO, Extractor, FeatureInput
from featurestore.provenance import sha256_file

LOG = logging.getLogger(__name__)

#: Clips per call of ``get_timestamp_embeddings``.
CLIPS_PER_BATCH = 4
#: Seconds of silence the module is probed with when the extractor is built.
PROBE_SECONDS = 2.0
TIMESTAMPS = "centre of frame j as the module reports it (HEAR: milliseconds) / 1000"

_MODELS: dict = {}
_LOCK = threading.Lock()


def import_module(module):
    """Import a HEAR module by name; UsageError when it is missing or lacks the API."""
    try:
        imported = importlib.import_module(module)
    except ImportError as error:
        raise UsageError(f"hear:{module}: cannot import the module ({error})") from None
    missing = [
        f
        for f in ("load_model", "get_timestamp_embeddings")
        if not callable(getattr(imported, f, None))
    ]
    if missing:
        raise UsageError(f"hear:{module}: not a HEAR module (no {', '.join(missing)})")
    return imported


def module_version(module, imported):
    """The module's ``__version__``, else its top-level distribution's version, else None."""
    version = getattr(imported, "__version__", None)
    if version is not None:
        return str(version)
    top = module.split(".")[0]
    for distribution in metadata.packages_distributions().get(top, []):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def load_model(module, path, device, dtype):
    """``(imported module, model on device)``, cached per process."""
    key = (module, path, str(device), dtype)
    with _LOCK:
        if key not in _MODELS:
            import torch

            imported = import_module(module)
            model = imported.load_model(path or "")
            if isinstance(model, torch.nn.Module):
                model = model.to(device).eval()
            _MODELS[key] = (imported, model)
        return _MODELS[key]


def embed_sounds(imported, model, sounds, *, device, dtype):
    """Run ``get_timestamp_embeddings`` on equal-length sounds (n, samples) float32.

    Returns
    -------
    list of (values (rows, dim) float32, timestamps (rows,) float64 seconds)
    """
    import contextlib

    import torch

    audio = torch.from_numpy(np.ascontiguousarray(np.stack(sounds), dtype=np.float32))
    cast = (
        torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
        if dtype == "bfloat16"
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), cast:
        embeddings, stamps = imported.get_timestamp_embeddings(audio.to(device), model)
    embeddings = embeddings.float().cpu().numpy()
    stamps = stamps.double().cpu().numpy()
    if (
        embeddings.ndim != 3
        or stamps.shape != embeddings.shape[:2]
        or len(embeddings) != len(sounds)
    ):
        raise RuntimeError(
            f"{imported.__name__}.get_timestamp_embeddings returned shapes "
            f"{embeddings.shape} and {stamps.shape} for {len(sounds)} sounds"
        )
    return [(values, times / 1000.0) for values, times in zip(embeddings, stamps)]


def hear_extractor(module, *, weights=None, bf16=False):
    """The extractor of HEAR module ``module`` with the weight file ``weights`` (or none).

    Returns
    -------
    Extractor
        Named ``hear-<module>`` in the store.
    """
    import torch

    path = "" if weights is None else str(pathlib.Path(weights).expanduser())
    if path and not pathlib.Path(path).exists():
        raise WeightsNotFoundError(f"hear:{module}: weight file {path} not found")
    dtype = "bfloat16" if bf16 else "float32"
    imported, model = load_model(module, path, torch.device("cpu"), dtype)
    rate = int(model.sample_rate)
    dim = int(model.timestamp_embedding_size)
    probe = np.zeros(int(PROBE_SECONDS * rate), np.float32)
    values, stamps = embed_sounds(imported, model, [probe], device="cpu", dtype=dtype)[0]
    if values.shape[1] != dim or len(stamps) == 0:
        raise UsageError(
            f"hear:{module}: {PROBE_SECONDS:g} s of audio gave embeddings of shape "
            f"{values.shape}; timestamp_embedding_size says {dim}"
        )
    hop = float(np.median(np.diff(stamps))) if len(stamps) > 1 else PROBE_SECONDS
    frame_rate = 1.0 / hop if hop > 0 else len(stamps) / PROBE_SECONDS
    params = {
        "feature": f"hear:{module}",
        "module": module,
        "module_version": module_version(module, imported),
        "weights_sha256": sha256_file(path) if path and pathlib.Path(path).is_file() else None,
        "sample_rate": rate,
        "dim": dim,
        "dtype": dtype,
        "resample": "resampy 0.2.2 kaiser_best from mono 48 kHz (featurestore.resample)",
        "mixdown": "mean (float32)",
        "timestamps": TIMESTAMPS,
        "avscene": __version__,
    }
    return Extractor(
        name=f"hear-{module}",
        modality=AUDIO,
        frame_rate=frame_rate,
        timestamps=TIMESTAMPS,
        dim=dim,
        params=params,
        prepare=functools.partial(prepare_sound, rate=rate),
        load=functools.partial(load_hear, module, path, dtype, params["weights_sha256"]),
        batch_items=CLIPS_PER_BATCH,
        info={"weights_path": path},
    )


def hear_feature(name, *, weights=None, bf16=False, **options):
    """The catalog's factory of ``hear:<module>`` (see :func:`hear_extractor`)."""
    return hear_extractor(name.partition(":")[2], weights=weights, bf16=bf16)


def prepare_sound(audio, clip, *, rate):
    """The clip at the module's rate, one item; the model says the rows and timestamps."""
    return FeatureInput([audio.at(rate)])


def load_hear(module, path, dtype, sha256, *, device, batch):
    """``embed``: clips of a batch grouped by length, one call per group."""
    from featurestore.openl3.models import resolve_device

    if sha256 is not None and sha256_file(path) != sha256:
        raise ProvenanceMismatchError(
            f"hear:{module}: {path} differs from the weight file the feature was declared with"
        )
    device = resolve_device(device)
    imported, model = load_model(module, path, device, dtype)

    def run(slices):
        sounds = [sound for chunk in slices for sound in chunk]
        out = [None] * len(sounds)
        by_length = {}
        for index, sound in enumerate(sounds):
            by_length.setdefault(len(sound), []).append(index)
        for indices in by_length.values():
            for index, result in zip(
                indices,
                embed_sounds(
                    imported, model, [sounds[i] for i in indices], device=device, dtype=dtype
                ),
            ):
                out[index] = result
        return out

    return run
