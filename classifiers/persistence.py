"""Fitted estimators as data: a JSON tree, named numpy arrays and LightGBM text models.

>>> tree, arrays, texts = dump_estimator(fitted)        # JSON-able, {name: ndarray}, {name: str}
>>> again = load_estimator(tree, arrays, texts)           # same predictions, nothing unpickled

A tree is ``{"class": name, "params": {...}, "fitted": {...}}``. The class must be one of
:data:`ESTIMATORS` (a closed list: a tree cannot name any other code), ``params`` are its
constructor arguments and ``fitted`` the attributes prediction needs (:data:`FITTED`). Values are
JSON scalars, lists, or one-key objects: ``{"array": name}`` (a numeric or fixed-width string
array), ``{"lightgbm": name}`` (a booster in LightGBM's own text format), ``{"estimator": tree}``,
``{"tuple": [...]}``, ``{"slice": [start, stop, step]}``, ``{"dict": {...}}``. Attributes kept
only for inspection (training histories of the fold models, out-of-fold probabilities) are
dropped where noted in :data:`FITTED`.
"""

import numpy as np

from classifiers.boosting import LightGBMClassifier
from classifiers.calibration import TemperatureScaledClassifier
from classifiers.fusion import LateFusion, ProposedFusion, StackingFusion
from classifiers.linear import LogisticClassifier
from classifiers.mlp import TorchMLPClassifier
from classifiers.scaling import NormalisedClassifier, ZScore
from featurestore.errors import ModelFormatError

#: The classes a tree may name.
ESTIMATORS = {cls.__name__: cls for cls in (
    ZScore, LogisticClassifier, TorchMLPClassifier, LightGBMClassifier, LateFusion,
    StackingFusion, ProposedFusion, TemperatureScaledClassifier, NormalisedClassifier)}

#: Fitted attributes written and read per class (what ``predict_proba`` needs, plus small
#: diagnostics). StackingFusion's ``oof_proba_`` (one row per training segment) is not kept.
FITTED = {
    "ZScore": ("mean_", "scale_", "n_features_in_"),
    "LogisticClassifier": ("classes_", "scaler_", "coef_", "intercept_", "n_iter_", "converged_",
                           "n_features_in_"),
    "TorchMLPClassifier": ("classes_", "scaler_", "kinds_", "state_", "history_", "best_epoch_",
                           "n_features_in_"),
    "LightGBMClassifier": ("classes_", "scaler_", "components_", "pca_mean_", "booster_",
                           "best_iteration_", "n_features_in_"),
    "LateFusion": ("classes_", "estimators_", "weights_", "n_features_in_"),
    "StackingFusion": ("classes_", "fold_estimators_", "estimators_", "final_estimator_",
                       "n_features_in_"),
    "ProposedFusion": ("classes_", "branches_", "trunk_modules_", "head_kinds_", "head_state_",
                       "history_", "n_features_in_"),
    "TemperatureScaledClassifier": ("estimator_", "classes_", "temperature_", "n_features_in_"),
    "NormalisedClassifier": ("estimator_", "classes_", "mean_", "scale_", "source_",
                             "n_features_in_"),
}


def dump_estimator(estimator):
    """Return ``(tree, arrays, texts)`` describing a fitted (or unfitted) estimator.

    Returns
    -------
    tree : dict, JSON-able
    arrays : dict of str -> ndarray (no object dtype; save with ``np.savez``)
    texts : dict of str -> str (LightGBM models)
    """
    arrays, texts = {}, {}
    return _dump_tree(estimator, "m", arrays, texts), arrays, texts


def load_estimator(tree, arrays, texts):
    """The estimator of a tree written by :func:`dump_estimator` (ModelFormatError if not)."""
    return _load_tree(tree, arrays, texts)


def _dump_tree(estimator, path, arrays, texts):
    name = type(estimator).__name__
    if ESTIMATORS.get(name) is not type(estimator):
        raise ModelFormatError(f"{name} cannot be written as data")
    params = {key: _dump(value, f"{path}.{key}", arrays, texts)
              for key, value in estimator.get_params(deep=False).items()}
    fitted = {key: _dump(getattr(estimator, key), f"{path}.{key}", arrays, texts)
              for key in FITTED[name] if hasattr(estimator, key)}
    return {"class": name, "params": params, "fitted": fitted}


def _dump(value, path, arrays, texts):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return {"array": _add_array(value, path, arrays)}
    if isinstance(value, tuple):
        return {"tuple": [_dump(v, f"{path}.{i}", arrays, texts) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_dump(v, f"{path}.{i}", arrays, texts) for i, v in enumerate(value)]
    if isinstance(value, slice):
        return {"slice": [value.start, value.stop, value.step]}
    if isinstance(value, dict):
        return {"dict": {str(k): _dump(v, f"{path}.{k}", arrays, texts) for k, v in value.items()}}
    if type(value).__name__ == "Booster" and type(value).__module__.startswith("lightgbm"):
        texts[path] = value.model_to_string()
        return {"lightgbm": path}
    return {"estimator": _dump_tree(value, path, arrays, texts)}


def _add_array(value, path, arrays):
    if value.dtype.kind == "T":                 # NumPy 2 variable-width strings: fixed width
        value = value.astype(str)
    if value.dtype.kind not in "biufcU":
        raise ModelFormatError(f"{path}: arrays of dtype {value.dtype} cannot be written")
    arrays[path] = value
    return path


def _load_tree(tree, arrays, texts):
    if not isinstance(tree, dict) or set(tree) != {"class", "params", "fitted"}:
        raise ModelFormatError("an estimator entry needs exactly class, params and fitted")
    name = tree["class"]
    if name not in ESTIMATORS:
        raise ModelFormatError(f"unknown estimator class {name!r}")
    unknown = set(tree["fitted"]) - set(FITTED[name])
    if unknown:
        raise ModelFormatError(f"{name}: unknown fitted attribute {sorted(unknown)[0]!r}")
    params = {key: _load(value, arrays, texts) for key, value in tree["params"].items()}
    try:
        estimator = ESTIMATORS[name](**params)
    except TypeError as error:
        raise ModelFormatError(f"{name}: {error}") from None
    for key, value in tree["fitted"].items():
        setattr(estimator, key, _load(value, arrays, texts))
    return estimator


def _load(value, arrays, texts):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_load(v, arrays, texts) for v in value]
    if not isinstance(value, dict) or len(value) != 1:
        raise ModelFormatError(f"unexpected value {str(value)[:60]}")
    (kind, body), = value.items()
    if kind == "array":
        if body not in arrays:
            raise ModelFormatError(f"array {body!r} is missing")
        return arrays[body]
    if kind == "tuple":
        return tuple(_load(v, arrays, texts) for v in body)
    if kind == "slice":
        return slice(*body)
    if kind == "dict":
        return {k: _load(v, arrays, texts) for k, v in body.items()}
    if kind == "lightgbm":
        import lightgbm

        if body not in texts:
            raise ModelFormatError(f"LightGBM model {body!r} is missing")
        return lightgbm.Booster(model_str=texts[body])
    if kind == "estimator":
        return _load_tree(body, arrays, texts)
    raise ModelFormatError(f"unknown value kind {kind!r}")
