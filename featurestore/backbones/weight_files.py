"""Backbone weight files: read without unpickling objects, unwrap, check, and write random ones.

A file is read with ``torch.load(path, weights_only=True)`` (PyTorch's restricted loader: tensors,
containers and plain numbers only, no arbitrary objects) or, for ``.safetensors``, with
safetensors. The state dict is then unwrapped: a ``{"state_dict": ...}`` or ``{"model": ...}``
wrapper (Places365, PANNs) is opened and a ``module.`` prefix on every key (a checkpoint saved
from ``DataParallel``, as Places365's is) is dropped. :func:`check_state` compares keys and
shapes with the architecture and names the first difference.

Random weights (:func:`random_state`, :func:`write_random`) are seeded NumPy arrays in the
official layout, written with ``torch.save`` plus the key ``avscene_random_weights_seed``; a
file carrying that key loads with a WARNING and ``random_weights: seed`` in the provenance.
"""

import logging
import pathlib
import zipfile

import numpy as np

from featurestore import outputs
from featurestore.errors import WeightsFormatError, WeightsNotFoundError

LOG = logging.getLogger(__name__)

RANDOM_KEY = "avscene_random_weights_seed"
WRAPPERS = ("state_dict", "model")


def read_checkpoint(path):
    """The object stored in a weight file (dict of tensors, possibly wrapped), read safely."""
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: no such weight file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as error:  # safetensors raises its own error types
            raise WeightsFormatError(
                f"{path}: not a readable safetensors file ({error})"
            ) from None
    import torch

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("constants.pkl") for name in archive.namelist()):
                raise WeightsFormatError(
                    f"{path}: a TorchScript archive, not a state dict; use the state-dict file "
                    f"of the same weights (e.g. open_clip's open_clip_pytorch_model.bin)"
                )
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # pickle and zip errors of all kinds
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsFormatError(f"{path}: not a weights-only PyTorch file ({text})") from None


def unwrap(obj, path):
    """``(state dict, random seed or None, wrapper key or None)`` of a checkpoint object."""
    if not isinstance(obj, dict):
        raise WeightsFormatError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    obj = dict(obj)
    seed = obj.pop(RANDOM_KEY, None)
    wrapper = next((key for key in WRAPPERS if isinstance(obj.get(key), dict)), None)
    state = dict(obj[wrapper]) if wrapper else obj
    if seed is None:
        seed = state.pop(RANDOM_KEY, None)
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    if seed is not None:
        seed = int(seed)
    return state, seed, wrapper


def check_state(state, shapes, path, *, what):
    """Raise WeightsFormatError unless ``state`` has exactly the keys and shapes of ``shapes``."""
    import torch

    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    missing = [key for key in shapes if key not in tensors]
    unexpected = [key for key in tensors if key not in shapes]
    if missing or unexpected:
        first = f"no {missing[0]!r}" if missing else f"an unexpected {unexpected[0]!r}"
        raise WeightsFormatError(
            f"{path}: not {what} weights: {first} ({len(missing)} keys "
            f"missing, {len(unexpected)} unexpected)"
        )
    for key, shape in shapes.items():
        if tuple(tensors[key].shape) != tuple(shape):
            raise WeightsFormatError(
                f"{path}: {key} has shape {tuple(tensors[key].shape)}; {what} needs {tuple(shape)}"
            )
    return tensors


def warn_random(what, path, seed):
    if seed is not None:
        LOG.warning(
            "%s weights %s are RANDOM (seed %d): embeddings are meaningless", what, path, seed
        )


def random_state(template, *, seed):
    """Seeded random arrays with the keys, shapes and dtypes of ``template`` (a state dict).

    Kernels and matrices normal with standard deviation ``sqrt(1 / fan_in)`` (He's factor 2
    makes deep residual stacks grow by orders of magnitude); norm scales around 1 and shifts
    around 0; BatchNorm statistics plausible (mean ~ 0, variance 0.5..1.5); integer buffers 0.
    The values are meaningless: for tests and demos only.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for key, tensor in template.items():
        shape = tuple(tensor.shape)
        if not tensor.is_floating_point():
            out[key] = np.zeros(shape, np.int64)
            continue
        if key.endswith("running_mean"):
            values = 0.1 * _normal(rng, shape)
        elif key.endswith("running_var"):
            values = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            values = np.float32(np.sqrt(1.0 / fan_in)) * _normal(rng, shape)
        elif key.endswith("weight") and _is_norm(key, template):
            values = rng.uniform(0.8, 1.2, shape).astype(np.float32)
        else:
            values = 0.05 * _normal(rng, shape)
        out[key] = np.asarray(values, dtype=np.float32)
    return out


def _normal(rng, shape):
    return rng.standard_normal(shape, dtype=np.float32)


def _is_norm(key, template):
    """A 1-d ``weight`` that scales a normalisation (it has a bias beside it, and no kernel)."""
    stem = key[: -len("weight")]
    return (stem + "bias") in template and template[key].ndim == 1


def write_random(path, template, *, seed, what, wrapper=None, extra=None):
    """Write seeded RANDOM weights in the layout of ``template`` to ``path`` (torch.save).

    ``wrapper`` nests the state dict under that key (``{"model": ...}`` as PANNs does);
    ``extra`` adds fixed arrays (e.g. a frontend's buffers) to the state dict.

    Returns
    -------
    pathlib.Path
    """
    import torch

    arrays = random_state(template, seed=seed)
    arrays.update(extra or {})
    state = {key: torch.from_numpy(np.array(value, order="C")) for key, value in arrays.items()}
    obj = {wrapper: state, RANDOM_KEY: int(seed)} if wrapper else {**state, RANDOM_KEY: int(seed)}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    LOG.warning(
        "writing RANDOM %s weights (seed %d) to %s: embeddings made with them are meaningless",
        what,
        seed,
        path,
    )
    with outputs.atomic_path(path) as temporary:
        torch.save(obj, str(temporary))
    return path
