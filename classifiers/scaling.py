"""Feature standardisation with statistics from training data only, or with given statistics.

The DCASE baseline normalises embeddings as ``(emb - global_mean) / global_std`` with a
``global_mean_std.npz`` per modality. :class:`ZScore` standardises per dimension with the
statistics of its training rows, fitted inside each estimator's ``fit`` so that
cross-validation and grid search never see validation rows in the statistics.
:class:`NormalisedClassifier` applies a fixed ``(x - mean) / std`` (given, or computed once from
its training rows) in front of a classifier, as the baseline recipe does.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone

from classifiers.input_checks import check_features

#: Rows normalised at a time (bounds the float64 temporaries).
CHUNK_ROWS = 1 << 15


class ZScore(TransformerMixin, BaseEstimator):
    """Per-dimension z-score: ``(X - mean_) / scale_``.

    Parameters
    ----------
    min_scale : float
        Dimensions whose standard deviation is below this are only centred (scale 1), so
        constant dimensions do not blow up.

    Attributes
    ----------
    mean_ : ndarray, shape (dim,), float64
    scale_ : ndarray, shape (dim,), float64 (population standard deviation, ddof=0)
    """

    def __init__(self, *, min_scale: float = 1e-6) -> None:
        self.min_scale = min_scale

    def fit(self, X: ArrayLike, y: Any = None) -> Self:
        """Compute the statistics of ``X`` (shape (n_rows, dim)) in float64, in row chunks."""
        X = check_features(X)
        n_rows = max(len(X), 1)
        chunks = range(0, len(X), 16384)
        self.mean_ = (
            sum(
                (X[s : s + 16384].sum(axis=0, dtype=np.float64) for s in chunks),
                np.zeros(X.shape[1]),
            )
            / n_rows
        )
        squares = sum(
            (np.square(X[s : s + 16384] - self.mean_).sum(axis=0) for s in chunks),
            np.zeros(X.shape[1]),
        )
        scale = np.sqrt(squares / n_rows)  # two passes: no cancellation when |mean| >> std
        self.scale_ = np.where(scale < self.min_scale, 1.0, scale)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: ArrayLike) -> NDArray[Any]:
        """Return the standardised copy of ``X`` in its own float dtype (float32 by default)."""
        X = check_features(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} columns, the scaler was fitted on {self.n_features_in_}"
            )
        mean = self.mean_.astype(X.dtype)
        scale = self.scale_.astype(X.dtype)
        return (X - mean) / scale


def maybe_standardize(X: ArrayLike, scaler: ZScore | None) -> NDArray[Any]:
    """Return ``scaler.transform(X)`` or ``X`` unchanged (as checked floats) when scaler is None."""
    return check_features(X) if scaler is None else scaler.transform(X)


class NormalisedClassifier(ClassifierMixin, BaseEstimator):
    """``(X - mean) / std`` per column, then a classifier.

    Parameters
    ----------
    estimator : classifier with ``fit(X, y, *, groups=None, eval_set=None)`` and ``predict_proba``
    mean, std : array-like, shape (n_columns,), or None
        Given statistics (std > 0). None: the per-column mean and population standard deviation
        of the training rows (columns with a deviation below 1e-6 only centred, as
        :class:`ZScore`).

    Attributes
    ----------
    estimator_ : the fitted classifier (on normalised rows)
    mean_, scale_ : ndarray, shape (n_columns,), float64
    source_ : str, ``"given"`` or ``"training rows"``
    classes_ : ndarray
    """

    def __init__(
        self, estimator: Any, *, mean: ArrayLike | None = None, std: ArrayLike | None = None
    ) -> None:
        self.estimator = estimator
        self.mean = mean
        self.std = std

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        eval_set: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> Self:
        """Fix the statistics, then fit the classifier on normalised ``X`` (n_rows, n_columns)."""
        X = check_features(X, dtype=np.float32)
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")
        if self.mean is None:
            scaler = ZScore().fit(X)
            self.mean_, self.scale_, self.source_ = scaler.mean_, scaler.scale_, "training rows"
        else:
            # self.std is not None here (both or neither, checked above)
            self.mean_, self.scale_ = given_statistics(self.mean, self.std, X.shape[1])  # type: ignore[arg-type]
            self.source_ = "given"
        self.n_features_in_ = X.shape[1]
        if eval_set is not None:
            eval_set = (self.transform(eval_set[0]), eval_set[1])
        self.estimator_ = clone(self.estimator).fit(
            self.transform(X), y, groups=groups, eval_set=eval_set
        )
        self.classes_ = self.estimator_.classes_
        return self

    def transform(self, X: ArrayLike) -> NDArray[np.float32]:
        """Return ``(X - mean_) / scale_`` computed in float64, as float32 (in row chunks)."""
        X = check_features(X)
        if X.shape[1] != len(self.mean_):
            raise ValueError(f"X has {X.shape[1]} columns, the statistics have {len(self.mean_)}")
        out = np.empty(X.shape, dtype=np.float32)
        for start in range(0, len(X), CHUNK_ROWS):
            out[start : start + CHUNK_ROWS] = (
                X[start : start + CHUNK_ROWS] - self.mean_
            ) / self.scale_
        return out

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return the classifier's probabilities on normalised ``X``, shape (n_rows, n_classes)."""
        return self.estimator_.predict_proba(self.transform(X))

    def predict_log_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Log-probabilities, from the classifier's own ``predict_log_proba`` when it has one."""
        if hasattr(self.estimator_, "predict_log_proba"):
            return self.estimator_.predict_log_proba(self.transform(X))
        return np.log(np.clip(self.predict_proba(X), np.finfo(np.float64).tiny, None))

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Return the most probable class of each row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def given_statistics(
    mean: ArrayLike, std: ArrayLike, n_columns: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(mean, std)`` as float64 arrays of ``n_columns``; ValueError unless std is finite > 0."""
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    if mean.shape != (n_columns,) or std.shape != (n_columns,):
        raise ValueError(
            f"mean and std must have {n_columns} values, got {mean.size} and {std.size}"
        )
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise ValueError("mean must be finite and std finite and > 0")
    return mean, std
