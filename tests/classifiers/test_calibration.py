"""Temperature scaling: fitted temperature matches an independent minimisation and lowers log loss."""

import numpy as np
import pytest
from scipy.optimize import minimize

from classifiers import metrics
from classifiers.calibration import (
    TemperatureScaledClassifier,
    fit_temperature,
    scale_probabilities,
)
from classifiers.linear import LogisticClassifier
from tests.helpers import small_av

pytestmark = pytest.mark.usefixtures("single_thread")


def miscalibrated(seed, *, sharpen=3.0, n=2000, n_classes=6):
    """Labels drawn from softmax(z); reported probabilities softmax(sharpen * z) (over-confident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, n_classes)) * 1.5
    true = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(n_classes, p=p) for p in true])
    reported = np.exp(sharpen * z)
    return reported / reported.sum(axis=1, keepdims=True), y


def independent_nll(temperature, proba, y):
    logits = np.log(proba) / temperature
    logits = logits - logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y].mean()


@pytest.mark.parametrize("seed, sharpen", [(0, 3.0), (1, 0.5), (2, 1.7)])
def test_temperature_matches_independent_minimisation(seed, sharpen):
    proba, y = miscalibrated(seed, sharpen=sharpen)
    temperature = fit_temperature(proba, y)
    reference = minimize(
        lambda t: independent_nll(t[0], proba, y),
        x0=[1.0],
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-12},
    ).x[0]
    assert temperature == pytest.approx(reference, rel=1e-3)
    assert temperature == pytest.approx(sharpen, rel=0.15)  # undoes the distortion
    before = metrics.row_log_loss(y, proba).mean()
    after = metrics.row_log_loss(y, scale_probabilities(proba, temperature)).mean()
    assert after < before
    np.testing.assert_array_equal(
        scale_probabilities(proba, temperature).argmax(1), proba.argmax(1)
    )


def test_wrapper_fits_temperature_on_validation_rows():
    X, y, groups, _ = small_av(n_clips=120, seed=2)
    model = TemperatureScaledClassifier(LogisticClassifier(C=1e4, max_iter=200), random_state=0)
    model.fit(X[:400], y[:400], groups=groups[:400])
    assert model.temperature_ != 1.0
    raw = model.estimator_.predict_proba(X[400:])
    classes = list(model.classes_)
    y_index = np.array([classes.index(label) for label in y[400:]])
    assert (
        metrics.row_log_loss(y_index, model.predict_proba(X[400:])).mean()
        <= metrics.row_log_loss(y_index, raw).mean() + 0.05
    )
    np.testing.assert_array_equal(model.predict(X), model.estimator_.predict(X))
