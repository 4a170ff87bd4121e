"""Logistic regression and z-scoring against scikit-learn and numpy."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from classifiers.linear import LogisticClassifier
from classifiers.scaling import ZScore

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("seed, C", [(0, 0.3), (1, 20.0)])
def test_equals_standard_scaler_then_sklearn(seed, C):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(3, 7))
    y = np.array([f"scene{k}" for k in rng.integers(0, n_classes, 700)])
    X = rng.normal(size=(700, 12)) * rng.uniform(0.1, 10, 12) + rng.normal(size=12) * 5
    X[:, 0] += np.unique(y, return_inverse=True)[1]
    ours = LogisticClassifier(C=C, max_iter=2000, tol=1e-10).fit(X, y)
    theirs = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, tol=1e-10))
    theirs.fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)
    assert list(ours.classes_) == list(theirs.classes_) and ours.converged_


def test_iteration_budget_is_not_a_warning():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(300, 6)), rng.integers(0, 3, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = LogisticClassifier(max_iter=2, tol=0.0).fit(X, y)
    assert model.n_iter_ == 2 and not model.converged_


def test_zscore_matches_numpy_and_uses_training_statistics():
    rng = np.random.default_rng(4)
    X = (rng.normal(size=(30000, 5)) * [1, 2, 3, 4, 0] + [1e4, -3, 0, 5, 7]).astype(np.float32)
    scaler = ZScore().fit(X)
    np.testing.assert_allclose(scaler.mean_, X.astype(np.float64).mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(scaler.scale_[:4], X.astype(np.float64).std(axis=0)[:4], rtol=1e-6)
    assert scaler.scale_[4] == 1.0  # constant column: centred only
    other = rng.normal(size=(10, 5)).astype(np.float32)
    np.testing.assert_allclose(
        scaler.transform(other), (other - scaler.mean_) / scaler.scale_, rtol=1e-5, atol=1e-4
    )
    assert scaler.transform(other).dtype == np.float32


def test_two_classes_match_sklearn_binomial():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    X = (rng.normal(size=(400, 4)) + y[:, None]).astype(np.float32)
    ours = LogisticClassifier(standardize=False).fit(X, y)
    theirs = LogisticRegression().fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)
    assert ours.predict_proba(X).dtype == np.float64
