"""Feature standardisation with statistics from training data only.

The DCASE baseline normalises embeddings as ``(emb - mean) / std`` with statistics of the
training set; :class:`ZScore` does that per dimension, fitted inside each estimator's ``fit``
so that cross-validation and grid search never see validation rows in the statistics.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from classifiers.checks import check_features


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

    def __init__(self, *, min_scale=1e-6):
        self.min_scale = min_scale

    def fit(self, X, y=None):
        """Compute the statistics of ``X`` (shape (n_rows, dim)) in float64, in row chunks."""
        X = check_features(X)
        n_rows = max(len(X), 1)
        chunks = range(0, len(X), 16384)
        self.mean_ = sum((X[s:s + 16384].sum(axis=0, dtype=np.float64) for s in chunks),
                         np.zeros(X.shape[1])) / n_rows
        squares = sum((np.square(X[s:s + 16384] - self.mean_).sum(axis=0) for s in chunks),
                      np.zeros(X.shape[1]))
        scale = np.sqrt(squares / n_rows)  # two passes: no cancellation when |mean| >> std
        self.scale_ = np.where(scale < self.min_scale, 1.0, scale)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        """Return the standardised copy of ``X`` in its own float dtype (float32 by default)."""
        X = check_features(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} columns, the scaler was fitted on "
                                 f"{self.n_features_in_}")
        mean = self.mean_.astype(X.dtype)
        scale = self.scale_.astype(X.dtype)
        return (X - mean) / scale


def maybe_standardize(X, scaler):
    """Return ``scaler.transform(X)`` or ``X`` unchanged (as checked floats) when scaler is None."""
    return check_features(X) if scaler is None else scaler.transform(X)
