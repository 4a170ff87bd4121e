"""Fitted estimators as data: a JSON tree, named numpy arrays and LightGBM text models.

>>> tree, arrays, texts = dump_estimator(fitted)        # JSON-able, {name: ndarray}, {name: str}
>>> again = load_estimator(tree, arrays, texts)           # same predictions, nothing unpickled

A tree is ``{"class": name, "params": {...}, "fitted": {...}}``. The class must be one of
:data:`ESTIMATORS` (a closed list: the models of :mod:`classifiers.registry` and the parts of
:data:`PARTS`; a tree cannot name any other code), ``params`` are its constructor arguments and
``fitted`` the attributes prediction needs, as the class's declaration lists them with how each
is written (:data:`classifiers.registry.KINDS`). Values are JSON scalars, lists, or one-key
objects: ``{"array": name}`` (a numeric or fixed-width string array), ``{"lightgbm": name}`` (a
booster in LightGBM's own text format), ``{"estimator": tree}``, ``{"tuple": [...]}``,
``{"slice": [start, stop, step]}``, ``{"dict": {...}}``; a fitted value holds only the forms of
its declared kind, when written and when read. Attributes kept only for inspection (training
histories of the fold models, out-of-fold probabilities) are declared transient and not written;
a fitted attribute that is declared neither way is refused when written.
"""

import collections.abc
import typing

import numpy as np

from classifiers import registry
from classifiers.calibration import TemperatureScaledClassifier
from classifiers.fusion import LateFusion, ProposedFusion, StackingFusion
from classifiers.scaling import NormalisedClassifier, ZScore
from featurestore.errors import ModelFormatError

#: The classes a tree may name besides the registry's models (the scaler inside the estimators,
#: the fusions and the wrappers): ``{class: (fitted attributes {name: kind}, transient)}``.
#: StackingFusion's ``oof_proba_`` (one row per training segment) is not kept.
PARTS = {
    ZScore: ({"mean_": "array", "scale_": "array", "n_features_in_": "json"}, ()),
    LateFusion: (
        {
            "classes_": "array",
            "estimators_": "estimator",
            "weights_": "array",
            "n_features_in_": "json",
        },
        (),
    ),
    StackingFusion: (
        {
            "classes_": "array",
            "fold_estimators_": "estimator",
            "estimators_": "estimator",
            "final_estimator_": "estimator",
            "n_features_in_": "json",
        },
        ("oof_proba_",),
    ),
    ProposedFusion: (
        {
            "classes_": "array",
            "branches_": "estimator",
            "trunk_modules_": "json",
            "head_kinds_": "json",
            "head_state_": "array",
            "history_": "json",
            "n_features_in_": "json",
        },
        ("trunks_", "head_"),
    ),
    TemperatureScaledClassifier: (
        {
            "estimator_": "estimator",
            "classes_": "array",
            "temperature_": "json",
            "n_features_in_": "json",
        },
        (),
    ),
    NormalisedClassifier: (
        {
            "estimator_": "estimator",
            "classes_": "array",
            "mean_": "array",
            "scale_": "array",
            "source_": "json",
            "n_features_in_": "json",
        },
        (),
    ),
}


class Declared(typing.NamedTuple):
    """What a model file may hold of one class."""

    cls: type
    fitted: dict
    transient: tuple


def closed_list():
    """``{class name: Declared}``: the registry's models as registered now, then :data:`PARTS`.

    ValueError (one line) when two different classes share a name, or one class is declared
    twice in different ways: a tree names classes by name only.
    """
    classes = {}
    declarations = [
        (entry.estimator_class(), entry.fitted, entry.transient, f"model {entry.name!r}")
        for entry in registry.MODELS.values()
    ]
    declarations += [
        (cls, fitted, transient, "classifiers.persistence.PARTS")
        for cls, (fitted, transient) in PARTS.items()
    ]
    for cls, fitted, transient, source in declarations:
        declared = Declared(cls, dict(fitted), tuple(transient))
        if classes.setdefault(cls.__name__, declared) != declared:
            raise ValueError(
                f"classifiers.registry: {source} declares class {cls.__name__} "
                "anew (another class of that name, or other fitted attributes)"
            )
    return classes


class _ClassNames(collections.abc.Mapping):
    """``{class name: class}`` of :func:`closed_list`, read afresh at each use."""

    def __getitem__(self, name):
        return closed_list()[name].cls

    def __iter__(self):
        return iter(closed_list())

    def __len__(self):
        return len(closed_list())


#: The classes a tree may name, by name (a live view: models registered later are included).
ESTIMATORS = _ClassNames()


class _Files(typing.NamedTuple):
    """Where a tree's arrays and texts go (or come from), and the classes it may name."""

    arrays: dict
    texts: dict
    classes: dict


def dump_estimator(estimator):
    """Return ``(tree, arrays, texts)`` describing a fitted (or unfitted) estimator.

    Returns
    -------
    tree : dict, JSON-able
    arrays : dict of str -> ndarray (no object dtype; save with ``np.savez``)
    texts : dict of str -> str (LightGBM models)

    Raises
    ------
    ModelFormatError
        A class outside the closed list, a fitted attribute its declaration does not name, or a
        value of another kind than declared.
    """
    files = _Files({}, {}, closed_list())
    return _dump_tree(estimator, "m", files), files.arrays, files.texts


def load_estimator(tree, arrays, texts):
    """The estimator of a tree written by :func:`dump_estimator` (ModelFormatError if not)."""
    return _load_tree(tree, _Files(arrays, texts, closed_list()))


def _dump_tree(estimator, path, files):
    name = type(estimator).__name__
    declared = files.classes.get(name)
    if declared is None or declared.cls is not type(estimator):
        raise ModelFormatError(
            f"{name} cannot be written as data (not a model of "
            "classifiers.registry nor a part of classifiers.persistence)"
        )
    undeclared = sorted(
        key
        for key in vars(estimator)
        if key.endswith("_")
        and not key.startswith("_")
        and key not in declared.fitted
        and key not in declared.transient
    )
    if undeclared:
        raise ModelFormatError(
            f"{name}.{undeclared[0]} is fitted but its declaration neither "
            "writes it nor calls it transient (classifiers.registry)"
        )
    params = {
        key: _dump(value, f"{path}.{key}", files, None)
        for key, value in estimator.get_params(deep=False).items()
    }
    fitted = {
        key: _dump(getattr(estimator, key), f"{path}.{key}", files, kind)
        for key, kind in declared.fitted.items()
        if hasattr(estimator, key)
    }
    return {"class": name, "params": params, "fitted": fitted}


def _dump(value, path, files, kind):
    """The JSON form of ``value``; ``kind`` (None: any) limits what it may hold."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        _check_kind(kind, "array", path)
        return {"array": _add_array(value, path, files.arrays)}
    if isinstance(value, tuple):
        return {"tuple": [_dump(v, f"{path}.{i}", files, kind) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_dump(v, f"{path}.{i}", files, kind) for i, v in enumerate(value)]
    if isinstance(value, slice):
        return {"slice": [value.start, value.stop, value.step]}
    if isinstance(value, dict):
        return {"dict": {str(k): _dump(v, f"{path}.{k}", files, kind) for k, v in value.items()}}
    if type(value).__name__ == "Booster" and type(value).__module__.startswith("lightgbm"):
        _check_kind(kind, "lightgbm", path)
        files.texts[path] = value.model_to_string()
        return {"lightgbm": path}
    _check_kind(kind, "estimator", path)
    return {"estimator": _dump_tree(value, path, files)}


_FORMS = {"array": "an array", "estimator": "an estimator", "lightgbm": "a LightGBM booster"}


def _check_kind(kind, form, where):
    if kind is not None and kind != form:
        raise ModelFormatError(f"{where} holds {_FORMS[form]}, but its class writes it as {kind}")


def _add_array(value, path, arrays):
    if value.dtype.kind == "T":  # NumPy 2 variable-width strings: fixed width
        value = value.astype(str)
    if value.dtype.kind not in "biufcU":
        raise ModelFormatError(f"{path}: arrays of dtype {value.dtype} cannot be written")
    arrays[path] = value
    return path


def _load_tree(tree, files):
    if not isinstance(tree, dict) or set(tree) != {"class", "params", "fitted"}:
        raise ModelFormatError("an estimator entry needs exactly class, params and fitted")
    name = tree["class"]
    if not isinstance(name, str) or name not in files.classes:
        raise ModelFormatError(f"unknown estimator class {str(name)[:60]!r}")
    declared = files.classes[name]
    if not isinstance(tree["params"], dict) or not isinstance(tree["fitted"], dict):
        raise ModelFormatError(f"{name}: params and fitted must be JSON objects")
    unknown = set(tree["fitted"]) - set(declared.fitted)
    if unknown:
        raise ModelFormatError(f"{name}: unknown fitted attribute {sorted(unknown)[0]!r}")
    params = {
        key: _load(value, files, None, f"{name}.{key}") for key, value in tree["params"].items()
    }
    try:
        estimator = declared.cls(**params)
    except TypeError as error:
        raise ModelFormatError(f"{name}: {error}") from None
    for key, value in tree["fitted"].items():
        setattr(estimator, key, _load(value, files, declared.fitted[key], f"{name}.{key}"))
    return estimator


def _load(value, files, kind, where):
    """The value of a JSON form; ``kind`` (None: any) limits what it may hold."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_load(v, files, kind, where) for v in value]
    if not isinstance(value, dict) or len(value) != 1:
        raise ModelFormatError(f"unexpected value {str(value)[:60]}")
    ((form, body),) = value.items()
    if form in ("array", "lightgbm", "estimator"):
        _check_kind(kind, form, where)
    if form == "array":
        if not isinstance(body, str) or body not in files.arrays:
            raise ModelFormatError(f"array {str(body)[:60]!r} is missing")
        return files.arrays[body]
    if form == "tuple" and isinstance(body, list):
        return tuple(_load(v, files, kind, where) for v in body)
    if form == "slice" and isinstance(body, list) and len(body) == 3:
        return slice(*body)
    if form == "dict" and isinstance(body, dict):
        return {k: _load(v, files, kind, where) for k, v in body.items()}
    if form == "lightgbm":
        return _booster(body, files.texts)
    if form == "estimator":
        return _load_tree(body, files)
    raise ModelFormatError(f"{where}: unknown or malformed value kind {str(form)[:60]!r}")


def _booster(name, texts):
    import lightgbm

    if not isinstance(name, str) or name not in texts:
        raise ModelFormatError(f"LightGBM model {str(name)[:60]!r} is missing")
    return lightgbm.Booster(model_str=texts[name])
