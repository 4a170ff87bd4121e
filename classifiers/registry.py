"""The classifier models of ``avscene train --model``: one entry per model, read by every part.

An entry (:class:`Model`, made by :func:`register`) holds all that the package needs to know
about a model:

``name``
    the ``--model`` name (lower-case letters, digits, ``_``);
``estimator``
    the estimator class, or ``"classifiers.<module>:<Class>"``, imported on first use so that the
    command line starts without scikit-learn (as :data:`pipelines.commands.cli.COMMANDS` names
    its modules). The class follows the package's protocol: keyword hyperparameters including
    ``random_state`` and ``n_jobs``, ``fit(X, y, *, groups=None, eval_set=None)``,
    ``predict_proba``, ``predict`` and ``classes_`` (scikit-learn's ``BaseEstimator`` gives
    ``get_params``);
``fitted``
    the fitted attributes a model file keeps, each with how it is written (:data:`KINDS`);
``transient``
    fitted attributes deliberately not kept (prediction does not need them);
``presets``
    the constructor's keyword arguments under every preset of :data:`PRESETS`, or None where a
    preset does not train the model (:mod:`classifiers.presets` describes the presets);
``build``
    optionally, the function that makes the estimator from those keyword arguments (default: the
    class), given like ``estimator``.

Readers: :mod:`classifiers.systems` (estimators), :mod:`classifiers.presets` (``get_preset``),
:mod:`classifiers.persistence` (the closed list of classes a model file may name, and what each
keeps) and the ``train`` command (``--model``). :func:`register` checks an entry as it is made,
so a missing preset or a fitted attribute without a kind fails, in one line, when the entry's
module is imported; a fitted attribute left out of ``fitted`` and ``transient`` is refused when
the trained model is written.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.util
import re
from collections.abc import Callable, Sequence
from typing import Any

#: The presets every model gives settings for (``--preset``).
PRESETS = ("fast", "default", "small", "paper", "dcase2021")

#: How a fitted attribute is written (JSON scalars and None are allowed under every kind):
#: ``array`` numpy arrays in model.npz (alone, or in lists, tuples and dicts); ``json`` JSON values
#: only; ``estimator`` estimators of the closed list, written as nested trees (alone or in
#: containers); ``lightgbm`` a LightGBM booster in LightGBM's own text format.
KINDS = ("array", "json", "estimator", "lightgbm")

#: The registered models by name, in registration order (the vocabulary of ``--model``).
MODELS: dict[str, Model] = {}

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_REFERENCE = re.compile(r"classifiers(\.[a-z_][a-z0-9_]*)+:[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclasses.dataclass(frozen=True)
class Model:
    """One registered model (see the module docstring for the fields)."""

    name: str
    estimator: type[Any] | str
    fitted: dict[str, str]
    presets: dict[str, dict[str, Any] | None]
    transient: Sequence[str] = ()
    build: Callable[..., Any] | str | None = None

    def estimator_class(self) -> Any:
        """The estimator class (imported here when given by name)."""
        return _resolve(self.estimator)

    def make(self, **params: Any) -> Any:
        """An unfitted estimator made from keyword arguments."""
        return _resolve(self.build if self.build is not None else self.estimator)(**params)


def register(
    name: str,
    *,
    estimator: type[Any] | str,
    fitted: dict[str, str],
    presets: dict[str, dict[str, Any] | None],
    transient: Sequence[str] = (),
    build: Callable[..., Any] | str | None = None,
) -> Model:
    """Add a model to :data:`MODELS` and return its :class:`Model`.

    Parameters
    ----------
    name : str
        The ``--model`` name.
    estimator : type or str
        The class, or ``"classifiers.<module>:<Class>"``.
    fitted : dict
        ``{attribute: kind}`` with ``classes_`` among the attributes, kinds from :data:`KINDS`.
    presets : dict
        ``{preset: dict of keyword arguments or None}`` for every name of :data:`PRESETS`.
    transient : tuple of str
        Fitted attributes not written.
    build : callable or str or None
        Makes the estimator from the keyword arguments (default: ``estimator``).

    Raises
    ------
    ValueError
        One line naming the model and what its entry lacks.
    """
    entry = Model(name, estimator, fitted, presets, transient, build)
    problem = _problem(entry)
    if problem:
        raise ValueError(f"classifiers.registry: model {name!r} {problem}")
    MODELS[name] = dataclasses.replace(
        entry, fitted=dict(fitted), presets=copy.deepcopy(presets), transient=tuple(transient)
    )
    return MODELS[name]


def model(name: str) -> Model:
    """The entry of ``--model`` ``name``; ValueError naming the registered models otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


def check_preset(name: str) -> None:
    """ValueError (one line) unless ``name`` is one of :data:`PRESETS`."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")


def settings(name: str, preset: str) -> dict[str, Any]:
    """A copy of model ``name``'s keyword arguments under ``preset`` (ValueError if it has none)."""
    check_preset(preset)
    params = model(name).presets[preset]
    if params is None:
        raise ValueError(f"--preset {preset} does not train --model {name}")
    return copy.deepcopy(params)


def _problem(entry: Model) -> str | None:
    """What is wrong with an entry, as the end of a sentence, or None."""
    if not isinstance(entry.name, str) or not _NAME.match(entry.name):
        return "needs a name of lower-case letters, digits and _ (a --model value)"
    if entry.name in MODELS:
        return "is registered twice"
    for field in ("estimator", "build"):
        value = getattr(entry, field)
        if isinstance(value, str) and not _REFERENCE.match(value):
            return (
                f"names its {field} as {value!r}; write 'classifiers.module:Name' or pass "
                "the object itself"
            )
        if isinstance(value, str) and not _module_exists(value.partition(":")[0]):
            return f"names its {field} in {value.partition(':')[0]}, which does not exist"
        if value is not None and not isinstance(value, str) and not callable(value):
            return f"gives a {field} that is neither a class nor a 'module:Name' string"
    return _fitted_problem(entry) or _preset_problem(entry) or _sharing_problem(entry)


def _fitted_problem(entry: Model) -> str | None:
    if not isinstance(entry.fitted, dict) or "classes_" not in entry.fitted:
        return "declares no fitted attributes to write (fitted={'classes_': 'array', ...})"
    for attribute, kind in entry.fitted.items():
        if not (isinstance(attribute, str) and attribute.endswith("_")):
            return f"declares fitted attribute {attribute!r}; fitted attributes end in _"
        if kind not in KINDS:
            return (
                f"writes fitted attribute {attribute!r} as {kind!r}; choose from "
                f"{', '.join(KINDS)}"
            )
    if not isinstance(entry.transient, (tuple, list)) or not all(
        isinstance(attribute, str) and attribute.endswith("_") for attribute in entry.transient
    ):
        return "gives transient as something else than a tuple of attribute names ending in _"
    both = sorted(set(entry.fitted) & set(entry.transient))
    if both:
        return f"declares {both[0]!r} both fitted and transient"
    return None


def _preset_problem(entry: Model) -> str | None:
    if not isinstance(entry.presets, dict):
        return f"gives presets as a {type(entry.presets).__name__}, not {{preset: settings}}"
    missing = [preset for preset in PRESETS if preset not in entry.presets]
    if missing:
        return (
            f"gives no settings for preset {missing[0]!r} (every model gives each of "
            f"{', '.join(PRESETS)} a dict, or None where the preset does not train it)"
        )
    unknown = sorted(set(entry.presets) - set(PRESETS))
    if unknown:
        return f"gives settings for unknown preset {unknown[0]!r}; presets: {', '.join(PRESETS)}"
    for preset, params in entry.presets.items():
        if params is not None and not isinstance(params, dict):
            return f"gives preset {preset!r} a {type(params).__name__}, not a dict or None"
    return None


def _sharing_problem(entry: Model) -> str | None:
    """Models built on one class must write it the same way."""
    for other in MODELS.values():
        if other.estimator == entry.estimator and (other.fitted, other.transient) != (
            dict(entry.fitted),
            tuple(entry.transient),
        ):
            return (
                f"writes {_label(entry.estimator)} differently from model {other.name!r} "
                "(give both the same fitted and transient)"
            )
    return None


def _label(reference: type[Any] | str) -> str:
    return reference.rpartition(":")[2] if isinstance(reference, str) else reference.__name__


def _module_exists(name: str) -> bool:
    """Whether module ``name`` can be imported (found without running it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _resolve(reference: Callable[..., Any] | str) -> Any:
    if not isinstance(reference, str):
        return reference
    module, _, attribute = reference.partition(":")
    found = getattr(importlib.import_module(module), attribute, None)
    if found is None:
        raise ValueError(f"classifiers.registry: {module} has no {attribute}")
    return found


# -- the models ------------------------------------------------------------------------------
# Their settings per preset: classifiers.presets explains how each preset is sized.

register(
    "lr",
    estimator="classifiers.linear:LogisticClassifier",
    fitted={
        "classes_": "array",
        "scaler_": "estimator",
        "coef_": "array",
        "intercept_": "array",
        "n_iter_": "json",
        "converged_": "json",
        "n_features_in_": "json",
    },
    presets={
        "fast": {"C": 1.0, "max_iter": 50},
        "default": {"C": 1.0, "max_iter": 40},
        "small": {"C": 1.0, "max_iter": 200},
        "paper": {"C": 1.0, "max_iter": 200},
        "dcase2021": None,
    },
)

_MLP_FITTED = {
    "classes_": "array",
    "scaler_": "estimator",
    "kinds_": "json",
    "state_": "array",
    "history_": "json",
    "best_epoch_": "json",
    "n_features_in_": "json",
}

register(
    "mlp",
    estimator="classifiers.mlp:TorchMLPClassifier",
    fitted=_MLP_FITTED,
    transient=("module_",),
    presets={
        "fast": {"hidden": (32,), "max_epochs": 6, "batch_size": 64, "learning_rate": 3e-3},
        "default": {
            "hidden": (256,),
            "max_epochs": 6,
            "batch_size": 1024,
            "learning_rate": 2e-3,
            "patience": 2,
        },
        "small": {
            "hidden": (256,),
            "max_epochs": 60,
            "batch_size": 64,
            "learning_rate": 1e-3,
            "patience": 8,
        },
        "paper": {
            "hidden": (512, 128),
            "max_epochs": 50,
            "batch_size": 256,
            "learning_rate": 1e-3,
            "patience": 10,
        },
        "dcase2021": None,
    },
)

register(
    "lgbm",
    estimator="classifiers.boosting:LightGBMClassifier",
    fitted={
        "classes_": "array",
        "scaler_": "estimator",
        "components_": "array",
        "pca_mean_": "array",
        "booster_": "lightgbm",
        "best_iteration_": "json",
        "n_features_in_": "json",
    },
    presets={
        "fast": {
            "n_components": 8,
            "n_estimators": 20,
            "learning_rate": 0.3,
            "num_leaves": 7,
            "min_child_samples": 5,
            "bagging_fraction": 0.8,
        },
        "default": {
            "n_components": 64,
            "n_estimators": 100,
            "learning_rate": 0.2,
            "num_leaves": 15,
            "bagging_fraction": 0.3,
            "feature_fraction": 0.5,
            "early_stopping_rounds": 10,
        },
        "small": {
            "n_components": 32,
            "n_estimators": 200,
            "learning_rate": 0.1,
            "num_leaves": 7,
            "min_child_samples": 5,
            "bagging_fraction": 0.8,
            "feature_fraction": 0.5,
            "early_stopping_rounds": 20,
        },
        "paper": {
            "n_components": None,
            "n_estimators": 500,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "bagging_fraction": 0.8,
            "feature_fraction": 0.25,
            "early_stopping_rounds": 30,
        },
        "dcase2021": None,
    },
)

# The DCASE 2021 baseline's per-modality network: its settings are overrides of
# classifiers.mlp.baseline_network (the architecture is fixed); under dcase2021, those of the
# baseline's train/train.py.
register(
    "baseline",
    estimator="classifiers.mlp:TorchMLPClassifier",
    build="classifiers.mlp:baseline_network",
    fitted=_MLP_FITTED,
    transient=("module_",),
    presets={
        "fast": {"max_epochs": 4, "batch_size": 64, "learning_rate": 1e-3},
        "default": {"max_epochs": 4, "batch_size": 1024, "learning_rate": 2e-3},
        "small": {"max_epochs": 60, "batch_size": 64, "learning_rate": 1e-3, "patience": 8},
        "paper": {},
        "dcase2021": {
            "max_epochs": 199,
            "batch_size": 64,
            "learning_rate": 1e-4,
            "weight_decay": 1e-4,
            "drop_last": True,
            "standardize": False,
            "val_loss": "batches",
            "ties": "last",
            "validation_fraction": 0.0,
        },
    },
)
