"""The DCASE 2021 Task 1B baseline's trained networks as fitted avscene estimators.

The baseline repository ships PyTorch state dicts of its ``l3_dense`` networks (a module with
one ``nn.Sequential`` named ``model``: keys ``model.0.weight`` ... ``model.12.bias``) and of the
proposed fusion head ``l3_combine`` (``model.0`` Linear(256, 128), ``model.1`` Linear(128, 10)).
:func:`l3_dense_classifier` and :func:`proposed_fusion` check every key and shape of such a
state dict (given as numpy arrays, e.g. from :func:`classifiers.dcase_networks.read_state_dict`)
against the architecture and return fitted estimators (the numpy forward pass of
:mod:`classifiers.dcase_networks`, as for networks avscene trains). Output column k is the baseline's
class index k.
"""

import numpy as np

from classifiers.fusion import ProposedFusion
from classifiers.mlp import baseline_network
from featurestore.errors import CheckpointError

#: Widths of ``l3_dense``'s hidden layers.
L3_DENSE_HIDDEN = (512, 128, 64)
#: Hidden width of ``l3_combine`` and the modules of each branch it reads.
HEAD_HIDDEN, TRUNK_MODULES = 128, 5
_BATCHNORM = ("weight", "bias", "running_mean", "running_var")


def l3_dense_shapes(in_dim, n_classes):
    """``{key: shape}`` of an ``l3_dense(in_dim, n_classes)`` state dict."""
    shapes, width = {}, in_dim
    for block, size in enumerate(L3_DENSE_HIDDEN):
        linear, norm = 4 * block, 4 * block + 1
        shapes[f"model.{linear}.weight"], shapes[f"model.{linear}.bias"] = (size, width), (size,)
        shapes.update({f"model.{norm}.{name}": (size,) for name in _BATCHNORM})
        shapes[f"model.{norm}.num_batches_tracked"] = ()
        width = size
    last = 4 * len(L3_DENSE_HIDDEN)
    shapes[f"model.{last}.weight"], shapes[f"model.{last}.bias"] = (n_classes, width), (n_classes,)
    return shapes


def head_shapes(in_dim, n_classes):
    """``{key: shape}`` of an ``l3_combine(in_dim, n_classes)`` state dict."""
    return {
        "model.0.weight": (HEAD_HIDDEN, in_dim),
        "model.0.bias": (HEAD_HIDDEN,),
        "model.1.weight": (n_classes, HEAD_HIDDEN),
        "model.1.bias": (n_classes,),
    }


def check_state(state, shapes, *, path, what):
    """CheckpointError (one line naming ``path`` and the key) unless ``state`` has exactly the
    keys of ``shapes``, with those shapes and finite values."""
    missing = [key for key in shapes if key not in state]
    if missing:
        raise CheckpointError(
            f"{path}: key {missing[0]!r} is missing ({len(missing)} missing); "
            f"expected the state dict of {what}"
        )
    unexpected = sorted(key for key in state if key not in shapes)
    if unexpected:
        raise CheckpointError(
            f"{path}: unexpected key {unexpected[0]!r} ({len(unexpected)} "
            f"unexpected); expected the state dict of {what}"
        )
    for key, shape in shapes.items():
        value = np.asarray(state[key])
        if value.shape != shape:
            raise CheckpointError(f"{path}: {key} has shape {value.shape}, {what} needs {shape}")
        if value.dtype.kind not in "fiu" or not np.isfinite(value).all():
            raise CheckpointError(f"{path}: {key} holds non-finite or non-numeric values")


def _numpy_state(state):
    """The float tensors of a state dict without the ``model.`` prefix, as float32."""
    return {
        key.removeprefix("model."): np.asarray(value, dtype=np.float32)
        for key, value in state.items()
        if not key.endswith("num_batches_tracked")
    }


def l3_dense_classifier(state, *, in_dim, classes, path):
    """A fitted :func:`~classifiers.mlp.baseline_network` holding an ``l3_dense`` state dict.

    Parameters
    ----------
    state : dict of str -> ndarray
    in_dim : int
        The network's input width (512 per modality, 1024 for early fusion).
    classes : sequence of str
        The labels of output columns 0..n-1 (the baseline's: the ten scenes alphabetically).
    path : str
        Named in errors.

    Returns
    -------
    classifiers.mlp.TorchMLPClassifier, fitted (no standardisation inside: normalise first)
    """
    classes = np.asarray(classes)
    what = f"l3_dense({in_dim}, {len(classes)})"
    check_state(state, l3_dense_shapes(in_dim, len(classes)), path=path, what=what)
    network = baseline_network(standardize=False)
    network.classes_, network.scaler_ = classes, None
    network.kinds_ = ["linear", "batchnorm", "relu", "dropout"] * len(L3_DENSE_HIDDEN) + ["linear"]
    network.state_ = _numpy_state(state)
    network.history_, network.best_epoch_, network.n_features_in_ = [], None, int(in_dim)
    return network


def proposed_fusion(branches, head_state, *, columns, names, path):
    """A fitted :class:`~classifiers.fusion.ProposedFusion` of given branches and a head state dict.

    Parameters
    ----------
    branches : list of fitted l3_dense classifiers (:func:`l3_dense_classifier`), one per feature
    head_state : dict of str -> ndarray, the ``l3_combine`` state dict
    columns : list of slice, each branch's columns of the input
    names : list of str, the features
    path : str, the head's file (named in errors)
    """
    classes = branches[0].classes_
    in_dim = L3_DENSE_HIDDEN[1] * len(branches)  # each trunk ends with Linear(512, 128)
    check_state(
        head_state,
        head_shapes(in_dim, len(classes)),
        path=path,
        what=f"l3_combine({in_dim}, {len(classes)})",
    )
    fusion = ProposedFusion(
        [(name, baseline_network(standardize=False), cols) for name, cols in zip(names, columns)]
    )
    fusion.classes_, fusion.branches_ = classes, list(branches)
    fusion.trunk_modules_ = TRUNK_MODULES
    fusion.head_kinds_, fusion.head_state_ = ["linear", "linear"], _numpy_state(head_state)
    fusion.history_ = []
    fusion.n_features_in_ = int(max(cols.stop for cols in columns))
    return fusion
