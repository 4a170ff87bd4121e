"""DCASE 2021 Task 1B metrics against independent computations (hand-made and fresh random)."""

import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score
from sklearn.metrics import log_loss as sklearn_log_loss

from classifiers import metrics


def reference_class_wise_log_loss(y, proba, n_classes):
    """Plain-Python DCASE log loss: clip to [1e-15, 1-1e-15], renormalise, per class, mean."""
    per_class = {}
    for row, label in zip(proba, y):
        clipped = [min(max(float(p), 1e-15), 1 - 1e-15) for p in row]
        total = sum(clipped)
        per_class.setdefault(int(label), []).append(-math.log(clipped[int(label)] / total))
    losses = [sum(v) / len(v) for k, v in sorted(per_class.items())]
    return sum(losses) / len(losses), per_class


def test_hand_made_probabilities():
    # 3 classes, 6 rows; class 2 has one row with probability 0 for its true class.
    proba = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.4, 0.5, 0.1],
            [0.2, 0.6, 0.2],
            [0.1, 0.8, 0.1],
            [0.5, 0.5, 0.0],
            [0.25, 0.25, 0.5],
        ]
    )
    y = np.array([0, 0, 1, 1, 2, 2])
    # Row 4: clip 0 -> 1e-15, renormalise by 1 + 1e-15 (the other two are not clipped).
    expected_class = [
        (-math.log(0.7) - math.log(0.4)) / 2,
        (-math.log(0.6) - math.log(0.8)) / 2,
        (-math.log(1e-15 / (1 + 1e-15)) - math.log(0.5)) / 2,
    ]
    np.testing.assert_allclose(metrics.class_wise_log_loss(y, proba), expected_class, rtol=1e-12)
    assert metrics.dcase_log_loss(y, proba) == pytest.approx(sum(expected_class) / 3, rel=1e-12)
    # Arg-max: rows 0, 2, 3, 5 right; row 1 -> 1 (wrong); row 4 -> 0 (tie: first; wrong)
    np.testing.assert_allclose(
        metrics.class_wise_accuracy(y, proba.argmax(axis=1), 3), [0.5, 1.0, 0.5]
    )
    assert metrics.dcase_accuracy(y, proba) == pytest.approx(2.0 / 3.0)


def test_unnormalised_rows_are_renormalised_and_float32_is_clipped_in_float64():
    # Clip first, then renormalise (scikit-learn's order in 2021): [2, 1, 1] clips to ~[1, 1, 1].
    proba = np.array([[0.4, 0.2, 0.2], [0.0, 0.0, 1.0], [2.0, 1.0, 1.0]], dtype=np.float32)
    y = np.array([0, 2, 0])
    losses = metrics.row_log_loss(y, proba)
    assert losses[0] == pytest.approx(-math.log(0.5), rel=1e-7)
    assert losses[1] == pytest.approx(-math.log((1 - 1e-15) / (1 - 1e-15 + 2e-15)), abs=1e-15)
    assert losses[2] == pytest.approx(math.log(3.0))
    # A certain wrong answer costs -log(1e-15 / ~1) ~= 34.5, not float32 eps (~15.9).
    wrong = metrics.row_log_loss(np.array([0]), np.array([[0.0, 1.0]], dtype=np.float32))
    assert wrong[0] == pytest.approx(-math.log(1e-15), rel=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_fresh_random_probabilities_against_independent_computations(seed):
    rng = np.random.default_rng(seed)
    n_classes = 10
    y = rng.integers(0, n_classes, 500)
    proba = rng.dirichlet(np.full(n_classes, 0.3), size=500)
    proba[rng.random(proba.shape) < 0.02] = 0.0  # exact zeros exercise the clipping
    proba /= proba.sum(axis=1, keepdims=True)
    expected, per_class = reference_class_wise_log_loss(y, proba, n_classes)
    assert metrics.dcase_log_loss(y, proba) == pytest.approx(expected, rel=1e-10)
    # Cross-check with scikit-learn on probabilities we clip and renormalise ourselves.
    clipped = metrics.clip_and_normalise(proba)
    sk = [
        sklearn_log_loss(y[y == k], clipped[y == k], labels=list(range(n_classes)))
        for k in range(n_classes)
    ]
    np.testing.assert_allclose(metrics.class_wise_log_loss(y, proba), sk, rtol=1e-9)
    pred = proba.argmax(axis=1)
    assert metrics.dcase_accuracy(y, proba) == pytest.approx(balanced_accuracy_score(y, pred))


def test_absent_classes_are_skipped_in_the_average():
    proba = np.array([[0.9, 0.05, 0.05], [0.2, 0.2, 0.6]])
    y = np.array([0, 2])
    losses = metrics.class_wise_log_loss(y, proba)
    assert np.isnan(losses[1])
    assert metrics.dcase_log_loss(y, proba) == pytest.approx((-math.log(0.9) - math.log(0.6)) / 2)


def test_clip_level_sums_segment_probabilities_then_renormalises():
    rng = np.random.default_rng(7)
    proba = rng.dirichlet(np.ones(4), size=12)
    clip_ids = np.array(["b"] * 5 + ["a"] * 4 + ["c"] * 3)
    clip_proba, ids, segment_clip = metrics.clip_probabilities(proba, clip_ids)
    assert list(ids) == ["a", "b", "c"]
    for k, clip in enumerate(ids):
        total = proba[clip_ids == clip].sum(axis=0)
        np.testing.assert_allclose(clip_proba[k], total / total.sum())
    assert list(ids[segment_clip]) == list(clip_ids)


def report_for(seed, *, segments=10, n_clips=80, n_bootstrap=300):
    rng = np.random.default_rng(seed)
    clip_y = rng.integers(0, 4, n_clips)
    classes = ["airport", "bus", "metro", "park"]
    y = np.repeat(np.array(classes)[clip_y], segments)
    clip_proba = rng.dirichlet(np.ones(4), size=n_clips)
    clip_proba[np.arange(n_clips), clip_y] += 1.0
    proba = np.repeat(clip_proba / clip_proba.sum(axis=1, keepdims=True), segments, axis=0)
    clip_ids = np.repeat([f"clip{c}" for c in range(n_clips)], segments)
    cities = np.repeat(np.where(np.arange(n_clips) % 3 == 0, "lisbon", "madrid"), segments)
    return metrics.evaluate(
        y,
        proba,
        classes=classes,
        clip_ids=clip_ids,
        cities=cities,
        seen_cities={"lisbon"},
        n_bootstrap=n_bootstrap,
        random_state=1,
    )


def test_evaluate_report_structure_and_intervals():
    report = report_for(0)
    for level in ("segment", "clip"):
        section = report[level]
        for key in ("log_loss", "accuracy", "overall_log_loss", "overall_accuracy"):
            low, high = section["ci"][key]
            assert low <= section[key] <= high
        assert set(section["per_class"]) == {"airport", "bus", "metro", "park"}
    assert report["n_clips"] == 80
    assert report["per_city"]["lisbon"]["seen_in_training"] is True
    assert report["per_city"]["madrid"]["seen_in_training"] is False
    assert report["bootstrap"]["unit"] == "clip"
    # Identical segments within a clip: segment and clip metrics coincide.
    assert report["segment"]["log_loss"] == pytest.approx(report["clip"]["log_loss"])


def test_bootstrap_resamples_clips_not_segments():
    # Ten identical segments per clip carry no more information than one: the interval must not
    # shrink (resampling segments would narrow it by about sqrt(10)).
    one = report_for(0, segments=1, n_bootstrap=400)["segment"]["ci"]["accuracy"]
    ten = report_for(0, segments=10, n_bootstrap=400)["segment"]["ci"]["accuracy"]
    np.testing.assert_allclose(ten, one, atol=1e-12)


def test_evaluate_refuses_unknown_labels_and_bad_shapes():
    with pytest.raises(ValueError, match="not among the classes"):
        metrics.evaluate(["tram"], np.ones((1, 2)) / 2, classes=["bus", "park"], clip_ids=["c"])
    with pytest.raises(ValueError, match="shape"):
        metrics.evaluate(["bus"], np.ones((1, 3)) / 3, classes=["bus", "park"], clip_ids=["c"])
