"""OpenL3 weight files: read (Keras HDF5 weights-only layout), check, find, and write random ones.

The official ``openl3_<audio|image>_<input_repr>_<content_type>.h5`` files are Keras
``save_weights`` files: the root attribute ``layer_names`` lists one group per layer in model
order, and each group's ``weight_names`` attribute lists its arrays in order. Keras assigns the
groups that hold weights to the model's weighted layers **by position**. This reader does the
same and never relies on the groups' names (their numbering differs between Keras versions and
sessions) or on h5py's alphabetical iteration (which puts ``conv2d_10`` before ``conv2d_8``).
Strings may be fixed-length bytes (old Keras, h5py 2) or variable-length str (TF 2.13+).

No torch here: this module is data in, NumPy arrays out.
"""

import importlib.util
import logging
import os
import pathlib
import re

import numpy as np

from featurestore import outputs
from featurestore.errors import WeightsFormatError, WeightsNotFoundError
from featurestore.openl3 import architecture as arch

log = logging.getLogger(__name__)

ENV_VAR = "AVSCENE_OPENL3_WEIGHTS"
RANDOM_ATTR = "avscene_random_weights_seed"  # set only in files written by write_random
INPUT_REPR_ATTR = "avscene_input_repr"
DOWNLOAD_HINT = (
    "get them with `pip install openl3` (its setup downloads them) or download "
    "openl3_<audio|image>_<input_repr>_<content_type>-v0_4_0.h5.gz from "
    "https://github.com/marl/openl3/raw/models/, gunzip, drop the version suffix, "
    f"and point {ENV_VAR} at that directory"
)
_NAME_RE = re.compile(r"openl3_(audio|image)_(linear|mel128|mel256)_(env|music)")


def official_name(kind, input_repr, content_type):
    """File name of an official weight file, e.g. ``openl3_audio_mel256_env.h5``."""
    return f"openl3_{kind}_{input_repr}_{content_type}.h5"


def parse_name(path):
    """(kind, input_repr, content_type) from an official-style file name, or None."""
    match = _NAME_RE.search(pathlib.Path(path).name)
    return match.groups() if match else None


def _text(value):
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _names(attrs, key, where):
    if key not in attrs:
        raise WeightsFormatError(f"{where}: no '{key}' attribute; not a Keras weights file")
    return [_text(v) for v in np.atleast_1d(attrs[key]) if len(_text(v))]


def read_keras_weights(path):
    """The weighted layers of a Keras HDF5 weights file, in ``layer_names`` order.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of (str, list of ndarray)
        (layer name, arrays in ``weight_names`` order) for every layer that has weights.
    dict
        Root attributes (decoded to str where they are strings).
    """
    import h5py

    path = pathlib.Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsFormatError(f"{path}: not a readable HDF5 file ({exc})") from None
    with handle:
        root = handle
        if "layer_names" not in root.attrs and "model_weights" in root:  # full-model file
            root = root["model_weights"]
        layers = []
        for name in _names(root.attrs, "layer_names", path):
            if name not in root:
                raise WeightsFormatError(
                    f"{path}: layer '{name}' is listed in layer_names but has no group"
                )
            group = root[name]
            arrays = []
            for weight in _names(group.attrs, "weight_names", f"{path}:{name}"):
                if weight not in group:
                    raise WeightsFormatError(
                        f"{path}: layer '{name}' lists weight '{weight}' but holds no such dataset"
                    )
                arrays.append(np.asarray(group[weight][()], dtype=np.float32))
            if arrays:
                layers.append((name, arrays))
        attrs = {
            key: (_text(value) if isinstance(value, (bytes, np.bytes_, str)) else value)
            for key, value in handle.attrs.items()
            if key != "layer_names"
        }
    return layers, attrs


def identify(layers):
    """ "audio" or "image" from the input channels of the first kernel (1 or 3), else None."""
    for _, arrays in layers:
        if len(arrays) == 2 and arrays[0].ndim == 4:
            return {1: arch.AUDIO, 3: arch.IMAGE}.get(arrays[0].shape[2])
    return None


def load_weights(path, kind):
    """Read and check a weight file for one tower.

    Returns
    -------
    list of list of ndarray
        One entry per "bn"/"conv" layer of :func:`architecture.layer_specs`, in order:
        conv (kernel (3, 3, in, out), bias (out,)); BN (gamma, beta, moving_mean,
        moving_variance), all float32.
    dict
        The file's root attributes.

    Raises
    ------
    WeightsFormatError
        Wrong network, wrong number of weighted layers, or a shape that differs from the
        architecture; the message names the file, the layer and the shapes.
    """
    layers, attrs = read_keras_weights(path)
    found = identify(layers)
    if found is not None and found != kind:
        raise WeightsFormatError(
            f"{path}: this is an OpenL3 {found} weight file, not the {kind} network's"
        )
    expected = arch.weight_shapes(kind)
    if len(layers) != len(expected):
        raise WeightsFormatError(
            f"{path}: {len(layers)} layers with weights, the OpenL3 {kind} "
            f"network has {len(expected)}"
        )
    for position, ((name, arrays), (op, shapes)) in enumerate(zip(layers, expected)):
        got = [tuple(a.shape) for a in arrays]
        if got != shapes:
            what = {
                "conv": "Conv2D (kernel, bias)",
                "bn": "BatchNormalization (gamma, beta, mean, variance)",
            }[op]
            raise WeightsFormatError(
                f"{path}: layer '{name}' (weighted layer {position + 1} of "
                f"{len(expected)}) has shapes {got}; expected {what} {shapes}"
            )
    return [arrays for _, arrays in layers], attrs


def find_weights(kind, *, input_repr="mel256", content_type="env", weights=None):
    """Locate an official weight file.

    Looks in order at: ``weights`` if it is a file; ``weights/<official name>`` if it is a
    directory; ``$AVSCENE_OPENL3_WEIGHTS/<official name>``; the directory of an installed
    ``openl3`` package (found with importlib, not imported).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    WeightsNotFoundError
        With a one-line message saying where it looked and how to get the files.
    """
    name = official_name(kind, input_repr, content_type)
    if weights is not None:  # explicit: never fall back to anything else
        weights = pathlib.Path(weights).expanduser()
        if weights.is_file():
            return weights
        if not weights.is_dir():
            raise WeightsNotFoundError(f"{weights}: no such weight file or directory")
        candidates, unavailable = [weights / name], []
    else:
        candidates, unavailable = [], []
        if os.environ.get(ENV_VAR):
            candidates.append(pathlib.Path(os.environ[ENV_VAR]).expanduser() / name)
        else:
            unavailable.append(f"${ENV_VAR} (unset)")
        spec = importlib.util.find_spec("openl3")
        if spec is not None and spec.submodule_search_locations:
            candidates += [pathlib.Path(p) / name for p in spec.submodule_search_locations]
        else:
            unavailable.append("an installed openl3 package (none)")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join([str(c) for c in candidates] + unavailable)
    raise WeightsNotFoundError(
        f"OpenL3 weights {name} not found (looked at: {looked}); {DOWNLOAD_HINT}"
    )


def random_arrays(kind, *, seed):
    """Seeded random weights of the right shapes (He-normal kernels, plausible BN statistics).

    The values are meaningless: for tests and demos only.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for position, (op, shapes) in enumerate(arch.weight_shapes(kind)):
        if op == "conv":
            fan_in = shapes[0][0] * shapes[0][1] * shapes[0][2]
            arrays.append(
                [rng.normal(0, np.sqrt(2.0 / fan_in), shapes[0]), rng.normal(0, 0.05, shapes[1])]
            )
        else:
            (channels,) = shapes[0]
            if position == 0 and kind == arch.AUDIO:  # input BN sees dB values in [-80, 0]
                mean, var = rng.normal(-25, 5, channels), rng.uniform(300, 600, channels)
            elif position == 0:  # image input in [-1, 1]
                mean, var = rng.normal(0, 0.1, channels), rng.uniform(0.1, 0.4, channels)
            else:
                mean, var = rng.normal(0.5, 0.2, channels), rng.uniform(0.5, 2.0, channels)
            arrays.append(
                [rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.2, channels), mean, var]
            )
    return [[np.asarray(a, dtype=np.float32) for a in group] for group in arrays]


def write_keras_weights(
    path, kind, arrays, *, layer_names=None, text="bytes", top_level_group=False, attrs=None
):
    """Write weights in the official Keras weights-only HDF5 layout.

    Parameters
    ----------
    path : str or Path
    kind : "audio" or "image"
    arrays : list of list of ndarray
        As returned by :func:`load_weights`.
    layer_names : list of str, optional
        Names of all layers in model order (default: :func:`architecture.keras_layer_names`).
    text : "bytes" or "str"
        Fixed-length byte strings (as in the official files) or variable-length str
        (as TF 2.13+ writes them).
    top_level_group : bool
        Add Keras 2.13+'s empty ``top_level_model_weights`` group.
    attrs : dict, optional
        Extra root attributes.
    """
    import h5py

    names = list(layer_names or arch.keras_layer_names(kind))
    specs = arch.layer_specs(kind)
    if len(names) != len(specs) + 1:
        raise ValueError(
            f"need {len(specs) + 1} layer names for the {kind} network, got {len(names)}"
        )
    suffixes = {
        "conv": ["kernel:0", "bias:0"],
        "bn": ["gamma:0", "beta:0", "moving_mean:0", "moving_variance:0"],
    }

    def strings(values):
        if text == "bytes":
            width = max(map(len, values), default=1)
            return np.array([v.encode() for v in values], dtype=f"S{width}")
        return np.array(values, dtype=h5py.string_dtype())

    weighted = iter(arrays)
    with outputs.atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        handle.attrs["layer_names"] = strings(names)
        for key, value in (("backend", "tensorflow"), ("keras_version", "2.15.0")):
            handle.attrs[key] = np.bytes_(value) if text == "bytes" else value
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
        for name, spec in zip(names, (("input",),) + specs):
            group = handle.create_group(name)
            if spec[0] not in suffixes:
                group.attrs["weight_names"] = np.zeros((0,), dtype=np.float64)
                continue
            weight_names = [f"{name}/{suffix}" for suffix in suffixes[spec[0]]]
            group.attrs["weight_names"] = strings(weight_names)
            for weight_name, value in zip(weight_names, next(weighted)):
                group.create_dataset(weight_name, data=np.asarray(value, dtype=np.float32))
        if top_level_group:
            handle.create_group("top_level_model_weights").attrs["weight_names"] = np.zeros(
                (0,), dtype=np.float64
            )
    return pathlib.Path(path)


def write_random(path, *, kind="audio", seed=0, input_repr=None):
    """Write seeded RANDOM weights in the official layout (tests and demos only).

    The file carries the root attribute ``avscene_random_weights_seed``; loading it logs a
    WARNING and the model's provenance reports ``random_weights: seed``.
    """
    if kind not in arch.KINDS:
        raise ValueError(f"kind must be one of {arch.KINDS}, got {kind!r}")
    if input_repr is not None and input_repr not in arch.INPUT_REPRS:
        raise ValueError(f"input_repr must be one of {arch.INPUT_REPRS}, got {input_repr!r}")
    attrs = {RANDOM_ATTR: int(seed)}
    if input_repr is not None:
        attrs[INPUT_REPR_ATTR] = input_repr
    log.warning(
        "writing RANDOM OpenL3 %s weights (seed %d) to %s: embeddings made with them "
        "are meaningless",
        kind,
        seed,
        path,
    )
    return write_keras_weights(path, kind, random_arrays(kind, seed=seed), attrs=attrs)
