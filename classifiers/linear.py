"""Multinomial logistic regression on standardised embeddings.

A thin wrapper of ``sklearn.linear_model.LogisticRegression`` (lbfgs, multinomial, L2; float32
kept as float32) that adds what the other estimators of this package share: z-scoring with
training statistics, the ``fit(X, y, *, groups=None, eval_set=None)`` signature, a thread limit
(``n_jobs``), and an iteration cap that is a budget rather than a warning (``converged_`` tells).
A float32 L-BFGS of our own with row-chunked loss and gradient was tried and was no faster than
scikit-learn's on TAU-sized data, so the library's solver is used.
"""

from __future__ import annotations

import warnings
from typing import Any, Self, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from classifiers.input_checks import check_features, encode_labels
from classifiers.scaling import ZScore, maybe_standardize

_Float = TypeVar("_Float", bound=np.floating[Any])


def softmax(logits: NDArray[_Float]) -> NDArray[_Float]:
    """Row-wise softmax of ``logits``, shape (n_rows, n_classes)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


class LogisticClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression with L2 penalty on z-scored features.

    Parameters
    ----------
    C : float
        Inverse regularisation strength (``LogisticRegression``'s ``C``).
    max_iter : int
        L-BFGS iterations; reaching it is expected under a time budget (no warning).
    tol : float
    standardize : bool
        Z-score the features with training statistics first.
    n_jobs : int or None
        BLAS/OpenMP threads during fit (None: the libraries' default). On a machine shared with
        other jobs one thread is often faster than several (idle threads spin for a core).
    random_state : int or None
        Accepted for a uniform interface; lbfgs is deterministic.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
    coef_ : ndarray, shape (n_classes, dim) (one row for two classes), standardised space
    intercept_ : ndarray
    scaler_ : ZScore or None
    n_iter_ : int
    converged_ : bool
    """

    def __init__(
        self,
        *,
        C: float = 1.0,
        max_iter: int = 100,
        tol: float = 1e-4,
        standardize: bool = True,
        n_jobs: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.standardize = standardize
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        eval_set: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> Self:
        """Fit on ``X`` (n_rows, dim) and labels ``y`` (n_rows,); ``groups``/``eval_set`` unused."""
        X = check_features(X)
        self.classes_, y_index = encode_labels(y, n_rows=len(X))
        self.scaler_ = ZScore().fit(X) if self.standardize else None
        X = maybe_standardize(X, self.scaler_)
        model = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol)
        with threadpool_limits(self.n_jobs), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(X, y_index)
        self.converged_ = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self.coef_, self.intercept_ = model.coef_, model.intercept_
        self.n_iter_ = int(np.max(model.n_iter_))
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return class probabilities, shape (n_rows, n_classes), columns in ``classes_`` order.

        Computed in float64 from the logits, so rows sum to 1 to float64 precision even for
        float32 features.
        """
        X = maybe_standardize(X, self.scaler_)
        logits = np.asarray(X @ self.coef_.T + self.intercept_, dtype=np.float64)
        if logits.shape[1] == 1:  # two classes: one logit for the second class
            logits = np.concatenate([np.zeros_like(logits), logits], axis=1)
        return softmax(logits)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Return the most probable class of each row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
