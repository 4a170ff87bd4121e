"""Gradient-boosted trees (LightGBM) sized for an interactive budget on TAU-sized embeddings.

Boosting on raw 1024-dimensional OpenL3 rows costs seconds per round and more just to bin the
data (figures: docs/benchmarks.md), so the defaults here shrink the problem the ways that cost
least accuracy on embeddings: a PCA projection fitted on the training rows (``n_components``,
default 64), row bagging, a larger learning rate, fewer leaves and early stopping on validation
data. ``n_jobs`` defaults to 1: LightGBM's OpenMP threads spin while waiting, which makes several
threads much slower than one on a machine shared with other jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from classifiers.fitting import start_fit
from classifiers.input_checks import check_features
from classifiers.scaling import maybe_standardize


def pca_projection(
    X: NDArray[Any],
    n_components: int,
    *,
    max_rows: int | None = 20000,
    random_state: int = 0,
    chunk_rows: int = 16384,
) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
    """Return ``(mean, components)`` of the top principal directions of ``X``.

    Parameters
    ----------
    X : ndarray, shape (n_rows, dim)
    n_components : int, at most dim
    max_rows : int or None
        Estimate the covariance from at most this many random rows (the top directions of
        embeddings are stable long before 86,000 rows; the scatter matrix costs rows x dim^2).
    random_state : int

    Returns
    -------
    mean : ndarray, shape (dim,), float64
    components : ndarray, shape (dim, n_components), float32, orthonormal columns, largest
        variance first, each column's sign fixed so its largest-magnitude entry is positive.
    """
    dim = X.shape[1]
    if not 1 <= n_components <= dim:
        raise ValueError(f"n_components must lie in [1, {dim}], got {n_components}")
    if max_rows is not None and len(X) > max_rows:
        rows = np.sort(np.random.default_rng(random_state).choice(len(X), max_rows, replace=False))
        X = X[rows]
    mean = X.mean(axis=0, dtype=np.float64)
    scatter = np.zeros((dim, dim))
    for start in range(0, len(X), chunk_rows):
        block = X[start : start + chunk_rows] - mean.astype(X.dtype)
        scatter += block.T @ block
    values, vectors = np.linalg.eigh(scatter)
    top = vectors[:, np.argsort(values)[::-1][:n_components]]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(n_components)])
    return mean, (top * signs).astype(np.float32)


class LightGBMClassifier(ClassifierMixin, BaseEstimator):
    """LightGBM multiclass trees on (optionally PCA-projected) standardised features.

    Parameters
    ----------
    n_components : int or None
        PCA dimensions fitted on the training rows; None keeps every feature.
    n_estimators : int
        Maximum boosting rounds (each adds one tree per class).
    learning_rate, num_leaves, max_bin, min_child_samples, feature_fraction, bagging_fraction,
    bagging_freq, reg_lambda :
        LightGBM parameters of the same names.
    early_stopping_rounds : int or None
        Stop when the validation multi-logloss has not improved for this many rounds.
    validation_fraction : float
        Held out for early stopping when ``fit`` gets no ``eval_set`` (whole locations when
        ``groups`` is given). 0 disables early stopping.
    standardize : bool
    n_jobs : int
        LightGBM threads.
    random_state : int or None

    Attributes
    ----------
    classes_ : ndarray
    booster_ : lightgbm.Booster
    best_iteration_ : int, rounds used for prediction
    components_ : ndarray (dim, n_components) or None
    """

    def __init__(
        self,
        *,
        n_components: int | None = 64,
        n_estimators: int = 100,
        learning_rate: float = 0.2,
        num_leaves: int = 15,
        max_bin: int = 63,
        min_child_samples: int = 20,
        feature_fraction: float = 0.5,
        bagging_fraction: float = 0.3,
        bagging_freq: int = 1,
        reg_lambda: float = 0.0,
        early_stopping_rounds: int | None = 10,
        validation_fraction: float = 0.1,
        standardize: bool = True,
        n_jobs: int = 1,
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_bin = max_bin
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.bagging_freq = bagging_freq
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _project(self, X: ArrayLike) -> NDArray[Any]:
        return self._reduce(maybe_standardize(X, self.scaler_))

    def _reduce(self, X: NDArray[Any]) -> NDArray[Any]:
        """PCA projection of standardized rows (identity without components)."""
        if self.components_ is None:
            return X
        return (X - self.pca_mean_.astype(X.dtype)) @ self.components_

    def _params(self, n_classes: int, seed: int) -> dict[str, Any]:
        return {
            "objective": "multiclass",
            "num_class": n_classes,
            "verbosity": -1,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.reg_lambda,
            "num_threads": self.n_jobs,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
        }

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        eval_set: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> Self:
        """Fit on ``X`` (n_rows, dim), ``y`` (n_rows,); validation data as in TorchMLPClassifier."""
        import lightgbm

        X_fit, y_fit, X_val, y_val, seed = start_fit(self, X, y, groups=groups, eval_set=eval_set)
        self.components_: NDArray[np.float32] | None = None
        if self.n_components is not None and self.n_components < X_fit.shape[1]:
            self.pca_mean_, self.components_ = pca_projection(
                X_fit, self.n_components, random_state=seed
            )
        dataset_params = {"max_bin": self.max_bin, "verbosity": -1}
        train_set = lightgbm.Dataset(self._reduce(X_fit), y_fit, params=dataset_params)
        valid_sets: list[lightgbm.Dataset] = []
        callbacks: list[Callable[..., Any]] = []
        if X_val is not None and self.early_stopping_rounds:
            valid_sets = [
                lightgbm.Dataset(
                    self._reduce(X_val), y_val, reference=train_set, params=dataset_params
                )
            ]
            callbacks = [lightgbm.early_stopping(self.early_stopping_rounds, verbose=False)]
        self.booster_ = lightgbm.train(
            self._params(len(self.classes_), seed),
            train_set,
            num_boost_round=self.n_estimators,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        best = self.booster_.best_iteration
        self.best_iteration_ = (
            int(best) if best and best > 0 else self.booster_.current_iteration()
        )
        self.n_features_in_ = X_fit.shape[1]
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return class probabilities, shape (n_rows, n_classes), columns in ``classes_`` order."""
        Z = self._project(check_features(X, dtype=np.float32))
        proba = self.booster_.predict(
            Z, num_iteration=self.best_iteration_, num_threads=self.n_jobs
        )
        return np.asarray(proba, dtype=np.float64).reshape(len(Z), len(self.classes_))

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Return the most probable class of each row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
