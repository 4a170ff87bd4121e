"""Temperature scaling fitted on validation data (Guo et al. 2017), for a lower log loss.

Log loss is the challenge's ranking metric, and it punishes over-confident probabilities much
more than accuracy does. Temperature scaling divides every log-probability by one scalar ``T``
(> 1 softens, < 1 sharpens) chosen to minimise the validation cross-entropy; the arg-max, hence
accuracy, never changes.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from classifiers.fitting import validation_rows
from classifiers.input_checks import check_features, encode_labels, index_labels, random_seed

#: Floor for probabilities before taking logs (zeros would give -inf logits).
PROBA_FLOOR = 1e-12


def scale_probabilities(proba: ArrayLike, temperature: float) -> NDArray[np.float64]:
    """Return ``softmax(log(proba) / temperature)``, shape (n_rows, n_classes), float64."""
    logits = np.log(np.clip(np.asarray(proba, dtype=np.float64), PROBA_FLOOR, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def _nll(
    log_temperature: float, logits: NDArray[np.float64], y_index: NDArray[np.integer[Any]]
) -> float:
    """Mean negative log-likelihood of ``y_index`` under ``softmax(logits / exp(log_temperature))``."""
    z = logits / np.exp(log_temperature)
    z -= z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(z)), y_index]))


def fit_temperature(
    proba: ArrayLike, y_index: ArrayLike, *, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """Return the temperature minimising the mean NLL of ``y_index`` under the scaled ``proba``.

    Parameters
    ----------
    proba : ndarray, shape (n_rows, n_classes), rows summing to 1
    y_index : ndarray of int, shape (n_rows,)
    bounds : (float, float), search interval for T (bounded scalar search over log T)
    """
    logits = np.log(np.clip(np.asarray(proba, dtype=np.float64), PROBA_FLOOR, None))
    y_index = np.asarray(y_index)
    result = minimize_scalar(
        _nll,
        bounds=np.log(bounds),
        args=(logits, y_index),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


class TemperatureScaledClassifier(ClassifierMixin, BaseEstimator):
    """Wrap a classifier; fit it, then fit one temperature on validation data.

    Parameters
    ----------
    estimator : classifier with ``fit(X, y, *, groups=None, eval_set=None)`` and ``predict_proba``
    validation_fraction : float
        Held out (whole locations when ``groups`` is given) when ``fit`` gets no ``eval_set``.
        The wrapped estimator is then fitted on the rest, and receives the held-out rows as its
        own ``eval_set``.
    random_state : int or None

    Attributes
    ----------
    estimator_ : the fitted estimator
    temperature_ : float (1.0 when there was no validation data)
    classes_ : ndarray
    """

    def __init__(
        self, estimator: Any, *, validation_fraction: float = 0.1, random_state: int | None = None
    ) -> None:
        self.estimator = estimator
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        eval_set: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> Self:
        """Fit the estimator on ``X`` (n_rows, dim), ``y``; then the temperature on validation data."""
        X = check_features(X)
        classes, y_index = encode_labels(y, n_rows=len(X))
        if eval_set is None:
            rows = validation_rows(
                y_index,
                groups=groups,
                validation_fraction=self.validation_fraction,
                random_state=random_seed(self.random_state),
            )
            if rows is not None:
                fit_rows, val_rows = rows
                eval_set = (X[val_rows], classes[y_index[val_rows]])
                X, y_index = X[fit_rows], y_index[fit_rows]
                groups = None if groups is None else np.asarray(groups)[fit_rows]
        self.estimator_ = clone(self.estimator).fit(
            X, classes[y_index], groups=groups, eval_set=eval_set
        )
        self.classes_ = self.estimator_.classes_
        self.temperature_ = 1.0
        if eval_set is not None:
            X_val = check_features(eval_set[0])
            y_val = index_labels(eval_set[1], self.classes_, name="eval_set y")
            self.temperature_ = fit_temperature(self.estimator_.predict_proba(X_val), y_val)
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return the temperature-scaled probabilities, shape (n_rows, n_classes)."""
        return scale_probabilities(self.estimator_.predict_proba(X), self.temperature_)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Return the most probable class of each row (unchanged by the temperature)."""
        return self.estimator_.predict(X)
