"""The baseline's test protocol against plain restatements of its test_DCASE.py and test.py."""

import numpy as np
import pytest

from classifiers import metrics, protocols


def official_pick(n_frames, n_segments):
    """test_DCASE.py's loop: ``for j in np.linspace(0, N, S, endpoint=False): j = int(j)``."""
    return [int(j) for j in np.linspace(0, n_frames, n_segments, endpoint=False)]


def test_frame_pick_of_a_10s_clip_is_the_baselines():
    clip, frame = protocols.frame_pick([96], [10])
    assert frame.tolist() == [0, 9, 19, 28, 38, 48, 57, 67, 76, 86]
    assert clip.tolist() == [0] * 10
    assert protocols.frame_pick([97], [10])[1].tolist() == official_pick(97, 10)
    assert protocols.frame_pick([6], [1])[1].tolist() == [0]  # a 1-s clip: frame 0


@pytest.mark.parametrize("seed", range(5))
def test_frame_pick_equals_the_official_loop_on_random_clips(seed):
    rng = np.random.default_rng(seed)
    n_frames = rng.integers(1, 400, 60)
    n_segments = np.minimum(rng.integers(1, 40, 60), n_frames)
    n_frames[:5], n_segments[:5] = 96, 10  # repeated (N, S) pairs
    clip, frame = protocols.frame_pick(n_frames, n_segments)
    expected_clip = [c for c in range(60) for _ in range(n_segments[c])]
    expected_frame = [j for c in range(60) for j in official_pick(n_frames[c], n_segments[c])]
    assert clip.tolist() == expected_clip and frame.tolist() == expected_frame


def official_clip(logits):
    """test.py's per clip loop: log-softmax summed (arg-max), softmax averaged (probabilities)."""
    summed = np.zeros(logits.shape[1])
    averaged = np.zeros(logits.shape[1])
    for row in logits:
        log_softmax = row - row.max() - np.log(np.sum(np.exp(row - row.max())))
        summed += log_softmax
        averaged += np.exp(log_softmax)
    return averaged / len(logits), int(np.argmax(summed))


@pytest.mark.parametrize("seed", range(5))
def test_clip_decision_equals_the_official_loop(seed):
    rng = np.random.default_rng(seed)
    n_clips, n_classes = 30, 10
    counts = rng.integers(1, 100, n_clips)
    clip_index = rng.permutation(np.repeat(np.arange(n_clips), counts))  # rows in any order
    logits = rng.normal(scale=3.0, size=(len(clip_index), n_classes))
    proba, pred = protocols.clip_decision(protocols.log_softmax(logits), clip_index, n_clips)
    for c in range(n_clips):
        expected_proba, expected_pred = official_clip(logits[clip_index == c])
        np.testing.assert_allclose(proba[c], expected_proba, rtol=1e-12, atol=1e-15)
        assert pred[c] == expected_pred
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_the_summed_log_softmax_can_disagree_with_the_averaged_probabilities():
    # three frames: one sure of class 0, two that lean to classes 1 and 2
    log_proba = np.log(np.array([[0.98, 0.01, 0.01], [0.02, 0.49, 0.49], [0.02, 0.49, 0.49]]))
    proba, pred = protocols.clip_decision(log_proba, np.zeros(3, int), 1)
    assert proba[0].argmax() == 0 and pred[0] == 1
    # the metrics score the decision given, not the arg-max of the probabilities
    report = metrics.evaluate(
        ["b", "b", "b"],
        np.tile([[0.2, 0.6, 0.2]], (3, 1)),
        classes=["a", "b", "c"],
        clip_ids=["x"] * 3,
        n_bootstrap=20,
        clip_proba=proba,
        clip_pred=pred,
    )
    assert report["clip"]["accuracy"] == 1.0
    expected_loss = -np.log(proba[0, 1])
    assert report["clip"]["log_loss"] == pytest.approx(expected_loss)
    assert report["clip"]["ci"]["accuracy"] == [1.0, 1.0]
    default = metrics.evaluate(
        ["b", "b", "b"],
        np.tile([[0.5, 0.3, 0.2]], (3, 1)),
        classes=["a", "b", "c"],
        clip_ids=["x"] * 3,
        n_bootstrap=0,
    )
    assert default["clip"]["accuracy"] == 0.0


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="at least one frame"):
        protocols.frame_pick([0], [1])
    with pytest.raises(ValueError, match="clips needs"):
        protocols.clip_decision(np.zeros((2, 3)), np.array([0, 0]), 2)
    with pytest.raises(ValueError, match="clip_proba has shape"):
        metrics.evaluate(
            ["a", "b"],
            np.eye(2),
            classes=["a", "b"],
            clip_ids=["x", "y"],
            n_bootstrap=0,
            clip_proba=np.eye(3),
        )
